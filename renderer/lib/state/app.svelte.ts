// The app shell's state: which view is open, what the service told about itself, and the workspace every view
// shares (the model in use and the dataset being worked on), so that opening a model in Models makes it the
// model Train, Datasets (template preview) and Chat use.
import { api, messageOf, type AppInfo, type ModelDescription } from '../api.ts';

export const VIEWS = [
  { id: 'models', label: 'Models', key: '1' },
  { id: 'datasets', label: 'Datasets', key: '2' },
  { id: 'train', label: 'Train', key: '3' },
  { id: 'runs', label: 'Runs', key: '4' },
  { id: 'sweeps', label: 'Sweeps', key: '5' },
  { id: 'adapters', label: 'Adapters', key: '6' },
  { id: 'chat', label: 'Chat', key: '7' },
] as const;
export type ViewId = (typeof VIEWS)[number]['id'];

export class Workspace {
  /** The model in use (opened in Models): its path and what models.describe said about it. */
  model = $state<ModelDescription | undefined>(undefined);
  /** The dataset being worked on (Datasets), by store id. */
  datasetId = $state<number | undefined>(undefined);
  /** A run to show in Runs (e.g. the one Train just started). */
  runId = $state<number | undefined>(undefined);
  /** Adapter folders to open in Chat (e.g. from Runs or Adapters). */
  chatAdapters = $state<string[]>([]);
}

export class AppState {
  view = $state<ViewId>('models');
  info = $state<AppInfo | undefined>(undefined);
  /** Why the service could not be reached, shown instead of the views. */
  connectionError = $state<string | undefined>(undefined);
  readonly workspace = new Workspace();
  private readonly areas = new Map<string, unknown>();

  async load(): Promise<void> {
    try {
      this.info = await api().request('app.info', {});
      this.connectionError = undefined;
    } catch (err) {
      this.connectionError = messageOf(err);
    }
  }

  /**
   * One state object per area (datasets, training, sweeps, chat, ...), made on first use and kept while the app
   * runs, so that a view left and opened again (or another view) finds its work as it was: a run still streaming.
   */
  area<T>(key: string, make: (app: AppState) => T): T {
    if (!this.areas.has(key)) this.areas.set(key, make(this));
    return this.areas.get(key) as T;
  }

  open(view: ViewId): void {
    this.view = view;
  }

  /** Ctrl/Cmd + 1…7 switch views. Returns whether the key was handled. */
  handleKey(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'altKey'>): boolean {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return false;
    const view = VIEWS.find((v) => v.key === e.key);
    if (!view) return false;
    this.open(view.id);
    return true;
  }
}
