// Llama-family decoder in the engine's IR, with Hugging Face parameter names; Mistral, Qwen2 and Qwen3 are
// small deltas of it (see ARCHITECTURE_DELTAS). Every projection goes through `project`, so a PEFT rewrite
// finds it by its HF module name (`model.layers.3.self_attn.q_proj`).
import type { GraphBuilder, Tensor } from '../engine/ir/index.ts';
import { add, concat, gather, mul, reshape, transpose } from '../engine/ir/index.ts';
import { causalMask } from '../engine/nn/masks.ts';
import { linear, linearQ4, mergeHeads, rmsNorm, scaledDotProductAttention, silu } from '../engine/nn/index.ts';
import { applyRope, ropeInverseFrequencies, ropeTables } from '../engine/nn/rope.ts';
import type { ModelConfig } from './config.ts';
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
}

/** The decoder up to the final norm. */
export const decoder = (g: GraphBuilder, config: ModelConfig, w: WeightBinder, inputs: DecoderInputs): DecoderOutput => {
  const delta = ARCHITECTURE_DELTAS[config.architecture] ?? {};
  const { hiddenSize: C, headDim: D, numHeads: H, numKvHeads: Hkv, intermediateSize: I } = config;
  const mask = inputs.mask ?? causalMask(g, inputs.inputIds.shape[1]!); // (T, T)
  const rope = g.scope('model.rotary_emb', () =>
    ropeTables(inputs.positionIds, ropeInverseFrequencies(D, config.ropeTheta, config.ropeScaling)),
  ); // (B, 1, T, D)
  let h = gather(w.get('model.embed_tokens.weight', [config.vocabSize, C]), inputs.inputIds, 0, 'model.embed_tokens'); // (B, T, C)

  const present: KeyValue[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    // Nodes are named relative to the layer's scope, so the projection node is `model.layers.i.<module>`.
    const project = (x: Tensor, module: string, outF: number, inF: number, withBias = false) => {
      const weight = w.linear(`${p}.${module}.weight`, [outF, inF]);
      const bias = withBias ? w.get(`${p}.${module}.bias`, [outF]) : undefined;
      return weight.kind === 'q4' ? linearQ4(x, weight.weight, bias, module) : linear(x, weight.weight, bias, module);
    };
    const norm = (x: Tensor, module: string, size: number) =>
      g.scope(module, () => rmsNorm(x, w.get(`${p}.${module}.weight`, [size]), config.rmsNormEps));
    h = g.block(p, () => {
      const x = norm(h, 'input_layernorm', C); // (B, T, C)
      const heads = (module: string, n: number, qkNorm?: string) => {
        const y = project(x, `self_attn.${module}`, n * D, C, delta.qkvBias || config.attentionBias); // (B, T, n·D)
        const split = reshape(y, [0, 0, n, D]); // (B, T, n, D)
        return transpose(qkNorm ? norm(split, `self_attn.${qkNorm}`, D) : split, [0, 2, 1, 3]); // (B, n, T, D)
      };
      const q = applyRope(heads('q_proj', H, delta.qkNorm ? 'q_norm' : undefined), rope); // (B, H, T, D)
      let k = applyRope(heads('k_proj', Hkv, delta.qkNorm ? 'k_norm' : undefined), rope); // (B, Hkv, T, D)
      let v = heads('v_proj', Hkv); // (B, Hkv, T, D)
      const past = inputs.past?.[i];
      if (past) {
        k = concat([past.key, k], 2, 'self_attn.key_cache'); // (B, Hkv, P+T, D)
        v = concat([past.value, v], 2, 'self_attn.value_cache'); // (B, Hkv, P+T, D)
      }
      present.push({ key: k, value: v });
      const attn = mergeHeads(scaledDotProductAttention(q, k, v, mask)); // (B, T, H·D)
      const h1 = add(h, project(attn, 'self_attn.o_proj', C, H * D)); // (B, T, C)
      const x2 = norm(h1, 'post_attention_layernorm', C);
      const gate = silu(project(x2, 'mlp.gate_proj', I, C)); // (B, T, I)
      const up = project(x2, 'mlp.up_proj', I, C); // (B, T, I)
      return add(h1, project(mul(gate, up), 'mlp.down_proj', C, I)); // (B, T, C)
    });
  }
  const hidden = g.scope('model.norm', () => rmsNorm(h, w.get('model.norm.weight', [C]), config.rmsNormEps)); // (B, T, C)
  return { hidden, present };
};

/** The LM head (tied to the embedding when the config says so): hidden (…, C) → logits (…, V). */
export const lmHead = (config: ModelConfig, w: WeightBinder, hidden: Tensor): Tensor => {
  const name = config.tieWordEmbeddings || !w.has('lm_head.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return linear(hidden, w.get(name, [config.vocabSize, config.hiddenSize]), undefined, 'lm_head');
};
