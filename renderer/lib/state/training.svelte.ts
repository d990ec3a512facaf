// The Train view's state, kept in app.area('training') so a run keeps streaming while other views are open: the
// form (method, its fields, training and dataset blocks, run name and output folder), the estimate before starting,
// and the run itself — one train.start Task whose events feed the live curves, paused, cancelled and resumed here.
import { baseName, fieldKeyOf, fieldMessage, joinPath, type MethodCatalog, type MethodInfo } from '../../components/train/config-form.ts';
import { FormBlock } from '../../components/train/form-block.svelte.ts';
import { api, messageOf, type ApiEvent, type ApiInput, type ApiResults } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { Task } from './task.svelte.ts';

export type RunConfigInput = ApiInput<'train.start'>['config'];
type Dataset = ApiResults['datasets.list'][number];
type RunEstimate = ApiResults['estimate.run'];
type RunEvent = ApiEvent<'train.start'>;

export interface Point {
  readonly x: number;
  readonly y: number;
}

export type TrainStatus = 'idle' | 'starting' | 'running' | 'pausing' | 'paused' | 'cancelling' | 'cancelled' | 'completed' | 'early-stopped' | 'failed';

/** The dataset select's value for "a file on disk" (its path typed or picked). */
export const DATASET_FILE = 'file';
/** Stand-ins for an estimate before a dataset or output is chosen: estimate.run reads neither. */
const ESTIMATE_DATASET = 'dataset.jsonl';
const ESTIMATE_OUTPUT = 'estimate-output';
const ESTIMATE_DEBOUNCE_MS = 600;
const MAX_MESSAGES = 50;

const stamp = (d = new Date()): string => {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
};

export class TrainingState {
  catalog = $state<MethodCatalog | undefined>(undefined);
  loadError = $state<string | undefined>(undefined);
  methodType = $state('LORA');
  training = $state<FormBlock | undefined>(undefined);
  datasetBlock = $state<FormBlock | undefined>(undefined);
  datasets = $state<Dataset[]>([]);
  /** 'ds:<id>' for a dataset of the library, DATASET_FILE for a typed path, '' when none is chosen. */
  datasetChoice = $state('');
  datasetPath = $state('');
  typedName = $state<string | undefined>(undefined);
  typedOutput = $state<string | undefined>(undefined);
  private nameStamp = $state(stamp());
  /** Made once the catalog is in (load); not reactive itself, each form is. */
  private readonly methodForms = new Map<string, FormBlock>();

  /** The live run: its curves (x = step) and progress. */
  loss = $state<Point[]>([]);
  evalLoss = $state<Point[]>([]);
  lr = $state<Point[]>([]);
  gradNorm = $state<Point[]>([]);
  step = $state(0);
  totalSteps = $state<number | undefined>(undefined);
  etaSeconds = $state<number | undefined>(undefined);
  tokensPerSecond = $state<number | undefined>(undefined);
  messages = $state<string[]>([]);
  runId = $state<number | undefined>(undefined);
  /** Inputs that do not read as their kind, and a request's error mapped to its field: key 'training.lr', 'method.r', ... */
  inputErrors = $state<Record<string, string>>({});
  requestError = $state<string | undefined>(undefined);
  private pauseRequested = $state(false);
  private cancelRequested = $state(false);
  /** The config the run was started with: a resume sends it again with the run's id. */
  private lastConfig: RunConfigInput | undefined;

  estimate = $state<RunEstimate | undefined>(undefined);
  estimateError = $state<string | undefined>(undefined);
  estimating = $state(false);
  private estimateTimer: ReturnType<typeof setTimeout> | undefined;
  private estimateSeq = 0;

  readonly task: Task<'train.start'>;

  constructor(private readonly app: AppState) {
    this.task = new Task('train.start', (e) => this.onEvent(e));
  }

  async load(): Promise<void> {
    try {
      if (!this.app.info) await this.app.load();
      const [catalog, datasets] = await Promise.all([api().request('methods.list', {}), api().request('datasets.list', {})]);
      for (const m of catalog.methods) if (!this.methodForms.has(m.peftType)) this.methodForms.set(m.peftType, new FormBlock(m.fields, 'changed'));
      this.catalog = catalog;
      this.training ??= new FormBlock(catalog.training, 'all');
      this.datasetBlock ??= new FormBlock(catalog.dataset, 'all');
      this.datasets = datasets;
      // Pick the workspace's dataset (or the first) unless the user chose one that still exists or typed a path.
      const chosen = datasets.some((d) => `ds:${d.id}` === this.datasetChoice) || (this.datasetChoice === DATASET_FILE && this.datasetPath.trim() !== '');
      if (!chosen) {
        const wanted = datasets.find((d) => d.id === this.app.workspace.datasetId) ?? datasets[0];
        this.datasetChoice = wanted ? `ds:${wanted.id}` : DATASET_FILE;
      }
      this.loadError = undefined;
    } catch (err) {
      this.loadError = messageOf(err);
    }
  }

  get method(): MethodInfo | undefined {
    return this.catalog?.methods.find((m) => m.peftType === this.methodType);
  }

  /** The chosen method's form; each method keeps its own, so switching methods back and forth keeps the edits. */
  get methodForm(): FormBlock | undefined {
    return this.methodForms.get(this.methodType);
  }

  get runName(): string {
    return this.typedName ?? `${this.methodType.toLowerCase().replaceAll('_', '-')}-${this.nameStamp}`;
  }

  get outputDir(): string {
    if (this.typedOutput !== undefined) return this.typedOutput;
    const dataDir = this.app.info?.dataDir;
    return dataDir && dataDir !== ':memory:' ? joinPath(dataDir, 'adapters', this.runName) : '';
  }

  get status(): TrainStatus {
    const t = this.task;
    if (t.status === 'running') {
      if (this.cancelRequested) return 'cancelling';
      if (this.pauseRequested) return 'pausing';
      return this.step > 0 ? 'running' : 'starting';
    }
    if (t.result) return t.result.status;
    if (t.status === 'cancelled') return 'cancelled';
    if (t.status === 'failed') return 'failed';
    return 'idle';
  }

  get running(): boolean {
    return this.task.running;
  }

  /** A paused run (here, or one picked in Runs) continues from its newest checkpoint. */
  get canResume(): boolean {
    return !this.running && this.lastConfig !== undefined && this.runId !== undefined && this.status === 'paused';
  }

  /** Why Start cannot be pressed, or undefined. */
  get blocker(): string | undefined {
    if (!this.app.workspace.model) return 'Open a model in Models first.';
    if (!this.catalog) return this.loadError ?? 'Loading the methods…';
    if (this.method && !this.method.trainable) return `${this.method.label} cannot be trained from a run config yet; pick another method.`;
    if (this.running) return 'A run is in progress.';
    return undefined;
  }

  /** The run config the form describes, or the fields that do not read (keyed 'training.lr', ...). */
  buildConfig(datasetPath: string, output: string): { config?: RunConfigInput; errors: Record<string, string> } {
    const errors: Record<string, string> = {};
    const model = this.app.workspace.model;
    const method = this.method;
    if (!model || !method || !this.training || !this.datasetBlock || !this.methodForm) return { errors: { model: 'Open a model in Models first.' } };
    const read = (prefix: string, form: FormBlock) => {
      const r = form.read();
      for (const [k, v] of Object.entries(r.errors)) errors[`${prefix}.${k}`] = v;
      return r.block;
    };
    const methodBlock: Record<string, unknown> = { ...read('method', this.methodForm), peft_type: method.peftType };
    const training = read('training', this.training);
    const datasetFields = read('dataset', this.datasetBlock);
    if (!datasetPath) errors['dataset.path'] = 'Choose a dataset, or type the path of a dataset file.';
    if (!output) errors.output = 'Give the folder the adapter is written to.';
    if (method.peftType === 'ADAPTER_FUSION' && Array.isArray(methodBlock.adapter_paths)) {
      // The form lists folders; the config names each fused adapter (after its folder) and maps the names to them.
      const folders = methodBlock.adapter_paths as string[];
      methodBlock.adapters = folders.map(baseName);
      methodBlock.adapter_paths = Object.fromEntries(folders.map((f) => [baseName(f), f]));
    }
    if (method.peftType === 'PROMPT_TUNING' && methodBlock.prompt_tuning_init === 'TEXT' && methodBlock.tokenizer_name_or_path === undefined) {
      methodBlock.tokenizer_name_or_path = model.path;
    }
    if (Object.keys(errors).length > 0) return { errors };
    const config = { name: this.runName, model: model.path, dataset: { ...datasetFields, path: datasetPath }, method: methodBlock, training, output } as RunConfigInput;
    return { config, errors };
  }

  /** The dataset's file: a library dataset written out by datasets.file, or the typed path. */
  private async resolveDatasetPath(): Promise<string | undefined> {
    if (this.datasetChoice === DATASET_FILE) return this.datasetPath.trim();
    const id = Number(this.datasetChoice.replace(/^ds:/, ''));
    if (!Number.isInteger(id) || id <= 0) return '';
    try {
      return (await api().request('datasets.file', { id })).path;
    } catch (err) {
      this.inputErrors = { 'dataset.path': `${messageOf(err)} — or choose "A file on disk" and type its path.` };
      return undefined;
    }
  }

  async start(): Promise<void> {
    if (this.blocker) return;
    this.requestError = undefined;
    this.inputErrors = {};
    const datasetPath = await this.resolveDatasetPath();
    if (datasetPath === undefined) return;
    const { config, errors } = this.buildConfig(datasetPath, this.outputDir);
    if (!config) {
      this.inputErrors = errors;
      return;
    }
    this.clearLive();
    this.runId = undefined;
    this.lastConfig = config;
    await this.runTask({ config });
    // The next run gets a fresh default name (and so its own output folder).
    if (this.typedName === undefined) this.nameStamp = stamp();
  }

  /** Continues the paused run from its newest checkpoint (train.start with resume and the run's id). */
  async resume(): Promise<void> {
    if (!this.canResume || !this.lastConfig || this.runId === undefined) return;
    await this.runTask({ config: this.lastConfig, resume: true, runId: this.runId });
  }

  /** Continues a paused or interrupted run from the history (Runs), with the config it was started with. */
  async resumeRun(run: { readonly id: number; readonly config: unknown }): Promise<void> {
    if (this.running) return;
    this.clearLive();
    this.lastConfig = run.config as RunConfigInput;
    this.runId = run.id;
    this.app.workspace.runId = run.id;
    await this.runTask({ config: this.lastConfig, resume: true, runId: run.id });
  }

  async pause(): Promise<void> {
    if (!this.running) return;
    this.pauseRequested = true;
    await this.task.pause();
  }

  async cancel(): Promise<void> {
    if (!this.running) return;
    this.cancelRequested = true;
    await this.task.cancel();
  }

  private async runTask(params: ApiInput<'train.start'>): Promise<void> {
    this.pauseRequested = false;
    this.cancelRequested = false;
    this.requestError = undefined;
    const result = await this.task.run(params);
    if (result) {
      this.runId = result.runId;
      this.app.workspace.runId = result.runId;
      return;
    }
    if (this.task.error === undefined) return;
    const config = params.config;
    const key = fieldKeyOf({ field: this.task.errorField, message: this.task.error }, { model: config.model, dataset: config.dataset.path, output: config.output });
    if (key) this.inputErrors = { [key]: fieldMessage(this.task.error) };
    else this.requestError = this.task.error;
  }

  private clearLive(): void {
    this.loss = [];
    this.evalLoss = [];
    this.lr = [];
    this.gradNorm = [];
    this.step = 0;
    this.totalSteps = undefined;
    this.etaSeconds = undefined;
    this.tokensPerSecond = undefined;
    this.messages = [];
  }

  private onEvent(e: RunEvent): void {
    switch (e.type) {
      case 'run':
        if (this.runId !== e.runId) {
          this.runId = e.runId;
          this.app.workspace.runId = e.runId;
        }
        this.messages.push(e.message);
        if (this.messages.length > MAX_MESSAGES) this.messages.shift();
        break;
      case 'step':
        this.step = e.step;
        this.totalSteps = e.totalSteps;
        this.etaSeconds = e.etaSeconds;
        this.tokensPerSecond = e.tokensPerSecond;
        this.loss.push({ x: e.step, y: e.loss });
        this.lr.push({ x: e.step, y: e.lr });
        this.gradNorm.push({ x: e.step, y: e.gradNorm });
        break;
      case 'eval':
        this.evalLoss.push({ x: e.step, y: e.loss });
        break;
      case 'resumed': {
        // The run continues from its checkpoint: steps logged past it are trained again.
        const keep = (points: Point[]) => points.filter((p) => p.x <= e.step);
        this.loss = keep(this.loss);
        this.evalLoss = keep(this.evalLoss);
        this.lr = keep(this.lr);
        this.gradNorm = keep(this.gradNorm);
        this.step = e.step;
        break;
      }
      case 'checkpoint':
        break;
    }
  }

  /** The config estimate.run sees for the form as it is (stand-ins for the dataset and output), or undefined. */
  get estimateConfig(): RunConfigInput | undefined {
    if (!this.app.workspace.model || !this.method?.trainable) return undefined;
    const typed = this.datasetChoice === DATASET_FILE ? this.datasetPath.trim() : '';
    return this.buildConfig(typed || ESTIMATE_DATASET, this.outputDir || ESTIMATE_OUTPUT).config;
  }

  /** Asks for a new estimate once the form has been still for a moment; an older answer arriving late is dropped. */
  scheduleEstimate(config: RunConfigInput | undefined): void {
    clearTimeout(this.estimateTimer);
    if (!config) return;
    this.estimateTimer = setTimeout(() => void this.runEstimate(config), ESTIMATE_DEBOUNCE_MS);
  }

  async runEstimate(config: RunConfigInput): Promise<void> {
    const seq = ++this.estimateSeq;
    this.estimating = true;
    try {
      const estimate = await api().request('estimate.run', { config });
      if (seq !== this.estimateSeq) return;
      this.estimate = estimate;
      this.estimateError = undefined;
    } catch (err) {
      if (seq !== this.estimateSeq) return;
      this.estimate = undefined;
      this.estimateError = messageOf(err);
    } finally {
      if (seq === this.estimateSeq) this.estimating = false;
    }
  }

  /** The field an estimate's error names (a bad rank shows beside the rank before anything starts). */
  get estimateErrorField(): string | undefined {
    return this.estimateError === undefined ? undefined : fieldKeyOf({ message: this.estimateError }, {});
  }

  dispose(): void {
    clearTimeout(this.estimateTimer);
  }
}
