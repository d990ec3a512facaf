// Opening the history database: WAL (readers never block the writer), foreign keys on, a busy timeout (another
// connection's write waits instead of failing), synchronous NORMAL (a commit is durable against a crashed or
// killed process; a power cut may lose the last commits but never corrupts the file), then the migrations.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.ts';
import { applyMigrations, type Migration, type MigrationReport, type SqliteDatabase } from './migrate.ts';
import { MIGRATIONS } from './migrations/index.ts';

export type { SqliteDatabase } from './migrate.ts';

export const IN_MEMORY = ':memory:';

export interface OpenDatabaseOptions {
  /** How long a statement waits for another connection's write lock before SQLITE_BUSY (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** The migrations to apply (default: all of this build's). Tests pass a prefix to build older databases. */
  readonly migrations?: readonly Migration[];
  /** Clock for schema_migrations.applied_at. */
  readonly now?: () => number;
}

export interface OpenedDatabase {
  readonly db: SqliteDatabase;
  readonly migration: MigrationReport;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** Sets the connection PRAGMAs and checks that they took (journal_mode can silently stay 'delete'). */
export const configureConnection = (db: SqliteDatabase, busyTimeoutMs: number): void => {
  if (!db.memory) {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new StoreError('invalid-input', `${db.name}: could not switch to WAL (journal_mode is ${String(mode)})`);
  }
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  if (db.pragma('foreign_keys', { simple: true }) !== 1) throw new StoreError('invalid-input', 'SQLite refused PRAGMA foreign_keys = ON');
};

/**
 * Opens (creating if needed, with its folder) the database at `path` (or IN_MEMORY), configures the connection
 * and applies pending migrations. Refuses — with StoreError 'newer-schema', leaving the file untouched — a
 * database from a newer version of the app. The connection is closed again on any failure.
 */
export const openDatabase = (path: string, options: OpenDatabaseOptions = {}): OpenedDatabase => {
  if (path !== IN_MEMORY) mkdirSync(dirname(path), { recursive: true });
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    configureConnection(db, busyTimeoutMs);
    const migration = applyMigrations(db, options.migrations ?? MIGRATIONS, options.now);
    return { db, migration };
  } catch (error) {
    db.close();
    throw error;
  }
};

export interface IntegrityReport {
  readonly ok: boolean;
  /** PRAGMA integrity_check's lines other than 'ok'. */
  readonly problems: readonly string[];
  /** PRAGMA foreign_key_check's rows: a child row whose parent is missing. */
  readonly foreignKeyViolations: readonly { table: string; rowid: number | null; parent: string }[];
}

/** PRAGMA integrity_check (the b-trees, indexes and pages) plus PRAGMA foreign_key_check. Read-only. */
export const checkIntegrity = (db: SqliteDatabase): IntegrityReport => {
  const lines = db.prepare<[], { integrity_check: string }>('PRAGMA integrity_check').all().map((r) => r.integrity_check);
  const problems = lines.filter((line) => line !== 'ok');
  const foreignKeyViolations = db
    .prepare<[], { table: string; rowid: number | null; parent: string }>('PRAGMA foreign_key_check')
    .all()
    .map((r) => ({ table: r.table, rowid: r.rowid, parent: r.parent }));
  return { ok: problems.length === 0 && foreignKeyViolations.length === 0, problems, foreignKeyViolations };
};

/** checkIntegrity that throws StoreError 'integrity' naming the first problems. */
export const assertIntegrity = (db: SqliteDatabase): void => {
  const report = checkIntegrity(db);
  if (report.ok) return;
  const fk = report.foreignKeyViolations.slice(0, 5).map((v) => `${v.table} row ${v.rowid} → missing ${v.parent}`);
  throw new StoreError('integrity', `${db.name} failed its integrity check: ${[...report.problems.slice(0, 5), ...fk].join('; ')}`);
};
