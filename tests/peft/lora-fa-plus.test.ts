import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Graph } from '../../main/engine/ir/index.ts';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import type { HostTensor } from '../../main/engine/onnx/runtime.ts';
import { LoraFA, loraFaGram, roundBf16, symmetricPinv } from '../../main/engine/optim/lorafa.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { createLoraFaOptimizer, freezeLoraA, loraFaFactors, loraFaScaling } from '../../main/peft/lora-fa.ts';
import { loraPlusMethod, loraPlusParamGroups, toParamGroups } from '../../main/peft/lora-plus.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import type { AdaptedGraph } from '../../main/peft/method.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const MODEL = 'llama3';
const LORA = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
const OPTS = { lr: 2e-3, weight_decay: 0.01, loraplus_lr_ratio: 16, loraplus_weight_decay: 0.01 };

interface Groups { names: string[]; lr: number; weight_decay: number }
interface StepRef { adapter: string; reference: { input_ids: number[][]; labels: number[][]; loss: number }; loraplus_groups: Groups[] }

const ready = tinyModelDir(MODEL) !== undefined && tinyModelDir('qwen2') !== undefined && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: PEFT LoRA-FA / LoRA+ oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const minus = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i]!);
const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));
const close = (got: Float32Array, want: Float32Array, what: string) => {
  expect(maxAbs(want), `${what}: reference is zero`).toBeGreaterThan(0);
  expect(maxDiff(got, want), what).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
};
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });

describe.skipIf(!ready && !oracleRequired())('LoRA-FA and LoRA+ equal PEFT 0.17 optimizers (one step on a tiny model)', () => {
  let out: string;
  let ref: StepRef;
  let config: LoraConfig;
  let lora: AdaptedGraph;
  let batch: Record<string, HostTensor>;

  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'peft-lorafa-plus-'));
    ref = runOracle<StepRef>('peft_lorafa_plus_ref.py', ['step', tinyModelDir(MODEL)!, out, JSON.stringify(LORA), JSON.stringify(OPTS)]);
    const adapter = loadAdapterFiles(ref.adapter);
    config = parseLoraConfig(adapter.config, ref.adapter).config;
    const applied = applyLora(buildLossGraph(openHfFolder(tinyModelDir(MODEL)!)), config);
    lora = { ...applied, params: assignAdapterWeights(applied.params, adapter) };
    const ids = ref.reference.input_ids;
    const positions = ids.map((row) => row.map((_, i) => i));
    batch = { input_ids: i64(ids), position_ids: i64(positions), labels: i64(ref.reference.labels) };
  });

  it('LoRA-FA: A frozen in the graph, B gradients, projection and one optimizer step', async () => {
    const fa = freezeLoraA(lora);
    expect(fa.params.every((p) => p.role === 'lora_B')).toBe(true);
    expect(fa.frozen!.length).toBe(6);
    expect(fa.graph.inputs.some((id) => fa.graph.value(id).name.includes('lora_A'))).toBe(false);
    const before = new Map(fa.params.map((p) => [p.name, Float32Array.from(p.data)]));
    const trainer = await TrainStep.create({ graph: fa.graph, params: fa.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
    const { loss, grads } = await trainer.computeGradients(batch);
    await trainer.release();
    expect(Math.abs(loss - ref.reference.loss)).toBeLessThanOrEqual(1e-5 * ref.reference.loss);
    const refGrads = readAll(join(out, 'lorafa_grads.safetensors'));
    expect(new Set(grads.keys())).toEqual(new Set(refGrads.keys()));
    for (const [k, want] of refGrads) close(grads.get(k)!, want, k);

    // The projection g_B·(AAᵀ + δI)⁺/s², in float32 precision, against float64 torch.
    const exact = new LoraFA([{ name: 'b', params: fa.params }], loraFaFactors(fa, loraFaScaling(config)), { projectionPrecision: 'float32' });
    for (const [k, want] of readAll(join(out, 'lorafa_proj64.safetensors'))) close(exact.projectedGradient(k, grads.get(k)!), want, `projected ${k}`);

    // One step of PEFT's optimizer (bf16-autocast projection, adamw-hf update, weight decay after).
    const opt = createLoraFaOptimizer(fa, config, { weightDecay: OPTS.weight_decay });
    opt.step(grads, OPTS.lr);
    const after = readAll(join(out, 'lorafa_after.safetensors'));
    for (const p of fa.params) close(minus(p.data, before.get(p.name)!), minus(after.get(p.name)!, before.get(p.name)!), `ΔB ${p.name}`);
    // Adam's moments hold PEFT's projected gradient, which it computes under bf16 autocast: ours emulates that
    // rounding (all elements equal to fp32 precision here; a rare bf16 tie may flip, so ≤ 1% may be one bf16
    // step off). The float32 projection is not PEFT's: bf16 inputs lose up to tens of percent to cancellation.
    const state = opt.stateDict();
    expect(state.hyper.lorafa).toBe(true);
    const opt32 = createLoraFaOptimizer(freezeLoraA(lora), config, { weightDecay: OPTS.weight_decay, projectionPrecision: 'float32' });
    opt32.step(grads, OPTS.lr);
    let worst32 = 0;
    for (const [k, want] of readAll(join(out, 'lorafa_state.safetensors'))) {
      const got = state.tensors[k]!;
      const tol = 1e-4 * maxAbs(want);
      const off = want.filter((w, i) => Math.abs(got[i]! - w) > tol);
      expect(off.length, k).toBeLessThanOrEqual(0.01 * want.length);
      const bad = want.findIndex((w, i) => Math.abs(got[i]! - w) > 2 ** -7 * Math.abs(w) + tol);
      expect(bad, `${k}[${bad}] = ${got[bad]}, PEFT ${want[bad]}`).toBe(-1);
      worst32 = Math.max(worst32, maxDiff(opt32.stateDict().tensors[k]!, want) / maxAbs(want));
    }
    expect(worst32).toBeGreaterThan(1e-3);
  });

  it("LoRA+: PEFT's param groups (names, lr, weight decay) and one AdamW step", async () => {
    const specs = loraPlusParamGroups(lora.params, OPTS);
    expect(specs.map((s) => s.name)).toEqual(['groupA', 'embedding', 'groupB', 'groupB_no_decay']);
    specs.forEach((s, i) => {
      const want = ref.loraplus_groups[i]!;
      expect(new Set(s.params), s.name).toEqual(new Set(want.names));
      expect(Math.abs(OPTS.lr * s.lrScale! - want.lr)).toBeLessThanOrEqual(1e-12 * want.lr);
      expect(s.weightDecay).toBe(want.weight_decay);
    });
    expect(loraPlusMethod(OPTS).paramGroups!(lora.params, config)).toEqual(specs);

    const params = lora.params.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
    const before = new Map(params.map((p) => [p.name, Float32Array.from(p.data)]));
    const trainer = await TrainStep.create({
      graph: lora.graph, params, groups: toParamGroups(specs, params), optimizer: { kind: 'adamw' }, lr: OPTS.lr, session: { threads: 2 },
    });
    const r = await trainer.step(batch);
    await trainer.release();
    expect(r.skipped).toBe(false);
    const after = readAll(join(out, 'loraplus_after.safetensors'));
    expect(new Set(after.keys())).toEqual(new Set(params.map((p) => p.name)));
    for (const p of params) close(minus(p.data, before.get(p.name)!), minus(after.get(p.name)!, before.get(p.name)!), `Δ ${p.name}`);
  });

  it('LoRA+ groups PEFT-named tensors the engine cannot build yet (embedding LoRA, DoRA magnitudes, biases)', () => {
    const opts = { lr: 1e-3, loraplus_lr_ratio: 8, loraplus_lr_embedding: 1e-5, loraplus_weight_decay: 0.1 };
    const cfg = { r: 2, target_modules: ['embed_tokens', 'q_proj'], use_dora: true, bias: 'all' };
    const want = runOracle<{ params: { name: string; shape: number[] }[]; groups: Groups[] }>(
      'peft_lorafa_plus_ref.py', ['groups', tinyModelDir('qwen2')!, JSON.stringify(cfg), JSON.stringify(opts)]);
    const specs = loraPlusParamGroups(want.params, opts);
    expect(specs.map((s) => s.params.length)).toEqual(want.groups.map((g) => g.names.length));
    specs.forEach((s, i) => {
      expect(new Set(s.params), s.name).toEqual(new Set(want.groups[i]!.names));
      expect(Math.abs(opts.lr * s.lrScale! - want.groups[i]!.lr)).toBeLessThanOrEqual(1e-12 * want.groups[i]!.lr);
      expect(s.weightDecay).toBe(want.groups[i]!.weight_decay);
    });
  });
});

describe('LoRA-FA and LoRA+ helpers', () => {
  it('pinv of a symmetric matrix: the inverse when well conditioned, drops null directions', () => {
    const m = new Float64Array([4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2]);
    const inv = symmetricPinv(m, 3);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const s = [0, 1, 2].reduce((acc, k) => acc + m[i * 3 + k]! * inv[k * 3 + j]!, 0);
        expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-12);
      }
    }
    // rank 1: u·uᵀ with |u|² = 2 → pinv = u·uᵀ/4.
    const p = symmetricPinv(new Float64Array([1, 1, 1, 1]), 2);
    for (const v of p) expect(Math.abs(v - 0.25)).toBeLessThan(1e-12);
    expect(loraFaGram(new Float32Array([1, 0, 0, 2]), 2)[3]).toBeCloseTo(0.25, 6);
    expect(roundBf16(1 + 2 ** -8)).toBe(1); // a tie rounds to even
    expect(roundBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
  });

  it('typed errors name the tensor or field', () => {
    const b = { name: 'x.lora_B.default.weight', data: new Float32Array(6) };
    expect(() => new LoraFA([{ name: 'g', params: [b] }], new Map([['other', { a: new Float32Array(4), rank: 2, scaling: 1 }]]))).toThrow(/'other', which is in no param group/);
    expect(() => new LoraFA([{ name: 'g', params: [b] }], new Map([[b.name, { a: new Float32Array(4), rank: 4, scaling: 1 }]]))).toThrow(/do not share rank 4/);
    const opt = new LoraFA([{ name: 'g', params: [b] }], new Map());
    expect(() => opt.loadStateDict({ kind: 'adamw', step: 0, hyper: {}, paramSteps: {}, tensors: {} })).toThrow(/not a LoRA-FA state/);
    expect(() => loraPlusParamGroups([], { lr: 1e-3, loraplus_lr_ratio: 0 })).toThrow(PeftError);
    expect(() => loraPlusParamGroups([], { lr: 1e-3, loraplus_lr_ratio: 0 })).toThrow(/loraplus_lr_ratio=0/);
    const specs = loraPlusParamGroups([{ name: 'm.lora_A.default.weight', shape: [2, 3] }], { lr: 1e-3, loraplus_lr_ratio: 4 });
    expect(() => toParamGroups(specs, [])).toThrow(/names 'm.lora_A.default.weight', which is not a trainable tensor/);
    expect(() => toParamGroups(specs, [{ name: 'm.lora_A.default.weight', data: new Float32Array(6) }, b])).toThrow(/'x.lora_B.default.weight' is in no param group/);
    const noLora = { graph: new Graph(new Map(), [], [], [], new Map()), params: [], modules: new Map() };
    expect(() => freezeLoraA(noLora)).toThrow(/no lora_A tensor/);
  });
});
