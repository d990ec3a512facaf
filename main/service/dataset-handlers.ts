// What the datasets requests of dataset-contract.ts do (see api-handlers.ts for the handler shape).
import type { TrainOn } from '../train/dataset/index.ts';
import type { AreaHandlers } from './api-handlers.ts';
import type { DATASET_REQUESTS } from './dataset-contract.ts';
import { datasetDetails, deleteDataset, editDataset, moveHead } from './datasets-edit.ts';
import { exportVersion, versionFile } from './datasets-files.ts';
import { importDataset } from './datasets-import.ts';
import { problemList, rowsPage, versionIndex } from './datasets-index.ts';
import { previewRow, splitCounts, tokenHistogram } from './datasets-tokens.ts';

/** Only the fields a client gave (valibot leaves absent optional fields out already; this keeps the types exact). */
const given = <T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;

export const DATASET_HANDLERS: AreaHandlers<keyof typeof DATASET_REQUESTS> = {
  'datasets.file': ({ store, params }) => versionFile(store, params.id, params.versionId),
  'datasets.import': ({ store, params }) => importDataset(store, given(params)),
  'datasets.show': ({ store, params }) => datasetDetails(store, params.id),
  'datasets.rows': ({ store, params }) => rowsPage(versionIndex(store, params.id, params.versionId), given(params)),
  'datasets.problems': ({ store, params }) => problemList(versionIndex(store, params.id, params.versionId)),
  'datasets.edit': ({ store, params }) => editDataset(store, given(params)),
  'datasets.undo': ({ store, params }) => moveHead(store, params.id, { to: 'undo' }),
  'datasets.redo': ({ store, params }) => moveHead(store, params.id, { to: 'redo' }),
  'datasets.checkout': ({ store, params }) => moveHead(store, params.id, { to: 'checkout', versionId: params.versionId }),
  'datasets.delete': ({ store, params }) => deleteDataset(store, params.id),
  'datasets.preview': ({ store, params }) => previewRow(store, given({ ...params, trainOn: params.trainOn as TrainOn | undefined })),
  'datasets.histogram': ({ store, params, emit, signal }) => tokenHistogram(store, given(params), { emit, signal }),
  'datasets.split': ({ store, params, emit, signal }) => splitCounts(store, given(params), { emit, signal }),
  'datasets.export': ({ store, params }) => exportVersion(store, given(params)),
};
