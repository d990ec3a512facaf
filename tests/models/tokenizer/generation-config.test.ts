/** generation_config.json parsing. */
import { describe, expect, it } from 'vitest';
import {
  GenerationConfigError,
  parseGenerationConfig,
  readGenerationConfig,
  stopTokenIds,
} from '../../../main/models/tokenizer/generation-config.ts';
import { join } from 'node:path';
import { qwen3 } from './helpers.ts';
import { writeTinyFolder } from './tiny-tokenizer.ts';

describe('generation config', () => {
  it('reads a Qwen3-style config (eos list, sampling defaults)', () => {
    const config = parseGenerationConfig({
      bos_token_id: 151643,
      do_sample: true,
      eos_token_id: [151645, 151643],
      pad_token_id: 151643,
      temperature: 0.6,
      top_k: 20,
      top_p: 0.95,
      transformers_version: '4.51.0',
    });
    expect(config).toEqual({
      eosTokenIds: [151645, 151643],
      bosTokenId: 151643,
      padTokenId: 151643,
      doSample: true,
      temperature: 0.6,
      topK: 20,
      topP: 0.95,
    });
  });

  it('reads a single eos id, repetition penalty, lengths; leaves unset fields out', () => {
    const config = parseGenerationConfig({ eos_token_id: 2, repetition_penalty: 1.1, max_new_tokens: 256, max_length: 2048, min_p: 0.05 });
    expect(config).toEqual({ eosTokenIds: [2], repetitionPenalty: 1.1, maxNewTokens: 256, maxLength: 2048, minP: 0.05 });
    expect('temperature' in config).toBe(false);
    expect(parseGenerationConfig({ eos_token_id: null })).toEqual({ eosTokenIds: [] });
  });

  it('names the file and the key of a bad value', () => {
    const bad = (raw: unknown) => () => parseGenerationConfig(raw, 'm/generation_config.json');
    expect(bad({ eos_token_id: 'x' })).toThrow(/m\/generation_config\.json: eos_token_id must be a token id/);
    expect(bad({ eos_token_id: [1, -2] })).toThrow(/eos_token_id must be a token id or a list of token ids/);
    expect(bad({ temperature: -1 })).toThrow(/temperature must be a number ≥ 0, got -1/);
    expect(bad({ top_p: 0 })).toThrow(/top_p must be a number in \(0, 1\]/);
    expect(bad({ top_k: 1.5 })).toThrow(/top_k must be an integer ≥ 0/);
    expect(bad({ do_sample: 'yes' })).toThrow(/do_sample must be true or false/);
    expect(bad([])).toThrow(GenerationConfigError);
  });

  it('reads the file from a folder: undefined when absent, the file named when broken', () => {
    expect(readGenerationConfig(writeTinyFolder({}))).toBeUndefined();
    const ok = writeTinyFolder({ raw: { 'generation_config.json': '{"eos_token_id": [1, 2], "top_p": 0.9}' } });
    expect(readGenerationConfig(ok)).toEqual({ eosTokenIds: [1, 2], topP: 0.9 });
    const broken = writeTinyFolder({ raw: { 'generation_config.json': '{"eos_token_id": ' } });
    expect(() => readGenerationConfig(broken)).toThrow(GenerationConfigError);
    expect(() => readGenerationConfig(broken)).toThrow(`${join(broken, 'generation_config.json')} is not valid JSON`);
  });

  it("stops on the generation config's eos ids, else on the tokenizer's eos", () => {
    expect(stopTokenIds(parseGenerationConfig({ eos_token_id: [7, 8] }), qwen3())).toEqual([7, 8]);
    expect(stopTokenIds(undefined, qwen3())).toEqual([151645]);
    expect(stopTokenIds(parseGenerationConfig({}), qwen3())).toEqual([151645]);
  });
});
