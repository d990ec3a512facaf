// An HF tokenizer (tokenizer.json + tokenizer_config.json) as llama.cpp's tokenizer.ggml.* metadata, for byte-level
// BPE vocabularies (what convert_hf_to_gguf.py's _set_vocab_gpt2 writes). llama.cpp does not store a pre-tokenizer,
// only its name (tokenizer.ggml.pre); convert_hf_to_gguf.py picks it by hashing the tokenizer's output, here it is
// recognised from the pre-tokenizer's own regexes, the same ones models/tokenizer/gguf-tokenizer.ts maps names to.
import type { GgufMetadataEntry } from '../gguf/reader.ts';
import { ggufValue } from '../gguf/writer.ts';
import { specialTokenContent, type SpecialTokenValue } from '../tokenizer/formats.ts';
import type { TokenizerConfigJson, TokenizerJson } from '../tokenizer/index.ts';
import { ExportError } from './errors.ts';

const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;
const TOKEN_UNUSED = 5;

type Component = Record<string, unknown>;

const parts = (pre: Component | null | undefined): Component[] => {
  if (!pre) return [];
  if (pre.type === 'Sequence') return ((pre.pretokenizers as Component[] | undefined) ?? []).flatMap(parts);
  return [pre];
};

const regexOf = (c: Component): string | undefined => {
  const p = c.pattern as { Regex?: string } | undefined;
  return c.type === 'Split' ? p?.Regex : undefined;
};

/** tokenizer.ggml.pre for a tokenizer.json pre-tokenizer, when it is one llama.cpp knows. */
export const ggufPreTokenizerName = (json: TokenizerJson, config: TokenizerConfigJson): string | undefined => {
  const ps = parts(json.pre_tokenizer as Component | null | undefined);
  const byteLevel = ps.find((p) => p.type === 'ByteLevel');
  if (!byteLevel) return undefined;
  const regexes = ps.map(regexOf).filter((r): r is string => r !== undefined);
  const digits = ps.find((p) => p.type === 'Digits');
  const usesGpt2 = byteLevel.use_regex !== false;
  if (regexes.length === 1 && !digits && !usesGpt2) {
    const r = regexes[0]!;
    if (r.includes('\\p{N}{1,3}')) return 'llama-bpe';
    if (r.startsWith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|")) return 'qwen2';
  }
  if (regexes.length === 0 && digits?.individual_digits === true && usesGpt2) {
    return config.clean_up_tokenization_spaces === true ? 'starcoder' : 'smollm';
  }
  if (regexes.length === 0 && !digits && usesGpt2) return 'gpt-2';
  return undefined;
};

const mergeText = (m: unknown): string => (Array.isArray(m) ? (m as string[]).join(' ') : String(m));

/**
 * tokenizer.ggml.* and tokenizer.chat_template for an HF byte-level BPE tokenizer; `vocabSize` is the model's
 * embedding rows (ids without a token are written as [PAD<id>], as the converter does).
 */
export const ggufTokenizerMetadata = (json: TokenizerJson, config: TokenizerConfigJson, vocabSize: number, source: string): Map<string, GgufMetadataEntry> => {
  const model = json.model as Component;
  if (model.type !== 'BPE') throw new ExportError(`${source}: only byte-level BPE tokenizers can be written to GGUF here (this one is ${String(model.type)})`, source);
  const pre = ggufPreTokenizerName(json, config);
  if (!pre) throw new ExportError(`${source}: the pre-tokenizer is not one llama.cpp knows by name (llama-bpe, qwen2, smollm, gpt-2)`, source);
  const tokens: (string | undefined)[] = new Array<string | undefined>(vocabSize);
  const types = new Array<number>(vocabSize).fill(TOKEN_UNUSED);
  for (const [token, id] of Object.entries((model.vocab ?? {}) as Record<string, number>)) {
    if (id < vocabSize) [tokens[id], types[id]] = [token, TOKEN_NORMAL];
  }
  const addedDecoder = config.added_tokens_decoder ?? {};
  for (const t of json.added_tokens ?? []) {
    if (t.id >= vocabSize) throw new ExportError(`${source}: added token '${t.content}' has id ${t.id}, beyond the model's ${vocabSize} embeddings`, source);
    const special = t.special ?? addedDecoder[String(t.id)]?.special ?? false;
    [tokens[t.id], types[t.id]] = [t.content, special ? TOKEN_CONTROL : TOKEN_USER_DEFINED];
  }
  const filled = Array.from(tokens, (t, i) => t ?? `[PAD${i}]`);
  const idOf = new Map(filled.map((t, i) => [t, i]));
  const m = new Map<string, GgufMetadataEntry>([
    ['tokenizer.ggml.model', ggufValue.string('gpt2')],
    ['tokenizer.ggml.pre', ggufValue.string(pre)],
    ['tokenizer.ggml.tokens', ggufValue.strings(filled)],
    ['tokenizer.ggml.token_type', ggufValue.i32s(types)],
    ['tokenizer.ggml.merges', ggufValue.strings(((model.merges ?? []) as unknown[]).map(mergeText))],
  ]);
  const special = (key: string, value: SpecialTokenValue | undefined): void => {
    const content = specialTokenContent(value);
    const id = content === undefined ? undefined : idOf.get(content);
    if (id !== undefined) m.set(`tokenizer.ggml.${key}_token_id`, ggufValue.u32(id));
  };
  special('bos', config.bos_token);
  special('eos', config.eos_token);
  special('unknown', config.unk_token);
  special('padding', config.pad_token);
  const post = JSON.stringify(json.post_processor ?? null);
  const bos = specialTokenContent(config.bos_token);
  const addBos = config.add_bos_token ?? (bos !== undefined && post.includes(`"SpecialToken":{"id":${JSON.stringify(bos)}`));
  m.set('tokenizer.ggml.add_bos_token', ggufValue.bool(addBos));
  if (config.add_eos_token !== undefined) m.set('tokenizer.ggml.add_eos_token', ggufValue.bool(config.add_eos_token));
  const template = config.chat_template;
  if (typeof template === 'string') m.set('tokenizer.chat_template', ggufValue.string(template));
  else if (Array.isArray(template)) for (const t of template) m.set(t.name === 'default' ? 'tokenizer.chat_template' : `tokenizer.chat_template.${t.name}`, ggufValue.string(t.template));
  else if (template) for (const [name, t] of Object.entries(template)) m.set(name === 'default' ? 'tokenizer.chat_template' : `tokenizer.chat_template.${name}`, ggufValue.string(t));
  return m;
};
