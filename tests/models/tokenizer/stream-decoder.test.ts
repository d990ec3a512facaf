/** The streaming decoder: its deltas add up to decode(all ids) and never split a character. */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../helpers/random.ts';
import { cleanUpTokenization } from '../../../main/models/tokenizer/stream-decoder.ts';
import type { Tokenizer } from '../../../main/models/tokenizer/tokenizer.ts';
import { describeWithSmolLM2, llama3, loadCases, qwen3, smollm2 } from './helpers.ts';

const strings = loadCases().strings;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Streams `ids` one at a time; returns the deltas (the last one from flush). */
const stream = (tok: Tokenizer, ids: readonly number[], skipSpecialTokens = false): string[] => {
  const decoder = tok.createStreamDecoder({ skipSpecialTokens });
  const deltas = ids.map((id) => decoder.push(id));
  deltas.push(decoder.flush());
  expect(decoder.text).toBe(deltas.join(''));
  return deltas;
};

const checkAllStrings = (load: () => Tokenizer): void => {
  it(`adds up to decode(ids) on all ${strings.length} strings, each delta well-formed`, () => {
    const tok = load();
    for (const text of strings) {
      const ids = tok.encode(text);
      for (const skip of [false, true]) {
        const deltas = stream(tok, ids, skip);
        expect(deltas.join(''), JSON.stringify(text)).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
        for (const d of deltas) {
          expect(LONE_SURROGATE.test(d), JSON.stringify(d)).toBe(false);
          expect(d).not.toContain('\uFFFD');
        }
      }
    }
  });
};

describe('StreamDecoder on Qwen3', () => {
  checkAllStrings(qwen3);

  it('holds back the bytes of an emoji split across tokens (ZWJ family, skin tone)', () => {
    const tok = qwen3();
    for (const text of ['family 👨‍👩‍👧‍👦 ZWJ', 'x 👍🏽 y']) {
      const ids = tok.encode(text);
      // Some token of the emoji carries only part of a character's bytes: its push releases nothing.
      const partial = ids.filter((id) => tok.decode([id]).includes('\uFFFD'));
      expect(partial.length).toBeGreaterThan(0);
      const deltas = stream(tok, ids);
      expect(deltas.filter((d) => d === '').length).toBeGreaterThan(0);
      expect(deltas.join('')).toBe(text);
    }
  });

  it('releases text as soon as it is complete (no lag for plain words)', () => {
    const tok = qwen3();
    const ids = tok.encode('Hello world, how are you');
    const deltas = stream(tok, ids);
    expect(deltas.slice(0, ids.length)).toEqual(ids.map((id) => tok.decode([id])));
    expect(deltas.at(-1)).toBe('');
  });

  it('decodes an incomplete character at the end as U+FFFD on flush, like decode', () => {
    const tok = qwen3();
    // A single 4-byte character that the vocabulary splits into several byte tokens.
    const char = ['😀', '𝔘', '🦀', '𓀀'].find((c) => tok.encode(c).length > 1) ?? '';
    const cut = tok.encode(char).slice(0, -1);
    expect(cut.length).toBeGreaterThan(0);
    expect(stream(tok, cut).join('')).toBe(tok.decode(cut));
    expect(tok.decode(cut)).toContain('\uFFFD');
  });
});

describe('StreamDecoder on Llama 3 (decode cleans up spaces)', () => {
  checkAllStrings(llama3);

  it("applies clean-up across token boundaries (' .' → '.', \" 's\" → \"'s\")", () => {
    const tok = llama3();
    const text = "a . b , c ! d ? e 's f n't g ' h";
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(stream(tok, ids).join('')).toBe(cleanUpTokenization(text));
    expect(cleanUpTokenization(text)).toBe("a. b, c! d? e's fn't g'h");
  });

  it('adds up to decode(ids) on random id sequences (broken UTF-8, clean-up patterns, specials)', () => {
    const tok = llama3();
    const rnd = seededRandom(7);
    // Ids likely to make trouble: bytes of multi-byte characters, pieces of clean-up patterns, special tokens.
    const tricky = [
      ...tok.encode('😀👍🏽日本語é', { addSpecialTokens: false }),
      ...['Ġ', 'ĠĠ', '.', ',', '!', '?', "'", "'s", "'t", "'m", "'re", "'ve", 'n', 'Ġn', 'Ġ.', 'Ġ,', "Ġ'", 'a', 'Ã', 'Ċ'].map(
        (t) => tok.tokenToId(t) ?? 0,
      ),
      128000, 128001, 128009,
    ];
    for (let round = 0; round < 400; round++) {
      const length = 1 + Math.floor(rnd() * 24);
      const ids = Array.from({ length }, () =>
        rnd() < 0.8 ? (tricky[Math.floor(rnd() * tricky.length)] ?? 0) : Math.floor(rnd() * tok.vocabSize),
      );
      for (const skip of [false, true]) {
        expect(stream(tok, ids, skip).join(''), JSON.stringify(ids)).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
      }
    }
  });

  it('skips ids outside the vocabulary, as decode does', () => {
    const tok = llama3();
    const ids = [...tok.encode('Hi', { addSpecialTokens: false }), 999_999, ...tok.encode(' there', { addSpecialTokens: false })];
    expect(stream(tok, ids).join('')).toBe('Hi there');
    expect(tok.decode(ids)).toBe('Hi there');
  });
});

describeWithSmolLM2('StreamDecoder on SmolLM2 (GGUF)', () => {
  checkAllStrings(smollm2);
});

describe('cleanUpTokenization', () => {
  it("is transformers' replacement chain", () => {
    expect(cleanUpTokenization("I do n't know , he 's here . ok ? yes ! we 're , you 've ' x ' 'm")).toBe(
      "I don't know, he's here. ok? yes! we're, you've'x''m",
    );
  });
});
