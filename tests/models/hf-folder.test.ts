import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { readSafetensorsHeader } from '../../main/engine/io/safetensors.ts';

const CONFIG = {
  architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,
  num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 10, rms_norm_eps: 1e-6,
};

const safetensors = (tensors: Record<string, number[]>, truncateBy = 0): Buffer => {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const all = Buffer.concat([len, json, Buffer.alloc(offset)]);
  return all.subarray(0, all.length - truncateBy);
};

const folder = (files: Record<string, string | Buffer>): string => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-hf-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
};

describe('opening a Hugging Face folder: clear errors', () => {
  it('a folder without config.json', () => {
    const dir = folder({});
    expect(() => openHfFolder(dir)).toThrow(`${dir} is not a Hugging Face model folder: it has no config.json`);
  });

  it('missing config keys are listed', () => {
    const { hidden_size: _h, vocab_size: _v, ...rest } = CONFIG;
    const dir = folder({ 'config.json': JSON.stringify(rest) });
    expect(() => openHfFolder(dir)).toThrow(/config\.json: missing or non-numeric keys: hidden_size, vocab_size/);
  });

  it('an unsupported architecture is named, with the supported list', () => {
    const dir = folder({ 'config.json': JSON.stringify({ ...CONFIG, architectures: ['GPT2LMHeadModel'] }) });
    expect(() => openHfFolder(dir)).toThrow(/architecture GPT2LMHeadModel is not supported; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/);
  });

  it('a truncated safetensors file names the tensor that runs past the end', () => {
    const dir = folder({ 'config.json': JSON.stringify(CONFIG), 'model.safetensors': safetensors({ a: [4], 'model.norm.weight': [8] }, 5) });
    expect(() => openHfFolder(dir)).toThrow(/model\.safetensors is truncated: tensor 'model\.norm\.weight' ends at byte \d+, the file has \d+/);
  });

  it('a shard index pointing at a missing file names it', () => {
    const index = { weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors' } };
    const dir = folder({ 'config.json': JSON.stringify(CONFIG), 'model.safetensors.index.json': JSON.stringify(index) });
    expect(() => openHfFolder(dir)).toThrow(/model\.safetensors\.index\.json lists .*model-00002-of-00002\.safetensors, which does not exist/);
  });

  it('no weights at all', () => {
    const dir = folder({ 'config.json': JSON.stringify(CONFIG) });
    expect(() => openHfFolder(dir)).toThrow(/no model\.safetensors \(or model\.safetensors\.index\.json\) in/);
  });

  it('malformed config JSON names the file', () => {
    const dir = folder({ 'config.json': '{"architectures": [' });
    expect(() => openHfFolder(dir)).toThrow(/config\.json: malformed JSON/);
  });

  it('reads a sharded checkpoint through its index', () => {
    const dir = folder({
      'config.json': JSON.stringify(CONFIG),
      'model.safetensors.index.json': JSON.stringify({ weight_map: { a: 'one.safetensors', b: 'two.safetensors' } }),
      'one.safetensors': safetensors({ a: [2, 3] }),
      'two.safetensors': safetensors({ b: [4] }),
    });
    const model = openHfFolder(dir);
    expect([...model.weights.keys()].sort()).toEqual(['a', 'b']);
    expect(model.weights.get('a')!.shape).toEqual([2, 3]);
    expect(readSafetensorsHeader(join(dir, 'two.safetensors'))[0]!.offset).toBeGreaterThan(8);
  });
});
