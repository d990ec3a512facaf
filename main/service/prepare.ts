// What every training job (a run, a sweep) does first: open the model, read and tokenize the dataset with the
// model's chat template, split it, and record the model and the exact dataset version in the run history.
import type { OpenedModel } from '../models/open-model.ts';
import { openModel } from '../models/open-model.ts';
import type { Store } from '../store/index.ts';
import type { Example } from '../train/batch.ts';
import { prepareDataset, splitTrainEval, type DatasetFormat } from '../train/dataset/index.ts';
import type { RunConfig } from './run-config.ts';

export interface PreparedJob {
  readonly opened: OpenedModel;
  readonly train: readonly Example[];
  readonly eval: readonly Example[];
  readonly modelId: number;
  readonly datasetVersionId: number;
  /** Dataset problems that did not stop it (FILE:LINE: message). */
  readonly warnings: readonly string[];
}

const parameterCount = (weights: ReadonlyMap<string, { readonly shape: readonly number[] }>): number =>
  [...weights.values()].reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);

export const prepareJob = async (config: Pick<RunConfig, 'model' | 'dataset' | 'training'>, store: Store): Promise<PreparedJob> => {
  const opened = openModel(config.model);
  const prepared = await prepareDataset(config.dataset.path, opened.tokenizer, {
    ...(config.dataset.format ? { format: config.dataset.format as DatasetFormat } : {}),
    tokenize: { maxLength: config.training.maxLength, trainOn: config.dataset.trainOn ?? 'assistant' },
  });
  const split = splitTrainEval(prepared.tokenized.examples, { evalFraction: config.dataset.evalFraction ?? 0.05, seed: config.training.seed ?? 0 });
  const model =
    store.models.list().find((m) => m.path === config.model) ??
    store.models.add({ name: config.model.split('/').pop()!, path: config.model, format: opened.format, architecture: opened.model.config.architecture, params: parameterCount(opened.model.weights) });
  const { version } = store.datasets.create({
    name: config.dataset.path.split('/').pop()!,
    format: prepared.loaded.format ?? 'unknown',
    sourcePath: config.dataset.path,
    rows: prepared.loaded.records as never,
  });
  return {
    opened,
    train: split.train,
    eval: split.eval,
    modelId: model.id,
    datasetVersionId: version.id,
    warnings: prepared.warnings.map((p) => `${p.file}:${p.line}: ${p.message}`),
  };
};
