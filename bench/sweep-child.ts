// bench:train's sweep section, one measurement per fresh child process (its maxRSS is its own): K LoRA trials over
// SmolLM2 trained fused (one graph, one base), fused with successive halving, one after another, or a single trial
// alone (its activation memory = peak RSS − RSS once the session is ready). Prints one JSON line.
// Usage: tsx bench/sweep-child.ts single|sequential|fused|pruned WORK_DIR
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLora } from '../main/peft/lora.ts';
import { parseLoraConfig } from '../main/peft/lora-config.ts';
import { FusedTrainer } from '../main/train/fused-trainer.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { Trainer, type TrainingHyper } from '../main/train/trainer.ts';
import { SWEEP_RUNGS, SWEEP_STEPS, SWEEP_TRIALS } from './sweep-section.ts';
import { readJob } from './train-setup.ts';

export interface SweepChildResult {
  readonly mode: string;
  readonly seconds: number;
  readonly trialSteps: number;
  readonly peakRssBytes: number;
  readonly readyRssBytes?: number;
  readonly finalLosses: readonly number[];
}


const [mode, workDir] = process.argv.slice(2);
if (!mode || !workDir) throw new Error('usage: sweep-child.ts single|sequential|fused|pruned WORK_DIR');
const job = readJob(workDir);
const model = openHfFolder(job.modelDir);
const configs = SWEEP_TRIALS.map((t) => parseLoraConfig({ ...job.lora, ...t }, 'bench sweep').config);
const evalSet = job.train.slice(-8);
const hyper: TrainingHyper = {
  microBatchSize: job.microBatchSize, gradientAccumulation: 1, maxSteps: SWEEP_STEPS, lr: job.lr, schedule: 'constant',
  maxLength: job.maxLength, packing: true, seed: job.seed, session: { threads: job.threads },
};
const train = job.train.slice(0, -8);

const started = performance.now();
let readyRssBytes: number | undefined;
const finalLosses: number[] = [];
let trialSteps = 0;
if (mode === 'fused' || mode === 'pruned') {
  const fused = await FusedTrainer.create({
    model, train, eval: evalSet, hyper,
    trials: configs.map((config, i) => ({ key: `trial${i}`, config })),
    ...(mode === 'pruned' ? { halving: { rungs: SWEEP_RUNGS } } : {}),
  });
  const result = await fused.run();
  for (const t of result.trials) {
    finalLosses.push(t.losses.at(-1)!);
    trialSteps += t.losses.length;
  }
} else {
  for (const config of mode === 'single' ? configs.slice(0, 1) : configs) {
    const adapted = applyLora(buildTrainingGraph(model), config, { seed: job.seed });
    const outputDir = mkdtempSync(join(tmpdir(), 'peft-bench-sweep-'));
    const trainer = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, eval: evalSet, hyper, outputDir });
    readyRssBytes ??= process.memoryUsage().rss;
    const result = await trainer.run();
    // Sequential sweeps rank trials by the same final eval the fused ones compute.
    await trainer.evaluate();
    await trainer.release();
    rmSync(outputDir, { recursive: true, force: true });
    finalLosses.push(result.losses.at(-1)!);
    trialSteps += result.steps;
  }
}
const out: SweepChildResult = {
  mode, seconds: (performance.now() - started) / 1000, trialSteps, peakRssBytes: process.resourceUsage().maxRSS * 1024,
  ...(readyRssBytes !== undefined ? { readyRssBytes } : {}), finalLosses,
};
console.log(JSON.stringify(out));
