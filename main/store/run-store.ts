// Training runs: created queued, then moved through their life cycle by the trainer. A run pins the model and
// the exact dataset version it trained on; its config is frozen once it leaves 'queued'.
import { checkText, found, page, type Clock } from './common.ts';
import { StoreError, translateConstraint } from './errors.ts';
import { fromJson, fromJsonOrNull, objectToJson, type JsonObject, type JsonValue } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';

export type RunStatus = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled';
export const RUN_STATUSES: readonly RunStatus[] = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'];
export const FINISHED_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

/** The life cycle: which status may follow which. Finished runs never change again. */
export const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  queued: ['running', 'cancelled', 'failed'],
  running: ['paused', 'completed', 'failed', 'cancelled'],
  paused: ['running', 'cancelled', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Where a run ran: enough to explain a difference in speed or numbers later. */
export type RunEnvironment = {
  /** onnxruntime-node version. */
  readonly ort: string;
  /** Execution provider actually used ('cpu', 'cuda', ...) and why it was chosen. */
  readonly provider: string;
  readonly threads: number;
  /** process.version. */
  readonly node: string;
  readonly [extra: string]: JsonValue;
};

export interface Run {
  readonly id: number;
  readonly name: string;
  /** PEFT method: 'lora', 'dora', 'vera', ... */
  readonly method: string;
  readonly modelId: number;
  readonly datasetVersionId: number;
  readonly config: JsonObject;
  readonly status: RunStatus;
  readonly environment: RunEnvironment | null;
  /** Why the run failed, or was interrupted; null otherwise. */
  readonly error: string | null;
  readonly createdAt: number;
  /** When it first started running (kept across pauses and resumes). */
  readonly startedAt: number | null;
  /** When it reached completed, failed or cancelled. */
  readonly finishedAt: number | null;
}

export interface NewRun {
  readonly name: string;
  readonly method: string;
  readonly modelId: number;
  readonly datasetVersionId: number;
  readonly config: JsonObject;
}

export interface RunFilter {
  readonly status?: RunStatus;
  readonly modelId?: number;
  readonly limit?: number;
  readonly offset?: number;
}

interface RunRow {
  id: number;
  name: string;
  method: string;
  model_id: number;
  dataset_version_id: number;
  config: string;
  status: RunStatus;
  environment: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

const toRun = (r: RunRow): Run => ({
  id: r.id,
  name: r.name,
  method: r.method,
  modelId: r.model_id,
  datasetVersionId: r.dataset_version_id,
  config: fromJson<JsonObject>(r.config, `config of run ${r.id}`),
  status: r.status,
  environment: fromJsonOrNull<RunEnvironment>(r.environment, `environment of run ${r.id}`),
  error: r.error,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/** Text stored as the error of runs found 'running' with no process behind them (see markInterrupted). */
export const INTERRUPTED = 'interrupted: the process ended while the run was running';

export class RunStore {
  private readonly byId;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {
    this.byId = db.prepare<[number], RunRow>('SELECT * FROM runs WHERE id = ?');
  }

  /** A new queued run. StoreError 'not-found' when the model or dataset version does not exist. */
  create(input: NewRun): Run {
    const config = objectToJson(input.config, 'run config');
    const row = translateConstraint(
      () =>
        this.db
          .prepare<[string, string, number, number, string, number], RunRow>(
            `INSERT INTO runs (name, method, model_id, dataset_version_id, config, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
          )
          .get(checkText(input.name, 'run name'), checkText(input.method, 'run method'), input.modelId, input.datasetVersionId, config, this.now()),
      { foreignKey: `run refers to model ${input.modelId} or dataset version ${input.datasetVersionId}, which does not exist` },
    );
    return toRun(found(row, 'the inserted run'));
  }

  get(id: number): Run {
    return toRun(found(this.byId.get(id), `run ${id}`));
  }

  find(id: number): Run | undefined {
    const row = this.byId.get(id);
    return row && toRun(row);
  }

  /** Newest first. */
  list(filter: RunFilter = {}): Run[] {
    const [limit, offset] = page(filter);
    return this.db
      .prepare<{ status: string | null; model: number | null; limit: number; offset: number }, RunRow>(
        `SELECT * FROM runs
          WHERE (:status IS NULL OR status = :status) AND (:model IS NULL OR model_id = :model)
          ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset`,
      )
      .all({ status: filter.status ?? null, model: filter.modelId ?? null, limit, offset })
      .map(toRun);
  }

  /** Renames, records the environment, or (only while queued) replaces the config. */
  update(id: number, patch: { name?: string; config?: JsonObject; environment?: RunEnvironment }): Run {
    const run = this.get(id);
    if (patch.config !== undefined && run.status !== 'queued') {
      throw new StoreError('invalid-transition', `run ${id} is ${run.status}: its config is frozen once it has started`);
    }
    this.db
      .prepare('UPDATE runs SET name = ?, config = ?, environment = ? WHERE id = ?')
      .run(
        patch.name === undefined ? run.name : checkText(patch.name, 'run name'),
        objectToJson(patch.config ?? run.config, 'run config'),
        patch.environment === undefined ? (run.environment && objectToJson(run.environment, 'run environment')) : objectToJson(patch.environment, 'run environment'),
        id,
      );
    return this.get(id);
  }

  /**
   * Moves a run to `status` if its life cycle allows (RUN_TRANSITIONS), else StoreError 'invalid-transition'.
   * Sets startedAt on the first start, finishedAt on finishing; `error` is stored with 'failed' (required) or
   * any other status (optional), and cleared when the run runs again.
   */
  setStatus(id: number, status: RunStatus, options: { error?: string; environment?: RunEnvironment } = {}): Run {
    return this.db.transaction(() => {
      const run = this.get(id);
      if (!RUN_TRANSITIONS[run.status].includes(status)) {
        throw new StoreError('invalid-transition', `run ${id} cannot go from ${run.status} to ${status}`);
      }
      if (status === 'failed' && !options.error) throw new StoreError('invalid-input', `run ${id}: a failed run needs its error text`);
      const t = this.now();
      const error = status === 'running' ? null : (options.error ?? run.error);
      const environment = options.environment === undefined ? null : objectToJson(options.environment, 'run environment');
      this.db
        .prepare(
          `UPDATE runs SET status = ?, error = ?, environment = COALESCE(?, environment),
                  started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ?`,
        )
        .run(status, error, environment, status === 'running' ? t : null, FINISHED_RUN_STATUSES.includes(status) ? t : null, id);
      return this.get(id);
    }).immediate();
  }

  start(id: number, environment: RunEnvironment): Run {
    return this.setStatus(id, 'running', { environment });
  }

  pause(id: number): Run {
    return this.setStatus(id, 'paused');
  }

  resume(id: number): Run {
    return this.setStatus(id, 'running');
  }

  complete(id: number): Run {
    return this.setStatus(id, 'completed');
  }

  fail(id: number, error: string): Run {
    return this.setStatus(id, 'failed', { error });
  }

  cancel(id: number): Run {
    return this.setStatus(id, 'cancelled');
  }

  /**
   * At app start no run can really be running: those marked 'running' lost their process (crash, kill, power).
   * They become 'paused' with error INTERRUPTED, so they can be resumed from their last checkpoint.
   * Returns their ids.
   */
  markInterrupted(): number[] {
    return this.db
      .prepare<[string], { id: number }>(`UPDATE runs SET status = 'paused', error = ? WHERE status = 'running' RETURNING id`)
      .all(INTERRUPTED)
      .map((r) => r.id)
      .sort((a, b) => a - b);
  }

  /**
   * Deletes a run with its metrics and checkpoint records. Adapters it produced stay (run link cleared), sweep
   * trials forget it. Returns the checkpoint folders that were recorded, for the caller to remove from disk.
   */
  delete(id: number): { checkpointPaths: string[] } {
    return this.db.transaction(() => {
      this.get(id);
      const checkpointPaths = this.db
        .prepare<[number], { path: string }>('SELECT path FROM checkpoints WHERE run_id = ? ORDER BY step')
        .all(id)
        .map((r) => r.path);
      this.db.prepare('DELETE FROM runs WHERE id = ?').run(id);
      return { checkpointPaths };
    })();
  }
}
