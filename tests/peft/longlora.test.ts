// LongLoRA: S²-Attn gradients (LoRA, embeddings, norms) equal a PyTorch re-implementation of the LongLoRA
// repository's shifted sparse attention (its forward_flashattn training path, group boundaries computed as there)
// on transformers' Llama; the graph really is sparse; configs and refusals.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { add, END, expand, GraphBuilder, range, slice, type Graph } from '../../main/engine/ir/index.ts';
import { createRng } from '../../main/engine/random.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyLongLora, checkLongLoraRows, longLoraMethod, longLoraRows, saveLongLoraAdapter } from '../../main/peft/longlora.ts';
import { parseLongLoraConfig, type LongLoraConfig } from '../../main/peft/longlora-config.ts';
import { fixSequenceLength } from '../../main/peft/longlora-rewrite.ts';
import type { AdaptedGraph } from '../../main/peft/method.ts';
import { ADAPTER_WEIGHTS } from '../../main/peft/peft-io.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import { packMicroBatch, withNormalizer } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { writeRandomLlama } from './longlora-helpers.ts';

const config = (fields: Record<string, unknown>): LongLoraConfig => parseLongLoraConfig({ peft_type: 'LONGLORA', ...fields }, 'cfg').config;

interface Case {
  /** The model folder (made in beforeAll for the random one). */
  readonly model: () => string;
  readonly fields: Record<string, unknown>;
  readonly vocab: number;
  /** Trained tensors: LoRA A and B on q/k/v/o of 2 layers, the embedding, 2 norms per layer and the final norm. */
  readonly tensors: number;
}

let work = '';
const CASES: Record<string, Case> = {
  // 4 query heads over 2 key/value heads: each half of the heads keeps its key/value heads folded; llama3 RoPE ÷ 4.
  'llama3 (grouped-query heads, rope ×4, 4 groups)': {
    model: () => tinyModelDir('llama3')!,
    fields: { model_max_length: 32, rope_scaling: { type: 'linear', factor: 4 } },
    vocab: 128256,
    tensors: 16 + 1 + 5,
  },
  // 6 query heads over 3: each half (heads 0–2, 3–5) splits a key/value head, so keys and values are repeated;
  // tied embeddings (the trained embedding is also the LM head); 2 groups of 16.
  'random llama (6 over 3 heads, tied, 2 groups)': {
    model: () => join(work, 'odd-heads'),
    fields: { model_max_length: 32, group_size_ratio: 0.5 },
    vocab: 300,
    tensors: 16 + 1 + 5,
  },
};

const LORA = { r: 4, lora_alpha: 8, lora_dropout: 0, init_lora_weights: false };

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const gradientsOf = async (adapted: AdaptedGraph, ids: number[][]) => {
  const batch = packMicroBatch(ids.map((row) => [{ inputIds: row, labels: row }]));
  const step = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 1 } });
  const r = await step.computeGradients(withNormalizer(batch, batch.targets));
  await step.release();
  return { loss: r.loss, grads: new Map([...r.grads].map(([k, g]) => [longLoraMethod.savedKey(k, 'default'), g])) };
};

const ready = tinyModelDir('llama3') !== undefined && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: LongLoRA S²-Attn gradient tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

describe.skipIf(!ready && !oracleRequired())('LongLoRA S²-Attn: every gradient equals the LongLoRA reference in PyTorch', () => {
  const inputs = new Map<string, { ids: number[][]; cfg: LongLoraConfig; adapted: AdaptedGraph; graph: Graph }>();
  let ref: { cases: Record<string, { grads: string; loss: number }> };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'longlora-ref-'));
    writeRandomLlama(join(work, 'odd-heads'), { vocab: 300, hidden: 48, layers: 2, heads: 6, kvHeads: 3, intermediate: 64, maxPositions: 64, tied: true }, 11);
    const rng = createRng(3);
    const refCases: Record<string, unknown> = {};
    for (const [name, c] of Object.entries(CASES)) {
      const cfg = config({ ...LORA, ...c.fields });
      const graph = buildTrainingGraph(openHfFolder(c.model()));
      const adapted = applyLongLora(graph, cfg, { seed: 5 });
      const ids = [0, 1].map(() => Array.from({ length: cfg.model_max_length }, () => Math.floor(rng() * c.vocab)));
      const adapterDir = join(work, `adapter-${Object.keys(refCases).length}`);
      saveLongLoraAdapter(adapterDir, cfg, adapted.params);
      inputs.set(name, { ids, cfg, adapted, graph });
      refCases[name] = {
        model_dir: c.model(),
        lora_weights: join(adapterDir, ADAPTER_WEIGHTS),
        r: cfg.r,
        lora_alpha: cfg.lora_alpha,
        target_modules: cfg.target_modules,
        group_size_ratio: cfg.group_size_ratio,
        rope_factor: cfg.rope_scaling?.factor ?? null,
        trainable_params: cfg.trainable_params,
        input_ids: ids,
      };
    }
    ref = runOracle('longlora_ref.py', ['grads', work, JSON.stringify(refCases)]);
  }, 300_000);

  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const { ids, cfg, adapted, graph } = inputs.get(name)!;
      expect(adapted.params.length).toBe(c.tensors);
      const ours = await gradientsOf(adapted, ids);
      const want = ref.cases[name]!;
      expect(Math.abs(ours.loss - want.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(want.loss));
      const refGrads = new Map(readSafetensorsHeader(want.grads).map((e) => [e.name, readTensorFloat32(e)]));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      for (const [key, expected] of refGrads) {
        expect(maxAbs(expected), `${key}: the reference gradient is zero`).toBeGreaterThan(0);
        expect(maxDiff(ours.grads.get(key)!, expected), key).toBeLessThanOrEqual(1e-4 * maxAbs(expected) + 1e-6);
      }

      // The comparison tells attentions apart: full attention (same tensors, same RoPE) misses the reference.
      const full = await gradientsOf(applyLongLora(graph, cfg, { seed: 5, attention: 'full' }), ids);
      const missed = [...refGrads].filter(([key, expected]) => maxDiff(full.grads.get(key)!, expected) > 1e-4 * maxAbs(expected) + 1e-6);
      expect(missed.length).toBeGreaterThan(0);
    });
  }
});

describe.skipIf(!tinyModelDir('llama3'))('the S²-Attn graph', () => {
  const softmaxShapes = (g: Graph) => g.nodes.filter((n) => n.op === 'Softmax').map((n) => g.value(n.outputs[0]!).type.shape.slice(-2));

  it('attends within groups: every attention softmax is G×G, none T×T, and the sequence length is fixed', () => {
    const graph = buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!));
    const cfg = config({ model_max_length: 64 });
    const s2 = applyLongLora(graph, cfg).graph;
    const full = applyLongLora(graph, cfg, { attention: 'full' }).graph;
    // Per layer, groups of 64/4 = 16: the shifted half's first 8 tokens, its 3 whole groups, its last 8; the other half's 4 groups.
    expect(softmaxShapes(s2)).toEqual([1, 2].flatMap(() => [[8, 8], [16, 16], [8, 8], [16, 16]]));
    expect(softmaxShapes(full)).toEqual([['seq', 'seq'], ['seq', 'seq']]);
    expect(s2.nodes.some((n) => n.name.includes('.self_attn.sdpa.'))).toBe(false);
    expect(s2.value(s2.idOf('input_ids')).type.shape).toEqual(['batch', 64]);
  });

  it('position interpolation divides every rotary frequency by the factor', () => {
    const graph = buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!));
    const freqs = (g: Graph): Float32Array => {
      const node = g.nodes.find((n) => n.name === 'model.rotary_emb.MatMul')!;
      return (g.initializers.get(node.inputs[1]!) as { data: Float32Array }).data;
    };
    const scaled = applyLongLora(graph, config({ model_max_length: 64, rope_scaling: { type: 'linear', factor: 4 } }), { attention: 'full' }).graph;
    expect([...freqs(scaled)]).toEqual([...freqs(graph)].map((f) => Math.fround(f / 4)));
  });
});

describe('fixing the sequence length', () => {
  it('replaces the symbol in input shapes and shape attributes, evaluating the dim arithmetic around it', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 'seq']);
    const tail = slice(x, { starts: [1], ends: [END], axes: [1] }); // (batch, seq − 1)
    g.output(add(tail, expand(g.constant(new Float32Array([1]), 'float32', [1]), tail.shape)), 'y');
    g.output(range(g, 'batch*seq'), 'positions');
    const fixed = fixSequenceLength(g.build(), 'seq', 8);
    const shapeOf = (name: string) => fixed.value(fixed.idOf(name)).type.shape;
    expect([shapeOf('x'), shapeOf('y'), shapeOf('positions')]).toEqual([['batch', 8], ['batch', 7], ['8*batch']]);
    expect(fixed.nodes.find((n) => n.op === 'Expand')!.attrs.shape).toEqual(['batch', 7]);
  });
});

describe('LongLoRA configs and refusals', () => {
  it('reads LongLoRA defaults over LoRA and names bad fields', () => {
    const c = config({ model_max_length: 1024 });
    expect(c).toMatchObject({ group_size_ratio: 0.25, trainable_params: ['embed', 'norm'], rope_scaling: null, r: 8, lora_alpha: 16, lora_dropout: 0.05 });
    expect(c.target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(peftMethod('LONGLORA')).toBe(longLoraMethod);
    expect(parseLongLoraConfig({ peft_type: 'LONGLORA', model_max_length: 64, shift: true }, 'cfg').warnings).toEqual(["cfg: unknown field 'shift' ignored (written by a newer PEFT?)"]);
    expect(parseLongLoraConfig({ peft_type: 'LONGLORA', model_max_length: 64, rope_scaling: { rope_type: 'linear', factor: 2 } }, 'cfg').config.rope_scaling).toEqual({ type: 'linear', factor: 2 });
    expect(() => config({})).toThrow(/cfg: model_max_length=undefined must be the training row length, a multiple of 8/);
    expect(() => config({ model_max_length: 100 })).toThrow(/model_max_length=100 must be .* a multiple of 8 \(4 S²-Attn groups/);
    expect(() => config({ model_max_length: 64, group_size_ratio: 0.3 })).toThrow(/group_size_ratio=0.3 must be 1\/n/);
    expect(() => config({ model_max_length: 64, rope_scaling: { type: 'dynamic', factor: 2 } })).toThrow(/rope_scaling=.* must have type 'linear'/);
    expect(() => config({ model_max_length: 64, rope_scaling: { type: 'linear', factor: 0 } })).toThrow(/needs a positive factor/);
    expect(() => config({ model_max_length: 64, modules_to_save: ['embed_tokens'] })).toThrow(/modules_to_save=.* list the checkpoint tensors to train in trainable_params/);
    expect(() => config({ model_max_length: 64, trainable_params: [] })).toThrow(PeftError);
    expect(() => config({ model_max_length: 64, r: 0 })).toThrow(/cfg: r=0 must be a positive integer/);
  });

  it('refuses packed rows and rows of another length, saying how LongLoRA trains', () => {
    const c = config({ model_max_length: 16 });
    const rows = longLoraRows(Array.from({ length: 40 }, (_, i) => i), 16);
    expect(rows.map((r) => r.inputIds[0])).toEqual([0, 16]);
    expect(longLoraRows([5, 6, 7, 8, 9], 3, { bos: 1 }).map((r) => r.inputIds)).toEqual([[1, 5, 6], [1, 7, 8]]);
    expect(() => checkLongLoraRows(rows, c, { where: 'train.jsonl' })).not.toThrow();
    expect(() => checkLongLoraRows(rows, c, { packing: true, where: 'train.jsonl' })).toThrow(/train.jsonl: packing is on; LongLoRA's S²-Attn trains unpacked fixed-length rows/);
    expect(() => checkLongLoraRows([...rows, { inputIds: [1, 2, 3] }], c, { where: 'train.jsonl' })).toThrow(
      /train.jsonl: row 2 has 3 tokens; .* exactly model_max_length=16 tokens \(4 groups of 4\)/,
    );
  });

  it.skipIf(!tinyModelDir('llama3'))('names the tensor patterns that match nothing', () => {
    const graph = buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!));
    expect(() => applyLongLora(graph, config({ model_max_length: 64, trainable_params: ['wte'] }))).toThrow(/LONGLORA: trainable_params entry "wte" matches no tensor/);
  });
});
