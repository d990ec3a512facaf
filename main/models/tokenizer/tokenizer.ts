/**
 * The tokenizer of a model: @huggingface/tokenizers (a pure-JS implementation of tokenizer.json) wrapped so that
 * it behaves as transformers' fast tokenizer does (same ids, same decode, same special tokens), plus a streaming
 * decoder. Built from a tokenizer.json object and a tokenizer_config.json object; loaders live beside it
 * (load-folder.ts for HF folders, gguf-tokenizer.ts for GGUF metadata).
 */
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.ts';
import {
  adaptPreTokenizerForJs,
  effectivePostProcessor,
  specialTokenContent,
  type AddedTokenJson,
  type SpecialTokenValue,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './formats.ts';
import { cleanUpTokenization, StreamDecoder } from './stream-decoder.ts';

export interface EncodeOptions {
  /** Add the tokens the post-processor adds around a text (BOS/EOS); transformers' add_special_tokens. Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens (transformers' skip_special_tokens). Default false. */
  skipSpecialTokens?: boolean;
}

/** A named special token and its id. */
export interface SpecialToken {
  readonly content: string;
  readonly id: number;
}

/** A token added on top of the model's vocabulary (tokenizer.json's added_tokens). */
export interface AddedToken {
  readonly id: number;
  readonly content: string;
  /** Special tokens are skipped by decode({ skipSpecialTokens }) and never split by the pre-tokenizer. */
  readonly special: boolean;
}

export interface TokenizerOptions {
  /** Where the files came from (a folder, a GGUF file), for error messages. */
  source?: string;
}

/** The tokenizer.json / tokenizer_config.json pair a Tokenizer was built from (after loader merges). */
export interface TokenizerFiles {
  readonly tokenizerJson: TokenizerJson;
  readonly config: TokenizerConfigJson;
}

export class Tokenizer {
  readonly source: string;
  readonly config: TokenizerConfigJson;
  readonly bos: SpecialToken | undefined;
  readonly eos: SpecialToken | undefined;
  readonly pad: SpecialToken | undefined;
  readonly unk: SpecialToken | undefined;
  readonly addedTokens: readonly AddedToken[];
  /** Highest token id + 1: the number of rows an embedding matrix needs for this tokenizer (transformers' len()). */
  readonly vocabSize: number;
  /** Ids that decode({ skipSpecialTokens: true }) leaves out. */
  readonly specialIds: ReadonlySet<number>;
  /** Whether decode applies transformers' clean_up_tokenization_spaces (" ." → ".", " 's" → "'s", ...). */
  readonly cleanUpTokenizationSpaces: boolean;

  private readonly impl: JsTokenizer;
  /** id → token string, added tokens included (sparse where a vocabulary has holes). */
  private readonly idToTokenTable: readonly (string | undefined)[];
  private readonly tokenToIdTable: ReadonlyMap<string, number>;

  constructor(tokenizerJson: TokenizerJson, config: TokenizerConfigJson = {}, options: TokenizerOptions = {}) {
    this.source = options.source ?? 'tokenizer.json';
    this.config = config;
    const source = this.source;
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !tokenizerJson.model || typeof tokenizerJson.model !== 'object') {
      throw new TokenizerError(`${source}: not a tokenizer.json (it has no "model" object)`, source);
    }
    // The vocabulary, to resolve special tokens before building the post-processor that may need their ids.
    const vocab = modelVocab(tokenizerJson, source);
    const addedTokens = mergeAddedTokens(tokenizerJson.added_tokens ?? [], config, vocab);
    this.addedTokens = addedTokens.map((t) => ({ id: t.id, content: t.content, special: t.special ?? false }));
    for (const t of addedTokens) vocab.set(t.content, t.id);
    this.tokenToIdTable = vocab;
    const table: (string | undefined)[] = [];
    for (const [token, id] of vocab) table[id] = token;
    this.idToTokenTable = table;
    this.vocabSize = table.length;

    const prepared: TokenizerJson = {
      ...tokenizerJson,
      added_tokens: addedTokens,
      pre_tokenizer: adaptPreTokenizerForJs(tokenizerJson.pre_tokenizer) ?? null,
      post_processor: effectivePostProcessor(tokenizerJson, config, (c) => vocab.get(c), source) ?? null,
      normalizer: tokenizerJson.normalizer ?? null,
      decoder: tokenizerJson.decoder ?? null,
    };
    try {
      // The library reads bos/eos/unk etc. as strings (only its legacy model uses them).
      this.impl = new JsTokenizer(prepared, { ...config, ...plainSpecialTokens(config) });
    } catch (err) {
      throw new TokenizerError(`${source}: cannot build the tokenizer: ${(err as Error).message}`, source);
    }

    const special = (key: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token'): SpecialToken | undefined => {
      const content = specialTokenContent(config[key]);
      if (content === undefined) return undefined;
      const id = vocab.get(content);
      return id === undefined ? undefined : { content, id };
    };
    this.bos = special('bos_token');
    this.eos = special('eos_token');
    this.pad = special('pad_token');
    this.unk = special('unk_token');

    // Like transformers: added tokens marked special, plus every special token the config names.
    const specialIds = new Set(this.addedTokens.filter((t) => t.special).map((t) => t.id));
    for (const t of [this.bos, this.eos, this.pad, this.unk]) if (t) specialIds.add(t.id);
    for (const value of config.additional_special_tokens ?? []) {
      const id = vocab.get(specialTokenContent(value) ?? '');
      if (id !== undefined) specialIds.add(id);
    }
    this.specialIds = specialIds;
    // transformers' default is false; the JS library's would be true.
    this.cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces ?? false;
  }

  /** Token ids of `text`, identical to transformers' `tokenizer.encode(text, add_special_tokens=...)`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** The token strings of `text` (byte-level symbols such as "Ġworld" for BPE vocabularies). */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).tokens;
  }

  /**
   * Text of `ids`, identical to transformers' `tokenizer.decode(ids, skip_special_tokens=...)`. Ids outside the
   * vocabulary (a model's padded embedding rows) are skipped, as transformers does.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const kept = ids.filter((id) => !this.isDroppedInDecode(id, options.skipSpecialTokens ?? false));
    const raw = this.decodeRaw(kept);
    return this.cleanUpTokenizationSpaces ? cleanUpTokenization(raw) : raw;
  }

  /** A decoder for streaming: feed ids as they are generated, get text deltas that never split a character. */
  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const skip = options.skipSpecialTokens ?? false;
    return new StreamDecoder({
      decodeRaw: (ids) => this.decodeRaw(ids),
      isDropped: (id) => this.isDroppedInDecode(id, skip),
      cleanUp: this.cleanUpTokenizationSpaces,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenToIdTable.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTokenTable[id];
  }

  isSpecialId(id: number): boolean {
    return this.specialIds.has(id);
  }

  private isDroppedInDecode(id: number, skipSpecial: boolean): boolean {
    return this.idToTokenTable[id] === undefined || (skipSpecial && this.specialIds.has(id));
  }

  /** Decoder output without clean-up, for ids known to be in the vocabulary. */
  private decodeRaw(ids: readonly number[]): string {
    // The library throws on an empty list.
    if (ids.length === 0) return '';
    return this.impl.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** token → id of the model's own vocabulary (BPE / WordPiece: an object; Unigram: a list of [piece, score]). */
const modelVocab = (json: TokenizerJson, source: string): Map<string, number> => {
  const vocab = json.model.vocab;
  const map = new Map<string, number>();
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, id) => {
      if (Array.isArray(entry) && typeof entry[0] === 'string') map.set(entry[0], id);
    });
  } else if (vocab && typeof vocab === 'object') {
    for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (typeof id === 'number') map.set(token, id);
    }
  } else {
    throw new TokenizerError(`${source}: the tokenizer model has no vocabulary`, source);
  }
  return map;
};

/**
 * tokenizer.json's added tokens, plus what transformers adds at load: tokenizer_config's added_tokens_decoder
 * entries that tokenizer.json lacks, then each special token the config names (bos, eos, unk, sep, pad, cls,
 * mask, additional ones, in that order) that is in neither vocabulary, with the next free id. Sorted by id.
 */
const mergeAddedTokens = (
  added: readonly AddedTokenJson[],
  config: TokenizerConfigJson,
  modelVocabulary: ReadonlyMap<string, number>,
): AddedTokenJson[] => {
  const byId = new Map<number, AddedTokenJson>(added.map((t) => [t.id, t]));
  for (const [key, token] of Object.entries(config.added_tokens_decoder ?? {})) {
    const id = Number(key);
    if (Number.isInteger(id) && !byId.has(id) && typeof token.content === 'string') byId.set(id, { ...token, id });
  }
  const known = new Set(modelVocabulary.keys());
  let nextId = 0;
  for (const id of modelVocabulary.values()) nextId = Math.max(nextId, id + 1);
  for (const t of byId.values()) {
    known.add(t.content);
    nextId = Math.max(nextId, t.id + 1);
  }
  const declared = [
    ...['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'].map((k) =>
      specialTokenContent(config[k] as SpecialTokenValue | undefined),
    ),
    ...(config.additional_special_tokens ?? []).map((v) => specialTokenContent(v)),
  ];
  for (const content of declared) {
    if (content === undefined || known.has(content)) continue;
    known.add(content);
    byId.set(nextId, { id: nextId, content, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false });
    nextId++;
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
};

/** bos/eos/unk/pad/additional_special_tokens as plain strings, the form the JS library expects. */
const plainSpecialTokens = (config: TokenizerConfigJson): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
    if (key in config) out[key] = specialTokenContent(config[key]);
  }
  if (config.additional_special_tokens) {
    out.additional_special_tokens = config.additional_special_tokens
      .map((v) => specialTokenContent(v))
      .filter((v): v is string => v !== undefined);
  }
  return out;
};
