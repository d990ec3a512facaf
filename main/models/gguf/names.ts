import type { GgufTensorInfo } from './reader.ts';

/**
 * llama.cpp tensor names ↔ Hugging Face names for the llama family (Llama, Mistral, SmolLM, Qwen2/2.5, Qwen3),
 * and the undoing of the Q/K row permutation that llama.cpp's converter applies to `llama` models.
 */

const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

/** Per-block GGUF module name → HF module path under model.layers.N. */
const BLOCK_MODULES: Readonly<Record<string, string>> = {
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  attn_q_norm: 'self_attn.q_norm', // Qwen3
  attn_k_norm: 'self_attn.k_norm', // Qwen3
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
};

const HF_GLOBAL = new Map(Object.entries(GLOBAL_NAMES).map(([g, h]) => [h, g]));
const HF_MODULES = new Map(Object.entries(BLOCK_MODULES).map(([g, h]) => [h, g]));

/**
 * The HF name of a llama.cpp tensor, or undefined for tensors HF checkpoints do not have (e.g. rope_freqs.weight,
 * llama.cpp's precomputed llama3 rope factors) or that this family does not use.
 */
export const ggufToHfName = (name: string): string | undefined => {
  const global = GLOBAL_NAMES[name];
  if (global) return global;
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const module = BLOCK_MODULES[m[2]!];
  return module ? `model.layers.${m[1]}.${module}.${m[3]}` : undefined;
};

/** The inverse of ggufToHfName (for exporting adapters and merged models back to GGUF). */
export const hfToGgufName = (name: string): string | undefined => {
  const global = HF_GLOBAL.get(name);
  if (global) return global;
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const module = HF_MODULES.get(m[2]!);
  return module ? `blk.${m[1]}.${module}.${m[3]}` : undefined;
};

/** GGUF stores ne[0] (the contiguous axis) first; numpy/torch/HF shapes list the outermost axis first. */
export const hfShape = (tensor: Pick<GgufTensorInfo, 'dims'>): number[] => [...tensor.dims].reverse();

/**
 * Architectures whose q_proj/k_proj rows llama.cpp's converter permuted. It does this for `llama` (which
 * includes Mistral and SmolLM GGUFs) so that its rope can rotate adjacent pairs; Qwen2/Qwen3 GGUFs keep HF's
 * layout because llama.cpp uses NEOX-style rope for them.
 */
export const QK_PERMUTED_ARCHITECTURES: readonly string[] = ['llama'];

/**
 * Which head count un-permutes an HF tensor of a GGUF of `architecture`, if any: q_proj (weight or bias) uses
 * the attention heads, k_proj the key/value heads.
 */
export const qkPermutationHeads = (
  architecture: string,
  hfName: string,
  heads: { readonly numHeads: number; readonly numKvHeads: number },
): number | undefined => {
  if (!QK_PERMUTED_ARCHITECTURES.includes(architecture)) return undefined;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return heads.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return heads.numKvHeads;
  return undefined;
};

type RowArray = Float32Array | Uint8Array | Float64Array | Uint16Array | Int8Array;

/**
 * Moves whole rows of a row-major [nRows, rowLength] array: output row `to(r)` ← input row r.
 * Works on dequantized weights and equally on per-row block data (codes, scales) of a quantized weight.
 */
const moveRows = <T extends RowArray>(data: T, rowLength: number, to: (row: number) => number): T => {
  const nRows = data.length / rowLength;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  for (let r = 0; r < nRows; r++) out.set(data.subarray(r * rowLength, (r + 1) * rowLength), to(r) * rowLength);
  return out;
};

const headGeometry = (length: number, rowLength: number, nHead: number): number => {
  const nRows = length / rowLength;
  if (!Number.isInteger(nRows)) throw new Error(`Q/K permutation: ${length} values are not whole rows of ${rowLength}`);
  const headDim = nRows / nHead;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(`Q/K permutation: ${nRows} rows do not split into ${nHead} heads of an even size`);
  }
  return headDim;
};

/**
 * Undoes convert_hf_to_gguf.py's `w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2)`: within each head, GGUF row
 * 2i + s holds HF row s·hd/2 + i (llama.cpp interleaves the two rotary halves). `rowLength` is the number of
 * values per row (the input features for a weight, 1 for a bias).
 */
export const unpermuteQkRows = <T extends RowArray>(data: T, nHead: number, rowLength: number): T => {
  const headDim = headGeometry(data.length, rowLength, nHead);
  const half = headDim / 2;
  return moveRows(data, rowLength, (g) => {
    const h = Math.floor(g / headDim);
    const within = g % headDim;
    return h * headDim + (within % 2) * half + Math.floor(within / 2);
  });
};

/** The permutation llama.cpp's converter applies (HF layout → GGUF layout); the inverse of unpermuteQkRows. */
export const permuteQkRows = <T extends RowArray>(data: T, nHead: number, rowLength: number): T => {
  const headDim = headGeometry(data.length, rowLength, nHead);
  const half = headDim / 2;
  return moveRows(data, rowLength, (r) => {
    const h = Math.floor(r / headDim);
    const within = r % headDim;
    return h * headDim + (within % half) * 2 + Math.floor(within / half);
  });
};
