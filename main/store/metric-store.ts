// Metrics: (run, name, step) → value. Writing the same (run, name, step) again replaces the value (a resumed run
// re-logs the steps after its checkpoint). NaN is stored as NULL and read back as NaN; ±Infinity round-trip.
// Training code should write through MetricsWriter (metrics-writer.ts), which batches; this is the table.
import { checkCount, checkText, type Clock } from './common.ts';
import { StoreError, translateConstraint } from './errors.ts';
import type { SqliteDatabase } from './migrate.ts';

export interface MetricPoint {
  readonly runId: number;
  /** 'train/loss', 'eval/loss', 'lr', 'grad_norm', 'tok_per_s', ... */
  readonly name: string;
  readonly step: number;
  readonly value: number;
  /** Wall-clock ms; defaults to the time it is written. */
  readonly time?: number;
}

export interface MetricSample {
  readonly step: number;
  readonly value: number;
  readonly time: number;
}

export interface SeriesOptions {
  readonly fromStep?: number;
  readonly toStep?: number;
  /**
   * At most about this many samples, evenly spaced over the range (for charts of long runs); the last sample is
   * always included.
   */
  readonly maxPoints?: number;
}

const toNumber = (value: number | null): number => (value === null ? Number.NaN : value);

export class MetricStore {
  private readonly insert;
  private readonly writeMany;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {
    this.insert = db.prepare<[number, string, number, number, number]>(
      'INSERT OR REPLACE INTO metrics (run_id, name, step, value, time) VALUES (?, ?, ?, ?, ?)',
    );
    this.writeMany = db.transaction((points: readonly MetricPoint[], time: number) => {
      for (const p of points) this.insert.run(p.runId, p.name, p.step, p.value, p.time ?? time);
    });
  }

  /** Checks a point before it is queued or written (the writer checks at append, not at flush). */
  static check(point: MetricPoint): void {
    checkText(point.name, 'metric name');
    checkCount(point.step, `step of metric ${point.name}`);
    if (typeof point.value !== 'number') throw new StoreError('invalid-input', `metric ${point.name} value must be a number`);
  }

  /**
   * Writes points in ONE transaction. StoreError 'not-found' when a run does not exist (nothing is written).
   * `busyTimeoutMs` overrides the connection's busy timeout for this write only: how long to wait for another
   * connection's write lock before giving up with SQLITE_BUSY.
   */
  append(points: readonly MetricPoint[], options: { busyTimeoutMs?: number } = {}): void {
    for (const p of points) MetricStore.check(p);
    const write = () =>
      translateConstraint(() => this.writeMany.immediate(points, this.now()), {
        foreignKey: `metrics refer to a run that does not exist (runs ${[...new Set(points.map((p) => p.runId))].join(', ')})`,
      });
    if (options.busyTimeoutMs === undefined) return write();
    const saved = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma(`busy_timeout = ${checkCount(Math.floor(options.busyTimeoutMs), 'busyTimeoutMs')}`);
    try {
      write();
    } finally {
      this.db.pragma(`busy_timeout = ${saved}`);
    }
  }

  /** One metric of a run, by step. */
  series(runId: number, name: string, options: SeriesOptions = {}): MetricSample[] {
    const from = options.fromStep ?? 0;
    const to = options.toStep ?? Number.MAX_SAFE_INTEGER;
    const rows = this.db
      .prepare<[number, string, number, number], { step: number; value: number | null; time: number }>(
        'SELECT step, value, time FROM metrics WHERE run_id = ? AND name = ? AND step BETWEEN ? AND ? ORDER BY step',
      )
      .all(runId, name, from, to);
    const samples = rows.map((r) => ({ step: r.step, value: toNumber(r.value), time: r.time }));
    const max = options.maxPoints;
    if (max === undefined || samples.length <= max) return samples;
    const stride = Math.ceil(samples.length / Math.max(1, checkCount(max, 'maxPoints')));
    return samples.filter((_, i) => i % stride === 0 || i === samples.length - 1);
  }

  /** The metric names a run logged, sorted. */
  names(runId: number): string[] {
    return this.db
      .prepare<[number], { name: string }>('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name')
      .all(runId)
      .map((r) => r.name);
  }

  /** The newest sample (highest step) of each metric of a run. */
  latest(runId: number): Map<string, MetricSample> {
    const rows = this.db
      .prepare<[number], { name: string; step: number; value: number | null; time: number }>(
        `SELECT name, MAX(step) AS step, value, time FROM metrics WHERE run_id = ? GROUP BY name ORDER BY name`,
      )
      .all(runId);
    return new Map(rows.map((r) => [r.name, { step: r.step, value: toNumber(r.value), time: r.time }]));
  }

  count(runId: number): number {
    return this.db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM metrics WHERE run_id = ?').get(runId)?.n ?? 0;
  }

  /** Forgets every metric logged after `step` (a run resumed from an earlier checkpoint). Returns how many. */
  deleteAfter(runId: number, step: number): number {
    return this.db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?').run(runId, step).changes;
  }
}
