// Where bench:train's step time and memory go (a diagnostic, not a goal): the same graph and optimizer as the
// Trainer (buildTrainingGraph + LoRA r=16 on all linears, AdamW), driven through TrainStep so that forward-only,
// forward+backward and the JS optimizer can be timed apart, with the training session's RSS. Each session option runs in its
// own child process so its maxRSS is its own.
// Usage: tsx bench/train-profile.ts [fixed|chat]   (env BENCH_THREADS, BENCH_REPEAT: timed repeats, default 3)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from '../main/engine/onnx/runtime.ts';
import { TrainStep } from '../main/engine/train-step.ts';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLora } from '../main/peft/lora.ts';
import { parseLoraConfig } from '../main/peft/lora-config.ts';
import { packMicroBatch, withNormalizer } from '../main/train/batch.ts';
import { epochMicroBatches } from '../main/train/schedule-data.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { ensureF32Folder, readJob, writeJob, type DatasetKind } from './train-setup.ts';
import { median } from './stats.ts';

interface Variant {
  readonly label: string;
  readonly lowMemory: boolean;
  readonly recompute: boolean;
}
const VARIANTS: readonly Variant[] = [
  { label: 'lowMemory (TrainStep default)', lowMemory: true, recompute: false },
  { label: 'memory pattern + prepacking', lowMemory: false, recompute: false },
  { label: 'lowMemory + recompute', lowMemory: true, recompute: true },
  { label: 'mem. pattern + recompute', lowMemory: false, recompute: true },
];

interface Profile {
  readonly label: string;
  readonly createSeconds: number;
  readonly forwardSeconds: number;
  readonly forwardBackwardSeconds: number;
  readonly optimizerSeconds: number;
  /** fwd+bwd seconds per real token over other micro-batches, each run once. */
  readonly freshSecondsPerToken: number;
  readonly tokens: number;
  readonly readyRss: number;
  /** maxRSS after the training steps (before the forward-only session exists). */
  readonly peakRss: number;
}

const maxRss = (): number => process.resourceUsage().maxRSS * 1024;
const repeat = Number(process.env.BENCH_REPEAT ?? 3);

const child = async (workDir: string, v: Variant): Promise<Profile> => {
  const job = readJob(workDir);
  const model = openHfFolder(job.modelDir);
  const { config } = parseLoraConfig(job.lora, 'bench LoRA config');
  const adapted = applyLora(buildTrainingGraph(model), config, { seed: job.seed });
  const batches = epochMicroBatches(job.train, 0, { microBatchSize: job.microBatchSize, maxLength: job.maxLength, packing: true, seed: job.seed });
  const micro = packMicroBatch(batches[0]!);
  const feeds = withNormalizer(micro, micro.targets);
  let t = 0;
  const time = async (f: () => Promise<unknown>): Promise<number> => {
    await f(); // the first run of a shape plans memory; not timed
    const s: number[] = [];
    for (let i = 0; i < repeat; i++) {
      t = performance.now();
      await f();
      s.push((performance.now() - t) / 1000);
    }
    return median(s);
  };
  t = performance.now();
  const step = await TrainStep.create({
    graph: adapted.graph,
    params: adapted.params.map((p) => ({ name: p.name, data: Float32Array.from(p.data) })),
    optimizer: { kind: 'adamw' },
    lr: job.lr,
    recompute: v.recompute,
    session: { threads: job.threads, lowMemory: v.lowMemory },
  });
  const createSeconds = (performance.now() - t) / 1000;
  const readyRss = process.memoryUsage().rss;
  let grads: Awaited<ReturnType<TrainStep['computeGradients']>> | undefined;
  const forwardBackwardSeconds = await time(async () => (grads = await step.computeGradients(feeds)));
  // Each further micro-batch once: on the chat dataset every one has its own shapes (row length, target count).
  const fresh: number[] = [];
  for (const rows of batches.slice(1, 1 + repeat)) {
    const m = packMicroBatch(rows);
    t = performance.now();
    await step.computeGradients(withNormalizer(m, m.targets));
    fresh.push((performance.now() - t) / 1000 / m.tokens);
  }
  const freshSecondsPerToken = median(fresh);
  const peakRss = maxRss();
  t = performance.now();
  step.applyGradients(grads!.grads, grads!.loss);
  const optimizerSeconds = (performance.now() - t) / 1000;
  await step.release();
  // Forward alone needs a session of its own (ORT runs a session's whole graph whatever the fetches); after the
  // training session, so that the RSS figures above are the training session's alone.
  const forward = await Session.create(adapted.graph, { threads: job.threads, lowMemory: v.lowMemory });
  const paramFeeds = Object.fromEntries(adapted.params.map((p) => [p.name, { dtype: 'float32' as const, shape: [...p.shape], data: p.data }]));
  const forwardSeconds = await time(() => forward.run({ ...feeds, ...paramFeeds }, ['loss']));
  await forward.release();
  return { label: v.label, createSeconds, forwardSeconds, forwardBackwardSeconds, optimizerSeconds, freshSecondsPerToken, tokens: micro.tokens, readyRss, peakRss };
};

const parent = (kind: DatasetKind): void => {
  const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
  const root = mkdtempSync(join(tmpdir(), 'peft-bench-profile-'));
  try {
    writeJob(ensureF32Folder(), { kind, threads, warmupSteps: 1, timedSteps: 1, workDir: root });
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    console.log(`train-profile (${kind}): one micro-batch of 4 rows, ${threads} threads, median of ${repeat} after 1 untimed run`);
    console.log('variant                        tokens  create s  fwd s  fwd+bwd s  bwd share  optim s  other batches ms/tok  same batch ms/tok  RSS ready  peak RSS\n(fwd: a forward-only session of the same graph; create s, RSS: the training session)');
    for (const [i, v] of VARIANTS.entries()) {
      const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', root, String(i)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      if (run.status !== 0 || !line.startsWith('{')) {
        console.log(`${v.label.padEnd(29)}  failed (exit ${run.status})`);
        continue;
      }
      const p = JSON.parse(line) as Profile;
      const share = (p.forwardBackwardSeconds - p.forwardSeconds) / p.forwardBackwardSeconds;
      console.log(
        [
          p.label.padEnd(29),
          String(p.tokens).padStart(6),
          p.createSeconds.toFixed(1).padStart(8),
          p.forwardSeconds.toFixed(2).padStart(5),
          p.forwardBackwardSeconds.toFixed(2).padStart(9),
          `${(100 * share).toFixed(0)}%`.padStart(9),
          p.optimizerSeconds.toFixed(3).padStart(7),
          (1000 * p.freshSecondsPerToken).toFixed(2).padStart(20),
          ((1000 * p.forwardBackwardSeconds) / p.tokens).toFixed(2).padStart(17),
          `${mb(p.readyRss)} MB`.padStart(9),
          `${mb(p.peakRss)} MB`.padStart(8),
        ].join('  '),
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
};

const at = process.argv.indexOf('--child');
if (at >= 0) console.log(JSON.stringify(await child(process.argv[at + 1]!, VARIANTS[Number(process.argv[at + 2])]!)));
else parent((process.argv[2] ?? 'fixed') as DatasetKind);
