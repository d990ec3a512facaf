// Sweeps (a grid or random search over r, alpha, lr, ...) and their trials. A sweep is created with all its
// trials; trials are updated as they run, are pruned, finish; one may be marked best.
import { checkCount, checkOneOf, checkText, found, type Clock } from './common.ts';
import { StoreError, translateConstraint } from './errors.ts';
import { fromJson, objectToJson, type JsonObject } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';
import { FINISHED_RUN_STATUSES, RUN_TRANSITIONS, type RunStatus } from './run-store.ts';

export type SweepMode = 'fused' | 'sequential';
export const SWEEP_MODES: readonly SweepMode[] = ['fused', 'sequential'];
/** A sweep has a run's life cycle (RUN_TRANSITIONS). */
export type SweepStatus = RunStatus;
export type TrialStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'pruned';
export const TRIAL_STATUSES: readonly TrialStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled', 'pruned'];
const FINISHED_TRIAL_STATUSES: readonly TrialStatus[] = ['completed', 'failed', 'cancelled', 'pruned'];

export interface Sweep {
  readonly id: number;
  readonly name: string;
  readonly mode: SweepMode;
  /** The search space and shared training config. */
  readonly config: JsonObject;
  readonly status: SweepStatus;
  readonly error: string | null;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

export interface Trial {
  readonly id: number;
  readonly sweepId: number;
  /** 0, 1, 2, ... in the order the sweep lists them. */
  readonly ordinal: number;
  /** This trial's point in the search space, e.g. { r: 8, alpha: 16 }. */
  readonly params: JsonObject;
  readonly status: TrialStatus;
  /** The run that holds its metrics and checkpoints, once it has one. */
  readonly runId: number | null;
  /** The value the sweep minimizes (eval loss), once known. */
  readonly objective: number | null;
  readonly prunedAtStep: number | null;
  readonly isBest: boolean;
  readonly createdAt: number;
  readonly finishedAt: number | null;
}

export interface NewSweep {
  readonly name: string;
  readonly mode: SweepMode;
  readonly config: JsonObject;
  /** Every trial's params, in order. */
  readonly trials: readonly JsonObject[];
}

export interface TrialPatch {
  readonly status?: TrialStatus;
  readonly runId?: number;
  readonly objective?: number;
  readonly prunedAtStep?: number;
}

interface SweepRow {
  id: number;
  name: string;
  mode: SweepMode;
  config: string;
  status: SweepStatus;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

interface TrialRow {
  id: number;
  sweep_id: number;
  ordinal: number;
  params: string;
  status: TrialStatus;
  run_id: number | null;
  objective: number | null;
  pruned_at_step: number | null;
  is_best: 0 | 1;
  created_at: number;
  finished_at: number | null;
}

const toSweep = (r: SweepRow): Sweep => ({
  id: r.id,
  name: r.name,
  mode: r.mode,
  config: fromJson<JsonObject>(r.config, `config of sweep ${r.id}`),
  status: r.status,
  error: r.error,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

const toTrial = (r: TrialRow): Trial => ({
  id: r.id,
  sweepId: r.sweep_id,
  ordinal: r.ordinal,
  params: fromJson<JsonObject>(r.params, `params of trial ${r.id}`),
  status: r.status,
  runId: r.run_id,
  objective: r.objective,
  prunedAtStep: r.pruned_at_step,
  isBest: r.is_best === 1,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
});

export class SweepStore {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {}

  /** A queued sweep with its queued trials, in one transaction. */
  create(input: NewSweep): { sweep: Sweep; trials: Trial[] } {
    checkOneOf(input.mode, SWEEP_MODES, 'sweep mode');
    if (input.trials.length === 0) throw new StoreError('invalid-input', 'a sweep needs at least one trial');
    const config = objectToJson(input.config, 'sweep config');
    const params = input.trials.map((p, i) => objectToJson(p, `params of trial ${i}`));
    return this.db.transaction(() => {
      const t = this.now();
      const sweep = found(
        this.db
          .prepare<[string, string, string, number], SweepRow>('INSERT INTO sweeps (name, mode, config, created_at) VALUES (?, ?, ?, ?) RETURNING *')
          .get(checkText(input.name, 'sweep name'), input.mode, config, t),
        'the inserted sweep',
      );
      const insert = this.db.prepare('INSERT INTO trials (sweep_id, ordinal, params, created_at) VALUES (?, ?, ?, ?)');
      params.forEach((p, i) => insert.run(sweep.id, i, p, t));
      return { sweep: toSweep(sweep), trials: this.trials(sweep.id) };
    })();
  }

  get(id: number): Sweep {
    return toSweep(found(this.db.prepare<[number], SweepRow>('SELECT * FROM sweeps WHERE id = ?').get(id), `sweep ${id}`));
  }

  /** Newest first. */
  list(): Sweep[] {
    return this.db.prepare<[], SweepRow>('SELECT * FROM sweeps ORDER BY created_at DESC, id DESC').all().map(toSweep);
  }

  /** Moves the sweep through the run life cycle (RUN_TRANSITIONS); StoreError 'invalid-transition' otherwise. */
  setStatus(id: number, status: SweepStatus, error?: string): Sweep {
    return this.db.transaction(() => {
      const sweep = this.get(id);
      if (!RUN_TRANSITIONS[sweep.status].includes(status)) {
        throw new StoreError('invalid-transition', `sweep ${id} cannot go from ${sweep.status} to ${status}`);
      }
      const t = this.now();
      this.db
        .prepare('UPDATE sweeps SET status = ?, error = ?, started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ?')
        .run(status, error ?? null, status === 'running' ? t : null, FINISHED_RUN_STATUSES.includes(status) ? t : null, id);
      return this.get(id);
    })();
  }

  trial(id: number): Trial {
    return toTrial(found(this.db.prepare<[number], TrialRow>('SELECT * FROM trials WHERE id = ?').get(id), `trial ${id}`));
  }

  /** A sweep's trials by ordinal. */
  trials(sweepId: number): Trial[] {
    return this.db.prepare<[number], TrialRow>('SELECT * FROM trials WHERE sweep_id = ? ORDER BY ordinal').all(sweepId).map(toTrial);
  }

  /** Updates a trial; a finished trial (completed, failed, cancelled, pruned) accepts only its objective. */
  updateTrial(id: number, patch: TrialPatch): Trial {
    return this.db.transaction(() => {
      const trial = this.trial(id);
      const finished = FINISHED_TRIAL_STATUSES.includes(trial.status);
      if (patch.status !== undefined) {
        checkOneOf(patch.status, TRIAL_STATUSES, 'trial status');
        if (finished && patch.status !== trial.status) {
          throw new StoreError('invalid-transition', `trial ${id} is ${trial.status}: it cannot become ${patch.status}`);
        }
      }
      if (patch.objective !== undefined && !Number.isFinite(patch.objective)) {
        throw new StoreError('invalid-input', `trial ${id}: objective must be finite, got ${patch.objective}`);
      }
      const status = patch.status ?? trial.status;
      const finishing = !finished && FINISHED_TRIAL_STATUSES.includes(status);
      translateConstraint(
        () =>
          this.db
            .prepare('UPDATE trials SET status = ?, run_id = ?, objective = ?, pruned_at_step = ?, finished_at = ? WHERE id = ?')
            .run(
              status,
              patch.runId ?? trial.runId,
              patch.objective ?? trial.objective,
              patch.prunedAtStep === undefined ? trial.prunedAtStep : checkCount(patch.prunedAtStep, 'pruned-at step'),
              finishing ? this.now() : trial.finishedAt,
              id,
            ),
        { foreignKey: `run ${patch.runId} does not exist` },
      );
      return this.trial(id);
    })();
  }

  /** Marks one trial as its sweep's best (and no other). */
  markBest(trialId: number): Trial {
    return this.db.transaction(() => {
      const trial = this.trial(trialId);
      this.db.prepare('UPDATE trials SET is_best = 0 WHERE sweep_id = ? AND is_best = 1').run(trial.sweepId);
      this.db.prepare('UPDATE trials SET is_best = 1 WHERE id = ?').run(trialId);
      return this.trial(trialId);
    })();
  }

  best(sweepId: number): Trial | undefined {
    const row = this.db.prepare<[number], TrialRow>('SELECT * FROM trials WHERE sweep_id = ? AND is_best = 1').get(sweepId);
    return row && toTrial(row);
  }

  /** Deletes a sweep and its trials; the trials' runs stay (delete them through RunStore). */
  delete(id: number): void {
    this.get(id);
    this.db.prepare('DELETE FROM sweeps WHERE id = ?').run(id);
  }
}
