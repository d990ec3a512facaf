// "Writing metrics never stalls training." A training loop calls append(), which only checks the point and
// pushes it onto an in-memory batch: no SQLite call, no disk, no lock — O(1), microseconds. The batch is written
// later, in ONE transaction (MetricStore.append), by a flush that never runs inside append():
// - every `flushIntervalMs` (a timer, unref'd: it never keeps the process alive), and
// - on the next turn of the event loop once `maxPending` points are waiting (setImmediate), and
// - on flush() and close() (close flushes everything: no metric is lost on a clean shutdown).
// Threading: the trainer runs in a worker_thread (DESIGN.md) and sends its progress to the main thread, where
// the store lives; so a flush (a few ms per thousand points, WAL + synchronous NORMAL: no fsync per commit)
// costs the main thread a little and the training thread nothing. Used inside a training thread instead, a
// flush runs between steps, never in an append.
// Locks: a background flush waits at most `flushBusyTimeoutMs` (default 50) for another connection's write lock
// (a CLI run writing the same file), not the connection's 5 s: if the lock is still held, the batch stays
// queued for the next tick. Failures: points of a run that does not exist are dropped — only those — and
// reported to onError with their count; other errors drop the batch and are reported too.
import type { Clock } from './common.ts';
import { isTransientSqliteError, StoreError } from './errors.ts';
import { MetricStore, type MetricPoint } from './metric-store.ts';

export interface MetricsWriterOptions {
  /** Flush at least this often while points are waiting (default 250 ms). */
  readonly flushIntervalMs?: number;
  /** Schedule a flush (next event-loop turn) once this many points are waiting (default 2000). */
  readonly maxPending?: number;
  /** How long a background flush waits for another connection's write lock before retrying later (default 50 ms). */
  readonly flushBusyTimeoutMs?: number;
  /** A flush that could not write some points: called with the error and how many points were dropped. */
  readonly onError?: (error: unknown, dropped: number) => void;
  readonly now?: Clock;
}

export interface MetricsWriterStats {
  /** append() calls accepted. */
  readonly appended: number;
  /** Points committed to the database. */
  readonly written: number;
  /** Points waiting for the next flush. */
  readonly pending: number;
  /** Points dropped because their run does not exist. */
  readonly dropped: number;
  /** Flushes that committed at least one point; the longest and total time they took. */
  readonly flushes: number;
  readonly maxFlushMs: number;
  readonly totalFlushMs: number;
}

const reportToConsole = (error: unknown, dropped: number): void => {
  console.error(`metrics writer: ${dropped} metric points dropped: ${(error as Error).message}`);
};

export class MetricsWriter {
  private pending: MetricPoint[] = [];
  private readonly timer: NodeJS.Timeout;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private readonly maxPending: number;
  private readonly flushBusyTimeoutMs: number;
  private readonly onError: (error: unknown, dropped: number) => void;
  private readonly now: Clock;
  private counters = { appended: 0, written: 0, dropped: 0, flushes: 0, maxFlushMs: 0, totalFlushMs: 0 };

  constructor(
    private readonly metrics: MetricStore,
    options: MetricsWriterOptions = {},
  ) {
    const interval = options.flushIntervalMs ?? 250;
    this.maxPending = options.maxPending ?? 2000;
    this.flushBusyTimeoutMs = options.flushBusyTimeoutMs ?? 50;
    if (!(interval > 0) || !(this.maxPending > 0)) throw new StoreError('invalid-input', 'flushIntervalMs and maxPending must be > 0');
    this.onError = options.onError ?? reportToConsole;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.flushQuietly(), interval);
    this.timer.unref();
  }

  /** Queues one point (time stamped now unless given). Never touches the database. */
  append(point: MetricPoint): void {
    if (this.closed) throw new StoreError('closed', 'metrics writer is closed');
    MetricStore.check(point);
    this.pending.push(point.time === undefined ? { ...point, time: this.now() } : point);
    this.counters.appended++;
    if (this.pending.length >= this.maxPending && this.immediate === undefined) {
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        this.flushQuietly();
      });
    }
  }

  /**
   * Writes every waiting point now, in one transaction; returns how many were written. Waits for a lock up to
   * the connection's busy timeout; throws (keeping the points queued) if it is still held.
   */
  flush(): number {
    return this.write(undefined);
  }

  private write(busyTimeoutMs: number | undefined): number {
    const batch = this.pending;
    if (batch.length === 0) return 0;
    this.pending = [];
    const started = performance.now();
    let written = 0;
    try {
      this.metrics.append(batch, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
      written = batch.length;
    } catch (error) {
      if (isTransientSqliteError(error)) {
        this.pending = batch.concat(this.pending);
        throw error;
      }
      if (!(error instanceof StoreError && error.code === 'not-found')) {
        this.pending = batch.concat(this.pending);
        throw error;
      }
      written = this.writePerRun(batch, busyTimeoutMs);
    }
    const ms = performance.now() - started;
    this.counters.written += written;
    if (written > 0) {
      this.counters.flushes++;
      this.counters.maxFlushMs = Math.max(this.counters.maxFlushMs, ms);
      this.counters.totalFlushMs += ms;
    }
    return written;
  }

  /** Stops the timer and writes everything still waiting. Idempotent; append() afterwards throws 'closed'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.flush();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): MetricsWriterStats {
    return { ...this.counters, pending: this.pending.length };
  }

  /** A timer's flush: errors go to onError (the batch is kept when a retry can cure them). */
  private flushQuietly(): void {
    try {
      this.write(this.flushBusyTimeoutMs);
    } catch (error) {
      if (!isTransientSqliteError(error)) {
        const dropped = this.pending.length;
        this.pending = [];
        this.counters.dropped += dropped;
        this.onError(error, dropped);
      }
    }
  }

  /** A batch failed for a missing run: write run by run, dropping only the runs that do not exist. */
  private writePerRun(batch: readonly MetricPoint[], busyTimeoutMs: number | undefined): number {
    const byRun = new Map<number, MetricPoint[]>();
    for (const p of batch) {
      const list = byRun.get(p.runId);
      if (list) list.push(p);
      else byRun.set(p.runId, [p]);
    }
    let written = 0;
    for (const points of byRun.values()) {
      try {
        this.metrics.append(points, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
        written += points.length;
      } catch (error) {
        if (isTransientSqliteError(error)) {
          this.pending.push(...points);
          continue;
        }
        this.counters.dropped += points.length;
        this.onError(error, points.length);
      }
    }
    return written;
  }
}
