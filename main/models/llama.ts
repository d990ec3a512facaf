// Llama-family decoder in the engine's IR, with Hugging Face parameter names; Mistral, Qwen2 and Qwen3 are
// small deltas of it (see ARCHITECTURE_DELTAS). Every projection goes through `project`, so a PEFT rewrite
// finds it by its HF module name (`model.layers.3.self_attn.q_proj`).
import type { GraphBuilder, Tensor } from '../engine/ir/index.ts';
import { add, concat, gather, mul, reshape, transpose } from '../engine/ir/index.ts';
import { causalMask } from '../engine/nn/masks.ts';
import { ATTENTION_SCOPE, linear, linearQ4, mergeHeads, rmsNorm, scaledDotProductAttention, silu } from '../engine/nn/index.ts';
import { applyRope, ropeInverseFrequencies, ropeTables } from '../engine/nn/rope.ts';
import type { ModelConfig } from './config.ts';
import {
  type PrefixKeyValue, type VirtualTokens, attentionWithPrefix, prefixKeyValues, promptPrefix, shiftedPositions, virtualStream, virtualTokenCount,
} from './prompt-learning.ts';
import type { WeightBinder } from './weights.ts';

/** What distinguishes a Llama-family architecture from Llama. */
export interface ArchitectureDelta {
  /** Biases on q/k/v projections (Qwen2). */
  readonly qkvBias?: boolean;
  /** RMSNorm of each head of q and k before RoPE (Qwen3). */
  readonly qkNorm?: boolean;
}

export const ARCHITECTURE_DELTAS: Readonly<Record<string, ArchitectureDelta>> = {
  LlamaForCausalLM: {},
  MistralForCausalLM: {},
  Qwen2ForCausalLM: { qkvBias: true },
  Qwen3ForCausalLM: { qkNorm: true },
};

export interface DecoderInputs {
  /** (B, T) int64 */
  readonly inputIds: Tensor;
  /** (B, T) int64 */
  readonly positionIds: Tensor;
  /** Additive attention mask broadcastable to (B, H, T, S); causal over T when omitted. */
  readonly mask?: Tensor;
  /** Generation: each layer's cached keys and values (B, Hkv, P, D), prepended to this call's. */
  readonly past?: readonly KeyValue[];
  /** Prompt learning: virtual tokens every row sees first (prompt-learning.ts); positions and mask stay the real tokens'. */
  readonly virtualTokens?: VirtualTokens;
}

export interface KeyValue {
  readonly key: Tensor;
  readonly value: Tensor;
}

export interface DecoderOutput {
  /** (B, T, C) after the final norm. */
  readonly hidden: Tensor;
  /** Each layer's keys and values including this call's (B, Hkv, P+T, D): the next call's `past`. */
  readonly present: readonly KeyValue[];
  /** With virtual embeddings: each layer's keys and values of the K prompts (K, Hkv, V, D), a fixed prefix to cache. */
  readonly virtualKeyValues?: readonly KeyValue[];
}

/** The decoder up to the final norm. */
export const decoder = (g: GraphBuilder, config: ModelConfig, w: WeightBinder, inputs: DecoderInputs): DecoderOutput => {
  const delta = ARCHITECTURE_DELTAS[config.architecture] ?? {};
  const { hiddenSize: C, headDim: D, numHeads: H, numKvHeads: Hkv, intermediateSize: I } = config;
  const mask = inputs.mask ?? causalMask(g, inputs.inputIds.shape[1]!); // (T, T)
  const inverseFrequencies = ropeInverseFrequencies(D, config.ropeTheta, config.ropeScaling);
  const vt = inputs.virtualTokens;
  const positionIds = vt ? g.scope('model.virtual_tokens', () => shiftedPositions(inputs.positionIds, virtualTokenCount(vt))) : inputs.positionIds;
  const rope = g.scope('model.rotary_emb', () => ropeTables(positionIds, inverseFrequencies)); // (B, 1, T, D)
  let h = gather(w.get('model.embed_tokens.weight', [config.vocabSize, C]), inputs.inputIds, 0, 'model.embed_tokens'); // (B, T, C)
  // Prompt learning: prefix tuning's keys and values per layer, or prompt tuning's own stream of V virtual tokens.
  const fixedPrefix = vt && 'keyValues' in vt ? g.scope('model.virtual_tokens', () => prefixKeyValues(vt.keyValues)) : undefined;
  let virtual = vt && 'embeddings' in vt ? g.scope('model.virtual_tokens', () => virtualStream(vt.embeddings, inverseFrequencies)) : undefined;
  const virtualKeyValues: KeyValue[] = [];

  const present: KeyValue[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    // Bound once per layer: the virtual tokens' stream uses the same weights.
    const bound = new Map<string, ReturnType<WeightBinder['linear']>>();
    // Nodes are named relative to the layer's scope, so the projection node is `model.layers.i.<module>`.
    const project = (x: Tensor, module: string, outF: number, inF: number, withBias = false) => {
      const name = `${p}.${module}.weight`;
      const weight = bound.get(name) ?? w.linear(name, [outF, inF]);
      bound.set(name, weight);
      const bias = withBias ? w.get(`${p}.${module}.bias`, [outF]) : undefined;
      return weight.kind === 'q4' ? linearQ4(x, weight.weight, bias, module) : linear(x, weight.weight, bias, module);
    };
    const norm = (x: Tensor, module: string, size: number) =>
      g.scope(module, () => rmsNorm(x, w.get(`${p}.${module}.weight`, [size]), config.rmsNormEps));
    /** One layer over hIn (B, T, C) → (B, T, C), with its keys and values (past included). */
    const layer = (hIn: Tensor, r: typeof rope, m: Tensor, past?: KeyValue, prefix?: PrefixKeyValue) => {
      const x = norm(hIn, 'input_layernorm', C); // (B, T, C)
      const heads = (module: string, n: number, qkNorm?: string) => {
        const y = project(x, `self_attn.${module}`, n * D, C, delta.qkvBias || config.attentionBias); // (B, T, n·D)
        const split = reshape(y, [0, 0, n, D]); // (B, T, n, D)
        return transpose(qkNorm ? norm(split, `self_attn.${qkNorm}`, D) : split, [0, 2, 1, 3]); // (B, n, T, D)
      };
      const q = applyRope(heads('q_proj', H, delta.qkNorm ? 'q_norm' : undefined), r); // (B, H, T, D)
      let k = applyRope(heads('k_proj', Hkv, delta.qkNorm ? 'k_norm' : undefined), r); // (B, Hkv, T, D)
      let v = heads('v_proj', Hkv); // (B, Hkv, T, D)
      if (past) {
        k = concat([past.key, k], 2, 'self_attn.key_cache'); // (B, Hkv, P+T, D)
        v = concat([past.value, v], 2, 'self_attn.value_cache'); // (B, Hkv, P+T, D)
      }
      // Its own scope (`model.layers.i.self_attn.sdpa.*`) so a rewrite can find and replace it (LongLoRA's S²-Attn).
      const attn = mergeHeads(
        prefix
          ? g.scope('self_attn.prefix_sdpa', () => attentionWithPrefix(q, k, v, m, prefix))
          : g.scope(ATTENTION_SCOPE, () => scaledDotProductAttention(q, k, v, m)),
      ); // (B, T, H·D)
      const h1 = add(hIn, project(attn, 'self_attn.o_proj', C, H * D)); // (B, T, C)
      const x2 = norm(h1, 'post_attention_layernorm', C);
      const gate = silu(project(x2, 'mlp.gate_proj', I, C)); // (B, T, I)
      const up = project(x2, 'mlp.up_proj', I, C); // (B, T, I)
      return { h: add(h1, project(mul(gate, up), 'mlp.down_proj', C, I)), kv: { key: k, value: v } }; // (B, T, C)
    };
    h = g.block(p, () => {
      let prefix = fixedPrefix?.(i);
      if (virtual) {
        const stream = virtual;
        const out = g.scope('virtual_tokens', () => layer(stream.h, stream.rope, stream.mask)); // (K, V, C)
        virtual = { ...stream, h: out.h };
        virtualKeyValues.push(out.kv);
        prefix = g.scope('virtual_tokens', () => promptPrefix(out.kv, h.shape[0]!)); // (B | 1, Hkv, V, D)
      }
      const out = layer(h, rope, mask, inputs.past?.[i], prefix);
      present.push(out.kv);
      return out.h;
    });
  }
  const hidden = g.scope('model.norm', () => rmsNorm(h, w.get('model.norm.weight', [C]), config.rmsNormEps)); // (B, T, C)
  return { hidden, present, ...(virtualKeyValues.length ? { virtualKeyValues } : {}) };
};

/** The LM head (tied to the embedding when the config says so): hidden (…, C) → logits (…, V). */
export const lmHead = (config: ModelConfig, w: WeightBinder, hidden: Tensor): Tensor => {
  const name = config.tieWordEmbeddings || !w.has('lm_head.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return linear(hidden, w.get(name, [config.vocabSize, config.hiddenSize]), undefined, 'lm_head');
};
