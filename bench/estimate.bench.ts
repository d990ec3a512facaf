// bench:estimate — the run estimate (main/service/estimate.ts) against real training runs: for the tiny llama3 test
// model and SmolLM2-135M-Instruct (LoRA r=16 on every linear, micro-batch 4 × 256 tokens, all cores), each run trained
// through the product's trainRun in a fresh child process (tests/helpers/measure-run.ts), which reports its peak RSS,
// its step times and the throughput probe measured just before and after its steps (the load they saw). Prints
// estimated vs measured step time and peak RSS, and their ratios. BENCH_STEPS sets the steps per run (default 5); the
// step time is the median of the steps after the first two (session creation, first-run page faults).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateRun } from '../main/service/estimate.ts';
import { parseRunConfig } from '../main/service/run-config.ts';
import type { MachineThroughput } from '../main/train/estimate.ts';
import { writeFullRowDataset, type MeasuredRun } from '../tests/helpers/measure-run.ts';
import { oracleCacheDir, tinyModelDir } from '../tests/helpers/oracle-cache.ts';
import { median } from './stats.ts';

const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const cache = join(oracleCacheDir(), '..');
const LORA = { peft_type: 'LORA', r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear' };

interface Case {
  readonly label: string;
  readonly model: string | undefined;
  readonly microBatchSize: number;
  readonly maxLength: number;
  readonly lowMemory?: boolean;
}
const CASES: readonly Case[] = [
  { label: 'tiny llama3 (HF f32), 4 × 128', model: tinyModelDir('llama3'), microBatchSize: 4, maxLength: 128 },
  { label: 'SmolLM2-135M (Q4_1 GGUF → f32), 4 × 256', model: join(cache, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf'), microBatchSize: 4, maxLength: 256 },
  { label: 'SmolLM2-135M (HF f32 folder), 4 × 256', model: join(cache, 'bench', 'SmolLM2-135M-Instruct-f32'), microBatchSize: 4, maxLength: 256 },
  { label: 'SmolLM2-135M (HF f32), 4 × 256, lowMemory', model: join(cache, 'bench', 'SmolLM2-135M-Instruct-f32'), microBatchSize: 4, maxLength: 256, lowMemory: true },
];

/** The probes before and after a run, averaged (geometric mean): the load the run's steps saw lies between. */
const between = (a: MachineThroughput, b: MachineThroughput): MachineThroughput => {
  const mean = (k: Exclude<keyof MachineThroughput, 'threads'>) => Math.sqrt(a[k] * b[k]);
  return {
    threads: a.threads,
    matmulFlopsPerSecond: mean('matmulFlopsPerSecond'),
    memoryBytesPerSecond: mean('memoryBytesPerSecond'),
    secondsPerNode: mean('secondsPerNode'),
    optimizerSecondsPerParam: mean('optimizerSecondsPerParam'),
  };
};
const MiB = 2 ** 20;
const gflops = (t: MachineThroughput): string => (t.matmulFlopsPerSecond / 1e9).toFixed(1);

const work = mkdtempSync(join(tmpdir(), 'peft-bench-estimate-'));
const dataset = join(work, 'moby.jsonl');
writeFullRowDataset(dataset, 6);
const rows: string[][] = [];
try {
  for (const c of CASES) {
    if (!c.model || !existsSync(c.model)) {
      console.log(`${c.label}: skipped (${c.model ?? 'the tiny oracle models'} not found; tests/oracle/*.sh, npm run bench:train make them)`);
      continue;
    }
    const label = c.label.replace(/[^a-z0-9]+/gi, '-');
    const raw = {
      name: label,
      model: c.model,
      dataset: { path: dataset, evalFraction: 0 },
      method: LORA,
      training: { microBatchSize: c.microBatchSize, maxLength: c.maxLength, maxSteps: STEPS, lr: 2e-4, checkpointEvery: 1000, session: { threads, ...(c.lowMemory ? { lowMemory: true } : {}) } },
      output: join(work, label),
    };
    const file = join(work, `${label}.json`);
    writeFileSync(file, JSON.stringify(raw));
    const child = spawnSync(process.execPath, ['--import', 'tsx', 'tests/helpers/measure-run.ts', file, join(work, `${label}.db`), '--probe'], { encoding: 'utf8', maxBuffer: 16 << 20 });
    if (child.status !== 0) throw new Error(`${c.label}: measure-run exited ${child.status}: ${child.stderr}`);
    const measured = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as MeasuredRun;
    const t = between(measured.throughputBefore!, measured.throughputAfter!);
    const estimate = await estimateRun(parseRunConfig(raw, file), { throughput: t });
    const step = median(measured.stepSeconds.slice(2));
    const e = estimate.time!;
    console.log(
      `${c.label}: probe ${gflops(measured.throughputBefore!)} → ${gflops(measured.throughputAfter!)} GFLOP/s, ${(t.memoryBytesPerSecond / 1e9).toFixed(1)} GB/s; ` +
        `estimate ${(estimate.flops.total / 1e9).toFixed(1)} GFLOP → matmul ${e.matmul.toFixed(2)} s + other ${e.memoryBound.toFixed(2)} s + nodes ${e.perNode.toFixed(2)} s + optimizer ${e.optimizer.toFixed(2)} s; ` +
        `steps ${measured.stepSeconds.map((s) => s.toFixed(2)).join(', ')} s`,
    );
    rows.push([
      c.label,
      estimate.stepSeconds!.toFixed(2),
      step.toFixed(2),
      (estimate.stepSeconds! / step).toFixed(2),
      (estimate.peakRssBytes / MiB).toFixed(0),
      (measured.peakRssBytes / MiB).toFixed(0),
      (estimate.peakRssBytes / measured.peakRssBytes).toFixed(2),
    ]);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`\nbench:estimate — LoRA r=16 all-linear, ${threads} threads, ${STEPS} steps per run (step time: median after the first two)`);
const header = ['case', 'est. step s', 'meas. step s', 'ratio', 'est. peak MiB', 'meas. peak MiB', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
for (const r of [header, ...rows]) console.log(r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  '));
