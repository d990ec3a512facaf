// Importing a dataset file into the store: read by the dataset layer's own readers (the CLI's: .jsonl, .json, .csv,
// .tsv, .parquet, .txt), by path or from content a browser sent (a dropped file's bytes: its path stays hidden).
// A file the readers cannot read is refused whole, naming the file and line; rows that read but break their
// format are imported as they are and shown as problems, to be fixed in the editor.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { JsonValue, Store } from '../store/index.ts';
import { assertNoErrors, DatasetError, detectFormat, fileKindOf, FORMAT_SIGNATURES, type DatasetFormat } from '../train/dataset/index.ts';
import { ProblemLog } from '../train/dataset/problems.ts';
import { readDatasetFile } from '../train/dataset/read-file.ts';
import type { TextSplit } from '../train/dataset/index.ts';
import type { DatasetImport } from './dataset-contract.ts';
import { indexRows } from './datasets-index.ts';
import { datasetDetails } from './datasets-edit.ts';

export interface ImportRequest {
  readonly path?: string;
  readonly content?: string;
  readonly encoding?: 'text' | 'base64';
  readonly fileName?: string;
  readonly name?: string;
  readonly format?: DatasetFormat | 'auto';
  readonly textSplit?: TextSplit;
}

/** The rows of a file, or a DatasetError listing why it cannot be read. */
const readRows = async (file: string, shownAs: string, textSplit: TextSplit | undefined): Promise<unknown[]> => {
  const log = new ProblemLog(shownAs);
  const { rows } = await readDatasetFile(file, log, textSplit ? { textSplit } : {});
  assertNoErrors(log.problems, shownAs);
  return rows.map((r) => r.value);
};

export const importDataset = async (store: Store, request: ImportRequest): Promise<DatasetImport> => {
  let values: unknown[];
  let shownAs: string;
  if (request.path !== undefined) {
    shownAs = request.path;
    values = await readRows(request.path, shownAs, request.textSplit);
  } else {
    // The browser's bytes go to a scratch file of the same name: the readers pick the format by extension.
    shownAs = basename(request.fileName ?? 'dataset');
    if (fileKindOf(shownAs) === undefined) {
      throw new DatasetError(`${shownAs}: unknown file type (datasets are .jsonl, .json, .csv, .tsv, .parquet or .txt)`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'peft-studio-import-'));
    try {
      const file = join(dir, shownAs);
      writeFileSync(file, Buffer.from(request.content ?? '', request.encoding === 'base64' ? 'base64' : 'utf8'));
      values = await readRows(file, shownAs, request.textSplit);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const chosen = request.format === undefined || request.format === 'auto' ? undefined : request.format;
  const detection = detectFormat(values, chosen);
  if (detection.format === undefined) {
    const expected = Object.values(FORMAT_SIGNATURES).join('; ');
    throw new DatasetError(`${shownAs}: ${detection.evidence}; a dataset's rows need the fields of one of: ${expected}`);
  }
  const { dataset, version } = store.datasets.create({
    name: request.name ?? basename(shownAs),
    format: detection.format,
    ...(request.path !== undefined ? { sourcePath: request.path } : {}),
    rows: values as JsonValue[],
    message: `import ${basename(shownAs)}`,
  });
  // The store numbers an import's rows 1, 2, 3, ... in file order.
  const index = indexRows(store, dataset.id, version.id, { keys: values.map((_, i) => i + 1), rows: values as JsonValue[] });
  return { ...datasetDetails(store, dataset.id), version, summary: index.summary };
};
