// The store's public API: SQLite run history (better-sqlite3, WAL), one migration per file.
export { AdapterStore, type Adapter, type NewAdapter } from './adapter-store.ts';
export { ChatStore, type ChatMessage, type ChatRole, type ChatSession, type NewChatMessage } from './chat-store.ts';
export { CheckpointStore, type Checkpoint, type NewCheckpoint } from './checkpoint-store.ts';
export type { Clock } from './common.ts';
export {
  assertIntegrity,
  checkIntegrity,
  configureConnection,
  IN_MEMORY,
  openDatabase,
  type IntegrityReport,
  type OpenDatabaseOptions,
  type OpenedDatabase,
} from './database.ts';
export { MAX_DELTA_DEPTH, MIN_DELTA_ENTRY_BUDGET, type VersionKind } from './dataset-history.ts';
export {
  DatasetStore,
  type Dataset,
  type DatasetEdit,
  type DatasetRow,
  type DatasetVersion,
  type NewDataset,
  type UndoState,
} from './dataset-store.ts';
export { StoreError, type StoreErrorCode } from './errors.ts';
export type { JsonObject, JsonPrimitive, JsonValue } from './json.ts';
export { MetricStore, type MetricPoint, type MetricSample, type SeriesOptions } from './metric-store.ts';
export { MetricsWriter, type MetricsWriterOptions, type MetricsWriterStats } from './metrics-writer.ts';
export {
  applyMigrations,
  appliedMigrations,
  schemaVersion,
  type AppliedMigration,
  type Migration,
  type MigrationReport,
  type SqliteDatabase,
} from './migrate.ts';
export { LATEST_SCHEMA_VERSION, MIGRATIONS } from './migrations/index.ts';
export { MODEL_FORMATS, ModelStore, type Model, type ModelFormat, type NewModel } from './model-store.ts';
export {
  FINISHED_RUN_STATUSES,
  INTERRUPTED,
  RUN_STATUSES,
  RUN_TRANSITIONS,
  RunStore,
  type NewRun,
  type Run,
  type RunEnvironment,
  type RunFilter,
  type RunStatus,
} from './run-store.ts';
export { openStore, Store, type OpenStoreOptions } from './store.ts';
export {
  SWEEP_MODES,
  SweepStore,
  TRIAL_STATUSES,
  type NewSweep,
  type Sweep,
  type SweepMode,
  type SweepStatus,
  type Trial,
  type TrialPatch,
  type TrialStatus,
} from './sweep-store.ts';
