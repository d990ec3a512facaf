import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import type { OptimizerConfig } from '../../main/engine/optim/index.ts';
import { TrainStep, type TrainStepState } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import {
  applyDeltaLora, DeltaLoraUpdater, loadDeltaLoraCheckpoint, parseDeltaLoraConfig, saveDeltaLoraAdapter,
  type DeltaLoraConfig, type DeltaLoraGraph,
} from '../../main/peft/delta-lora.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const MODEL = 'llama3';
const ready = tinyModelDir(MODEL) !== undefined && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: Delta-LoRA oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

interface Case {
  lora: { r: number; lora_alpha: number; target_modules: string | string[] };
  optimizer: { kind: 'sgd' | 'adamw'; lr: number; weight_decay: number };
  steps: number;
  lambda: number;
  start_step: number;
  seed: number;
  n_batches?: number;
}
interface Ref { batches: { input_ids: number[][]; labels: number[][] }[]; eval_ids: number[][]; losses: number[]; modules: string[] }

const CASES: Record<string, Case> = {
  // W moves after steps 2..5 (t > K = 1); the paper's AdamW with weight decay on A and B.
  'adamw-all-linear': { lora: { r: 4, lora_alpha: 8, target_modules: 'all-linear' }, optimizer: { kind: 'adamw', lr: 1e-2, weight_decay: 0.01 }, steps: 6, lambda: 2, start_step: 1, seed: 3 },
  // Plain SGD, W moves from the first step (K = -1), rank 2 on q/v/down.
  'sgd-from-start': { lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, optimizer: { kind: 'sgd', lr: 2, weight_decay: 0 }, steps: 5, lambda: 0.5, start_step: -1, seed: 5, n_batches: 1 },
};

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
const positions = (rows: number[][]) => i64(rows.map((row) => row.map((_, i) => i)));
const batchOf = (b: Ref['batches'][number]) => ({ input_ids: i64(b.input_ids), position_ids: positions(b.input_ids), labels: i64(b.labels) });
const optimizerOf = (c: Case): OptimizerConfig => (c.optimizer.kind === 'adamw' ? { kind: 'adamw', weightDecay: c.optimizer.weight_decay } : { kind: 'sgd' });
const configOf = (c: Case): DeltaLoraConfig =>
  parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', ...c.lora, delta_lora_lambda: c.lambda, delta_lora_start_step: c.start_step }, 'test').config;

/** Runs `steps` Delta-LoRA steps from the reference's initial adapter. */
const train = async (c: Case, ref: Ref, initDir: string, steps: number, from?: { adapted: DeltaLoraGraph; updater: DeltaLoraUpdater; state: TrainStepState }) => {
  const config = configOf(c);
  let adapted = from?.adapted;
  if (!adapted) {
    const applied = applyDeltaLora(buildLossGraph(openHfFolder(tinyModelDir(MODEL)!)), config);
    adapted = { ...applied, params: assignAdapterWeights(applied.params, loadAdapterFiles(initDir)) };
  }
  const updater = from?.updater ?? new DeltaLoraUpdater(adapted, config);
  const trainer = await TrainStep.create({
    graph: adapted.graph, params: adapted.params, optimizer: optimizerOf(c), lr: c.optimizer.lr,
    afterOptimizerStep: updater.afterOptimizerStep, session: { threads: 2 },
  });
  const losses: number[] = [];
  if (from) trainer.loadState(from.state);
  const first = from?.state.step ?? 0;
  for (let t = first; t < first + steps; t++) losses.push((await trainer.step({ ...batchOf(ref.batches[t % ref.batches.length]!), ...updater.feeds() })).loss);
  const state = trainer.state();
  await trainer.release();
  return { adapted, updater, losses, state };
};

describe.skipIf(!ready && !oracleRequired())('Delta-LoRA equals a PyTorch Delta-LoRA loop (tiny llama3)', () => {
  for (const [name, c] of Object.entries(CASES)) {
    describe(name, () => {
      let out: string;
      let ref: Ref;
      let run: Awaited<ReturnType<typeof train>>;
      beforeAll(async () => {
        out = mkdtempSync(join(tmpdir(), `delta-lora-${name}-`));
        ref = runOracle<Ref>('delta_lora_ref.py', ['train', tinyModelDir(MODEL)!, out, JSON.stringify(c)]);
        run = await train(c, ref, join(out, 'init'), c.steps);
      }, 120_000);

      it('the same loss at every step, and the loss falls', () => {
        expect(run.losses.length).toBe(ref.losses.length);
        run.losses.forEach((l, t) => expect(Math.abs(l - ref.losses[t]!), `step ${t}: ${l} vs ${ref.losses[t]}`).toBeLessThanOrEqual(2e-5 * ref.losses[t]!));
        // The same batch again (batches cycle) has a lower loss.
        const n = ref.batches.length;
        for (let t = n; t < run.losses.length; t++) expect(run.losses[t]!).toBeLessThan(run.losses[t - n]!);
      });

      it('the same W update (W_T − W_0) and the same final A and B in every module', () => {
        const final = new Map(readSafetensorsHeader(join(out, 'final.safetensors')).map((e) => [e.name, readTensorFloat32(e)]));
        expect(run.adapted.deltaModules.map((d) => d.module).sort()).toEqual(ref.modules);
        let worst = 0;
        for (const { module } of run.adapted.deltaModules) {
          const want = final.get(`${module}.delta_weight`)!;
          const got = run.updater.deltaWeight(module);
          expect(maxAbs(want), `${module}: W did not move`).toBeGreaterThan(0);
          const rel = maxDiff(got, want) / maxAbs(want);
          worst = Math.max(worst, rel);
          expect(rel, module).toBeLessThanOrEqual(1e-4);
        }
        const lossRel = Math.max(...run.losses.map((l, t) => Math.abs(l - ref.losses[t]!) / ref.losses[t]!));
        console.log(`${name}: worst relative ΔW difference ${worst.toExponential(2)}, loss ${lossRel.toExponential(2)}; losses ${run.losses.map((l) => l.toFixed(5)).join(' ')}`);
        for (const p of run.adapted.params) {
          const want = final.get(p.name)!;
          expect(maxDiff(p.data, want), p.name).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-7);
        }
      });

      it('saves a PEFT LoRA folder (rank 2r) whose model is the trained W_T + LoRA, in our engine and in PEFT', async () => {
        const dir = join(out, 'saved');
        saveDeltaLoraAdapter(dir, run.updater, run.adapted.params);
        const adapter = loadAdapterFiles(dir);
        const { config, warnings } = parseLoraConfig(adapter.config, dir);
        expect(warnings).toEqual([]);
        expect(config.r).toBe(2 * c.lora.r);
        const model = openHfFolder(tinyModelDir(MODEL)!);
        const lora = applyLora(buildLogitsGraph(model), config);
        const weights = assignAdapterWeights(lora.params, adapter);
        const session = await Session.create(lora.graph, { threads: 2 });
        const feeds: Record<string, HostTensor> = { input_ids: i64(ref.eval_ids), position_ids: positions(ref.eval_ids) };
        for (const p of weights) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
        const got = (await session.run(feeds)).logits!.data as Float32Array;
        await session.release();
        const want = new Float32Array(readFileSync(join(out, 'final_logits.f32')).buffer.slice(0));
        expect(maxDiff(got, want)).toBeLessThanOrEqual(1e-4);
        const peftFile = join(out, 'peft_logits.f32');
        runOracle('delta_lora_ref.py', ['logits', tinyModelDir(MODEL)!, dir, peftFile, JSON.stringify(ref.eval_ids)]);
        expect(maxDiff(new Float32Array(readFileSync(peftFile).buffer.slice(0)), want)).toBeLessThanOrEqual(1e-4);
      });

      it('resumes from a saved checkpoint with the same losses as an uninterrupted run', async () => {
        const split = 3;
        const first = await train(c, ref, join(out, 'init'), split);
        const dir = join(out, 'resume');
        saveDeltaLoraAdapter(dir, first.updater, first.adapted.params);
        const ckpt = loadDeltaLoraCheckpoint(dir);
        const applied = applyDeltaLora(buildLossGraph(openHfFolder(tinyModelDir(MODEL)!)), ckpt.config);
        const adapted = { ...applied, params: applied.params.map((p) => ({ ...p, data: Float32Array.from(ckpt.tensors.get(p.name)!) })) };
        const updater = new DeltaLoraUpdater(adapted, ckpt.config);
        updater.loadState(ckpt.state);
        // The optimizer's moments and step count come from the trainer's own checkpoint.
        const rest = await train(c, ref, join(out, 'init'), c.steps - split, { adapted, updater, state: first.state });
        [...first.losses, ...rest.losses].forEach((l, t) => expect(Math.abs(l - run.losses[t]!), `step ${t}`).toBeLessThanOrEqual(1e-6 * run.losses[t]!));
      });
    });
  }
});

describe.skipIf(!tinyModelDir(MODEL))('Delta-LoRA graph (tiny llama3)', () => {
  it('is exactly LoRA until step K, then its A and B gradients are LoRA gradients at W_t', async () => {
    const config = parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'up_proj'], init_lora_weights: false, delta_lora_lambda: 3, delta_lora_start_step: 0 }, 'test').config;
    const model = openHfFolder(tinyModelDir(MODEL)!);
    const delta = applyDeltaLora(buildLossGraph(model), config, { seed: 1 });
    const lora = applyLora(buildLossGraph(model), parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj', 'up_proj'] }, 'test').config);
    const loraParams = lora.params.map((p) => ({ ...p, data: delta.params.find((q) => q.name === p.name)!.data }));
    const updater = new DeltaLoraUpdater(delta, config);
    const ids = [[1, 5, 9, 200, 7, 3], [4, 4, 8, 1000, 2, 6]];
    const batch = { input_ids: i64(ids), position_ids: positions(ids), labels: i64(ids) };
    const mk = (graph: typeof delta.graph, params: typeof delta.params) => TrainStep.create({ graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
    const [d, l] = await Promise.all([mk(delta.graph, delta.params), mk(lora.graph, loraParams)]);
    const before = await d.computeGradients({ ...batch, ...updater.feeds() });
    const plain = await l.computeGradients(batch);
    expect(before.loss).toBe(plain.loss);
    for (const [k, g] of plain.grads) expect(maxDiff(before.grads.get(k)!, g), k).toBe(0);
    // After step K = 0 the ratio is λ and the start factors are A, B: the value is W₀ + s·BA again (to rounding)
    // and so are the gradients, though both now flow through the Delta-LoRA branch.
    updater.afterOptimizerStep(0);
    expect(updater.started).toBe(true);
    const after = await d.computeGradients({ ...batch, ...updater.feeds() });
    expect(Math.abs(after.loss - plain.loss)).toBeLessThanOrEqual(1e-6 * plain.loss);
    for (const [k, g] of plain.grads) expect(maxDiff(after.grads.get(k)!, g), k).toBeLessThanOrEqual(1e-5 * maxAbs(g) + 1e-9);
    // Gradient checkpointing recomputes each block in the backward pass: the same gradients.
    const re = await TrainStep.create({ graph: delta.graph, params: delta.params, optimizer: { kind: 'sgd' }, lr: 0, recompute: true, session: { threads: 2 } });
    const recomputed = await re.computeGradients({ ...batch, ...updater.feeds() });
    for (const [k, g] of after.grads) expect(maxDiff(recomputed.grads.get(k)!, g), `recomputed ${k}`).toBeLessThanOrEqual(1e-6 * maxAbs(g));
    await Promise.all([d.release(), l.release(), re.release()]);
  });
});

describe('Delta-LoRA config', () => {
  it('rejects dropout and bad fields, naming them', () => {
    const base = { peft_type: 'DELTA_LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'] };
    expect(() => parseDeltaLoraConfig({ ...base, lora_dropout: 0.1 }, 'cfg')).toThrow(/lora_dropout=0.1 must be 0/);
    expect(() => parseDeltaLoraConfig({ ...base, delta_lora_lambda: -1 }, 'cfg')).toThrow(/delta_lora_lambda/);
    expect(() => parseDeltaLoraConfig({ ...base, delta_lora_start_step: 1.5 }, 'cfg')).toThrow(/delta_lora_start_step/);
    expect(() => parseDeltaLoraConfig({ ...base, r: 0 }, 'cfg')).toThrow(/cfg: r=0/);
    expect(parseDeltaLoraConfig({ ...base, foo: 1 }, 'cfg').warnings).toEqual(["cfg: unknown field 'foo' ignored (written by a newer PEFT?)"]);
  });
});
