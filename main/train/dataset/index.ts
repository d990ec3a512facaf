/**
 * Datasets for training: import (.jsonl streamed, .json, .csv/.tsv, .parquet, .txt), formats (OpenAI messages,
 * ShareGPT, Alpaca, prompt/completion, raw text; detected or chosen), problems with their lines, rendering with
 * the model's chat template and assistant-only label masks, max length and truncation, packing, batches, a seeded
 * train/eval split and token statistics.
 */
export { DatasetError, assertNoErrors, formatProblem, isError, sortProblems, type DatasetProblem, type ProblemSeverity } from './problems.ts';
export {
  DATASET_FORMATS,
  FORMAT_SIGNATURES,
  IGNORE_INDEX,
  recordKey,
  type ChatRecord,
  type ChatRole,
  type ChatTurn,
  type DatasetFormat,
  type DatasetRecord,
  type TextRecord,
} from './records.ts';
export { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_LINE_BYTES, fileKindOf, type FileKind, type ReadFileOptions } from './read-file.ts';
export type { TextSplit } from './read-text.ts';
export { detectFormat, formatOfValue, type FormatDetection } from './detect-format.ts';
export { loadDataset, type DatasetStats, type LoadDatasetOptions, type LoadedDataset } from './load.ts';
export { AssistantSpanError, renderWithAssistantSpans, type AssistantSpan, type RenderedConversation } from './assistant-spans.ts';
export { maskTokensInSpans, type CharSpan } from './token-spans.ts';
export {
  tokenizeConversation,
  tokenizeDataset,
  tokenizeText,
  trainedTokenCount,
  type TokenizedDataset,
  type TokenizedExample,
  type TokenizeOptions,
  type TrainOn,
  type TruncationPolicy,
} from './tokenize.ts';
export { computeTokenStats, type TokenStats } from './token-stats.ts';
export { packExamples, packingEfficiency, type PackableExample, type PackedRow, type PackOptions } from './pack.ts';
export { batchPlan, batches, collate, padIdOf, type Batch, type BatchOptions, type BatchRow } from './batches.ts';
export { seededPermutation, splitTrainEval, type Split, type SplitOptions } from './split.ts';
export { inspectDataset, prepareDataset, type DatasetInspection, type InspectOptions, type PreparedDataset } from './inspect.ts';
