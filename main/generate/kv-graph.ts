import { GraphBuilder, reshape, slice, type Graph } from '../engine/ir/index.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { decoder, lmHead } from '../models/llama.ts';
import { WeightBinder } from '../models/weights.ts';
import { virtualTokenInput, type VirtualTokenSpec } from '../peft/virtual-tokens.ts';

/** Names of the generation graph's inputs and outputs. */
export const GEN = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  /** Additive mask (B, 1, T, P+T): 0 where a query may see a key, a large negative elsewhere (causality, padding). */
  mask: 'attention_mask',
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
  logits: 'logits',
} as const;

/**
 * One graph serves prefill (P = 0, T = prompt) and decode (T = 1): it reads the KV cache as inputs and returns
 * the grown cache, and computes the LM head only for each row's last position: logits (B, V).
 */
export const buildGenerationGraph = (model: LoadedModel, o: { readonly virtualTokens?: VirtualTokenSpec } = {}): Graph => {
  const { config } = model;
  const g = new GraphBuilder();
  const inputIds = g.input(GEN.inputIds, 'int64', ['batch', 'seq']);
  const positionIds = g.input(GEN.positionIds, 'int64', ['batch', 'seq']);
  const mask = g.input(GEN.mask, 'float32', ['batch', 1, 'seq', '(past+seq)']);
  const kvShape = ['batch', config.numKvHeads, 'past', config.headDim];
  const past = Array.from({ length: config.numLayers }, (_, i) => ({
    key: g.input(GEN.pastKey(i), 'float32', kvShape),
    value: g.input(GEN.pastValue(i), 'float32', kvShape),
  }));
  const w = new WeightBinder(g, model.weights, model.source);
  // Prompt learning: a placeholder for prefix key/values that prompt-adapter.ts bakes in; the cache stays the real tokens'.
  const virtualTokens = o.virtualTokens && virtualTokenInput(g, config, o.virtualTokens);
  const { hidden, present } = decoder(g, config, w, { inputIds, positionIds, mask, past, ...(virtualTokens ? { virtualTokens } : {}) }); // (B, T, C)
  const last = reshape(slice(hidden, { starts: [-1], ends: [Number.MAX_SAFE_INTEGER], axes: [1] }), [0, config.hiddenSize]); // (B, C)
  g.output(lmHead(config, w, last), GEN.logits); // (B, V)
  present.forEach((kv, i) => {
    g.output(kv.key, GEN.presentKey(i));
    g.output(kv.value, GEN.presentValue(i));
  });
  return g.build();
};
