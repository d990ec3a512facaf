// The Adapters view's state: the adapter library (trained and imported adapters) and a selection of it, which the
// actions use — import a PEFT folder, merge the selected adapters with weights, export one (a PEFT copy, a merged
// HF folder, a merged GGUF, a GGUF LoRA, an Ollama folder) and open the selection in Chat.
import type { Adapter, CombinationType, Model } from '../../../main/service/library-contract.ts';
import { api, messageOf } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { Task } from './task.svelte.ts';

export interface CombinationChoice {
  readonly id: CombinationType;
  readonly label: string;
  /** Which extra field the combination reads. */
  readonly uses?: 'density' | 'svdRank';
}

/** PEFT's add_weighted_adapter combination types, in the order the merge form lists them. */
export const COMBINATIONS: readonly CombinationChoice[] = [
  { id: 'cat', label: 'cat: exact Σ wᵢ·ΔWᵢ (rank adds up)' },
  { id: 'linear', label: 'linear: weighted average of A and B (same rank)' },
  { id: 'svd', label: 'svd: exact sum, truncated to a rank', uses: 'svdRank' },
  { id: 'ties', label: 'ties', uses: 'density' },
  { id: 'ties_svd', label: 'ties_svd', uses: 'density' },
  { id: 'dare_linear', label: 'dare_linear', uses: 'density' },
  { id: 'dare_ties', label: 'dare_ties', uses: 'density' },
  { id: 'dare_linear_svd', label: 'dare_linear_svd', uses: 'density' },
  { id: 'dare_ties_svd', label: 'dare_ties_svd', uses: 'density' },
  { id: 'magnitude_prune', label: 'magnitude_prune', uses: 'density' },
  { id: 'magnitude_prune_svd', label: 'magnitude_prune_svd', uses: 'density' },
];

export type ExportFormat = 'peft' | 'hf' | 'gguf' | 'gguf-lora' | 'ollama';
export type GgufType = 'f16' | 'q8_0' | 'f32';

export const EXPORT_FORMATS: readonly { readonly id: ExportFormat; readonly label: string; readonly suffix: string; readonly ggufTypes: readonly GgufType[] }[] = [
  { id: 'peft', label: 'PEFT adapter folder (a copy)', suffix: '-peft', ggufTypes: [] },
  { id: 'hf', label: 'Merged Hugging Face folder', suffix: '-merged', ggufTypes: [] },
  { id: 'gguf', label: 'Merged GGUF', suffix: '-merged.gguf', ggufTypes: ['f16', 'q8_0', 'f32'] },
  { id: 'gguf-lora', label: 'GGUF LoRA (llama.cpp --lora)', suffix: '-lora.gguf', ggufTypes: ['f32', 'f16'] },
  { id: 'ollama', label: 'Ollama folder (merged GGUF + Modelfile)', suffix: '-ollama', ggufTypes: ['f16', 'q8_0', 'f32'] },
];

/** The most adapters Chat shows side by side. */
export const MAX_CHAT_ADAPTERS = 4;

const isAbsolutePath = (p: string): boolean => p.startsWith('/') || p.startsWith('~') || /^[A-Za-z]:[\\/]/.test(p);
const withoutTrailingSlash = (p: string): string => p.replace(/[\\/]+$/, '');
const parentOf = (p: string): string => withoutTrailingSlash(p).replace(/[\\/][^\\/]*$/, '') || '/';

/** The rank an adapter's config gives (LoRA-like methods), else undefined. */
export const rankOf = (a: Adapter): number | undefined => (typeof a.config['r'] === 'number' ? a.config['r'] : undefined);

export class AdaptersState {
  adapters = $state<Adapter[]>([]);
  /** The model library, to find an adapter's base model on disk. */
  models = $state<Model[]>([]);
  listError = $state<string | undefined>(undefined);
  /** Selected adapter ids, in the order they were selected (the merge's and chat's order). */
  selected = $state<number[]>([]);
  /** Why an action could not start (nothing selected, too many for chat, no base model). */
  actionError = $state<string | undefined>(undefined);

  importPath = $state('');
  importName = $state('');
  readonly importing = new Task('adapters.import');

  /** Per selected adapter id, its weight as typed; default 1/n. */
  weights = $state<Record<number, string>>({});
  combination = $state<CombinationType>('cat');
  density = $state('0.5');
  svdRank = $state('');
  mergeOut = $state('');
  /** The base model for merge and export, as typed; empty: the selected adapter's base, else the workspace model. */
  baseModel = $state('');
  mergeStages = $state<string[]>([]);
  readonly merging = new Task('adapters.merge', (e) => {
    this.mergeStages = [...this.mergeStages, e.message];
  });

  exportFormat = $state<ExportFormat>('peft');
  ggufType = $state<GgufType | ''>('');
  exportOut = $state('');
  exportStages = $state<string[]>([]);
  readonly exporting = new Task('adapters.export', (e) => {
    this.exportStages = [...this.exportStages, e.message];
  });
  readonly copying = new Task('adapters.exportPeft');
  /** Which of the two export requests the last export was. */
  exportKind = $state<'copy' | 'merge'>('copy');

  readonly selection = $derived(this.selected.map((id) => this.adapters.find((a) => a.id === id)).filter((a): a is Adapter => a !== undefined));

  constructor(private readonly app: AppState) {}

  get exportTask(): Task<'adapters.export'> | Task<'adapters.exportPeft'> {
    return this.exportKind === 'copy' ? this.copying : this.exporting;
  }

  async load(): Promise<void> {
    try {
      const [adapters, models] = await Promise.all([api().request('adapters.list', {}), api().request('models.list', {})]);
      this.adapters = adapters;
      this.models = models;
      this.selected = this.selected.filter((id) => adapters.some((a) => a.id === id));
      this.listError = undefined;
    } catch (err) {
      this.listError = messageOf(err);
    }
  }

  isSelected(id: number): boolean {
    return this.selected.includes(id);
  }

  toggle(id: number): void {
    this.selected = this.isSelected(id) ? this.selected.filter((x) => x !== id) : [...this.selected, id];
    this.actionError = undefined;
  }

  /** Where an adapter's base model is on disk: its library entry, or the path its config names; else undefined. */
  basePathOf(a: Adapter): string | undefined {
    const inLibrary = this.models.find((m) => m.id === a.baseModelId) ?? this.models.find((m) => m.path === a.baseModel || m.name === a.baseModel);
    if (inLibrary) return inLibrary.path;
    return isAbsolutePath(a.baseModel) ? a.baseModel : undefined;
  }

  /** The base model merge and export use: as typed, else the first selected adapter's, else the workspace's. */
  get defaultBaseModel(): string | undefined {
    const first = this.selection[0];
    return (first && this.basePathOf(first)) ?? this.app.workspace.model?.path;
  }

  get mergeOutDefault(): string | undefined {
    const first = this.selection[0];
    return first && `${parentOf(first.path)}/merged-${this.selection.map((a) => a.id).join('-')}`;
  }

  get exportOutDefault(): string | undefined {
    const first = this.selection[0];
    const format = EXPORT_FORMATS.find((f) => f.id === this.exportFormat)!;
    return first && `${withoutTrailingSlash(first.path)}${format.suffix}`;
  }

  /** What the last export wrote. */
  get exportedPaths(): readonly string[] | undefined {
    if (this.exportKind === 'copy') return this.copying.result && [this.copying.result.dir];
    return this.exporting.result?.paths;
  }

  get canBrowse(): boolean {
    return api().host === 'electron';
  }

  setWeight(id: number, value: string): void {
    this.weights = { ...this.weights, [id]: value };
  }

  weightOf(id: number): string {
    return this.weights[id] ?? String(Number((1 / Math.max(1, this.selected.length)).toFixed(4)));
  }

  async importAdapter(): Promise<boolean> {
    const result = await this.importing.run({ path: this.importPath.trim(), ...(this.importName.trim() ? { name: this.importName.trim() } : {}) });
    if (!result) return false;
    this.importPath = '';
    this.importName = '';
    await this.load();
    this.selected = [result.adapter.id];
    return true;
  }

  /** The desktop app's folder dialog for the import path. */
  async browseImport(): Promise<void> {
    const picked = await api().pickPath({ kind: 'folder', title: 'Choose a PEFT adapter folder' });
    if (picked) this.importPath = picked;
  }

  private baseOrError(): string | undefined {
    const model = this.baseModel.trim() || this.defaultBaseModel;
    if (!model) this.actionError = 'Which base model were these adapters trained on? Type its path in "Base model", or open it in Models first.';
    return model;
  }

  async merge(): Promise<boolean> {
    this.actionError = undefined;
    const chosen = this.selection;
    if (chosen.length === 0) {
      this.actionError = 'Select the adapters to merge first (click their rows).';
      return false;
    }
    const model = this.baseOrError();
    if (!model) return false;
    const weights = chosen.map((a) => Number(this.weightOf(a.id)));
    const bad = chosen.findIndex((_, i) => !Number.isFinite(weights[i]));
    if (bad >= 0) {
      this.actionError = `The weight of ${chosen[bad]!.name} is not a number.`;
      return false;
    }
    const uses = COMBINATIONS.find((c) => c.id === this.combination)?.uses;
    this.mergeStages = [];
    const result = await this.merging.run({
      model,
      adapters: chosen.map((a) => a.path),
      weights,
      combination: this.combination,
      out: this.mergeOut.trim() || this.mergeOutDefault!,
      ...(uses === 'density' ? { density: Number(this.density) } : {}),
      ...(uses === 'svdRank' && this.svdRank.trim() ? { svdRank: Number(this.svdRank) } : {}),
    });
    if (!result) return false;
    this.mergeOut = '';
    await this.load();
    return true;
  }

  /** Exports the first selected adapter in the chosen format. */
  async exportSelected(): Promise<boolean> {
    this.actionError = undefined;
    const adapter = this.selection[0];
    if (!adapter) {
      this.actionError = 'Select the adapter to export first (click its row).';
      return false;
    }
    const out = this.exportOut.trim() || this.exportOutDefault!;
    this.exportStages = [];
    if (this.exportFormat === 'peft') {
      this.exportKind = 'copy';
      return (await this.copying.run({ adapter: adapter.path, out })) !== undefined;
    }
    const model = this.baseOrError();
    if (!model) return false;
    this.exportKind = 'merge';
    const format = EXPORT_FORMATS.find((f) => f.id === this.exportFormat)!;
    const ggufType = this.ggufType && format.ggufTypes.includes(this.ggufType) ? this.ggufType : undefined;
    const result = await this.exporting.run({ model, adapter: adapter.path, format: this.exportFormat, out, ...(ggufType ? { ggufType } : {}) });
    return result !== undefined;
  }

  /** The selection (at most 4) becomes Chat's adapters, on their base model, and Chat opens. */
  async openInChat(): Promise<boolean> {
    this.actionError = undefined;
    const chosen = this.selection;
    if (chosen.length === 0) {
      this.actionError = 'Select the adapters to chat with first (click their rows).';
      return false;
    }
    if (chosen.length > MAX_CHAT_ADAPTERS) {
      this.actionError = `Chat shows at most ${MAX_CHAT_ADAPTERS} adapters side by side; ${chosen.length} are selected.`;
      return false;
    }
    const base = this.basePathOf(chosen[0]!);
    if (base && this.app.workspace.model?.path !== base) {
      try {
        this.app.workspace.model = await api().request('models.describe', { path: base });
      } catch (err) {
        this.actionError = `The base model ${base} of ${chosen[0]!.name} does not open: ${messageOf(err)}`;
        return false;
      }
    }
    if (!this.app.workspace.model) {
      this.actionError = `The base model of ${chosen[0]!.name} (${chosen[0]!.baseModel}) is not on this machine: open it in Models first.`;
      return false;
    }
    this.app.workspace.chatAdapters = chosen.map((a) => a.path);
    this.app.open('chat');
    return true;
  }
}

/** The one AdaptersState of the app. */
export const adaptersState = (app: AppState): AdaptersState => app.area('adapters', (a) => new AdaptersState(a));
