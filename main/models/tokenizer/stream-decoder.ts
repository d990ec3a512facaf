/**
 * Incremental detokenization for streaming generation: ids arrive one by one, text leaves as deltas whose
 * concatenation (after `flush()`) equals the tokenizer's decode of all the ids.
 */

/**
 * transformers' `clean_up_tokenization`: the same replacements in the same order (so the same result, including
 * the way a replacement can open or hide a later one).
 */
export const cleanUpTokenization = (text: string): string =>
  text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");

/** Every character that occurs in a clean-up pattern. */
const CLEANUP_PATTERN_CHARS = new Set([' ', '.', '?', '!', ',', "'", 'n', 't', 'm', 's', 'v', 'e', 'r']);

/**
 * Where text may be cut so that cleanUp(a + b) === cleanUp(a) + cleanUp(b): right after a character that occurs
 * in no pattern. Such a character is never removed (only spaces are) and no match can contain it, so every match,
 * in every intermediate string of the replacement chain, lies wholly on one side of it. Returns the cut index
 * (0 when there is none).
 */
const lastSafeCleanupCut = (text: string): number => {
  for (let i = text.length - 1; i >= 0; i--) {
    if (!CLEANUP_PATTERN_CHARS.has(text[i] ?? ' ')) return i + 1;
  }
  return 0;
};

/** What the stream decoder needs from its tokenizer. */
export interface StreamDecoderSource {
  /** Decodes ids (already filtered: known ids, no skipped specials) without clean-up. */
  decodeRaw(ids: readonly number[]): string;
  /** Ids the stream drops: unknown ids always, special tokens when skipping them. */
  isDropped(id: number): boolean;
  /** Whether decode applies clean_up_tokenization_spaces. */
  readonly cleanUp: boolean;
}

/**
 * Holds back what is not final yet:
 * - a byte-level BPE token can end inside a UTF-8 character (an emoji is 4 bytes, often 2-3 tokens): while the
 *   decoded window ends in U+FFFD the bytes are incomplete and nothing is released;
 * - decoders that depend on context (a leading-space strip, byte fallback) are decoded over a window that starts
 *   one step back (`prefixOffset`) and only the text past the window's previous decode is released — the scheme
 *   of text-generation-inference's incremental decoding;
 * - with clean-up on, text after the last character that no clean-up pattern contains waits for what follows
 *   (" ." becomes "." only once the "." has arrived).
 */
export class StreamDecoder {
  /** Ids from `prefixOffset` on; older ones are no longer needed. */
  private window: number[] = [];
  /** Index in `window` where the text already released ends (its decode is `releasedWindowText`). */
  private readOffset = 0;
  private releasedWindowText = '';
  /** Raw (pre-clean-up) text released by the window but held back by the clean-up rule. */
  private pendingCleanUp = '';
  private emitted = '';

  constructor(private readonly source: StreamDecoderSource) {}

  /** Everything released so far. */
  get text(): string {
    return this.emitted;
  }

  /** Feeds one id (or several) and returns the text that became final: often '', never a split character. */
  push(ids: number | readonly number[]): string {
    const list = typeof ids === 'number' ? [ids] : ids;
    let out = '';
    for (const id of list) {
      if (this.source.isDropped(id)) continue;
      this.window.push(id);
      const text = this.source.decodeRaw(this.window);
      if (text.length > this.releasedWindowText.length && !text.endsWith('\uFFFD')) {
        out += this.release(text.slice(this.releasedWindowText.length), false);
        // The next window starts where this step's started: one step of context before the new ids.
        this.window = this.window.slice(this.readOffset);
        this.releasedWindowText = this.source.decodeRaw(this.window);
        this.readOffset = this.window.length;
      }
    }
    return out;
  }

  /** Ends the stream: releases whatever was held back (an incomplete character decodes as U+FFFD, as in decode). */
  flush(): string {
    const text = this.window.length > 0 ? this.source.decodeRaw(this.window) : '';
    const out = this.release(text.slice(this.releasedWindowText.length), true);
    this.window = [];
    this.readOffset = 0;
    this.releasedWindowText = '';
    return out;
  }

  private release(raw: string, final: boolean): string {
    let out: string;
    if (!this.source.cleanUp) {
      out = raw;
    } else {
      const pending = this.pendingCleanUp + raw;
      const cut = final ? pending.length : lastSafeCleanupCut(pending);
      out = cleanUpTokenization(pending.slice(0, cut));
      this.pendingCleanUp = pending.slice(cut);
    }
    this.emitted += out;
    return out;
  }
}
