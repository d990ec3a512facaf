// Checkpoint records: where a run's checkpoint for a step lies on disk and how big it is. Writing the folder
// (atomically) is the trainer's job (main/train/checkpoint.ts); recording it here comes after the rename.
import { checkCount, checkText, found, type Clock } from './common.ts';
import { translateConstraint } from './errors.ts';
import type { SqliteDatabase } from './migrate.ts';

export interface Checkpoint {
  readonly id: number;
  readonly runId: number;
  readonly step: number;
  readonly path: string;
  readonly bytes: number;
  readonly createdAt: number;
}

export interface NewCheckpoint {
  readonly runId: number;
  readonly step: number;
  readonly path: string;
  readonly bytes: number;
}

interface CheckpointRow {
  id: number;
  run_id: number;
  step: number;
  path: string;
  bytes: number;
  created_at: number;
}

const toCheckpoint = (r: CheckpointRow): Checkpoint => ({
  id: r.id,
  runId: r.run_id,
  step: r.step,
  path: r.path,
  bytes: r.bytes,
  createdAt: r.created_at,
});

export class CheckpointStore {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {}

  /**
   * Records a checkpoint. A checkpoint for the same run and step replaces the old record (a resumed run that
   * writes that step again). StoreError 'not-found' when the run does not exist.
   */
  add(input: NewCheckpoint): Checkpoint {
    const row = translateConstraint(
      () =>
        this.db
          .prepare<[number, number, string, number, number], CheckpointRow>(
            `INSERT INTO checkpoints (run_id, step, path, bytes, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, created_at = excluded.created_at
             RETURNING *`,
          )
          .get(input.runId, checkCount(input.step, 'checkpoint step'), checkText(input.path, 'checkpoint path'), checkCount(input.bytes, 'checkpoint bytes'), this.now()),
      { foreignKey: `run ${input.runId} does not exist` },
    );
    return toCheckpoint(found(row, 'the inserted checkpoint'));
  }

  get(id: number): Checkpoint {
    return toCheckpoint(found(this.db.prepare<[number], CheckpointRow>('SELECT * FROM checkpoints WHERE id = ?').get(id), `checkpoint ${id}`));
  }

  /** A run's checkpoints by step. */
  list(runId: number): Checkpoint[] {
    return this.db.prepare<[number], CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId).map(toCheckpoint);
  }

  /** The run's checkpoint with the highest step: where a resume starts. */
  latest(runId: number): Checkpoint | undefined {
    const row = this.db.prepare<[number], CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1').get(runId);
    return row && toCheckpoint(row);
  }

  delete(id: number): Checkpoint {
    const checkpoint = this.get(id);
    this.db.prepare('DELETE FROM checkpoints WHERE id = ?').run(id);
    return checkpoint;
  }

  /** Keeps the run's `keep` newest checkpoints; returns the removed records (their folders are the caller's). */
  keepLatest(runId: number, keep: number): Checkpoint[] {
    checkCount(keep, 'checkpoints to keep');
    return this.db
      .prepare<[number, number, number], CheckpointRow>(
        `DELETE FROM checkpoints WHERE run_id = ? AND id NOT IN
           (SELECT id FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT ?) RETURNING *`,
      )
      .all(runId, runId, keep)
      .map(toCheckpoint)
      .sort((a, b) => a.step - b.step);
  }

  /** Total bytes of a run's checkpoints. */
  totalBytes(runId: number): number {
    return this.db.prepare<[number], { n: number }>('SELECT COALESCE(SUM(bytes), 0) AS n FROM checkpoints WHERE run_id = ?').get(runId)?.n ?? 0;
  }
}
