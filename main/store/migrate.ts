// Schema migrations: one file each under migrations/, applied in id order inside ONE immediate transaction, so
// a database is either fully upgraded or untouched, and two processes opening it at once never both migrate.
// schema_migrations records what was applied; PRAGMA user_version mirrors the newest id for outside tools.
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from './errors.ts';

export type SqliteDatabase = BetterSqlite3.Database;

export interface Migration {
  /** 1, 2, 3, ...: the number that prefixes the file name (0001_models.ts has id 1). */
  readonly id: number;
  /** Short snake_case name, the rest of the file name. Never changes once released. */
  readonly name: string;
  /** Runs inside the upgrade's transaction with foreign keys on. Must not commit or change PRAGMA foreign_keys. */
  up(db: SqliteDatabase): void;
}

export interface AppliedMigration {
  readonly id: number;
  readonly name: string;
  readonly appliedAt: number;
}

export interface MigrationReport {
  /** The schema version before and after: the highest applied migration id (0 for an empty database). */
  readonly from: number;
  readonly to: number;
  /** Ids applied by this call, in order (empty when the database was current). */
  readonly applied: readonly number[];
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at INTEGER NOT NULL
)`;

/** Checks a migration list: ids 1..N, contiguous, in order, names snake_case and unique. */
export const validateMigrations = (migrations: readonly Migration[]): void => {
  migrations.forEach((m, i) => {
    if (m.id !== i + 1) {
      throw new StoreError('invalid-input', `migration #${i} has id ${m.id}; ids must run 1, 2, 3, ... in order`);
    }
    if (!/^[a-z][a-z0-9_]*$/.test(m.name)) throw new StoreError('invalid-input', `migration ${m.id} has a bad name '${m.name}'`);
  });
};

export const appliedMigrations = (db: SqliteDatabase): AppliedMigration[] => {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!exists) return [];
  return db
    .prepare<[], { id: number; name: string; applied_at: number }>('SELECT id, name, applied_at FROM schema_migrations ORDER BY id')
    .all()
    .map((r) => ({ id: r.id, name: r.name, appliedAt: r.applied_at }));
};

/** The highest applied migration id; 0 for a database that never ran one. */
export const schemaVersion = (db: SqliteDatabase): number => appliedMigrations(db).reduce((max, m) => Math.max(max, m.id), 0);

/** Refuses a database written by a newer build, or one whose history disagrees with this build's migrations. */
const checkApplied = (applied: readonly AppliedMigration[], migrations: readonly Migration[], file: string): void => {
  const latest = migrations.length;
  const newer = applied.filter((m) => m.id > latest);
  if (newer.length > 0) {
    const top = newer[newer.length - 1];
    throw new StoreError(
      'newer-schema',
      `${file} has schema version ${top?.id} (${top?.name}), but this PEFT Studio knows versions up to ${latest}: ` +
        'it was written by a newer version of the app. Update PEFT Studio, or open another database; ' +
        'this one is left untouched.',
    );
  }
  for (const m of applied) {
    const known = migrations[m.id - 1];
    if (known?.name !== m.name) {
      throw new StoreError(
        'migration-mismatch',
        `${file} records migration ${m.id} as '${m.name}', but this build's migration ${m.id} is '${known?.name}': ` +
          'the database comes from an incompatible build',
      );
    }
  }
};

/**
 * Brings `db` up to the newest of `migrations` (which must be validateMigrations-clean). Idempotent: a current
 * database is checked and left alone. Throws StoreError 'newer-schema' / 'migration-mismatch' before writing
 * anything, and 'migration-failed' (after rolling everything back) when a migration throws.
 */
export const applyMigrations = (db: SqliteDatabase, migrations: readonly Migration[], now: () => number = Date.now): MigrationReport => {
  validateMigrations(migrations);
  const file = db.memory ? 'the in-memory database' : db.name;
  // Cheap read-only check first: a newer database is refused, and a current one left, without the write lock.
  const before = appliedMigrations(db);
  checkApplied(before, migrations, file);
  if (before.length === migrations.length) return { from: migrations.length, to: migrations.length, applied: [] };

  const upgrade = db.transaction((): MigrationReport => {
    db.exec(CREATE_TABLE);
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const applied = appliedMigrations(db);
    checkApplied(applied, migrations, file);
    const from = applied.reduce((max, m) => Math.max(max, m.id), 0);
    const done = new Set(applied.map((m) => m.id));
    const record = db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)');
    const ran: number[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      try {
        m.up(db);
      } catch (error) {
        throw new StoreError('migration-failed', `migration ${m.id} (${m.name}) failed: ${(error as Error).message}`, { cause: error });
      }
      record.run(m.id, m.name, now());
      ran.push(m.id);
    }
    if (ran.length > 0) {
      const violations = db.prepare('PRAGMA foreign_key_check').all();
      if (violations.length > 0) {
        throw new StoreError('migration-failed', `migrations ${ran.join(', ')} left ${violations.length} foreign key violations`);
      }
      db.pragma(`user_version = ${migrations.length}`);
    }
    return { from, to: Math.max(from, ...ran), applied: ran };
  });
  return upgrade.immediate();
};
