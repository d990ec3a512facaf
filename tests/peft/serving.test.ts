import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import { checkCudaSupport } from '../../main/engine/onnx/cuda-support.ts';
import { emitOnnx } from '../../main/engine/onnx/emit.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { createRng, uniformArray } from '../../main/engine/random.ts';
import { GEN, buildGenerationGraph } from '../../main/generate/kv-graph.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles, type LoadedAdapter } from '../../main/peft/peft-io.ts';
import { AdapterSlots, SERVE, applyServingSlots, emptySlotFeeds, slotFeeds, slotIndexFeed, type ServingGraph } from '../../main/peft/serving.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const python = process.env.PEFT_ORACLE_PYTHON ?? join(process.env.PEFT_STUDIO_CACHE ?? join(homedir(), '.cache', 'peft-studio'), 'oracle-venv', 'bin', 'python');
const modelDir = tinyModelDir('llama3');
const ready = modelDir !== undefined && existsSync(python);
if (!ready) console.warn('ORACLE MISSING: PEFT mixed-batch serving tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

interface Reference {
  input_ids: number[][];
  adapter_names: string[];
  logits_shape: [number, number, number];
}

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
};
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
const tokenFeeds = (rows: number[][]) => ({ input_ids: i64(rows), position_ids: i64(rows.map((r) => r.map((_, i) => i))) });
const logitsOf = (out: Record<string, HostTensor>) => out.logits!.data as Float32Array;

describe.skipIf(!ready && !oracleRequired())('LoRA serving slots: one batch mixes the base model and adapters', () => {
  let model: LoadedModel;
  let base: Graph;
  let ref: Reference;
  let pythonOut: string;
  const adapters: Record<string, { loaded: LoadedAdapter; config: LoraConfig }> = {};
  let serving: ServingGraph;
  let session: Session;
  const solo = new Map<string, Float32Array[]>(); // adapter ('__base__' too) → each row's logits alone

  /** Row b's logits (T, V) from a graph run on that row alone. */
  const aloneLogits = async (graph: Graph, extra: Record<string, HostTensor>): Promise<Float32Array[]> => {
    const s = await Session.create(graph, { threads: 2 });
    const rows: Float32Array[] = [];
    for (const row of ref.input_ids) rows.push(logitsOf(await s.run({ ...tokenFeeds([row]), ...extra })));
    await s.release();
    return rows;
  };
  const rowOf = (all: Float32Array, b: number) => {
    const [, T, V] = ref.logits_shape;
    return all.subarray(b * T * V, (b + 1) * T * V);
  };

  beforeAll(async () => {
    pythonOut = mkdtempSync(join(tmpdir(), 'peft-mixed-batch-'));
    execFileSync(python, ['tests/oracle/peft_mixed_batch_ref.py', modelDir!, pythonOut], { stdio: ['ignore', 'pipe', 'pipe'] });
    ref = JSON.parse(readFileSync(join(pythonOut, 'reference.json'), 'utf8')) as Reference;
    model = openHfFolder(modelDir!);
    base = buildLogitsGraph(model);
    for (const name of ['a1', 'a2']) {
      const loaded = loadAdapterFiles(join(pythonOut, name));
      adapters[name] = { loaded, config: parseLoraConfig(loaded.config, name).config };
    }
    solo.set('__base__', await aloneLogits(base, {}));
    for (const [name, a] of Object.entries(adapters)) {
      const lora = applyLora(base, a.config);
      const weights = assignAdapterWeights(lora.params, a.loaded);
      solo.set(name, await aloneLogits(lora.graph, Object.fromEntries(weights.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }]))));
    }
    serving = applyServingSlots(base, { slots: 2, targets: [adapters.a1!.config, adapters.a2!.config] });
    session = await Session.create(serving.graph, { threads: 2 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it('serves the union of the adapters’ modules with a symbolic rank per slot and module', () => {
    const names = serving.modules.map((m) => m.name.replace(/^model\.layers\.\d+\./, ''));
    expect(new Set(names)).toEqual(new Set(['self_attn.q_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj']));
    expect(serving.modules).toHaveLength(5 * model.config.numLayers);
    const q = serving.modules[0]!.name;
    expect(serving.graph.value(serving.graph.idOf(SERVE.loraA(1, q))).type.shape).toEqual([SERVE.rank(1, q), model.config.hiddenSize]);
    expect(serving.graph.value(serving.graph.idOf(SERVE.slotIndex)).type).toEqual({ dtype: 'int64', shape: ['batch'] });
    expect(base.has(SERVE.slotIndex)).toBe(false); // pure rewrite: the input graph is untouched
    // The slots add only ops the CUDA EP has kernels for.
    const issues = (g: Graph) => checkCudaSupport(emitOnnx(g).proto).map((i) => JSON.stringify(i));
    expect(issues(serving.graph)).toEqual(issues(base));
  });

  it('gives each row of a mixed batch the logits it gets alone (applyLora graphs) and PEFT’s mixed-batch logits', async () => {
    const slots = new AdapterSlots(serving);
    slots.load(0, adapters.a1!.loaded);
    slots.load(1, adapters.a2!.loaded);
    const slotOf: Record<string, number | null> = { a1: 0, a2: 1, __base__: null };
    const out = logitsOf(await session.run({ ...tokenFeeds(ref.input_ids), ...slots.feeds(), [SERVE.slotIndex]: slotIndexFeed(serving, ref.adapter_names.map((n) => slotOf[n]!)) }));
    const peft = new Float32Array(readFileSync(join(pythonOut, 'logits.f32')).buffer.slice(0));
    let worstSolo = 0;
    ref.adapter_names.forEach((name, b) => {
      worstSolo = Math.max(worstSolo, maxDiff(rowOf(out, b), solo.get(name)![b]!));
      if (name !== '__base__') expect(maxDiff(solo.get(name)![b]!, solo.get('__base__')![b]!), `${name} changes row ${b}`).toBeGreaterThan(1e-2);
    });
    const worstPeft = maxDiff(out, peft);
    console.log(`mixed batch [${ref.adapter_names.join(', ')}]: max |Δ| vs alone ${worstSolo.toExponential(2)}, vs PEFT adapter_names ${worstPeft.toExponential(2)}`);
    expect(worstSolo).toBeLessThanOrEqual(1e-5);
    expect(worstPeft).toBeLessThanOrEqual(1e-4);
  });

  it('swaps the adapter in a slot without a new session, and an emptied slot serves the base model', async () => {
    const create = vi.spyOn(Session, 'create');
    const slots = new AdapterSlots(serving);
    const run = async (choices: (number | null)[]) => logitsOf(await session.run({ ...tokenFeeds(ref.input_ids), ...slots.feeds(), [SERVE.slotIndex]: slotIndexFeed(serving, choices) }));
    slots.load(0, adapters.a1!.loaded);
    const before = await run([0, 0, 0, 0]);
    slots.load(0, adapters.a2!.loaded, adapters.a2!.config, 'a2');
    const after = await run([0, 0, 0, 0]);
    slots.clear(0);
    const emptied = await run([0, 0, null, 0]);
    const rankOne = new AdapterSlots(serving, 1); // the fallback for empty slots: rank-1 zeros
    const emptiedRankOne = logitsOf(await session.run({ ...tokenFeeds(ref.input_ids), ...rankOne.feeds(), [SERVE.slotIndex]: slotIndexFeed(serving, [0, 1, 0, 1]) }));
    expect(create).not.toHaveBeenCalled();
    create.mockRestore();
    expect(slots.label(0)).toBeNull();
    let worst = 0;
    for (let b = 0; b < ref.input_ids.length; b++) {
      worst = Math.max(worst, maxDiff(rowOf(before, b), solo.get('a1')![b]!), maxDiff(rowOf(after, b), solo.get('a2')![b]!));
      worst = Math.max(worst, maxDiff(rowOf(emptied, b), solo.get('__base__')![b]!), maxDiff(rowOf(emptiedRankOne, b), solo.get('__base__')![b]!));
    }
    console.log(`slot 0: a1 → a2 → empty (rank 0 and rank-1 zeros) on one session: max |Δ| vs alone ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('on the KV-cache generation graph, an adapted LM head (one row per sequence) serves each row as applyLora does', async () => {
    const kv = buildGenerationGraph(model);
    const config = parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['lm_head', 'k_proj'] }, 'test').config;
    const lora = applyLora(kv, config, { seed: 1 });
    const rng = createRng(9);
    const params = lora.params.map((p) => ({ ...p, data: uniformArray(p.data.length, 0.5, rng) }));
    const loaded: LoadedAdapter = { dir: 'in-memory', config: { ...config }, tensors: new Map(params.map((p) => [p.name.replace('.default.', '.'), p])) };
    const sg = applyServingSlots(kv, { slots: 1, targets: [config] });
    const { numLayers, numKvHeads, headDim } = model.config;
    const prompt = (rows: number[][]): Record<string, HostTensor> => {
      const T = rows[0]!.length;
      const feeds: Record<string, HostTensor> = { ...tokenFeeds(rows), [GEN.mask]: { dtype: 'float32', shape: [rows.length, 1, T, T], data: new Float32Array(rows.length * T * T).map((_, i) => (i % T > Math.floor(i / T) % T ? -1e9 : 0)) } };
      for (let l = 0; l < numLayers; l++) {
        for (const name of [GEN.pastKey(l), GEN.pastValue(l)]) feeds[name] = { dtype: 'float32', shape: [rows.length, numKvHeads, 0, headDim], data: new Float32Array(0) };
      }
      return feeds;
    };
    const run = async (graph: Graph, feeds: Record<string, HostTensor>) => {
      const s = await Session.create(graph, { threads: 2 });
      const out = logitsOf(await s.run(feeds, [GEN.logits]));
      await s.release();
      return out;
    };
    const rows = ref.input_ids.slice(0, 2);
    const mixed = await run(sg.graph, { ...prompt(rows), ...slotFeeds(sg, 0, loaded), [SERVE.slotIndex]: slotIndexFeed(sg, [null, 0]) });
    const V = model.config.vocabSize;
    const alone = await run(kv, prompt([rows[0]!]));
    const adapted = await run(lora.graph, { ...prompt([rows[1]!]), ...Object.fromEntries(params.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }])) });
    expect(maxDiff(adapted, alone)).toBeGreaterThan(1e-2);
    expect(maxDiff(mixed.subarray(0, V), alone)).toBeLessThanOrEqual(1e-5);
    expect(maxDiff(mixed.subarray(V), adapted)).toBeLessThanOrEqual(1e-5);
  });

  it('rejects an adapter the graph has no branch for, wrong shapes and unknown slots, naming the tensor', () => {
    const onlyA1 = applyServingSlots(base, { slots: 1, targets: [adapters.a1!.config] });
    expect(() => slotFeeds(onlyA1, 0, adapters.a2!.loaded)).toThrow(PeftError);
    expect(() => slotFeeds(onlyA1, 0, adapters.a2!.loaded)).toThrow(/\.(o|gate)_proj\.lora_[AB]\.weight' adapts '/);
    expect(() => slotFeeds(serving, 0, adapters.a1!.loaded, { ...adapters.a1!.config, r: 8 })).toThrow(/lora_A\.weight' has shape \[4, 32\].*\[8, 32\]/);
    expect(() => slotFeeds(serving, 2, adapters.a1!.loaded)).toThrow(/slot 2 does not exist/);
    expect(() => slotIndexFeed(serving, [0, 5])).toThrow(/slot 5 does not exist/);
    expect(() => applyServingSlots(base, { slots: 1, targets: [{ target_modules: ['nothing_here'] }] })).toThrow(/matched no linear layer/);
    expect(() => applyServingSlots(serving.graph, { slots: 1, targets: [adapters.a1!.config] })).toThrow(/applied twice/);
    const empty = emptySlotFeeds(serving, 1);
    expect(empty[SERVE.loraA(1, serving.modules[0]!.name)]!.shape).toEqual([0, model.config.hiddenSize]);
  });
});
