// The Datasets view's state, kept in app.area('datasets'): the library of imported datasets, the one open (its
// versions, the page of rows shown, search and filter), edits (each a new version on the service, undone and
// redone there), and what the open model says about it: a row's chat-template preview, the token-length
// histogram and the train/eval split. Every request goes to the service; nothing here guesses its answers.
import type {
  DatasetChange,
  DatasetDetails,
  DatasetExport,
  DatasetProgress,
  DatasetRowsPage,
  DatasetTableRow,
} from '../../../main/service/dataset-contract.ts';
import { emptyRow, type JsonValue } from '../../components/dataset/cells.ts';
import { api, messageOf, type ApiInput, type ApiResults } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { Task } from './task.svelte.ts';

type Dataset = ApiResults['datasets.list'][number];
export type RowFilter = 'all' | 'problems' | 'errors';
export type TrainOn = 'assistant' | 'all';

/** Training's defaults (run-config.ts): what the split shows unless changed. */
export const TRAINING_DEFAULTS = { evalFraction: 0.05, seed: 42, maxLength: 512 } as const;
/** Datasets up to this many rows get their histogram and split recomputed after every change. */
export const AUTO_INSIGHTS_ROWS = 2000;
export const PAGE_SIZE = 50;

/** Extensions the dataset layer reads; files are read as text unless binary. */
export const DATASET_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv', '.tsv', '.parquet', '.txt', '.text', '.md'];
const BINARY_EXTENSIONS = ['.parquet'];

const extensionOf = (name: string): string => {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot).toLowerCase();
};

/** A File's bytes as base64 (chunked: String.fromCharCode takes a bounded argument list). */
const base64Of = async (file: File): Promise<string> => {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
};

/** What datasets.import gets for a dropped or chosen file: its path in the desktop app, else its content. */
export const importParamsOf = async (file: File, pathForFile: (f: File) => string | null): Promise<ApiInput<'datasets.import'>> => {
  const path = pathForFile(file);
  if (path) return { path };
  const binary = BINARY_EXTENSIONS.includes(extensionOf(file.name));
  return binary ? { content: await base64Of(file), encoding: 'base64', fileName: file.name } : { content: await file.text(), encoding: 'text', fileName: file.name };
};

export class DatasetsState {
  datasets = $state<Dataset[]>([]);
  details = $state<DatasetDetails | undefined>(undefined);
  page = $state<DatasetRowsPage | undefined>(undefined);
  offset = $state(0);
  search = $state('');
  filter = $state<RowFilter>('all');
  /** The row the preview shows and delete acts on when nothing is ticked. */
  activeKey = $state<number | undefined>(undefined);
  selected = $state<number[]>([]);
  /** An edit, undo, redo or checkout on its way. */
  changing = $state(false);
  /** What went wrong with the table (loading, an edit): shown above it. */
  tableError = $state<string | undefined>(undefined);
  listError = $state<string | undefined>(undefined);
  importFormat = $state<NonNullable<ApiInput<'datasets.import'>['format']>>('auto');

  trainOn = $state<TrainOn>('assistant');
  evalFraction = $state<number>(TRAINING_DEFAULTS.evalFraction);
  seed = $state<number>(TRAINING_DEFAULTS.seed);
  maxLength = $state<number>(TRAINING_DEFAULTS.maxLength);
  histogramProgress = $state<DatasetProgress | undefined>(undefined);
  splitProgress = $state<DatasetProgress | undefined>(undefined);

  exportPath = $state('');
  lastExport = $state<DatasetExport | undefined>(undefined);

  readonly importTask = new Task('datasets.import');
  readonly previewTask = new Task('datasets.preview');
  readonly histogramTask = new Task('datasets.histogram', (e) => (this.histogramProgress = e));
  readonly splitTask = new Task('datasets.split', (e) => (this.splitProgress = e));
  readonly exportTask = new Task('datasets.export');
  private rowsSeq = 0;
  /** Work asked for while the same work was running: run once more when it ends, with what is current then. */
  private readonly pending = new Set<{ readonly running: boolean }>();

  constructor(private readonly app: AppState) {}

  get model(): string | undefined {
    return this.app.workspace.model?.path;
  }

  get id(): number | undefined {
    return this.details?.dataset.id;
  }

  get head(): DatasetDetails['head'] | undefined {
    return this.details?.head;
  }

  /** The rows delete acts on: the ticked ones, else the active one. */
  get rowsToDelete(): number[] {
    if (this.selected.length) return [...this.selected];
    return this.activeKey !== undefined && this.page?.rows.some((r) => r.key === this.activeKey) ? [this.activeKey] : [];
  }

  async load(): Promise<void> {
    await this.refreshList();
    const wanted = this.app.workspace.datasetId ?? this.datasets[0]?.id;
    if (wanted !== undefined && this.id !== wanted && this.datasets.some((d) => d.id === wanted)) await this.open(wanted);
  }

  async refreshList(): Promise<void> {
    try {
      this.datasets = await api().request('datasets.list', {});
      this.listError = undefined;
    } catch (err) {
      this.listError = messageOf(err);
    }
  }

  async open(id: number): Promise<void> {
    try {
      this.details = await api().request('datasets.show', { id });
    } catch (err) {
      this.tableError = messageOf(err);
      return;
    }
    this.app.workspace.datasetId = id;
    this.offset = 0;
    this.search = '';
    this.filter = 'all';
    this.selected = [];
    this.activeKey = undefined;
    this.lastExport = undefined;
    this.previewTask.reset();
    this.histogramTask.reset();
    this.splitTask.reset();
    await this.loadRows();
    await this.afterVersionChange();
  }

  /** Imports dropped or chosen files one by one; the last one imported is opened. */
  async importFiles(files: readonly File[]): Promise<void> {
    for (const file of files) {
      const params = await importParamsOf(file, (f) => api().pathForFile(f));
      await this.runImport({ ...params, ...(this.importFormat !== 'auto' ? { format: this.importFormat } : {}) });
      if (this.importTask.status === 'failed') return;
    }
  }

  /** Imports a file on the service's machine (the desktop's disk, or the `serve` host's). */
  async importPath(path: string): Promise<void> {
    await this.runImport({ path, ...(this.importFormat !== 'auto' ? { format: this.importFormat } : {}) });
  }

  private async runImport(params: ApiInput<'datasets.import'>): Promise<void> {
    const result = await this.importTask.run(params);
    if (!result) return;
    await this.refreshList();
    await this.open(result.dataset.id);
  }

  async loadRows(): Promise<void> {
    const id = this.id;
    if (id === undefined) return;
    const seq = ++this.rowsSeq;
    try {
      const page = await api().request('datasets.rows', {
        id,
        offset: this.offset,
        limit: PAGE_SIZE,
        ...(this.search.trim() ? { search: this.search } : {}),
        ...(this.filter !== 'all' ? { filter: this.filter } : {}),
      });
      if (seq !== this.rowsSeq) return; // a newer search or page was asked for meanwhile
      this.page = page;
      this.tableError = undefined;
      this.selected = this.selected.filter((k) => page.rows.some((r) => r.key === k));
    } catch (err) {
      if (seq === this.rowsSeq) this.tableError = messageOf(err);
    }
  }

  async setSearch(search: string, filter: RowFilter = this.filter): Promise<void> {
    this.search = search;
    this.filter = filter;
    this.offset = 0;
    await this.loadRows();
  }

  async goTo(offset: number): Promise<void> {
    const total = this.page?.total ?? 0;
    this.offset = Math.max(0, Math.min(offset, Math.max(0, total - 1)));
    this.offset -= this.offset % PAGE_SIZE;
    await this.loadRows();
  }

  /** Replaces one row (a committed cell edit). */
  async updateRow(key: number, row: JsonValue): Promise<boolean> {
    this.activeKey = key;
    return this.change(() => api().request('datasets.edit', { id: this.id!, update: [{ key, row }] }));
  }

  /** Appends an empty row of the dataset's format and shows it (the last page, search cleared). */
  async addRow(): Promise<void> {
    const done = await this.change(() => api().request('datasets.edit', { id: this.id!, insert: [emptyRow(this.page?.summary.format, this.page?.columns ?? [])] }), false);
    if (!done) return;
    this.search = '';
    this.filter = 'all';
    const rows = this.details?.head.rowCount ?? 1;
    this.offset = Math.floor((rows - 1) / PAGE_SIZE) * PAGE_SIZE;
    await this.loadRows();
    this.activeKey = this.page?.rows.at(-1)?.key;
    await this.afterVersionChange();
  }

  async deleteRows(keys: readonly number[] = this.rowsToDelete): Promise<void> {
    if (keys.length === 0) return;
    const done = await this.change(() => api().request('datasets.edit', { id: this.id!, delete: [...keys] }));
    if (done) {
      this.selected = [];
      if (this.activeKey !== undefined && keys.includes(this.activeKey)) this.activeKey = undefined;
    }
  }

  undo(): Promise<boolean> {
    return this.change(() => api().request('datasets.undo', { id: this.id! }));
  }

  redo(): Promise<boolean> {
    return this.change(() => api().request('datasets.redo', { id: this.id! }));
  }

  checkout(versionId: number): Promise<boolean> {
    return this.change(() => api().request('datasets.checkout', { id: this.id!, versionId }));
  }

  toggleSelected(key: number): void {
    this.selected = this.selected.includes(key) ? this.selected.filter((k) => k !== key) : [...this.selected, key];
  }

  /** One version change: the head moves on the service, then the rows and what depends on them follow. */
  private async change(request: () => Promise<DatasetChange>, refresh = true): Promise<boolean> {
    if (this.id === undefined || this.changing) return false;
    this.changing = true;
    try {
      this.details = await request();
      this.tableError = undefined;
    } catch (err) {
      this.tableError = messageOf(err);
      return false;
    } finally {
      this.changing = false;
    }
    void this.refreshList();
    if (refresh) {
      await this.loadRows();
      await this.afterVersionChange();
    }
    return true;
  }

  /** The preview follows the active row; small datasets get their histogram and split recomputed at once. */
  private async afterVersionChange(): Promise<void> {
    const work: Promise<unknown>[] = [];
    if (this.activeKey !== undefined && this.model) work.push(this.showPreview(this.activeKey));
    if ((this.details?.head.rowCount ?? 0) <= AUTO_INSIGHTS_ROWS) {
      work.push(this.computeSplit());
      if (this.model) work.push(this.computeHistogram());
    }
    await Promise.all(work);
  }

  async select(key: number): Promise<void> {
    if (this.activeKey === key) return;
    this.activeKey = key;
    if (this.model) await this.showPreview(key);
  }

  /** Runs `start` on `task` now, or once more after the run in progress (whose answer is then already stale). */
  private async latest(task: { readonly running: boolean }, start: () => Promise<unknown>): Promise<void> {
    if (task.running) {
      this.pending.add(task);
      return;
    }
    await start();
    if (this.pending.delete(task)) await this.latest(task, start);
  }

  async showPreview(key?: number): Promise<void> {
    await this.latest(this.previewTask, async () => {
      const model = this.model;
      const row = key ?? this.activeKey;
      if (row === undefined || model === undefined || this.id === undefined) return;
      key = undefined; // a rerun previews the row active by then
      await this.previewTask.run({ id: this.id, key: row, model, trainOn: this.trainOn });
    });
  }

  async setTrainOn(trainOn: TrainOn): Promise<void> {
    this.trainOn = trainOn;
    await Promise.all([this.showPreview(), this.model ? this.computeHistogram() : undefined, this.model ? this.computeSplit() : undefined]);
  }

  async computeHistogram(): Promise<void> {
    await this.latest(this.histogramTask, async () => {
      const model = this.model;
      if (model === undefined || this.id === undefined) return;
      this.histogramProgress = undefined;
      await this.histogramTask.run({ id: this.id, model, trainOn: this.trainOn, maxLength: this.maxLength });
    });
  }

  /** Exactly training's split: with the open model over tokenized examples, else over the usable records. */
  async computeSplit(): Promise<void> {
    await this.latest(this.splitTask, async () => {
      if (this.id === undefined) return;
      this.splitProgress = undefined;
      const model = this.model;
      await this.splitTask.run({
        id: this.id,
        evalFraction: this.evalFraction,
        seed: this.seed,
        ...(model ? { model, trainOn: this.trainOn, maxLength: this.maxLength } : {}),
      });
    });
  }

  /** Stops a histogram or split in progress (the service stops between chunks of rows). */
  async cancel(task: { readonly running: boolean; error: string | undefined; cancel(): Promise<void> }): Promise<void> {
    this.pending.delete(task);
    try {
      await task.cancel();
    } catch (err) {
      task.error = messageOf(err);
    }
  }

  /**
   * JSON Lines of the head: to the typed path (on the service's machine), else a download in a browser, else (the
   * desktop app) to a folder picked in a dialog.
   */
  async exportJsonl(): Promise<DatasetExport | undefined> {
    if (this.id === undefined) return undefined;
    let path: string | null = this.exportPath.trim() || null;
    if (!path && api().host === 'electron') {
      path = await api().pickPath({ kind: 'folder', title: 'Export the dataset as JSON Lines into…' });
      if (!path) return undefined;
    }
    const result = await this.exportTask.run({ id: this.id, ...(path ? { path } : {}) });
    this.lastExport = result;
    if (result?.content !== undefined) download(result.fileName, result.content);
    return result;
  }

  async deleteDataset(id: number): Promise<void> {
    try {
      await api().request('datasets.delete', { id });
    } catch (err) {
      this.listError = messageOf(err);
      return;
    }
    if (this.id === id) {
      this.details = undefined;
      this.page = undefined;
      this.app.workspace.datasetId = undefined;
    }
    await this.refreshList();
  }

  /** Rows of the page with the given keys (for components that show a row's details). */
  rowOf(key: number | undefined): DatasetTableRow | undefined {
    return key === undefined ? undefined : this.page?.rows.find((r) => r.key === key);
  }
}

/** Offers `content` as a file download (browsers; a no-op where object URLs do not exist). */
const download = (fileName: string, content: string): void => {
  if (typeof URL.createObjectURL !== 'function') return;
  const url = URL.createObjectURL(new Blob([content], { type: 'application/jsonl' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
};

export const datasetsOf = (app: AppState): DatasetsState => app.area('datasets', (a) => new DatasetsState(a));
