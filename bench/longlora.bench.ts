// bench:longlora — LongLoRA's training step on SmolLM2-135M (float32 HF folder) at 2,048 tokens, micro-batch 1:
// S²-Attn (4 groups of 512, half the heads offset by 256) vs full causal attention, with everything else equal
// (LoRA r=8 on q/k/v/o, trainable embeddings and norms, RoPE linear ×4, AdamW). Each configuration runs in a fresh
// child process so that its peak RSS is its own. By default each layer is recomputed in the backward pass (gradient
// checkpointing, as LongLoRA trains) with the low-memory session options; BENCH_RECOMPUTE=0 keeps every layer's
// activations (full attention then needs far more memory than a 135M model's weights suggest).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainStep } from '../main/engine/train-step.ts';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLongLora } from '../main/peft/longlora.ts';
import { parseLongLoraConfig } from '../main/peft/longlora-config.ts';
import { packMicroBatch, withNormalizer } from '../main/train/batch.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { median, lcgTokens } from './stats.ts';

const MODEL = process.env.BENCH_MODEL ?? join(process.env.PEFT_STUDIO_CACHE ?? join(process.env.HOME ?? '', '.cache', 'peft-studio'), 'bench', 'SmolLM2-135M-Instruct-f32');
const SEQ = Number(process.env.BENCH_SEQ ?? 2048);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const recompute = process.env.BENCH_RECOMPUTE !== '0';
const lowMemory = process.env.BENCH_LOW_MEMORY !== '0';

const ATTENTIONS = ['s2', 'full'] as const;
type Attention = (typeof ATTENTIONS)[number];

interface Result {
  readonly attention: Attention;
  readonly stepMs: number;
  readonly readyRssBytes: number;
  readonly peakRssBytes: number;
  readonly losses: readonly number[];
  readonly provider: string;
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

/** One row of SEQ token ids from a fixed LCG, every position a target. */
const batch = (vocab: number) => {
  const ids = Array.from({ length: SEQ }, lcgTokens(vocab));
  const micro = packMicroBatch([[{ inputIds: ids, labels: ids }]]);
  return withNormalizer(micro, micro.targets);
};

const child = async (attention: Attention): Promise<Result> => {
  const model = openHfFolder(MODEL);
  const { config } = parseLongLoraConfig({ peft_type: 'LONGLORA', model_max_length: SEQ, rope_scaling: { type: 'linear', factor: 4 }, lora_dropout: 0 }, 'bench');
  const adapted = applyLongLora(buildTrainingGraph(model), config, { attention });
  const params = adapted.params.map((p) => ({ name: p.name, data: Float32Array.from(p.data) }));
  const step = await TrainStep.create({ graph: adapted.graph, params, optimizer: { kind: 'adamw' }, lr: 1e-4, recompute, session: { threads, lowMemory } });
  const readyRssBytes = process.memoryUsage().rss;
  const feeds = batch(model.config.vocabSize);
  const losses: number[] = [];
  const ms: number[] = [];
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t = performance.now();
    losses.push((await step.step(feeds)).loss);
    if (i >= WARMUP) ms.push(performance.now() - t);
  }
  const provider = step.provider.provider;
  await step.release();
  return { attention, stepMs: median(ms), readyRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, losses, provider };
};

const parent = (): void => {
  if (!existsSync(join(MODEL, 'config.json'))) {
    console.error(`bench:longlora needs the float32 SmolLM2-135M HF folder ${MODEL} (set BENCH_MODEL)`);
    process.exit(1);
  }
  console.log(`bench:longlora — SmolLM2-135M, LongLoRA (LoRA r=8 q/k/v/o + embeddings and norms, RoPE ×4), 1×${SEQ} tokens, ${threads} threads, recompute ${recompute}, lowMemory ${lowMemory}, median of ${STEPS} steps after ${WARMUP}`);
  const results: Result[] = [];
  for (const attention of ATTENTIONS) {
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', attention], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    const line = run.stdout.trim().split('\n').pop() ?? '';
    if (run.status !== 0 || !line.startsWith('{')) {
      console.log(`${attention}: failed (${run.signal ? `killed by ${run.signal}, e.g. out of memory` : `exit ${run.status}`})`);
      continue;
    }
    results.push(JSON.parse(line) as Result);
  }
  const full = results.find((r) => r.attention === 'full');
  const label: Readonly<Record<Attention, string>> = { s2: 'S²-Attn (4 groups)', full: 'full attention' };
  const head = ['attention', 'step s', '× full', 'RSS ready MB', 'peak RSS MB', '× full', 'loss'];
  const rows = results.map((r) => [
    label[r.attention],
    (r.stepMs / 1000).toFixed(2),
    full ? (r.stepMs / full.stepMs).toFixed(2) : '—',
    mb(r.readyRssBytes),
    mb(r.peakRssBytes),
    full ? (r.peakRssBytes / full.peakRssBytes).toFixed(2) : '—',
    r.losses.map((l) => l.toFixed(3)).join('→'),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
  console.log(`provider: ${results[0]?.provider ?? '?'}`);
};

const at = process.argv.indexOf('--child');
if (at >= 0) console.log(JSON.stringify(await child(process.argv[at + 1] as Attention)));
else parent();
