// bench:methods, one method per fresh child process (its maxRSS is its own): trains it from a run config through
// trainRun — the product's path — and prints one JSON line: trainable parameters, step times, peak RSS, eval loss.
// Usage: tsx bench/methods-child.ts WORK_DIR MODEL_DIR DATASET CASE_INDEX STEPS THREADS
import { join } from 'node:path';
import { PeftError } from '../main/peft/errors.ts';
import { parseRunConfig } from '../main/service/run-config.ts';
import { trainRun } from '../main/service/train-run.ts';
import { IN_MEMORY, openStore } from '../main/store/index.ts';
import type { Trainer } from '../main/train/trainer.ts';
import { METHOD_CASES, caseFolder } from './methods-cases.ts';

/** A method that cannot train this model (BitFit on a bias-free one) says why instead. */
export interface MethodRefusal {
  readonly label: string;
  readonly refused: string;
}

export interface MethodResult {
  readonly label: string;
  readonly trainable: number;
  readonly stepSeconds: readonly number[];
  readonly peakRssBytes: number;
  readonly evalLoss: number;
  readonly firstLoss: number;
  readonly lastLoss: number;
}

const [work, modelDir, dataset, index, steps, threads] = process.argv.slice(2);
if (!threads) throw new Error('usage: methods-child.ts WORK_DIR MODEL_DIR DATASET CASE_INDEX STEPS THREADS');
const c = METHOD_CASES[Number(index)]!;
// AdapterFusion's adapter_paths name the labels of the cases that trained them.
const paths = c.method.adapter_paths as Record<string, string> | undefined;
const method = paths ? { ...c.method, adapter_paths: Object.fromEntries(Object.entries(paths).map(([k, label]) => [k, join(work!, caseFolder(label), 'adapter')])) } : c.method;
const config = parseRunConfig(
  {
    name: c.label, model: modelDir, method, output: join(work!, caseFolder(c.label)),
    dataset: { path: dataset, evalFraction: 0.1 },
    training: { microBatchSize: 4, maxSteps: Number(steps), lr: c.lr, schedule: 'constant', warmupSteps: 0, maxGradNorm: 1, maxLength: 256, evalEvery: Number(steps), checkpointEvery: 0, seed: 7, session: { threads: Number(threads) } },
  },
  c.label,
);
const ends: number[] = [];
let trainer: Trainer | undefined;
const store = openStore(IN_MEMORY);
let started = 0;
const out = await trainRun(config, store, {
  control: (t) => ((trainer = t), (started = performance.now())),
  onEvent: (e) => void (e.type === 'step' && ends.push(performance.now())),
}).catch((err: unknown) => {
  if (!(err instanceof PeftError)) throw err;
  console.log(JSON.stringify({ label: c.label, refused: err.message } satisfies MethodRefusal));
  process.exit(0);
});
const losses = store.metrics.series(out.runId, 'train/loss').map((p) => p.value);
const stamps = [started, ...ends];
const result: MethodResult = {
  label: c.label,
  trainable: trainer!.trainables.reduce((n, p) => n + p.data.length, 0),
  stepSeconds: ends.map((t, i) => (t - stamps[i]!) / 1000),
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  evalLoss: store.metrics.series(out.runId, 'eval/loss').at(-1)!.value,
  firstLoss: losses[0]!,
  lastLoss: losses.at(-1)!,
};
store.close();
console.log(JSON.stringify(result));
