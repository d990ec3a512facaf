// The run history as one object: a connection (database.ts) and a typed store per table.
import { AdapterStore } from './adapter-store.ts';
import { ChatStore } from './chat-store.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import type { Clock } from './common.ts';
import { checkIntegrity, openDatabase, type IntegrityReport, type OpenDatabaseOptions } from './database.ts';
import { DatasetStore } from './dataset-store.ts';
import { StoreError } from './errors.ts';
import { MetricStore } from './metric-store.ts';
import { MetricsWriter, type MetricsWriterOptions } from './metrics-writer.ts';
import type { MigrationReport, SqliteDatabase } from './migrate.ts';
import { ModelStore } from './model-store.ts';
import { RunStore } from './run-store.ts';
import { SweepStore } from './sweep-store.ts';

export interface OpenStoreOptions extends OpenDatabaseOptions {
  readonly now?: Clock;
}

export class Store {
  readonly models: ModelStore;
  readonly datasets: DatasetStore;
  readonly runs: RunStore;
  readonly metrics: MetricStore;
  readonly checkpoints: CheckpointStore;
  readonly adapters: AdapterStore;
  readonly sweeps: SweepStore;
  readonly chats: ChatStore;
  private readonly writers = new Set<MetricsWriter>();

  constructor(
    readonly db: SqliteDatabase,
    readonly migration: MigrationReport,
    private readonly now: Clock = Date.now,
  ) {
    this.models = new ModelStore(db, now);
    this.datasets = new DatasetStore(db, now);
    this.runs = new RunStore(db, now);
    this.metrics = new MetricStore(db, now);
    this.checkpoints = new CheckpointStore(db, now);
    this.adapters = new AdapterStore(db, now);
    this.sweeps = new SweepStore(db, now);
    this.chats = new ChatStore(db, now);
  }

  /** A batching metrics writer on this store (see metrics-writer.ts); close() closes it too. */
  metricsWriter(options: MetricsWriterOptions = {}): MetricsWriter {
    if (!this.db.open) throw new StoreError('closed', 'the store is closed');
    const writer = new MetricsWriter(this.metrics, { now: this.now, ...options });
    this.writers.add(writer);
    return writer;
  }

  /** Runs `work` in one transaction (rolled back if it throws). */
  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  integrity(): IntegrityReport {
    return checkIntegrity(this.db);
  }

  /** Flushes and closes every metrics writer, then the connection (checkpointing the WAL). Idempotent. */
  close(): void {
    if (!this.db.open) return;
    try {
      for (const writer of this.writers) writer.close();
    } finally {
      this.writers.clear();
      this.db.close();
    }
  }
}

/** Opens (creating and migrating as needed) the history database at `path`; see openDatabase. */
export const openStore = (path: string, options: OpenStoreOptions = {}): Store => {
  const { db, migration } = openDatabase(path, options);
  return new Store(db, migration, options.now);
};
