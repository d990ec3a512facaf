// Test fixtures for LongLoRA: a fresh random Llama written as a Hugging Face folder (config.json +
// model.safetensors, no tokenizer: the tests feed token ids), and byte-level token ids of a text.
import { createRng, normalArray } from '../../main/engine/random.ts';
import { writeHfFolder } from '../../main/models/export/hf-folder.ts';
import type { SafetensorsTensor } from '../../main/models/export/safetensors-writer.ts';

export interface TinyLlamaDims {
  readonly vocab: number;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly intermediate: number;
  readonly maxPositions: number;
  readonly tied?: boolean;
  readonly ropeTheta?: number;
}

/** A random Llama (normal(0, 0.02) weights as transformers initialises them, norms 1) saved to `dir`. */
export const writeRandomLlama = (dir: string, d: TinyLlamaDims, seed: number): string => {
  const rng = createRng(seed);
  const headDim = d.hidden / d.heads;
  const tensors: SafetensorsTensor[] = [];
  const add = (name: string, shape: number[], values?: Float32Array): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = values ?? normalArray(n, 0.02, rng);
    tensors.push({ name, shape, dtype: 'F32', data: () => data });
  };
  add('model.embed_tokens.weight', [d.vocab, d.hidden]);
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [d.hidden], new Float32Array(d.hidden).fill(1));
    add(`${p}.self_attn.q_proj.weight`, [d.heads * headDim, d.hidden]);
    add(`${p}.self_attn.k_proj.weight`, [d.kvHeads * headDim, d.hidden]);
    add(`${p}.self_attn.v_proj.weight`, [d.kvHeads * headDim, d.hidden]);
    add(`${p}.self_attn.o_proj.weight`, [d.hidden, d.heads * headDim]);
    add(`${p}.post_attention_layernorm.weight`, [d.hidden], new Float32Array(d.hidden).fill(1));
    add(`${p}.mlp.gate_proj.weight`, [d.intermediate, d.hidden]);
    add(`${p}.mlp.up_proj.weight`, [d.intermediate, d.hidden]);
    add(`${p}.mlp.down_proj.weight`, [d.hidden, d.intermediate]);
  }
  add('model.norm.weight', [d.hidden], new Float32Array(d.hidden).fill(1));
  if (!d.tied) add('lm_head.weight', [d.vocab, d.hidden]);
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.vocab,
    max_position_embeddings: d.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: d.ropeTheta ?? 10000,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: d.tied ?? false,
    bos_token_id: 0,
    eos_token_id: 0,
    torch_dtype: 'float32',
  };
  writeHfFolder(dir, { config, tensors });
  return dir;
};

/** The UTF-8 bytes of a text as token ids 0–255 (a byte-level vocabulary). */
export const byteTokens = (text: string): Uint8Array => new TextEncoder().encode(text);
