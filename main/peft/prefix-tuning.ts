// Prefix tuning (Li & Liang, 2021) with HF PEFT's (0.17) config and keys: every layer's attention sees V trained
// key/value pairs before each row's keys (PEFT's PrefixEncoder fed as past_key_values: no RoPE, real tokens at
// positions V…). The prefixes are one embedding (V, L·2·Hkv·D) in PEFT's layout [layer][key|value][head][dim], or,
// with prefix_projection, an embedding (V, Hkv·D) through Linear, Tanh, Linear (the reparameterisation used while
// training). P-tuning v2 is prefix tuning without the projection. PEFT saves the prefixes themselves
// (prompt_embeddings (V, L·2·Hkv·D)), so a projected adapter loads like an unprojected one.
import { type Graph, type Tensor, tanh } from '../engine/ir/index.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { fieldChecker } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, TrainableTensor } from './method.ts';
import { linearIr, linearJs, linearTensors } from './prompt-encoder.ts';
import {
  type PromptLearningFields, type PromptLearningMethod, type PromptModelDims, type VirtualTokenSpec,
  asKeyValues, checkPromptLearningFields, promptEncoderKey, savedCommonFields, substituteVirtualTokens, trainable, writePromptEmbeddings,
} from './virtual-tokens.ts';

export interface PrefixTuningConfig extends PromptLearningFields {
  readonly peft_type: 'PREFIX_TUNING';
  /** The projection's hidden size; null: token_dim (Hkv·D). */
  readonly encoder_hidden_size?: number | null;
  readonly prefix_projection: boolean;
}

export const parsePrefixTuningConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<PrefixTuningConfig> => {
  const c = { prefix_projection: false, ...raw } as PrefixTuningConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'PREFIX_TUNING') fail('peft_type', "is not 'PREFIX_TUNING'");
  const warnings = checkPromptLearningFields(c, fail, ['encoder_hidden_size', 'prefix_projection'], where);
  const h = c.encoder_hidden_size;
  if (h !== undefined && h !== null && !(Number.isInteger(h) && h > 0)) fail('encoder_hidden_size', 'must be a positive integer or null');
  if (typeof c.prefix_projection !== 'boolean') fail('prefix_projection', 'must be true or false');
  return { config: c, warnings };
};

export const prefixTuningVirtualTokens = (c: PrefixTuningConfig): VirtualTokenSpec => ({ kind: 'keyValues', count: c.num_virtual_tokens });

/** PEFT's sizes for prefix tuning: token_dim is the key/value width Hkv·D and num_attention_heads is Hkv (GQA). */
export const prefixSizes = (dims: Pick<PromptModelDims, 'numLayers' | 'numKvHeads' | 'headDim'>) => ({
  token_dim: dims.numKvHeads * dims.headDim,
  num_attention_heads: dims.numKvHeads,
  num_layers: dims.numLayers,
});

/** Checks a config's recorded sizes (an adapter made on another model) against this model's. */
const checkSizes = (c: PrefixTuningConfig, sizes: ReturnType<typeof prefixSizes>): void => {
  for (const field of ['token_dim', 'num_attention_heads', 'num_layers'] as const) {
    const v = c[field];
    if (v !== undefined && v !== null && v !== sizes[field]) {
      throw new PeftError(`PREFIX_TUNING: ${field}=${v}, but this model needs ${sizes[field]} (a config for another base model?)`);
    }
  }
};

export const applyPrefixTuning = (graph: Graph, config: PrefixTuningConfig, o: ApplyOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const key = (part: string) => promptEncoderKey(adapter, part);
  const V = config.num_virtual_tokens;
  let params: TrainableTensor[] = [];
  let hidden = 0;
  const adapted = substituteVirtualTokens(graph, 'keyValues', 'PREFIX_TUNING', (g, shape) => {
    const [count, L, , Hkv, D] = shape as [number, number, number, number, number];
    if (count !== V) throw new PeftError(`PREFIX_TUNING with num_virtual_tokens=${V} needs a graph built for ${V} virtual tokens, not ${count}`);
    const sizes = prefixSizes({ numLayers: L, numKvHeads: Hkv, headDim: D });
    checkSizes(config, sizes);
    const width = L * 2 * sizes.token_dim;
    const rng = createRng(o.seed ?? 0);
    if (!config.prefix_projection) {
      params = [trainable(key('embedding.weight'), [V, width], normalArray(V * width, 1, rng), 'embedding.weight')];
      return asKeyValues(g.input(params[0]!.name, 'float32', [V, width]), shape);
    }
    hidden = config.encoder_hidden_size ?? sizes.token_dim;
    params = [
      trainable(key('embedding.weight'), [V, sizes.token_dim], normalArray(V * sizes.token_dim, 1, rng), 'embedding.weight'),
      ...linearTensors(key, 'transform.0', sizes.token_dim, hidden, rng),
      ...linearTensors(key, 'transform.2', hidden, width, rng),
    ];
    const inputs = new Map(params.map((p) => [p.role, g.input(p.name, 'float32', p.shape)]));
    const parts = (part: string): Tensor => inputs.get(part)!;
    const flat = g.scope(`prompt_encoder.${adapter}`, () =>
      linearIr(tanh(linearIr(parts('embedding.weight'), parts, 'transform.0')), parts, 'transform.2'),
    ); // (V, L·2·Hkv·D)
    return asKeyValues(flat, shape);
  });
  return { graph: adapted, params, modules: new Map([['prompt_encoder', { num_virtual_tokens: V, ...(hidden ? { encoder_hidden_size: hidden } : {}) }]]) };
};

/** What PEFT saves: the prefixes (V, L·2·Hkv·D), the projection's output when there is one. */
export const prefixPromptEmbeddings = (config: PrefixTuningConfig, params: readonly TrainableTensor[], adapter = 'default'): { shape: number[]; data: Float32Array } => {
  const byPart = new Map(params.map((p) => [p.name.slice(promptEncoderKey(adapter, '').length), p]));
  const part = (name: string): TrainableTensor => {
    const p = byPart.get(name);
    if (!p) throw new PeftError(`PREFIX_TUNING save: tensor '${promptEncoderKey(adapter, name)}' is missing`);
    return p;
  };
  const V = config.num_virtual_tokens;
  const embedding = part('embedding.weight');
  if (!config.prefix_projection) return { shape: [V, embedding.shape[1]!], data: Float32Array.from(embedding.data) };
  const values = (name: string) => part(name).data;
  const out = linearJs(linearJs(embedding.data, V, values, 'transform.0').map(Math.tanh), V, values, 'transform.2');
  return { shape: [V, out.length / V], data: out };
};

export const savedPrefixTuningConfig = (c: PrefixTuningConfig, dims: PromptModelDims): Record<string, unknown> => {
  const sizes = prefixSizes(dims);
  return {
    ...savedCommonFields(c, sizes),
    peft_type: 'PREFIX_TUNING',
    encoder_hidden_size: c.encoder_hidden_size ?? sizes.token_dim,
    prefix_projection: c.prefix_projection,
  };
};

export const savePrefixTuningAdapter = (dir: string, config: PrefixTuningConfig, params: readonly TrainableTensor[], dims: PromptModelDims, o: ApplyOptions = {}): void =>
  writePromptEmbeddings(dir, savedPrefixTuningConfig(config, dims), prefixPromptEmbeddings(config, params, o.adapterName ?? 'default'));

export const prefixTuningMethod: PromptLearningMethod<PrefixTuningConfig> = {
  peftType: 'PREFIX_TUNING',
  label: 'Prefix tuning',
  parseConfig: parsePrefixTuningConfig,
  apply: applyPrefixTuning,
  // Without the projection the embedding is the saved tensor; with it the projection's output is (prefixPromptEmbeddings).
  savedKey: (key, adapter) => (key === promptEncoderKey(adapter, 'embedding.weight') ? 'prompt_embeddings' : key),
  saveAdapter: (dir, config, params, dims, o) => void savePrefixTuningAdapter(dir, config, params, dims, o),
  virtualTokens: prefixTuningVirtualTokens,
};
