import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { ggufHfConfig, type HfStyleConfig } from '../../../main/models/gguf/config.ts';
import { dequantizeTensor } from '../../../main/models/gguf/dequant.ts';
import { openGgufModel, readHfQ4Blocks, readHfTensor } from '../../../main/models/gguf/load.ts';
import { hfToGgufName } from '../../../main/models/gguf/names.ts';
import { openGguf, type GgufFile } from '../../../main/models/gguf/reader.ts';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { describeSmolLM2, expectBitExact, readF32, SMOLLM2_PATH } from './helpers.ts';

/**
 * transformers loads GGUF itself (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)): HF names, HF shapes,
 * and llama.cpp's Q/K permutation undone. Our loader must give the very same tensors.
 */

const HF_TENSORS = [
  'model.layers.0.self_attn.q_proj.weight',
  'model.layers.0.self_attn.k_proj.weight',
  'model.layers.29.self_attn.q_proj.weight',
  'model.layers.29.self_attn.k_proj.weight',
  'model.layers.0.self_attn.v_proj.weight',
  'model.layers.0.self_attn.o_proj.weight',
  'model.layers.0.mlp.down_proj.weight',
  'model.layers.0.input_layernorm.weight',
  'model.embed_tokens.weight',
  'model.norm.weight',
];

interface TransformersDump {
  config: Record<string, unknown>;
  tensors: { name: string; shape: number[]; file: string }[];
}

describeSmolLM2('SmolLM2 GGUF agrees with transformers', () => {
  describeOracle('(oracle)', () => {
    let g: GgufFile;
    let config: HfStyleConfig;
    let ref: TransformersDump;
    beforeAll(() => {
      g = openGguf(SMOLLM2_PATH);
      config = ggufHfConfig(g);
      ref = runOracle<TransformersDump>('gguf_transformers.py', [SMOLLM2_PATH, mkdtempSync(join(tmpdir(), 'peft-gguf-tf-')), ...HF_TENSORS]);
    });

    it('config fields agree', () => {
      const keys = ['model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
        'max_position_embeddings', 'vocab_size', 'tie_word_embeddings', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'rope_scaling'];
      for (const k of keys) expect(config[k], k).toEqual(ref.config[k]);
      // transformers keeps the float32 as read (9.999999747378752e-06); we give the decimal it was written from.
      expect(Math.fround(config.rms_norm_eps)).toBe(Math.fround(ref.config.rms_norm_eps as number));
      expect(config.rope_theta).toBe(ref.config.rope_theta);
    });

    it.each(HF_TENSORS)('%s: same shape and values (Q/K un-permuted like transformers)', (name) => {
      const expected = ref.tensors.find((t) => t.name === name)!;
      const ours = readHfTensor(g, g.requireTensor(hfToGgufName(name)!), config)!;
      expect(ours.name).toBe(name);
      expect(ours.shape).toEqual(expected.shape);
      expectBitExact(ours.data, readF32(expected.file), name);
    });

    it('the raw GGUF q/k row order really differs from HF (the un-permutation is not a no-op)', () => {
      const name = 'model.layers.0.self_attn.q_proj.weight';
      const raw = dequantizeTensor(g, g.requireTensor(hfToGgufName(name)!));
      const hf = readF32(ref.tensors.find((t) => t.name === name)!.file);
      expect(Buffer.from(raw.buffer).equals(Buffer.from(hf.buffer))).toBe(false);
    });

    it('Q4_1 blocks of q_proj in HF row order rebuild transformers’ q_proj exactly', () => {
      const name = 'model.layers.0.self_attn.q_proj.weight';
      const b = readHfQ4Blocks(g, g.requireTensor(hfToGgufName(name)!), config);
      expect(b.shape).toEqual([576, 576]);
      const rebuilt = new Float32Array(b.codes.length);
      for (let i = 0; i < rebuilt.length; i++) rebuilt[i] = b.scales[i >>> 5]! * b.codes[i]! + b.mins![i >>> 5]!;
      expectBitExact(rebuilt, readF32(ref.tensors.find((t) => t.name === name)!.file), name);
    });

    it('openGgufModel: every weight under its HF name and shape, equal to transformers where compared', () => {
      const model = openGgufModel(SMOLLM2_PATH);
      expect(model.weights.size).toBe(272);
      expect(model.config).toMatchObject({ architecture: 'LlamaForCausalLM', numLayers: 30, hiddenSize: 576, vocabSize: 49152 });
      expect(model.chatTemplate).toContain('<|im_start|>');
      for (const t of ref.tensors) {
        const w = model.weights.get(t.name)!;
        expect(w.shape).toEqual(t.shape);
        expect(w.dtype).toBe('float32');
        if (w.data.kind !== 'inline') throw new Error('expected inline data');
        expectBitExact(w.data.data as Float32Array, readF32(t.file), t.name);
      }
    });
  });
});
