/**
 * Test helper: small byte-level BPE tokenizer folders written to a temp dir. Their vocabulary has merges that
 * only fire when the pre-tokenizer groups characters exactly as Rust does (non-ASCII numerals, U+FEFF, U+0085),
 * so the oracle can catch a JS pre-tokenizer that differs.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** GPT-2's byte → printable character table (bytes_to_unicode), indexed by byte. */
export const byteChars = (): string[] => {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  const table = new Array<string>(256);
  bytes.forEach((b, i) => (table[b] = String.fromCodePoint(chars[i] ?? 0)));
  return table;
};

/**
 * 'Â ½' + 'Ġ Â½': " ½" is one token only if ½ is not split off as a number (Rust's Digits splits it).
 * '¿ !': "\ufeff!" ends in one token only if U+FEFF is not whitespace (it is not, for Rust).
 * 'Ġ Â': " \u0085" shares a token only if U+0085 is not whitespace (it is, for Rust).
 */
const MERGES = ['Ġ t', 'h e', 'Ġt he', 'Â ½', 'Ġ Â½', '¿ !', 'Ġ Â', '1 2', 'Ġ 1', 'Ġ Ġ'];

export const tinyTokenizerJson = (): Record<string, unknown> => {
  const tokens = [...byteChars(), ...MERGES.map((m) => m.replace(' ', ''))];
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const added = (id: number, content: string, special: boolean) => ({
    id, content, special, normalized: !special, lstrip: false, rstrip: false, single_word: false,
  });
  const n = tokens.length;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(n, '<|endoftext|>', true),
      added(n + 1, '<|im_start|>', true),
      added(n + 2, '<|im_end|>', true),
      added(n + 3, '<tool>', false),
    ],
    normalizer: null,
    // SmolLM2's own tokenizer.json layout.
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES,
    },
  };
};

export interface TinyFolderFiles {
  tokenizerJson?: unknown;
  config?: unknown;
  specialTokensMap?: unknown;
  chatTemplateJinja?: string;
  additionalTemplates?: Record<string, string>;
  /** Raw text for a file, to write broken JSON. */
  raw?: Record<string, string>;
}

/** Writes a tokenizer folder in a fresh temp dir and returns its path. */
export const writeTinyFolder = (files: TinyFolderFiles): string => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-tokenizer-'));
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), JSON.stringify(value, null, 1));
  if (files.tokenizerJson !== undefined) json('tokenizer.json', files.tokenizerJson);
  if (files.config !== undefined) json('tokenizer_config.json', files.config);
  if (files.specialTokensMap !== undefined) json('special_tokens_map.json', files.specialTokensMap);
  if (files.chatTemplateJinja !== undefined) writeFileSync(join(dir, 'chat_template.jinja'), files.chatTemplateJinja);
  if (files.additionalTemplates) {
    mkdirSync(join(dir, 'additional_chat_templates'));
    for (const [name, text] of Object.entries(files.additionalTemplates)) {
      writeFileSync(join(dir, 'additional_chat_templates', `${name}.jinja`), text);
    }
  }
  for (const [name, text] of Object.entries(files.raw ?? {})) writeFileSync(join(dir, name), text);
  return dir;
};

/** A ChatML template that also prints eos_token, so the test sees which eos the loader settled on. */
export const CHATML_WITH_EOS =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% else %}{{ eos_token }}{% endif %}";
