// bench:train, our side, run as a fresh child process (its maxRSS is its own): the product's training path —
// openHfFolder → buildTrainingGraph (packed rows, LM head at target positions only) → applyLora → Trainer.run — on
// one job written by train-setup.ts. Prints one JSON line (SideResult) on stdout.
// Usage: tsx bench/train-ours.ts WORK_DIR
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLora } from '../main/peft/lora.ts';
import { parseLoraConfig } from '../main/peft/lora-config.ts';
import { saveAdapter } from '../main/peft/peft-io.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { Trainer } from '../main/train/trainer.ts';
import { readJob } from './train-setup.ts';
import type { SideResult } from './train-report.ts';

const workDir = process.argv[2];
if (!workDir) throw new Error('usage: train-ours.ts WORK_DIR');
const job = readJob(workDir);

const model = openHfFolder(job.modelDir);
const { config } = parseLoraConfig(job.lora, 'bench LoRA config');
const adapted = applyLora(buildTrainingGraph(model), config, { seed: job.seed });
// PyTorch's side loads these, so both start from the same A (B is zero: the first loss is the base model's).
saveAdapter(job.initAdapterDir, job.lora, adapted.params);

const outputDir = mkdtempSync(join(tmpdir(), 'peft-bench-train-'));
const stepEnds: number[] = [];
/** Process CPU seconds (every thread, user + system) at each step's end: contention inflates wall time, less so this. */
const stepCpu: number[] = [];
const trainer = await Trainer.create({
  graph: adapted.graph,
  params: adapted.params,
  train: job.train,
  eval: job.eval,
  hyper: {
    microBatchSize: job.microBatchSize,
    gradientAccumulation: 1,
    maxSteps: job.warmupSteps + job.timedSteps,
    lr: job.lr,
    schedule: 'constant',
    optimizer: { kind: 'adamw' },
    maxLength: job.maxLength,
    packing: true,
    seed: job.seed,
    session: { threads: job.threads },
  },
  outputDir,
  onEvent: (e) => {
    if (e.type === 'step') {
      stepEnds.push(performance.now());
      const cpu = process.cpuUsage();
      stepCpu.push((cpu.user + cpu.system) / 1e6);
    }
  },
});
const readyRssBytes = process.memoryUsage().rss;
const evalBefore = job.eval.length ? await trainer.evaluate() : undefined;
const started = performance.now();
const result = await trainer.run();
const evalAfter = job.eval.length ? await trainer.evaluate() : undefined;
const provider = trainer.provider.provider;
await trainer.release();
rmSync(outputDir, { recursive: true, force: true });

if (result.steps !== job.warmupSteps + job.timedSteps) throw new Error(`trained ${result.steps} steps, expected ${job.warmupSteps + job.timedSteps}`);
const ends = [started, ...stepEnds];
const stepSeconds = ends.slice(1).map((t, i) => (t - ends[i]!) / 1000);
const timedSeconds = (stepEnds.at(-1)! - stepEnds[job.warmupSteps - 1]!) / 1000;
const out: SideResult = {
  side: 'ours',
  provider,
  threads: job.threads,
  timedSeconds,
  timedCpuSeconds: stepCpu.at(-1)! - stepCpu[job.warmupSteps - 1]!,
  timedTokens: job.timedTokens,
  tokensPerSecond: job.timedTokens / timedSeconds,
  stepSeconds,
  losses: result.losses,
  ...(evalBefore !== undefined ? { evalBefore } : {}),
  ...(evalAfter !== undefined ? { evalAfter } : {}),
  readyRssBytes,
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
};
console.log(JSON.stringify(out));
