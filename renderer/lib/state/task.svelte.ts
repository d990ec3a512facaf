// One long request as the UI sees it: running or not, its latest events, its result or error, and how to stop it.
// Views bind to the fields; the state class that owns the task decides what its events mean.
import { api, messageOf, newRequestId, type ApiEvent, type ApiInput, type ApiMethod, type ApiResults } from '../api.ts';

export type TaskStatus = 'idle' | 'running' | 'done' | 'failed' | 'cancelled';

export class Task<M extends ApiMethod> {
  status = $state<TaskStatus>('idle');
  result = $state<ApiResults[M] | undefined>(undefined);
  error = $state<string | undefined>(undefined);
  /** The offending field for a rejected payload ('params.config.training.lr'), to show the error beside it. */
  errorField = $state<string | undefined>(undefined);
  requestId = $state<string | undefined>(undefined);
  private cancelRequested = false;

  constructor(
    readonly method: M,
    private readonly onEvent?: (event: ApiEvent<M>) => void,
  ) {}

  get running(): boolean {
    return this.status === 'running';
  }

  /** Starts the request; resolves with its result, or undefined when it failed or was cancelled (see error). */
  async run(params: ApiInput<M>): Promise<ApiResults[M] | undefined> {
    if (this.running) throw new Error(`${this.method} is already running`);
    const id = newRequestId(this.method);
    this.requestId = id;
    this.status = 'running';
    this.error = undefined;
    this.errorField = undefined;
    this.result = undefined;
    this.cancelRequested = false;
    try {
      const result = await api().request(this.method, params, { id, ...(this.onEvent ? { onEvent: this.onEvent } : {}) });
      this.result = result;
      this.status = this.cancelRequested ? 'cancelled' : 'done';
      return result;
    } catch (err) {
      this.error = messageOf(err);
      this.errorField = (err as { field?: string }).field;
      this.status = this.cancelRequested ? 'cancelled' : 'failed';
      return undefined;
    }
  }

  /** Asks the service to stop the request (training stops after its current step). */
  async cancel(): Promise<void> {
    if (!this.running || !this.requestId) return;
    this.cancelRequested = true;
    await api().request('jobs.cancel', { requestId: this.requestId });
  }

  /** Training only: finish the step, write a checkpoint, stop as paused. */
  async pause(): Promise<void> {
    if (!this.running || !this.requestId) return;
    await api().request('jobs.pause', { requestId: this.requestId });
  }

  reset(): void {
    if (this.running) return;
    this.status = 'idle';
    this.result = undefined;
    this.error = undefined;
    this.errorField = undefined;
  }
}
