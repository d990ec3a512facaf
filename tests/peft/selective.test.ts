// BitFit, selective and full fine-tuning against PyTorch: every trainable tensor's gradient for one batch of the
// training graph equals transformers' with requires_grad on exactly those tensors; plus the configs and the errors.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { quantizeBase } from '../../main/engine/quant/quantize-base.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyBitfit, parseBitfitConfig } from '../../main/peft/bitfit.ts';
import { hfNameOfKey } from '../../main/peft/base-tensors.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyFull, parseFullConfig } from '../../main/peft/full-finetune.ts';
import type { AdaptedGraph } from '../../main/peft/method.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import { applySelective, parseSelectiveConfig } from '../../main/peft/selective.ts';
import { packMicroBatch, withNormalizer } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

interface Case {
  readonly model: string;
  readonly method: Record<string, unknown>;
  /** The selection as the Python reference applies it (its own pattern code). */
  readonly ref: { readonly kind: 'bitfit' | 'patterns' | 'full'; readonly include?: readonly string[] | null; readonly exclude?: readonly string[] | null };
  /** How many tensors the case must train (guards against a selection that silently grew or shrank). */
  readonly tensors: number;
}

const CASES: Record<string, Case> = {
  // Qwen2's q/k/v biases, 2 layers.
  'bitfit-qwen2': { model: 'qwen2', method: { peft_type: 'BITFIT' }, ref: { kind: 'bitfit' }, tensors: 6 },
  'bitfit-qwen2-include-exclude': {
    model: 'qwen2',
    method: { peft_type: 'BITFIT', include: ['*.k_proj.bias', 'layers\\.1\\.'], exclude: ['layers.1.self_attn.v_proj'] },
    ref: { kind: 'bitfit', include: ['*.k_proj.bias', 'layers\\.1\\.'], exclude: ['layers.1.self_attn.v_proj'] },
    tensors: 3,
  },
  // Every norm (4 per-layer + the final one) and all of layer 1 (9 tensors, its 2 norms among them).
  'selective-llama3-norms-layer1': {
    model: 'llama3',
    method: { peft_type: 'SELECTIVE', parameters: ['norm', 'model.layers.1.*'] },
    ref: { kind: 'patterns', include: ['norm', 'model.layers.1.*'] },
    tensors: 12,
  },
  // bf16 checkpoint: the norms train as float32 masters of the bf16 values.
  'selective-bf16-norms': { model: 'llama-bf16', method: { peft_type: 'SELECTIVE', parameters: ['*norm*'] }, ref: { kind: 'patterns', include: ['*norm*'] }, tensors: 5 },
  // Tied embeddings: 'lm_head' names the embedding's tensor; its gradient sums the head's and the lookup's.
  'selective-tied-lm-head': { model: 'llama-linear-tied', method: { peft_type: 'SELECTIVE', parameters: ['lm_head'] }, ref: { kind: 'patterns', include: ['lm_head'] }, tensors: 1 },
  'full-llama3': { model: 'llama3', method: { peft_type: 'FULL' }, ref: { kind: 'full' }, tensors: 21 },
  'full-llama-tied': { model: 'llama-linear-tied', method: { peft_type: 'FULL' }, ref: { kind: 'full' }, tensors: 20 },
};

const ready = Object.values(CASES).every((c) => tinyModelDir(c.model)) && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: BitFit / selective / full fine-tuning gradient tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

interface Reference {
  readonly input_ids: number[][];
  readonly labels: number[][];
  readonly cases: Record<string, { readonly grads: string; readonly loss: number }>;
}

describe.skipIf(!ready && !oracleRequired())('BitFit, selective and full fine-tuning: every gradient equals PyTorch', () => {
  let ref: Reference;
  beforeAll(() => {
    const cases = Object.fromEntries(Object.entries(CASES).map(([name, c]) => [name, { model_dir: tinyModelDir(c.model)!, ...c.ref }]));
    ref = runOracle<Reference>('selective_ref.py', ['grads', mkdtempSync(join(tmpdir(), 'selective-ref-')), JSON.stringify(cases)]);
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const method = peftMethod(String(c.method.peft_type));
      const { config, warnings } = method.parseConfig(c.method, name);
      expect(warnings).toEqual([]);
      const adapted: AdaptedGraph = method.apply(buildTrainingGraph(openHfFolder(tinyModelDir(c.model)!)), config as never);
      expect(adapted.params.length).toBe(c.tensors);

      // One example per row, the loss where the label is not -100: transformers' mean shifted cross-entropy.
      const rows = ref.input_ids.map((ids, b) => [{ inputIds: ids, labels: ref.labels[b]! }]);
      const batch = packMicroBatch(rows);
      const step = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 1 } });
      const ours = await step.computeGradients(withNormalizer(batch, batch.targets));
      await step.release();
      const want = ref.cases[name]!;
      expect(Math.abs(ours.loss - want.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(want.loss));

      const refGrads = new Map(readSafetensorsHeader(want.grads).map((e) => [e.name, readTensorFloat32(e)]));
      const saved = new Map([...ours.grads].map(([key, g]) => [method.savedKey(key, 'default'), g]));
      expect(new Set(saved.keys())).toEqual(new Set(refGrads.keys()));
      for (const [key, expected] of refGrads) {
        expect(maxAbs(expected), `${key}: the reference gradient is zero`).toBeGreaterThan(0);
        expect(maxDiff(saved.get(key)!, expected), key).toBeLessThanOrEqual(1e-4 * maxAbs(expected) + 1e-6);
      }
    });
  }
});

describe('configs and refusals', () => {
  it('reads the fields, warns on unknown ones and rejects bad patterns naming the field', () => {
    expect(parseBitfitConfig({ peft_type: 'BITFIT' }, 'cfg').config.include).toBeNull();
    expect(parseBitfitConfig({ peft_type: 'BITFIT', future: 1 }, 'cfg').warnings).toEqual(["cfg: unknown field 'future' ignored (written by a newer PEFT?)"]);
    expect(() => parseBitfitConfig({ peft_type: 'BITFIT', include: [] }, 'cfg')).toThrow(/cfg: include=\[\] must be a non-empty list/);
    expect(() => parseSelectiveConfig({ peft_type: 'SELECTIVE' }, 'cfg')).toThrow(/cfg: parameters must list the tensors to train/);
    expect(() => parseSelectiveConfig({ peft_type: 'SELECTIVE', parameters: ['layers.(1'] }, 'cfg')).toThrow(/cfg: parameters entry "layers.\(1" is not a valid regular expression/);
    expect(() => parseSelectiveConfig({ peft_type: 'SELECTIVE', parameters: 'norm' }, 'cfg')).toThrow(PeftError);
    expect(parseFullConfig({ peft_type: 'FULL' }, 'cfg').config.save_dtype).toBe('auto');
    expect(() => parseFullConfig({ peft_type: 'FULL', save_dtype: 'int8' }, 'cfg')).toThrow(/cfg: save_dtype="int8" must be one of auto, float32, bfloat16, float16/);
    expect(() => parseFullConfig({ peft_type: 'LORA' }, 'cfg')).toThrow(/peft_type="LORA" is not 'FULL'/);
    expect(peftMethod('SELECTIVE').savedKey('base_model.model.model.norm.weight', 'default')).toBe('model.norm.weight');
  });

  it.skipIf(!tinyModelDir('llama3'))('BitFit on a bias-free model names the model and suggests another method', () => {
    const graph = buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!));
    expect(() => applyBitfit(graph, parseBitfitConfig({ peft_type: 'BITFIT' }, 'cfg').config)).toThrow(
      new RegExp(`BITFIT: ${tinyModelDir('llama3')!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has no bias tensors.*use LORA, or SELECTIVE`),
    );
  });

  it.skipIf(!tinyModelDir('llama3'))('a pattern matching nothing, and a quantized tensor, are refused by name', () => {
    const graph = buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!));
    const selective = (parameters: string[]) => applySelective(graph, parseSelectiveConfig({ peft_type: 'SELECTIVE', parameters }, 'cfg').config);
    expect(() => selective(['norm', 'layers.7.*'])).toThrow(/SELECTIVE: parameters entry "layers.7.\*" matches no tensor of the model/);
    expect(() => applySelective(graph, { peft_type: 'SELECTIVE', parameters: ['norm'], exclude: ['.'] })).toThrow(/exclude leaves no tensor to train/);
    // Globs match whole names; regexes are searched.
    expect(selective(['model.layers.*.input_layernorm.weight']).params.map((p) => hfNameOfKey(p.name))).toEqual([
      'model.layers.0.input_layernorm.weight', 'model.layers.1.input_layernorm.weight',
    ]);
    expect(selective(['layers\\.0\\..*_proj']).params.length).toBe(7);

    const quantized = quantizeBase(graph, { scheme: 'int4', exclude: ['lm_head'] }).graph;
    const q = (parameters: string[]) => applySelective(quantized, { peft_type: 'SELECTIVE', parameters, exclude: null });
    expect(() => q(['q_proj'])).toThrow(/SELECTIVE: 'model\.layers\.0\.self_attn\.q_proj\.weight' is stored quantized \(uint8 4-bit blocks\).*cannot be trained/);
    expect(q(['norm']).params.length).toBe(5);
    expect(() => applyFull(quantized)).toThrow(/FULL: .* keeps 14 tensors quantized in 4-bit blocks/);
  });
});
