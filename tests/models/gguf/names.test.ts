import { describe, expect, it } from 'vitest';
import {
  ggufToHfName,
  hfShape,
  hfToGgufName,
  permuteQkRows,
  qkPermutationHeads,
  unpermuteQkRows,
} from '../../../main/models/gguf/names.ts';
import { seededRandom } from '../../helpers/random.ts';

/** Byte equality: vitest's deep equality walks 300k-element arrays slowly. */
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('llama.cpp ↔ Hugging Face tensor names', () => {
  const pairs: [string, string][] = [
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', 'lm_head.weight'],
    ['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight'],
    ['blk.0.attn_q.bias', 'model.layers.0.self_attn.q_proj.bias'],
    ['blk.3.attn_k.weight', 'model.layers.3.self_attn.k_proj.weight'],
    ['blk.3.attn_k.bias', 'model.layers.3.self_attn.k_proj.bias'],
    ['blk.3.attn_v.bias', 'model.layers.3.self_attn.v_proj.bias'],
    ['blk.12.attn_output.weight', 'model.layers.12.self_attn.o_proj.weight'],
    ['blk.12.attn_q_norm.weight', 'model.layers.12.self_attn.q_norm.weight'],
    ['blk.12.attn_k_norm.weight', 'model.layers.12.self_attn.k_norm.weight'],
    ['blk.29.ffn_gate.weight', 'model.layers.29.mlp.gate_proj.weight'],
    ['blk.29.ffn_up.weight', 'model.layers.29.mlp.up_proj.weight'],
    ['blk.29.ffn_down.weight', 'model.layers.29.mlp.down_proj.weight'],
    ['blk.7.attn_norm.weight', 'model.layers.7.input_layernorm.weight'],
    ['blk.7.ffn_norm.weight', 'model.layers.7.post_attention_layernorm.weight'],
  ];

  it.each(pairs)('%s ↔ %s', (gguf, hf) => {
    expect(ggufToHfName(gguf)).toBe(hf);
    expect(hfToGgufName(hf)).toBe(gguf);
  });

  it('tensors without an HF counterpart map to undefined', () => {
    for (const name of ['rope_freqs.weight', 'blk.0.ffn_gate_exps.weight', 'blk.x.attn_q.weight', 'token_embd']) {
      expect(ggufToHfName(name)).toBeUndefined();
    }
    expect(hfToGgufName('model.layers.0.self_attn.rotary_emb.inv_freq')).toBeUndefined();
  });

  it('HF shape is the ggml dims reversed', () => {
    expect(hfShape({ dims: [576, 49152] })).toEqual([49152, 576]);
    expect(hfShape({ dims: [576] })).toEqual([576]);
    expect(hfShape({ dims: [64, 3, 2] })).toEqual([2, 3, 64]);
  });
});

describe("undoing llama.cpp's Q/K row permutation", () => {
  it("matches numpy's w.reshape(n_head, 2, hd/2).swapaxes(1, 2) on a worked example", () => {
    // 2 heads of 4 rows: within a head, HF rows [r0 r1 | r2 r3] (two rotary halves) become [r0 r2 r1 r3].
    const hf = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const gguf = permuteQkRows(hf, 2, 1);
    expect(Array.from(gguf)).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(unpermuteQkRows(gguf, 2, 1))).toEqual(Array.from(hf));
  });

  it('moves whole rows and inverts exactly, for weights (GQA head counts) and for block data', () => {
    const rnd = seededRandom(7);
    for (const [nHead, headDim, cols] of [[9, 64, 576], [3, 64, 576], [4, 8, 3]] as const) {
      const w = Float32Array.from({ length: nHead * headDim * cols }, () => rnd());
      const p = permuteQkRows(w, nHead, cols);
      expect(sameBytes(p, w)).toBe(false);
      expect(sameBytes(unpermuteQkRows(p, nHead, cols), w)).toBe(true);
      // Row g of the GGUF layout is row (h, s, i) of HF with g = h·hd + 2i + s.
      const hd = headDim;
      const g = hd + 3; // head 1, i = 1, s = 1
      const hfRow = hd + hd / 2 + 1;
      expect(sameBytes(p.subarray(g * cols, (g + 1) * cols), w.subarray(hfRow * cols, (hfRow + 1) * cols))).toBe(true);
    }
    const codes = Uint8Array.from({ length: 16 * 64 }, (_, i) => i % 16);
    expect(sameBytes(unpermuteQkRows(permuteQkRows(codes, 2, 64), 2, 64), codes)).toBe(true);
  });

  it('applies to q/k of llama GGUFs only, with the kv head count for k', () => {
    const heads = { numHeads: 9, numKvHeads: 3 };
    expect(qkPermutationHeads('llama', 'model.layers.0.self_attn.q_proj.weight', heads)).toBe(9);
    expect(qkPermutationHeads('llama', 'model.layers.0.self_attn.q_proj.bias', heads)).toBe(9);
    expect(qkPermutationHeads('llama', 'model.layers.0.self_attn.k_proj.weight', heads)).toBe(3);
    expect(qkPermutationHeads('llama', 'model.layers.0.self_attn.v_proj.weight', heads)).toBeUndefined();
    expect(qkPermutationHeads('qwen2', 'model.layers.0.self_attn.q_proj.weight', heads)).toBeUndefined();
    expect(qkPermutationHeads('qwen3', 'model.layers.0.self_attn.k_proj.weight', heads)).toBeUndefined();
  });

  it('rejects rows that do not split into heads of an even size', () => {
    expect(() => unpermuteQkRows(new Float32Array(10), 2, 1)).toThrow(/even size/);
    expect(() => unpermuteQkRows(new Float32Array(10), 2, 3)).toThrow(/whole rows/);
  });
});
