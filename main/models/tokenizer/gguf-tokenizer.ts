/**
 * Builds a tokenizer from a GGUF file's tokenizer metadata (tokenizer.ggml.*): the tokenizer.json and
 * tokenizer_config.json that the model's original Hugging Face tokenizer had, as far as GGUF keeps them.
 *
 * Only `gpt2`-style (byte-level BPE) vocabularies. GGUF does not store the pre-tokenizer itself, only its name
 * (tokenizer.ggml.pre, chosen by llama.cpp's convert_hf_to_gguf.py from a hash of the original tokenizer's
 * output); the table below maps each name to the split regexes llama.cpp's llama-vocab.cpp applies for it, and
 * to llama.cpp's per-name defaults (add BOS, ignore_merges, clean-up of spaces in decode).
 */
import { TokenizerError } from './errors.ts';
import {
  bosEosTemplate,
  GPT2_SPLIT_REGEX,
  isolatingSplit,
  type AddedTokenJson,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './formats.ts';
import { Tokenizer, type TokenizerFiles } from './tokenizer.ts';

/**
 * GGUF metadata as a reader exposes it: key → value (strings, numbers or bigints, arrays of them), or key →
 * { type, value } entries as main/models/gguf's GgufFile.metadata holds them.
 */
export type GgufMetadata = ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>;

/** Llama 3's split regex (also DBRX, Smaug): up to 3 digits per piece, a non-letter may lead a word. */
const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's: Llama 3's with single digits. */
const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface PreTokenizerRecipe {
  /** Regexes applied one after the other, each match isolated (llama.cpp's unicode_regex_split). */
  readonly splits: readonly string[];
  /** llama.cpp's clean_spaces: decode removes spaces before punctuation (transformers' clean_up_tokenization_spaces). */
  readonly cleanSpaces: boolean;
  readonly ignoreMerges?: boolean;
  /** llama.cpp's add_bos default for this name; tokenizer.ggml.add_bos_token overrides it. */
  readonly addBos?: boolean;
}

const LLAMA3: PreTokenizerRecipe = { splits: [LLAMA3_SPLIT_REGEX], cleanSpaces: true, ignoreMerges: true, addBos: true };
const GPT2: PreTokenizerRecipe = { splits: [GPT2_SPLIT_REGEX], cleanSpaces: true };
/** Digits one by one, then GPT-2's regex (StarCoder's tokenizer and its descendants, SmolLM's among them). */
const DIGITS_THEN_GPT2 = ['\\p{N}', GPT2_SPLIT_REGEX];

/** tokenizer.ggml.pre → recipe, for the names of llama-vocab.cpp that use these regexes. */
const PRE_TOKENIZERS: Readonly<Record<string, PreTokenizerRecipe>> = {
  llama3: LLAMA3,
  'llama-v3': LLAMA3,
  'llama-bpe': LLAMA3,
  falcon3: LLAMA3,
  pixtral: LLAMA3,
  dbrx: { splits: [LLAMA3_SPLIT_REGEX], cleanSpaces: true },
  'smaug-bpe': { splits: [LLAMA3_SPLIT_REGEX], cleanSpaces: true },
  'gpt-2': GPT2,
  'phi-2': GPT2,
  mpt: GPT2,
  olmo: GPT2,
  jais: GPT2,
  exaone4: GPT2,
  smollm: { splits: DIGITS_THEN_GPT2, cleanSpaces: false },
  'command-r': { splits: DIGITS_THEN_GPT2, cleanSpaces: false },
  starcoder: { splits: DIGITS_THEN_GPT2, cleanSpaces: true },
  refact: { splits: DIGITS_THEN_GPT2, cleanSpaces: true },
  codeshell: { splits: DIGITS_THEN_GPT2, cleanSpaces: true },
  exaone: { splits: DIGITS_THEN_GPT2, cleanSpaces: true },
  'minerva-7b': { splits: DIGITS_THEN_GPT2, cleanSpaces: true },
  qwen2: { splits: [QWEN2_SPLIT_REGEX], cleanSpaces: false },
  'deepseek-r1-qwen': { splits: [QWEN2_SPLIT_REGEX], cleanSpaces: false },
  megrez: { splits: [QWEN2_SPLIT_REGEX], cleanSpaces: true },
  stablelm2: { splits: [QWEN2_SPLIT_REGEX], cleanSpaces: true },
  // llama.cpp's fallback when tokenizer.ggml.pre is missing or 'default' (it warns that quality degrades).
  default: {
    splits: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2_SPLIT_REGEX, '\\p{N}+', '[0-9][0-9][0-9]'],
    cleanSpaces: true,
  },
};

export const SUPPORTED_GGUF_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

/** llama.cpp's token types (tokenizer.ggml.token_type). */
const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_USER_DEFINED = 4;

/** The tokenizer.json + tokenizer_config.json equivalent of a GGUF's tokenizer metadata. */
export const tokenizerFilesFromGguf = (meta: GgufMetadata, source = 'GGUF metadata'): TokenizerFiles => {
  const get = (key: string): unknown => unwrapEntry(isMap(meta) ? meta.get(key) : meta[key]);
  const fail = (message: string): never => {
    throw new TokenizerError(`${source}: ${message}`, source);
  };

  const model = get('tokenizer.ggml.model');
  if (model !== 'gpt2') {
    fail(
      model === undefined
        ? 'has no tokenizer (tokenizer.ggml.model is missing)'
        : `tokenizer.ggml.model '${String(model)}' is not supported (only 'gpt2', byte-level BPE)`,
    );
  }
  const tokens = stringList(get('tokenizer.ggml.tokens')) ?? fail('tokenizer.ggml.tokens is missing');
  const merges = stringList(get('tokenizer.ggml.merges')) ?? fail('tokenizer.ggml.merges is missing');
  const types = numberList(get('tokenizer.ggml.token_type')) ?? [];
  const preName = get('tokenizer.ggml.pre');
  const pre = typeof preName === 'string' ? preName : 'default';
  const recipe =
    PRE_TOKENIZERS[pre] ??
    fail(`tokenizer.ggml.pre '${pre}' is not supported (known: ${SUPPORTED_GGUF_PRE_TOKENIZERS.join(', ')})`);

  const tokenAt = (key: string): { content: string; id: number } | undefined => {
    const id = toNumber(get(key));
    if (id === undefined) return undefined;
    const content = tokens[id];
    return content === undefined ? fail(`${key} ${id} is outside the vocabulary (${tokens.length} tokens)`) : { content, id };
  };
  const bos = tokenAt('tokenizer.ggml.bos_token_id');
  const eos = tokenAt('tokenizer.ggml.eos_token_id');
  const pad = tokenAt('tokenizer.ggml.padding_token_id');
  const unk = tokenAt('tokenizer.ggml.unknown_token_id');
  const addBos = booleanOf(get('tokenizer.ggml.add_bos_token')) ?? recipe.addBos ?? false;
  const addEos = booleanOf(get('tokenizer.ggml.add_eos_token')) ?? false;
  if (addBos && !bos) fail('tokenizer.ggml.add_bos_token is true but there is no bos_token_id');
  if (addEos && !eos) fail('tokenizer.ggml.add_eos_token is true but there is no eos_token_id');

  // Control tokens (<|im_start|>, <|endoftext|>...) were the original's special added tokens; user-defined ones
  // its non-special added tokens (<think>...). Both are matched whole in the text before pre-tokenization.
  const addedTokens: AddedTokenJson[] = [];
  types.forEach((type, id) => {
    const content = tokens[id];
    if (content === undefined || (type !== TOKEN_TYPE_CONTROL && type !== TOKEN_TYPE_USER_DEFINED)) return;
    const special = type === TOKEN_TYPE_CONTROL;
    addedTokens.push({ id, content, special, normalized: false, lstrip: false, rstrip: false, single_word: false });
  });

  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => {
    vocab[token] = id;
  });

  const tokenizerJson: TokenizerJson = {
    version: '1.0',
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        ...recipe.splits.map(isolatingSplit),
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor:
      addBos || addEos
        ? bosEosTemplate(addBos ? bos : undefined, addEos ? eos : undefined)
        : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      // Byte-level: every byte has a token, so nothing is ever unknown.
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: recipe.ignoreMerges ?? false,
      vocab,
      merges,
    },
  };

  const config: TokenizerConfigJson = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: addBos,
    add_eos_token: addEos,
    clean_up_tokenization_spaces: recipe.cleanSpaces,
    ...(bos ? { bos_token: bos.content } : {}),
    ...(eos ? { eos_token: eos.content } : {}),
    ...(pad ? { pad_token: pad.content } : {}),
    ...(unk ? { unk_token: unk.content } : {}),
  };
  const chatTemplate = chatTemplatesOf(meta);
  if (chatTemplate !== undefined) config.chat_template = chatTemplate;
  return { tokenizerJson, config };
};

/** A Tokenizer for a GGUF's vocabulary. `source` (the .gguf path) goes into error messages. */
export const tokenizerFromGgufMetadata = (meta: GgufMetadata, options: { source?: string } = {}): Tokenizer => {
  const source = options.source ?? 'GGUF metadata';
  const { tokenizerJson, config } = tokenizerFilesFromGguf(meta, source);
  return new Tokenizer(tokenizerJson, config, { source });
};

/**
 * tokenizer.chat_template (the default) and tokenizer.chat_template.NAME (named ones, as convert_hf_to_gguf.py
 * writes a list of templates); a plain string when there is only the default.
 */
const chatTemplatesOf = (meta: GgufMetadata): string | Record<string, string> | undefined => {
  const entries = isMap(meta) ? [...meta.entries()] : Object.entries(meta);
  const templates: Record<string, string> = {};
  for (const [key, entry] of entries) {
    const value = unwrapEntry(entry);
    if (typeof value !== 'string') continue;
    if (key === 'tokenizer.chat_template') templates.default = value;
    else if (key.startsWith('tokenizer.chat_template.')) templates[key.slice('tokenizer.chat_template.'.length)] = value;
  }
  const names = Object.keys(templates);
  if (names.length === 0) return undefined;
  return names.length === 1 && templates.default !== undefined ? templates.default : templates;
};

/** A { type, value } metadata entry's value; anything else as it is. */
const unwrapEntry = (v: unknown): unknown =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in v && typeof (v as { type?: unknown }).type === 'number'
    ? (v as { value: unknown }).value
    : v;

const isMap = (meta: GgufMetadata): meta is ReadonlyMap<string, unknown> => meta instanceof Map;

const toNumber = (value: unknown): number | undefined => {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
};

const booleanOf = (value: unknown): boolean | undefined => (typeof value === 'boolean' ? value : undefined);

const stringList = (value: unknown): string[] | undefined =>
  Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;

/** Numbers from a plain array, a typed array or an array of bigints. */
const numberList = (value: unknown): number[] | undefined => {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, Number);
  }
  if (Array.isArray(value)) return value.map((v) => Number(v));
  return undefined;
};
