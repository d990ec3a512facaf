import { Worker } from 'node:worker_threads';
import type { Graph } from '../engine/ir/graph.ts';
import type { Batch, EngineEvent, RequestKind, RequestMap, TrainerSpec, WorkerMessage } from './engine-protocol.ts';
import type { TrainStepOptions } from '../engine/train-step.ts';

export class EngineWorkerError extends Error {
  constructor(
    message: string,
    readonly remoteName: string,
  ) {
    super(message);
    this.name = 'EngineWorkerError';
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onEvent?: (e: EngineEvent) => void;
}

/** Runs the engine in a worker_thread; every call is a typed request answered asynchronously. */
export class EngineWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: WorkerMessage) => this.receive(m));
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => this.failAll(new Error(`engine worker exited (code ${code})`)));
  }

  static start(): EngineWorker {
    const source = import.meta.url.endsWith('.ts');
    const entry = new URL(source ? './engine-worker.ts' : './engine-worker.js', import.meta.url);
    if (!source) return new EngineWorker(new Worker(entry));
    // From TypeScript sources (tests, dev) the worker registers the tsx loader before importing its entry.
    const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
    return new EngineWorker(new Worker(boot, { eval: true }));
  }

  async createTrainer(options: TrainStepOptions): Promise<RemoteTrainer> {
    const spec: TrainerSpec = { ...options, graph: (options.graph as Graph).toWire() };
    const { trainer, provider } = await this.request('createTrainer', { spec });
    return new RemoteTrainer(this, trainer, provider);
  }

  request<K extends RequestKind>(kind: K, args: RequestMap[K]['args'], onEvent?: (e: EngineEvent) => void): Promise<RequestMap[K]['result']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(onEvent ? { onEvent } : {}) });
      this.worker.postMessage({ id, kind, args });
    });
  }

  /** Stops the worker at once, even mid-run; pending calls reject. */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  private receive(m: WorkerMessage): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.kind === 'event') p.onEvent?.(m.event);
    else {
      this.pending.delete(m.id);
      if (m.kind === 'result') p.resolve(m.value);
      else p.reject(new EngineWorkerError(m.error.message, m.error.name));
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

export class RemoteTrainer {
  constructor(
    private readonly engine: EngineWorker,
    readonly id: number,
    readonly provider: RequestMap['createTrainer']['result']['provider'],
  ) {}

  step(batch: Batch): Promise<RequestMap['step']['result']> {
    return this.engine.request('step', { trainer: this.id, batch });
  }

  /** Trains `steps` steps in the worker; `cancel()` on the returned handle stops after the current step. */
  run(batches: readonly Batch[], steps: number, onStep: (e: EngineEvent) => void): { done: Promise<RequestMap['run']['result']>; cancel(): void } {
    const cancel = new SharedArrayBuffer(4);
    const done = this.engine.request('run', { trainer: this.id, batches, steps, cancel }, onStep);
    return { done, cancel: () => Atomics.store(new Int32Array(cancel), 0, 1) };
  }

  params(): Promise<RequestMap['params']['result']> {
    return this.engine.request('params', { trainer: this.id });
  }

  state(): Promise<RequestMap['state']['result']> {
    return this.engine.request('state', { trainer: this.id });
  }

  release(): Promise<null> {
    return this.engine.request('release', { trainer: this.id });
  }
}
