/**
 * Which tokens of a tokenized text overlap given character spans: the step from "these characters are the
 * assistant's" to a label mask, done as transformers does it for return_assistant_tokens_mask (every token that
 * overlaps a span, from the token holding its first character to the one holding its last).
 *
 * The tokenizer gives no offsets, so they are rebuilt: for byte-level BPE vocabularies (GPT-2, Llama 3, Qwen,
 * SmolLM, ...) each token's vocabulary string maps back to its bytes through GPT-2's byte↔unicode table, and the byte lengths
 * must add up to the text's UTF-8 length (checked). Other tokenizers (SentencePiece), or any text where that check
 * fails (a normalizer changed the text, a token that strips spaces), fall back to encoding the text up to each
 * span boundary and comparing with the full token list.
 */
import type { Tokenizer } from '../../models/tokenizer/index.ts';

export interface CharSpan {
  /** 0-based UTF-16 offsets into the text, end exclusive. */
  readonly start: number;
  readonly end: number;
}

/** GPT-2's bytes_to_unicode, inverted: the character a byte-level vocabulary uses for each byte → that byte. */
const BYTE_OF_CHAR: ReadonlyMap<number, number> = (() => {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<number, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) map.set(printable(b) ? b : 256 + extra++, b);
  return map;
})();

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * Byte offset where each token ends (cumulative), when the tokens are byte-level BPE and their bytes add up to
 * the text; undefined otherwise.
 */
export const byteLevelTokenEnds = (tokenizer: Tokenizer, text: string, ids: readonly number[]): number[] | undefined => {
  const added = new Set(tokenizer.addedTokens.map((t) => t.id));
  const ends: number[] = [];
  let total = 0;
  for (const id of ids) {
    const token = tokenizer.idToToken(id);
    if (token === undefined) return undefined;
    if (added.has(id)) total += utf8Length(token);
    else {
      for (let c = 0; c < token.length; c++) {
        if (!BYTE_OF_CHAR.has(token.charCodeAt(c))) return undefined;
      }
      total += token.length;
    }
    ends.push(total);
  }
  return total === utf8Length(text) ? ends : undefined;
};

/** Length of the common prefix of two id lists. */
const commonPrefix = (a: readonly number[], b: readonly number[]): number => {
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a[k] === b[k]) k++;
  return k;
};

/** Token range [first, last) overlapping a character span, by re-encoding prefixes of the text (any tokenizer). */
const tokenRangeByPrefixes = (tokenizer: Tokenizer, text: string, ids: readonly number[], span: CharSpan): [number, number] => {
  const encodePrefix = (end: number): number[] => tokenizer.encode(text.slice(0, end), { addSpecialTokens: false });
  const first = commonPrefix(encodePrefix(span.start), ids);
  const upToEnd = encodePrefix(span.end);
  const kept = commonPrefix(upToEnd, ids);
  // A token that the span's end cuts in two is part of the span (its first characters are inside).
  const last = upToEnd.length > kept ? kept + 1 : kept;
  return [first, Math.max(first, Math.min(last, ids.length))];
};

/**
 * A 0/1 mask over `ids` (the tokens of `text`): 1 where a token overlaps one of `spans`. `method` 'prefixes'
 * forces the slower any-tokenizer path (tests compare the two).
 */
export const maskTokensInSpans = (
  tokenizer: Tokenizer,
  text: string,
  ids: readonly number[],
  spans: readonly CharSpan[],
  method: 'auto' | 'prefixes' = 'auto',
): Uint8Array => {
  const mask = new Uint8Array(ids.length);
  if (spans.length === 0) return mask;
  const ends = method === 'auto' ? byteLevelTokenEnds(tokenizer, text, ids) : undefined;
  if (ends) {
    for (const span of spans) {
      if (span.end <= span.start) continue;
      const from = utf8Length(text.slice(0, span.start));
      const to = from + utf8Length(text.slice(span.start, span.end));
      let start = 0;
      for (let k = 0; k < ids.length; k++) {
        const end = ends[k]!;
        if (start < to && end > from) mask[k] = 1;
        start = end;
      }
    }
    return mask;
  }
  for (const span of spans) {
    if (span.end <= span.start) continue;
    const [first, last] = tokenRangeByPrefixes(tokenizer, text, ids, span);
    mask.fill(1, first, last);
  }
  return mask;
};
