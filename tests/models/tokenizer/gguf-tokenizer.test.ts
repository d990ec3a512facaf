/**
 * Tokenizers built from GGUF metadata: SmolLM2's real GGUF against llama.cpp's own tokenization (a fixture made
 * with node-llama-cpp, see its "about"), and small synthetic vocabularies for the per-name rules and the errors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openGguf } from '../../../main/models/gguf/reader.ts';
import { applyChatTemplate } from '../../../main/models/tokenizer/chat-template.ts';
import { TokenizerError } from '../../../main/models/tokenizer/errors.ts';
import { tokenizerFilesFromGguf, tokenizerFromGgufMetadata } from '../../../main/models/tokenizer/gguf-tokenizer.ts';
import type { TokenizerJson } from '../../../main/models/tokenizer/formats.ts';
import { cleanUpTokenization } from '../../../main/models/tokenizer/stream-decoder.ts';
import {
  describeWithSmolLM2,
  FIXTURES,
  llama3,
  LLAMA3_DIR,
  loadCases,
  qwen3,
  QWEN3_DIR,
  smollm2,
  SMOLLM2_GGUF,
} from './helpers.ts';
import { byteChars } from './tiny-tokenizer.ts';

interface LlamaCppCase {
  text: string;
  ids: number[];
  decoded: string;
}

describeWithSmolLM2('SmolLM2 GGUF tokenizer vs llama.cpp', () => {
  const fixture = JSON.parse(readFileSync(join(FIXTURES, 'smollm2-llamacpp.json'), 'utf8')) as { cases: LlamaCppCase[] };

  it('covers the fixture strings', () => {
    expect(fixture.cases.map((c) => c.text)).toEqual(loadCases().strings);
  });

  it(`gives llama.cpp's token ids on all ${fixture.cases.length} strings (special tokens in the text parsed, no BOS added)`, () => {
    const tok = smollm2();
    const diffs = fixture.cases
      .map((c) => ({ text: c.text, ours: tok.encode(c.text), llamaCpp: c.ids }))
      .filter((d) => JSON.stringify(d.ours) !== JSON.stringify(d.llamaCpp));
    expect(diffs).toEqual([]);
  });

  it('decodes as llama.cpp does, and losslessly (no normalizer, no space clean-up for smollm)', () => {
    const tok = smollm2();
    for (const c of fixture.cases) {
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(tok.encode(c.text, { addSpecialTokens: false }))).toBe(c.text);
    }
  });

  it('reads the special tokens, the control tokens and the chat template', () => {
    const tok = smollm2();
    expect(tok.vocabSize).toBe(49152);
    expect(tok.bos).toEqual({ content: '<|im_start|>', id: 1 });
    expect(tok.eos).toEqual({ content: '<|im_end|>', id: 2 });
    expect(tok.pad).toEqual({ content: '<|im_end|>', id: 2 });
    expect(tok.unk).toEqual({ content: '<|endoftext|>', id: 0 });
    expect(tok.addedTokens.filter((t) => t.special)).toHaveLength(17);
    expect(tok.tokenToId('Ġworld')).toBe(905);
    expect(tok.idToToken(905)).toBe('Ġworld');
    expect(tok.decode([1, 19556, 2], { skipSpecialTokens: true })).toBe('Hello');
    const chat = applyChatTemplate(tok, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    expect(chat).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('accepts the metadata as a plain key → value object too', () => {
    const plain = Object.fromEntries([...openGguf(SMOLLM2_GGUF).metadata].map(([k, entry]) => [k, entry.value]));
    const tok = tokenizerFromGgufMetadata(plain);
    expect(tok.encode('Hello world! 123')).toEqual([19556, 905, 17, 216, 33, 34, 35]);
  });
});

/** A tiny byte-level vocabulary: 256 bytes, "Ġt", "he", "Ġthe", "12", "123", a control and a user-defined token. */
const tinyMetadata = (overrides: Record<string, unknown> = {}): Map<string, unknown> => {
  const tokens = [...byteChars(), 'Ġt', 'he', 'Ġthe', '12', '123', '<|endoftext|>', '<think>'];
  const types = tokens.map((_, i) => (i === 261 ? 3 : i === 262 ? 4 : 1));
  return new Map<string, unknown>(
    Object.entries({
      'tokenizer.ggml.model': 'gpt2',
      'tokenizer.ggml.pre': 'smollm',
      'tokenizer.ggml.tokens': tokens,
      'tokenizer.ggml.token_type': Int32Array.from(types),
      'tokenizer.ggml.merges': ['Ġ t', 'h e', 'Ġt he', '1 2', '12 3'],
      'tokenizer.ggml.bos_token_id': 261n,
      'tokenizer.ggml.eos_token_id': 261,
      ...overrides,
    }),
  );
};

const idOf = (tok: ReturnType<typeof tokenizerFromGgufMetadata>, token: string): number => {
  const id = tok.tokenToId(token);
  if (id === undefined) throw new Error(`no token ${token}`);
  return id;
};

describe('tokenizerFromGgufMetadata on synthetic vocabularies', () => {
  it("splits digits one by one for 'smollm' and in threes for 'llama-bpe'", () => {
    const smol = tokenizerFromGgufMetadata(tinyMetadata());
    expect(smol.tokenize('123', { addSpecialTokens: false })).toEqual(['1', '2', '3']);
    const llama = tokenizerFromGgufMetadata(tinyMetadata({ 'tokenizer.ggml.pre': 'llama-bpe' }));
    expect(llama.tokenize('123', { addSpecialTokens: false })).toEqual(['123']);
    const gpt2 = tokenizerFromGgufMetadata(tinyMetadata({ 'tokenizer.ggml.pre': 'gpt-2' }));
    expect(gpt2.tokenize(' the 123', { addSpecialTokens: false })).toEqual(['Ġthe', 'Ġ', '123']);
  });

  it('adds BOS as llama.cpp does: per name (llama-bpe: yes), overridden by tokenizer.ggml.add_bos_token', () => {
    expect(tokenizerFromGgufMetadata(tinyMetadata()).encode(' the')).toEqual([258]);
    expect(tokenizerFromGgufMetadata(tinyMetadata({ 'tokenizer.ggml.pre': 'llama-bpe' })).encode(' the')).toEqual([261, 258]);
    const off = tinyMetadata({ 'tokenizer.ggml.pre': 'llama-bpe', 'tokenizer.ggml.add_bos_token': false });
    expect(tokenizerFromGgufMetadata(off).encode(' the')).toEqual([258]);
    const eos = tinyMetadata({ 'tokenizer.ggml.add_eos_token': true });
    expect(tokenizerFromGgufMetadata(eos).encode(' the')).toEqual([258, 261]);
  });

  it('matches control tokens and user-defined tokens whole; only control tokens are special', () => {
    const tok = tokenizerFromGgufMetadata(tinyMetadata());
    const ids = tok.encode('<think> the<|endoftext|>');
    expect(ids).toEqual([idOf(tok, '<think>'), 258, idOf(tok, '<|endoftext|>')]);
    expect(tok.decode(ids)).toBe('<think> the<|endoftext|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('<think> the');
    expect(tok.isSpecialId(idOf(tok, '<|endoftext|>'))).toBe(true);
    expect(tok.isSpecialId(idOf(tok, '<think>'))).toBe(false);
  });

  it('cleans up spaces in decode where llama.cpp does (gpt-2) and not where it does not (smollm)', () => {
    const text = 'the .';
    for (const [pre, want] of [['gpt-2', 'the.'], ['smollm', 'the .']] as const) {
      const tok = tokenizerFromGgufMetadata(tinyMetadata({ 'tokenizer.ggml.pre': pre }));
      expect(tok.decode(tok.encode(text))).toBe(want);
    }
  });

  it('keeps named chat templates by name', () => {
    const files = tokenizerFilesFromGguf(
      tinyMetadata({ 'tokenizer.chat_template': 'A{{ messages[0].content }}', 'tokenizer.chat_template.tool_use': 'T' }),
    );
    expect(files.config.chat_template).toEqual({ default: 'A{{ messages[0].content }}', tool_use: 'T' });
  });

  it('says what is wrong: unsupported model, unknown pre-tokenizer, missing vocabulary, bad token id', () => {
    const attempt = (overrides: Record<string, unknown>): string => {
      try {
        tokenizerFromGgufMetadata(tinyMetadata(overrides), { source: 'model.gguf' });
      } catch (err) {
        expect(err).toBeInstanceOf(TokenizerError);
        expect((err as TokenizerError).file).toBe('model.gguf');
        return (err as Error).message;
      }
      throw new Error('no error');
    };
    expect(attempt({ 'tokenizer.ggml.model': 'llama' })).toMatch(/model\.gguf: tokenizer\.ggml\.model 'llama' is not supported/);
    expect(attempt({ 'tokenizer.ggml.model': undefined })).toMatch(/has no tokenizer/);
    expect(attempt({ 'tokenizer.ggml.pre': 'nonesuch' })).toMatch(/tokenizer\.ggml\.pre 'nonesuch' is not supported \(known: .*smollm/);
    expect(attempt({ 'tokenizer.ggml.tokens': undefined })).toMatch(/tokenizer\.ggml\.tokens is missing/);
    expect(attempt({ 'tokenizer.ggml.merges': undefined })).toMatch(/tokenizer\.ggml\.merges is missing/);
    expect(attempt({ 'tokenizer.ggml.bos_token_id': 99999 })).toMatch(/bos_token_id 99999 is outside the vocabulary/);
    expect(attempt({ 'tokenizer.ggml.bos_token_id': undefined, 'tokenizer.ggml.add_bos_token': true })).toMatch(
      /add_bos_token is true but there is no bos_token_id/,
    );
  });
});

/**
 * What convert_hf_to_gguf.py writes for an HF byte-level BPE tokenizer: tokens by id, merges as "a b", special
 * added tokens as control (3), other added tokens as user-defined (4), and the pre-tokenizer's name.
 */
const ggufMetadataOf = (dir: string, pre: string): Map<string, unknown> => {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const vocab = json.model.vocab as Record<string, number>;
  const tokens: string[] = [];
  for (const [token, id] of Object.entries(vocab)) tokens[id] = token;
  const types = tokens.map(() => 1);
  for (const t of json.added_tokens ?? []) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? 3 : 4;
  }
  const merges = (json.model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  return new Map<string, unknown>([
    ['tokenizer.ggml.model', 'gpt2'],
    ['tokenizer.ggml.pre', pre],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.merges', merges],
    ['tokenizer.ggml.add_bos_token', false],
  ]);
};

describe("the 'qwen2' and 'llama-bpe' recipes reproduce the HF tokenizers they name", () => {
  const strings = loadCases().strings;

  it("'qwen2' on Qwen3's vocabulary (llama.cpp has no NFC normalizer: strings NFC leaves alone)", () => {
    const fromGguf = tokenizerFromGgufMetadata(ggufMetadataOf(QWEN3_DIR, 'qwen2'));
    const hf = qwen3();
    const compared = strings.filter((s) => s.normalize('NFC') === s);
    expect(compared.length).toBeGreaterThan(60);
    for (const s of compared) expect(fromGguf.encode(s), JSON.stringify(s)).toEqual(hf.encode(s, { addSpecialTokens: false }));
    for (const s of strings) expect(fromGguf.decode(fromGguf.encode(s))).toBe(s);
  });

  it("'llama-bpe' on Llama 3's vocabulary (with its clean-up of spaces in decode)", () => {
    const fromGguf = tokenizerFromGgufMetadata(ggufMetadataOf(LLAMA3_DIR, 'llama-bpe'));
    const hf = llama3();
    for (const s of strings) {
      expect(fromGguf.encode(s), JSON.stringify(s)).toEqual(hf.encode(s, { addSpecialTokens: false }));
      expect(fromGguf.decode(fromGguf.encode(s))).toBe(cleanUpTokenization(s));
    }
  });
});
