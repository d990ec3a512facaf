// The Models view's state: the path being opened (typed, picked in a dialog, or dropped), the model library's
// recently opened models, a Hub download with its per-file progress, and the model shown — which opening makes the
// workspace's model, the one Datasets, Train and Chat use.
import type { Model, ModelDownloadEvent } from '../../../main/service/library-contract.ts';
import { api, messageOf, type ModelDescription } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { Task } from './task.svelte.ts';

export interface FileProgress {
  readonly file: string;
  readonly received: number;
  readonly total: number | null;
}

/** When a library entry was last opened (models.open keeps it in metadata.openedAt), else when it was added. */
export const openedAt = (m: Model): number => {
  const at = m.metadata?.['openedAt'];
  return typeof at === 'number' ? at : m.addedAt;
};

/** Text fields split on commas and whitespace (include patterns). */
const listOf = (text: string): string[] => text.split(/[\s,]+/).filter(Boolean);

export class ModelsState {
  /** The path field: an HF model folder or a .gguf file. */
  path = $state('');
  /** The model library (models.list), newest first by when it was opened. */
  library = $state<Model[]>([]);
  libraryError = $state<string | undefined>(undefined);
  /** The model the card shows: the last one opened or downloaded. */
  shown = $state<ModelDescription | undefined>(undefined);
  /** What to do after a drop that gave no path (a browser never tells where a file is). */
  dropNote = $state<string | undefined>(undefined);

  repo = $state('');
  revision = $state('');
  /** Hub allow-patterns, comma or space separated (e.g. one .gguf file of a GGUF repo). */
  include = $state('');
  downloadFiles = $state<FileProgress[]>([]);
  downloadStage = $state<string | undefined>(undefined);

  readonly opening = new Task('models.open');
  readonly downloading = new Task('models.download', (e) => this.onDownloadEvent(e));

  readonly recent = $derived([...this.library].sort((a, b) => openedAt(b) - openedAt(a)));

  constructor(private readonly app: AppState) {
    this.shown = app.workspace.model;
    if (this.shown) this.path = this.shown.path;
  }

  /** Whether the shown model is the workspace's. */
  get inUse(): boolean {
    return this.shown !== undefined && this.app.workspace.model?.path === this.shown.path;
  }

  get inUsePath(): string | undefined {
    return this.app.workspace.model?.path;
  }

  /** A native open dialog exists in the desktop app only. */
  get canBrowse(): boolean {
    return api().host === 'electron';
  }

  /** The download's fraction done, once every file's size is known; undefined before (an indeterminate bar). */
  get downloadFraction(): number | undefined {
    const files = this.downloadFiles;
    if (files.length === 0 || files.some((f) => f.total === null)) return undefined;
    const total = files.reduce((n, f) => n + (f.total ?? 0), 0);
    return total === 0 ? 1 : files.reduce((n, f) => n + f.received, 0) / total;
  }

  get downloadedBytes(): number {
    return this.downloadFiles.reduce((n, f) => n + f.received, 0);
  }

  async load(): Promise<void> {
    try {
      this.library = await api().request('models.list', {});
      this.libraryError = undefined;
    } catch (err) {
      this.libraryError = messageOf(err);
    }
  }

  /** Opens (describes and records) the model at `path`, shows it and makes it the workspace's model. */
  async open(path: string = this.path): Promise<boolean> {
    this.path = path.trim();
    this.dropNote = undefined;
    const result = await this.opening.run({ path: this.path });
    if (!result) return false;
    this.path = result.description.path;
    this.use(result.description);
    await this.load();
    return true;
  }

  use(description: ModelDescription): void {
    this.shown = description;
    this.app.workspace.model = description;
  }

  /** The desktop app's open dialog; nothing happens when it is cancelled (or in a browser, which has none). */
  async browse(kind: 'folder' | 'file'): Promise<void> {
    const picked = await api().pickPath(
      kind === 'file'
        ? { kind, title: 'Open a GGUF model file', filters: [{ name: 'GGUF', extensions: ['gguf'] }] }
        : { kind, title: 'Open a Hugging Face model folder' },
    );
    if (picked) await this.open(picked);
  }

  /** A file or folder dropped on the view: opened where its path is known (desktop), else the user is told what to do. */
  async drop(files: readonly File[]): Promise<void> {
    const file = files[0];
    if (!file) return;
    const path = api().pathForFile(file);
    if (path === null) {
      this.dropNote = `This browser does not tell where "${file.name}" is on disk: type its path (a model folder or a .gguf file) in the field above and press Open.`;
      return;
    }
    await this.open(path);
  }

  async download(): Promise<boolean> {
    this.downloadFiles = [];
    this.downloadStage = undefined;
    const include = listOf(this.include);
    const result = await this.downloading.run({
      repo: this.repo.trim(),
      ...(this.revision.trim() ? { revision: this.revision.trim() } : {}),
      ...(include.length ? { include } : {}),
    });
    if (!result) return false;
    this.path = result.description.path;
    this.use(result.description);
    await this.load();
    return true;
  }

  cancelDownload(): Promise<void> {
    return this.downloading.cancel();
  }

  private onDownloadEvent(e: ModelDownloadEvent): void {
    if (e.type === 'stage') {
      this.downloadStage = e.message;
      return;
    }
    const at = this.downloadFiles.findIndex((f) => f.file === e.file);
    const entry = { file: e.file, received: e.received, total: e.total };
    this.downloadFiles = at < 0 ? [...this.downloadFiles, entry] : this.downloadFiles.map((f, i) => (i === at ? entry : f));
  }
}

/** The one ModelsState of the app (kept while other views are open, so a download goes on). */
export const modelsState = (app: AppState): ModelsState => app.area('models', (a) => new ModelsState(a));
