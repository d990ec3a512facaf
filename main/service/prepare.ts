// What every training job (a run, a sweep) does first: open the model, read and tokenize the dataset with the
// model's chat template, split it, and record the model and the exact dataset version in the run history.
import type { OpenedModel } from '../models/open-model.ts';
import { openModel } from '../models/open-model.ts';
import type { ModelFormat, Store } from '../store/index.ts';
import type { Example } from '../train/batch.ts';
import { prepareDataset, splitTrainEval, type DatasetFormat, type DatasetRecord } from '../train/dataset/index.ts';
import { versionOfFile } from './datasets-files.ts';
import type { RunConfig } from './run-config.ts';

export interface JobData {
  readonly opened: OpenedModel;
  /** The dataset's rows as read (what a dataset version records). */
  readonly records: readonly DatasetRecord[];
  readonly format: string;
  readonly train: readonly Example[];
  readonly eval: readonly Example[];
  /** Dataset problems that did not stop it (FILE:LINE: message). */
  readonly warnings: readonly string[];
}

export interface PreparedJob extends JobData {
  readonly modelId: number;
  readonly datasetVersionId: number;
}

type JobConfig = Pick<RunConfig, 'model' | 'dataset' | 'training'>;

const parameterCount = (weights: ReadonlyMap<string, { readonly shape: readonly number[] }>): number =>
  [...weights.values()].reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);

/** Opens the model, reads, tokenizes and splits the dataset (seeded by the training seed). */
export const loadJobData = async (config: JobConfig): Promise<JobData> => {
  const opened = openModel(config.model);
  const prepared = await prepareDataset(config.dataset.path, opened.tokenizer, {
    ...(config.dataset.format ? { format: config.dataset.format as DatasetFormat } : {}),
    tokenize: { maxLength: config.training.maxLength, trainOn: config.dataset.trainOn ?? 'assistant' },
  });
  const split = splitTrainEval(prepared.tokenized.examples, { evalFraction: config.dataset.evalFraction ?? 0.05, seed: config.training.seed ?? 0 });
  return {
    opened,
    records: prepared.loaded.records,
    format: prepared.loaded.format ?? 'unknown',
    train: split.train,
    eval: split.eval,
    warnings: prepared.warnings.map((p) => `${p.file}:${p.line}: ${p.message}`),
  };
};

/** The model's row in the library (added on first use). */
export const recordModel = (store: Store, m: { readonly path: string; readonly opened: OpenedModel; readonly name?: string; readonly format?: ModelFormat }): number =>
  (store.models.list().find((x) => x.path === m.path) ??
    store.models.add({
      name: m.name ?? m.path.split('/').pop()!, path: m.path, format: m.format ?? m.opened.format,
      architecture: m.opened.model.config.architecture, params: parameterCount(m.opened.model.weights),
    })).id;

/**
 * The dataset version this job reads: the library's own when the config points at a version file of the library
 * (datasets.file, what the app's Train and Sweeps views use), else a new dataset holding exactly the rows read.
 */
export const recordDataset = (store: Store, config: JobConfig, data: JobData): number => {
  const library = versionOfFile(store, config.dataset.path);
  // The file is the app's own, but a row count that differs means someone changed it: record what was read.
  if (library && library.rowCount === data.records.length) return library.id;
  return store.datasets.create({ name: config.dataset.path.split('/').pop()!, format: data.format, sourcePath: config.dataset.path, rows: data.records as never }).version.id;
};

export const prepareJob = async (config: JobConfig, store: Store): Promise<PreparedJob> => {
  const data = await loadJobData(config);
  return { ...data, modelId: recordModel(store, { path: config.model, opened: data.opened }), datasetVersionId: recordDataset(store, config, data) };
};
