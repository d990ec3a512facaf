import { TokenizerError } from './errors.ts';

/**
 * The Hugging Face tokenizer file formats as plain data (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json), and the few rewrites of a tokenizer.json that make @huggingface/tokenizers (JS) match
 * the Rust `tokenizers` crate that transformers runs.
 */

/** One entry of tokenizer.json's `added_tokens` (also the shape of tokenizer_config's added_tokens_decoder). */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** A tokenizer.json component (normalizer, pre_tokenizer, model, post_processor, decoder): `type` plus fields. */
export type TokenizerComponentJson = { type?: string } & Record<string, unknown>;

/** tokenizer.json, as the Rust crate serializes it. Only `model` is required. */
export interface TokenizerJson {
  version?: string;
  added_tokens?: AddedTokenJson[];
  normalizer?: TokenizerComponentJson | null;
  pre_tokenizer?: TokenizerComponentJson | null;
  post_processor?: TokenizerComponentJson | null;
  decoder?: TokenizerComponentJson | null;
  model: TokenizerComponentJson;
  [key: string]: unknown;
}

/** A special token in tokenizer_config.json / special_tokens_map.json: a string or a serialized AddedToken. */
export type SpecialTokenValue = string | { content: string; [key: string]: unknown } | null;

/** A named chat template as tokenizer_config.json stores a list of them. */
export interface NamedChatTemplate {
  name: string;
  template: string;
}

/** tokenizer_config.json (merged with special_tokens_map.json and chat_template.jinja by the folder loader). */
export interface TokenizerConfigJson {
  tokenizer_class?: string;
  bos_token?: SpecialTokenValue;
  eos_token?: SpecialTokenValue;
  pad_token?: SpecialTokenValue;
  unk_token?: SpecialTokenValue;
  additional_special_tokens?: SpecialTokenValue[];
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  clean_up_tokenization_spaces?: boolean;
  model_max_length?: number;
  added_tokens_decoder?: Record<string, Omit<AddedTokenJson, 'id'>>;
  chat_template?: string | NamedChatTemplate[] | Record<string, string> | null;
  [key: string]: unknown;
}

/** The text of a special token value, whichever way it was written. */
export const specialTokenContent = (value: SpecialTokenValue | undefined): string | undefined => {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  return typeof value.content === 'string' ? value.content : undefined;
};

/** GPT-2's split regex, the one the Rust ByteLevel pre-tokenizer applies when `use_regex` is true. */
export const GPT2_SPLIT_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** A Split pre-tokenizer (Isolated: each match becomes its own piece, the text between matches too). */
export const isolatingSplit = (regex: string): TokenizerComponentJson => ({
  type: 'Split',
  pattern: { Regex: regex },
  behavior: 'Isolated',
  invert: false,
});

/**
 * Rewrites pre-tokenizers whose JS implementation differs from Rust into equivalent Split pre-tokenizers, whose
 * regexes the JS library translates with Oniguruma's semantics:
 * - ByteLevel with use_regex hard-codes the GPT-2 regex as a JS RegExp, and JS `\s` takes in U+FEFF and leaves
 *   out U+0085, unlike Rust. Split(GPT-2 regex) + ByteLevel(use_regex: false) is the same split with Rust's `\s`.
 *   Only without add_prefix_space: with it, Rust prefixes each incoming piece, which a Split in front would change.
 * - Digits uses JS `\d` (ASCII only); Rust splits on char::is_numeric, i.e. \p{N} (², ½, Ⅻ, ٣ ...).
 * Returns a new object; the input is not modified.
 */
export const adaptPreTokenizerForJs = (
  pre: TokenizerComponentJson | null | undefined,
): TokenizerComponentJson | null | undefined => {
  if (!pre) return pre;
  switch (pre.type) {
    case 'Sequence': {
      const parts = Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as TokenizerComponentJson[]) : [];
      return { ...pre, pretokenizers: parts.flatMap((p) => flattenSequence(adaptPreTokenizerForJs(p))) };
    }
    case 'ByteLevel':
      if ((pre.use_regex ?? true) === true && (pre.add_prefix_space ?? false) === false) {
        return {
          type: 'Sequence',
          pretokenizers: [isolatingSplit(GPT2_SPLIT_REGEX), { ...pre, use_regex: false }],
        };
      }
      return pre;
    case 'Digits':
      return isolatingSplit(pre.individual_digits === true ? '\\p{N}' : '\\p{N}+');
    default:
      return pre;
  }
};

const flattenSequence = (pre: TokenizerComponentJson | null | undefined): TokenizerComponentJson[] => {
  if (!pre) return [];
  if (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)) return pre.pretokenizers as TokenizerComponentJson[];
  return [pre];
};

/**
 * transformers' tokenizer classes that rebuild the post-processor from add_bos_token / add_eos_token at load
 * (`update_post_processor`), ignoring tokenizer.json's, with their class defaults [add_bos, add_eos].
 */
const POST_PROCESSOR_FROM_FLAGS: Record<string, readonly [boolean, boolean]> = {
  LlamaTokenizer: [true, false],
  CodeLlamaTokenizer: [true, false],
  GemmaTokenizer: [true, false],
  CohereTokenizer: [true, false],
  GPTNeoXTokenizer: [false, false],
};

/** A TemplateProcessing post-processor (tokenizer.json form) that adds `bos` before and/or `eos` after the text. */
export const bosEosTemplate = (
  bos: { content: string; id: number } | undefined,
  eos: { content: string; id: number } | undefined,
): TokenizerComponentJson => {
  const sequence = (id: 'A' | 'B', typeId: number): unknown[] => [
    ...(bos ? [{ SpecialToken: { id: bos.content, type_id: typeId } }] : []),
    { Sequence: { id, type_id: typeId } },
    ...(eos ? [{ SpecialToken: { id: eos.content, type_id: typeId } }] : []),
  ];
  const specialTokens: Record<string, unknown> = {};
  for (const t of [bos, eos]) if (t) specialTokens[t.content] = { id: t.content, ids: [t.id], tokens: [t.content] };
  return {
    type: 'TemplateProcessing',
    single: sequence('A', 0),
    pair: [...sequence('A', 0), ...sequence('B', 1)],
    special_tokens: specialTokens,
  };
};

/**
 * The post-processor transformers would actually use: for the classes above, the one it rebuilds from the
 * add_bos_token / add_eos_token flags; otherwise tokenizer.json's own. `idOf` maps a token's text to its id.
 */
export const effectivePostProcessor = (
  json: TokenizerJson,
  config: TokenizerConfigJson,
  idOf: (content: string) => number | undefined,
  source: string,
): TokenizerComponentJson | null | undefined => {
  const cls = (config.tokenizer_class ?? '').replace(/Fast$/, '');
  const defaults = POST_PROCESSOR_FROM_FLAGS[cls];
  if (!defaults) return json.post_processor;
  const flagged = (flag: boolean, key: 'bos_token' | 'eos_token') => {
    if (!flag) return undefined;
    const content = specialTokenContent(config[key]);
    const id = content === undefined ? undefined : idOf(content);
    if (content === undefined || id === undefined) {
      throw new TokenizerError(`${source}: add_${key} is true but ${key} is not set or not in the vocabulary`, source);
    }
    return { content, id };
  };
  return bosEosTemplate(
    flagged(config.add_bos_token ?? defaults[0], 'bos_token'),
    flagged(config.add_eos_token ?? defaults[1], 'eos_token'),
  );
};
