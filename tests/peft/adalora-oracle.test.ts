import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { GraphBuilder, gemm, reduceSum, type Graph } from '../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { createOptimizer } from '../../main/engine/optim/index.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { applyAdalora, assignAdaloraWeights, parseAdaloraConfig, saveAdaloraAdapter, type AdaLoraConfig, type RankPattern } from '../../main/peft/adalora.ts';
import { AdaLoraAllocator } from '../../main/peft/adalora-allocator.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
};
const readTensors = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));
const readF32 = (file: string) => new Float32Array(readFileSync(file).buffer.slice(0));
/** PEFT's in-memory rank_pattern keys carry `.default`; saved ones do not. */
const stripAdapter = (p: RankPattern | null | undefined) => (p ? Object.fromEntries(Object.entries(p).map(([k, v]) => [k.replace(/\.default$/, ''), v])) : null);

const TARGETS_ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const SCHEDULE = { init_r: 4, target_r: 2, tinit: 3, tfinal: 4, deltaT: 2, total_step: 16, lora_alpha: 8 };

describe('AdaLoRA config and budget schedule', () => {
  const base = { peft_type: 'ADALORA', target_modules: ['q_proj'], ...SCHEDULE };
  it('validates as PEFT does, naming the field', () => {
    expect(parseAdaloraConfig(base, 'cfg').warnings).toEqual([]);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ total_step: null }, /total_step=null must be a positive integer/],
      [{ tinit: 12 }, /tinit=12 leaves no budgeting phase/],
      [{ beta1: 1 }, /beta1=1 must be in \(0, 1\)/],
      [{ target_r: 5 }, /target_r=5 must be an integer in \[0, init_r=4\]/],
      [{ deltaT: 0 }, /deltaT=0/],
      [{ use_dora: true }, /use_dora/],
      [{ rank_pattern: { 'model.layers.0.self_attn.q_proj.lora_E': [1, 0] } }, /rank_pattern\['model.layers.0.self_attn.q_proj.lora_E'\] must be a list of booleans/],
      [{ target_modules: 'q_proj', layers_to_transform: [0] }, /layers_to_transform/],
    ];
    for (const [patch, msg] of bad) expect(() => parseAdaloraConfig({ ...base, ...patch }, 'cfg')).toThrow(msg);
    expect(() => parseAdaloraConfig({ ...base, tinit: 12 }, 'cfg')).toThrow(PeftError);
    expect(parseAdaloraConfig({ ...base, r: 4, newer_field: 1 }, 'cfg').warnings).toEqual([
      'cfg: r=4 is not used by AdaLoRA (init_r=4 sets the initial rank)',
      "cfg: unknown field 'newer_field' ignored (written by a newer PEFT?)",
    ]);
  });

  it('schedules the budget: warm-up, cubic decrease every deltaT steps, final', () => {
    const { config } = parseAdaloraConfig(base, 'cfg');
    const params: TrainableTensor[] = ['m0', 'm1'].flatMap((module) => [
      { name: `${module}.A`, shape: [4, 3], data: new Float32Array(12), module, role: 'lora_A' },
      { name: `${module}.B`, shape: [5, 4], data: new Float32Array(20), module, role: 'lora_B' },
      { name: `${module}.E`, shape: [4, 1], data: new Float32Array(4), module, role: 'lora_E' },
    ]);
    const a = new AdaLoraAllocator(config, params);
    expect([a.initBudget, a.targetBudget]).toEqual([8, 4]);
    const got = [0, 3, 4, 5, 6, 11, 12, 13, 20].map((s) => a.budgetSchedule(s));
    // step 4: int((8 − 4)·(8/9)³ + 4) = 6; step 5: int(4·(7/9)³ + 4) = 5; step 6: int(4·(2/3)³ + 4) = 5.
    expect(got.map((g) => g.budget)).toEqual([8, 8, 6, 5, 5, 4, 4, 4, 4]);
    expect(got.map((g) => g.mask)).toEqual([false, false, true, false, true, false, true, true, true]);
    expect(() => a.update(0, new Map(), new Map())).toThrow(/parameter 'm0.A' was not given/);
  });
});

describe('AdaLoRA rewrite on a one-layer graph', () => {
  const build = (): Graph => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2, 3]);
    const w = g.initializer('layer.q_proj.weight', 'float32', [4, 3], { kind: 'inline', data: Float32Array.from({ length: 12 }, (_, i) => ((i % 5) - 2) / 10) });
    g.output(reduceSum(gemm(x, w, undefined, { transB: true, name: 'layer.q_proj' }), [], { keepdims: false }), 'loss');
    return g.build();
  };
  const x = Float32Array.from([0.3, -1.2, 0.5, 2, 0.1, -0.7]);
  const lossOf = async (graph: Graph, params: readonly TrainableTensor[]) => {
    const s = await Session.create(graph, { threads: 1 });
    const out = (await s.run({ x: { dtype: 'float32', shape: [2, 3], data: x }, ...feedsOf(params) })).loss!.data[0] as number;
    await s.release();
    return out;
  };
  const raw = { peft_type: 'ADALORA', target_modules: ['q_proj'], init_r: 2, target_r: 1, total_step: 10, lora_alpha: 3, init_lora_weights: false, orth_reg_weight: 0.7 };

  it('adds x·(A ⊙ E)ᵀ·Bᵀ·α/(ranknum + 1e-5) and the orthogonal regularization to the loss', async () => {
    const { config } = parseAdaloraConfig(raw, 'cfg');
    const { graph, params, modules } = applyAdalora(build(), config, { seed: 3 });
    expect(params.map((p) => [p.name, p.shape])).toEqual([
      ['base_model.model.layer.q_proj.lora_A.default', [2, 3]],
      ['base_model.model.layer.q_proj.lora_B.default', [4, 2]],
      ['base_model.model.layer.q_proj.lora_E.default', [2, 1]],
    ]);
    const [A, B, E] = params.map((p) => p.data) as [Float32Array, Float32Array, Float32Array];
    const scale = 3 / Math.fround(2 + 1e-5);
    expect(modules.get('layer.q_proj')!.scale).toBeCloseTo(scale, 6);
    let delta = 0; // Σ over rows and outputs of x·(A ⊙ E)ᵀ·Bᵀ
    for (let n = 0; n < 2; n++) for (let o = 0; o < 4; o++) for (let k = 0; k < 2; k++) {
      let down = 0;
      for (let i = 0; i < 3; i++) down += x[n * 3 + i]! * A[k * 3 + i]! * E[k]!;
      delta += down * B[o * 2 + k]!;
    }
    const fro = (m: (i: number, j: number) => number) => Math.sqrt([0, 1].flatMap((i) => [0, 1].map((j) => (m(i, j) - (i === j ? 1 : 0)) ** 2)).reduce((a, b) => a + b));
    const aat = fro((i, j) => [0, 1, 2].reduce((s, c) => s + A[i * 3 + c]! * A[j * 3 + c]!, 0));
    const btb = fro((i, j) => [0, 1, 2, 3].reduce((s, c) => s + B[c * 2 + i]! * B[c * 2 + j]!, 0));
    const want = (await lossOf(build(), [])) + scale * delta + 0.7 * (aat + btb) / 2;
    expect(await lossOf(graph, params)).toBeCloseTo(want, 4);
  });

  it('sizes modules by rank_pattern (rank 0: the base layer alone) and checks it', async () => {
    const kept = applyAdalora(build(), parseAdaloraConfig({ ...raw, rank_pattern: { 'layer.q_proj.lora_E': [false, true] } }, 'cfg').config);
    expect(kept.params.map((p) => p.shape)).toEqual([[1, 3], [4, 1], [1, 1]]);
    expect(kept.modules.get('layer.q_proj')).toMatchObject({ r: 1, init_r: 2 });
    const none = applyAdalora(build(), parseAdaloraConfig({ ...raw, rank_pattern: { 'layer.q_proj.lora_E.default': [false, false] } }, 'cfg').config);
    expect(none.params).toEqual([]);
    expect(await lossOf(none.graph, [])).toBeCloseTo(await lossOf(build(), []), 6);
    const bad = (patch: Record<string, unknown>) => () => applyAdalora(build(), parseAdaloraConfig({ ...raw, ...patch }, 'cfg').config);
    expect(bad({ rank_pattern: { 'layer.k_proj.lora_E': [true, true] } })).toThrow(/rank_pattern\['layer.k_proj.lora_E'\] names no adapted module/);
    expect(bad({ rank_pattern: { 'layer.q_proj.lora_E': [true] } })).toThrow(/has 1 entries, init_r is 2/);
    expect(bad({ orth_reg_weight: 0 })).toThrow(/orth_reg_weight=0 must be greater than 0/);
    expect(bad({ target_modules: ['v_proj'] })).toThrow(PeftError);
  });
});

const python = oraclePython();
const ready = Boolean(tinyModelDir('llama3') && tinyModelDir('qwen2') && python);
if (!ready) console.warn('ORACLE MISSING: PEFT AdaLoRA oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const CASES: Record<string, { model: string; config: Record<string, unknown> }> = {
  'attn-mlp-llama3': { model: 'llama3', config: { ...SCHEDULE, target_modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] } },
  'regex-qwen2-bias': { model: 'qwen2', config: { init_r: 3, target_r: 1, total_step: 10, lora_alpha: 6, orth_reg_weight: 0.3, target_modules: '.*\\.(k_proj|up_proj)' } },
};

type Batch = Record<string, HostTensor>;
const batchOf = (ids: number[][], labels?: number[][]): Batch => {
  const [b, t] = [ids.length, ids[0]!.length];
  const i64 = (rows: number[][]) => ({ dtype: 'int64' as const, shape: [b, t], data: BigInt64Array.from(rows.flat(), BigInt) });
  return { input_ids: i64(ids), position_ids: i64(ids.map((row) => row.map((_, i) => i))), ...(labels ? { labels: i64(labels) } : {}) };
};
const feedsOf = (params: readonly TrainableTensor[]) => Object.fromEntries(params.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }]));

/** Logits of the adapted model for `config` with `params` (applied to a fresh logits graph). */
const adaptedLogits = async (model: LoadedModel, config: AdaLoraConfig, batch: Batch, weights: (params: readonly TrainableTensor[]) => TrainableTensor[]) => {
  const adapted = applyAdalora(buildLogitsGraph(model), config);
  const s = await Session.create(adapted.graph, { threads: 2 });
  const out = (await s.run({ input_ids: batch.input_ids!, position_ids: batch.position_ids!, ...feedsOf(weights(adapted.params)) })).logits!.data as Float32Array;
  await s.release();
  return out;
};
const baseLogits = async (model: LoadedModel, batch: Batch) => {
  const s = await Session.create(buildLogitsGraph(model), { threads: 2 });
  const out = (await s.run({ input_ids: batch.input_ids!, position_ids: batch.position_ids! })).logits!.data as Float32Array;
  await s.release();
  return out;
};

describe.skipIf(!ready && !oracleRequired())('AdaLoRA equals HF PEFT', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: loss with orthogonal regularization, every gradient, logits`, async () => {
      const modelDir = tinyModelDir(c.model)!;
      const out = mkdtempSync(join(tmpdir(), 'peft-adalora-step-'));
      runOracle('peft_adalora_ref.py', ['step', modelDir, out, JSON.stringify({ [name]: { config: c.config } })]);
      const dir = join(out, name);
      const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[][]; labels: number[][]; loss: number; task_loss: number };
      const adapter = loadAdapterFiles(dir);
      const { config, warnings } = parseAdaloraConfig(adapter.config, join(dir, 'adapter_config.json'));
      expect(warnings).toEqual([]);
      const model = openHfFolder(modelDir);
      const lossGraph = applyAdalora(buildLossGraph(model), config);
      const params = assignAdaloraWeights(lossGraph.params, adapter);
      const batch = batchOf(ref.input_ids, ref.labels);
      const trainer = await TrainStep.create({ graph: lossGraph.graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
      const ours = await trainer.computeGradients(batch);
      await trainer.release();
      const regularization = ref.loss - ref.task_loss;
      console.log(`${name}: loss ours ${ours.loss} PEFT ${ref.loss} (orthogonal regularization ${regularization.toFixed(4)})`);
      expect(regularization).toBeGreaterThan(1e-2);
      expect(Math.abs(ours.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));

      const refGrads = readTensors(join(dir, 'grads.safetensors'));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      let worst = 0;
      for (const [key, want] of refGrads) {
        const got = ours.grads.get(key)!;
        expect(maxAbs(want), `${key} reference gradient is zero`).toBeGreaterThan(0);
        const d = maxDiff(got, want);
        worst = Math.max(worst, d / maxAbs(want));
        expect(d, key).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
      }
      console.log(`${name}: ${refGrads.size} gradients, worst max|g − ĝ|/max|ĝ| = ${worst.toExponential(2)}`);

      const want = readF32(join(dir, 'logits.f32'));
      const got = await adaptedLogits(model, config, batch, (p) => assignAdaloraWeights(p, adapter));
      console.log(`${name}: logits max diff ${maxDiff(got, want).toExponential(2)}, vs base ${maxDiff(await baseLogits(model, batch), want).toFixed(3)}`);
      expect(maxDiff(got, want)).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(await baseLogits(model, batch), want)).toBeGreaterThan(1e-2);
    }, 300_000);
  }

  describe('rank allocation over a whole schedule (plain SGD, 18 steps past tfinal)', () => {
    const RUN = { config: { ...SCHEDULE, target_modules: TARGETS_ALL }, steps: 18, lr: 0.1 };
    let dir = '';
    let trace: { input_ids: number[][]; labels: number[][]; losses: number[]; rank_patterns: (RankPattern | null)[] };
    let tensors: Map<string, Float32Array>;
    let model: LoadedModel;
    let config: AdaLoraConfig;
    let initAdapter: ReturnType<typeof loadAdapterFiles>;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'peft-adalora-train-'));
      runOracle('peft_adalora_ref.py', ['train', tinyModelDir('llama3')!, dir, JSON.stringify(RUN)]);
      trace = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')) as typeof trace;
      tensors = readTensors(join(dir, 'trace.safetensors'));
      model = openHfFolder(tinyModelDir('llama3')!);
      initAdapter = loadAdapterFiles(join(dir, 'init'));
      config = parseAdaloraConfig(initAdapter.config, 'init').config;
    }, 300_000);

    it("fed PEFT's parameters and gradients, the allocator masks and allocates exactly as update_and_allocate", () => {
      const { params } = applyAdalora(buildLossGraph(model), config);
      const allocator = new AdaLoraAllocator(config, params);
      let allocations = 0;
      for (let t = 0; t < RUN.steps; t++) {
        const current = new Map(params.map((p) => [p.name, Float32Array.from(tensors.get(`${t}/pre/${p.name}`)!)]));
        const grads = new Map(params.map((p) => [p.name, tensors.get(`${t}/grad/${p.name}`)!]));
        const res = allocator.update(t, current, grads);
        if (res.rankPattern) allocations++;
        expect(stripAdapter(allocator.rankPattern), `rank_pattern after step ${t}`).toEqual(stripAdapter(trace.rank_patterns[t]));
        for (const p of params.filter((q) => q.role === 'lora_E')) {
          expect(Array.from(current.get(p.name)!), `${p.name} after step ${t}`).toEqual(Array.from(tensors.get(`${t}/post/${p.name}`)!));
        }
      }
      const ranks = [...allocator.ranks().values()];
      console.log(`allocations ${allocations}; final ranks ${ranks.join(',')} (sum ${ranks.reduce((a, b) => a + b)} = target ${allocator.targetBudget})`);
      expect(allocations).toBe(5); // steps 4, 6, 8, 10 and the final one at 12
      expect(ranks.reduce((a, b) => a + b)).toBe(allocator.targetBudget);
    });

    it('our full steps (graph loss + gradients, SGD, allocator) reach the same masks, and adapters load both ways', async () => {
      const lossGraph = applyAdalora(buildLossGraph(model), config);
      const params = assignAdaloraWeights(lossGraph.params, initAdapter);
      const batch = batchOf(trace.input_ids, trace.labels);
      const trainer = await TrainStep.create({ graph: lossGraph.graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
      const optimizer = createOptimizer({ kind: 'sgd' }, [{ name: 'adalora', params }]);
      const allocator = new AdaLoraAllocator(config, params);
      const current = new Map(params.map((p) => [p.name, p.data]));
      let worstLoss = 0;
      for (let t = 0; t < RUN.steps; t++) {
        const { loss, grads } = await trainer.computeGradients(batch);
        worstLoss = Math.max(worstLoss, Math.abs(loss - trace.losses[t]!) / Math.abs(trace.losses[t]!));
        optimizer.step(grads, RUN.lr);
        allocator.update(t, current, grads);
        expect(stripAdapter(allocator.rankPattern), `rank_pattern after step ${t}`).toEqual(stripAdapter(trace.rank_patterns[t]));
      }
      await trainer.release();
      const peftFinal = (name: string) => tensors.get(`${RUN.steps - 1}/${name.includes('.lora_E.') ? 'post' : 'pre'}/${name}`)!;
      let worstParam = 0;
      for (const p of params) {
        const want = peftFinal(p.name);
        const d = maxDiff(p.data, want);
        if (maxAbs(want) > 0) worstParam = Math.max(worstParam, d / maxAbs(want));
        expect(d, p.name).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
      }
      console.log(`full run: worst loss rel diff ${worstLoss.toExponential(2)}, worst final param max diff/max ${worstParam.toExponential(2)}`);
      expect(worstLoss).toBeLessThanOrEqual(1e-5);

      // PEFT → ours: the adapter PEFT saved (tensors cut to rank_pattern, one module at rank 0) gives PEFT's logits.
      const final = loadAdapterFiles(join(dir, 'final'));
      const parsed = parseAdaloraConfig(final.config, 'final');
      expect(parsed.warnings).toEqual([]);
      expect(stripAdapter(parsed.config.rank_pattern)).toEqual(stripAdapter(allocator.rankPattern));
      const peftLogits = readF32(join(dir, 'final_logits.f32'));
      const fromPeft = await adaptedLogits(model, parsed.config, batch, (p) => assignAdaloraWeights(p, final));
      const base = await baseLogits(model, batch);
      // PEFT's trained tensors (full rank, masked E) in our graph give PEFT's logits of its in-memory model.
      const trained = await adaptedLogits(model, config, batch, (p) => p.map((q) => ({ ...q, data: peftFinal(q.name) })));
      // Ours in memory: the same up to 18 steps of float32 drift between the two runs.
      const inMemory = await adaptedLogits(model, config, batch, (p) => p.map((q) => ({ ...q, data: current.get(q.name)! })));
      // ours → PEFT: our save (cut to our pattern) loaded by PEFT
      const ours = mkdtempSync(join(tmpdir(), 'peft-adalora-ours-'));
      saveAdaloraAdapter(ours, config, params, { rankPattern: allocator.rankPattern });
      const peftOfOurs = join(ours, 'logits.f32');
      runOracle('peft_adalora_ref.py', ['logits', tinyModelDir('llama3')!, ours, peftOfOurs]);
      const d = { peftSaved: maxDiff(fromPeft, peftLogits), trained: maxDiff(trained, readF32(join(dir, 'trained_logits.f32'))), inMemory: maxDiff(inMemory, peftLogits), oursInPeft: maxDiff(readF32(peftOfOurs), inMemory), base: maxDiff(base, peftLogits) };
      console.log(`logits: PEFT-saved here ${d.peftSaved.toExponential(2)}, PEFT-trained here ${d.trained.toExponential(2)}, ours in memory ${d.inMemory.toExponential(2)}, ours loaded by PEFT ${d.oursInPeft.toExponential(2)}, vs base ${d.base.toFixed(3)}`);
      expect(d.peftSaved).toBeLessThanOrEqual(1e-4);
      expect(d.oursInPeft).toBeLessThanOrEqual(1e-4);
      expect(d.trained).toBeLessThanOrEqual(1e-4);
      expect(d.inMemory).toBeLessThanOrEqual(1e-2);
      expect(d.base).toBeGreaterThan(1e-2);
      // Our save and PEFT's hold the same tensors' shapes (rank 0 included).
      const shapes = (a: typeof final) => Object.fromEntries([...a.tensors].map(([k, t]) => [k, t.shape]));
      expect(shapes(loadAdapterFiles(ours))).toEqual(shapes(final));
      // A PEFT adapter loaded here (rank-0 module included) saves back to the same file contents.
      const loaded = applyAdalora(buildLogitsGraph(model), parsed.config);
      const again = mkdtempSync(join(tmpdir(), 'peft-adalora-again-'));
      saveAdaloraAdapter(again, parsed.config, assignAdaloraWeights(loaded.params, final), { modules: loaded.modules });
      const resaved = loadAdapterFiles(again);
      expect(shapes(resaved)).toEqual(shapes(final));
      for (const [k, t] of final.tensors) expect(Array.from(resaved.tensors.get(k)!.data), k).toEqual(Array.from(t.data));
      expect(resaved.config.rank_pattern).toEqual(final.config.rank_pattern);
    }, 300_000);
  });
});
