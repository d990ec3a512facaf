/** The Tokenizer API on the real Qwen3 and Llama 3 tokenizers, without the oracle. */
import { describe, expect, it } from 'vitest';
import { cleanUpTokenization } from '../../../main/models/tokenizer/stream-decoder.ts';
import { TokenizerError } from '../../../main/models/tokenizer/errors.ts';
import { Tokenizer } from '../../../main/models/tokenizer/tokenizer.ts';
import { llama3, loadCases, qwen3 } from './helpers.ts';
import { tinyTokenizerJson } from './tiny-tokenizer.ts';

const strings = loadCases().strings;

describe('decode(encode(s))', () => {
  it(`gives back all ${strings.length} strings through Qwen3, up to its NFC normalizer`, () => {
    const tok = qwen3();
    for (const s of strings) expect(tok.decode(tok.encode(s, { addSpecialTokens: false })), JSON.stringify(s)).toBe(s.normalize('NFC'));
    // The normalizer does change some of them: the check above is not vacuous.
    expect(strings.filter((s) => s.normalize('NFC') !== s).length).toBeGreaterThan(0);
  });

  it(`gives back all ${strings.length} strings through Llama 3, up to its clean-up of spaces`, () => {
    const tok = llama3();
    for (const s of strings) expect(tok.decode(tok.encode(s, { addSpecialTokens: false })), JSON.stringify(s)).toBe(cleanUpTokenization(s));
    expect(strings.filter((s) => cleanUpTokenization(s) !== s).length).toBeGreaterThan(0);
  });
});

describe('Tokenizer API', () => {
  it('exposes special tokens, added tokens and the vocabulary (Qwen3)', () => {
    const tok = qwen3();
    expect(tok.vocabSize).toBe(151669);
    expect(tok.bos).toBeUndefined();
    expect(tok.eos).toEqual({ content: '<|im_end|>', id: 151645 });
    expect(tok.pad).toEqual({ content: '<|endoftext|>', id: 151643 });
    expect(tok.unk).toBeUndefined();
    expect(tok.addedTokens).toHaveLength(26);
    expect(tok.tokenToId('<|im_start|>')).toBe(151644);
    expect(tok.idToToken(151644)).toBe('<|im_start|>');
    expect(tok.tokenToId('Hello')).toBe(9707);
    expect(tok.idToToken(9707)).toBe('Hello');
    expect(tok.tokenToId('no such token at all')).toBeUndefined();
    expect(tok.idToToken(10_000_000)).toBeUndefined();
    // <think> is an added token but not a special one: it survives skipSpecialTokens.
    expect(tok.isSpecialId(151667)).toBe(false);
    expect(tok.isSpecialId(151644)).toBe(true);
    expect(tok.tokenize('Hello world', { addSpecialTokens: false })).toEqual(['Hello', 'Ġworld']);
  });

  it('reads special tokens written in the text as one id each', () => {
    const tok = qwen3();
    expect(tok.encode('<|im_start|>user\nhi<|im_end|>')).toEqual([151644, 872, 198, 6023, 151645]);
    expect(tok.decode([151644, 872, 198, 6023, 151645], { skipSpecialTokens: true })).toBe('user\nhi');
  });

  it('handles empty input both ways', () => {
    const tok = llama3();
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('', { addSpecialTokens: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
    expect(tok.decode([128000], { skipSpecialTokens: true })).toBe('');
  });

  it('rejects an object that is not a tokenizer.json, naming the source', () => {
    expect(() => new Tokenizer({} as never, {}, { source: 'x/tokenizer.json' })).toThrow(
      /x\/tokenizer\.json: not a tokenizer\.json/,
    );
    const broken = { ...tinyTokenizerJson(), model: { type: 'BPE' } };
    expect(() => new Tokenizer(broken as never, {}, { source: 'y/tokenizer.json' })).toThrow(TokenizerError);
  });

  it("follows transformers' Llama class: BOS/EOS from add_bos_token / add_eos_token, error when the token is missing", () => {
    const json = tinyTokenizerJson() as never;
    const cfg = { tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|im_start|>', eos_token: '<|im_end|>' };
    const withBos = new Tokenizer(json, cfg);
    expect(withBos.encode('x')).toEqual([withBos.bos?.id, withBos.tokenToId('x')]);
    const withBoth = new Tokenizer(json, { ...cfg, add_eos_token: true });
    expect(withBoth.encode('x')).toEqual([withBoth.bos?.id, withBoth.tokenToId('x'), withBoth.eos?.id]);
    expect(() => new Tokenizer(json, { tokenizer_class: 'LlamaTokenizerFast' }, { source: 'z' })).toThrow(
      /z: add_bos_token is true but bos_token is not set/,
    );
  });
});
