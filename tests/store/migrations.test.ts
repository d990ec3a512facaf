import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  appliedMigrations,
  checkIntegrity,
  LATEST_SCHEMA_VERSION,
  MIGRATIONS,
  openDatabase,
  schemaVersion,
  StoreError,
  type Migration,
  type SqliteDatabase,
} from '../../main/store/index.ts';
import { tempDir } from './helpers.ts';

const MIGRATIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../main/store/migrations');

/** What each migration adds: table → its columns, in order. */
const EXPECTED: Record<number, Record<string, string[]>> = {
  1: { models: ['id', 'name', 'path', 'format', 'architecture', 'params', 'metadata', 'added_at'] },
  2: {
    datasets: ['id', 'name', 'format', 'source_path', 'created_at', 'head_version_id', 'next_row_key'],
    dataset_versions: ['id', 'dataset_id', 'parent_id', 'number', 'kind', 'chain_depth', 'chain_entries', 'row_count', 'message', 'created_at'],
    dataset_rows: ['id', 'dataset_id', 'content'],
    dataset_version_entries: ['version_id', 'row_key', 'row_id'],
  },
  3: {
    runs: ['id', 'name', 'method', 'model_id', 'dataset_version_id', 'config', 'status', 'environment', 'error', 'created_at', 'started_at', 'finished_at'],
  },
  4: { metrics: ['run_id', 'name', 'step', 'value', 'time'] },
  5: { checkpoints: ['id', 'run_id', 'step', 'path', 'bytes', 'created_at'] },
  6: { adapters: ['id', 'run_id', 'name', 'path', 'peft_type', 'config', 'base_model', 'base_model_id', 'created_at'] },
  7: {
    sweeps: ['id', 'name', 'mode', 'config', 'status', 'error', 'created_at', 'started_at', 'finished_at'],
    trials: ['id', 'sweep_id', 'ordinal', 'params', 'status', 'run_id', 'objective', 'pruned_at_step', 'is_best', 'created_at', 'finished_at'],
  },
  8: {
    chat_sessions: ['id', 'title', 'model_id', 'settings', 'created_at', 'updated_at'],
    chat_session_adapters: ['session_id', 'adapter_id', 'position'],
    chat_messages: ['id', 'session_id', 'role', 'content', 'adapter_id', 'adapter_name', 'stats', 'created_at'],
  },
};

const tables = (db: SqliteDatabase): string[] =>
  db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((r) => r.name);

const columns = (db: SqliteDatabase, table: string): string[] =>
  db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all().map((r) => r.name);

const schemaSql = (db: SqliteDatabase): string[] =>
  db.prepare<[], { sql: string | null }>('SELECT sql FROM sqlite_master ORDER BY name').all().map((r) => r.sql ?? '');

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe('migration files', () => {
  it('are one file each, NNNN_name.ts, with ids 1..N in order, all listed', () => {
    const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{4}_/.test(f)).sort();
    expect(files).toHaveLength(MIGRATIONS.length);
    expect(LATEST_SCHEMA_VERSION).toBe(MIGRATIONS.length);
    files.forEach((file, i) => {
      const m = MIGRATIONS[i];
      expect(file).toBe(`${String(m?.id).padStart(4, '0')}_${m?.name}.ts`);
      expect(m?.id).toBe(i + 1);
    });
    expect(Object.keys(EXPECTED).map(Number)).toEqual(MIGRATIONS.map((m) => m.id));
  });
});

describe('applying migrations', () => {
  for (const migration of MIGRATIONS) {
    it(`0001..${String(migration.id).padStart(4, '0')} on an empty database gives the expected schema (${migration.name})`, () => {
      const { db, migration: report } = openDatabase(join(dir, `upto-${migration.id}.db`), { migrations: MIGRATIONS.slice(0, migration.id) });
      try {
        expect(report).toEqual({ from: 0, to: migration.id, applied: MIGRATIONS.slice(0, migration.id).map((m) => m.id) });
        const expected: Record<string, string[]> = Object.assign({}, ...MIGRATIONS.slice(0, migration.id).map((m) => EXPECTED[m.id]));
        expect(tables(db)).toEqual([...Object.keys(expected), 'schema_migrations'].sort());
        for (const [table, cols] of Object.entries(expected)) expect(columns(db, table), table).toEqual(cols);
        expect(appliedMigrations(db).map((m) => [m.id, m.name])).toEqual(MIGRATIONS.slice(0, migration.id).map((m) => [m.id, m.name]));
        expect(db.pragma('user_version', { simple: true })).toBe(migration.id);
        expect(checkIntegrity(db).ok).toBe(true);
      } finally {
        db.close();
      }
    });
  }

  it('applying twice is a no-op: nothing runs, the schema is byte-identical', () => {
    const path = join(dir, 'twice.db');
    const first = openDatabase(path);
    const before = schemaSql(first.db);
    const appliedBefore = appliedMigrations(first.db);
    first.db.close();
    const second = openDatabase(path);
    try {
      expect(second.migration).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION, applied: [] });
      expect(schemaSql(second.db)).toEqual(before);
      expect(appliedMigrations(second.db)).toEqual(appliedBefore);
    } finally {
      second.db.close();
    }
  });

  it('upgrades an older database in place, keeping its rows', () => {
    const path = join(dir, 'old.db');
    const old = openDatabase(path, { migrations: MIGRATIONS.slice(0, 3) });
    old.db.prepare("INSERT INTO models (name, path, format, architecture, params, added_at) VALUES ('m', '/m', 'hf', 'llama', 1, 1)").run();
    old.db.close();
    const { db, migration } = openDatabase(path);
    try {
      expect(migration).toEqual({ from: 3, to: LATEST_SCHEMA_VERSION, applied: MIGRATIONS.slice(3).map((m) => m.id) });
      expect(db.prepare('SELECT path FROM models').all()).toEqual([{ path: '/m' }]);
      expect(schemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
    } finally {
      db.close();
    }
  });

  it('refuses a database from a newer version, with a clear error, and leaves it untouched', () => {
    const path = join(dir, 'newer.db');
    const { db } = openDatabase(path);
    db.prepare("INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, 'from_the_future', 0)").run(LATEST_SCHEMA_VERSION + 1);
    db.close();
    const bytes = readFileSync(path);
    let caught: unknown;
    try {
      openDatabase(path);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect((caught as StoreError).code).toBe('newer-schema');
    expect((caught as StoreError).message).toMatch(new RegExp(`schema version ${LATEST_SCHEMA_VERSION + 1} \\(from_the_future\\).*knows versions up to ${LATEST_SCHEMA_VERSION}.*newer version`));
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('refuses a database whose recorded migration has another name', () => {
    const path = join(dir, 'mismatch.db');
    const { db } = openDatabase(path, { migrations: MIGRATIONS.slice(0, 2) });
    db.prepare("UPDATE schema_migrations SET name = 'something_else' WHERE id = 2").run();
    db.close();
    expect(() => openDatabase(path)).toThrow(expect.objectContaining({ code: 'migration-mismatch' }));
  });

  it('a failing migration rolls back the whole upgrade', () => {
    const path = join(dir, 'failing.db');
    openDatabase(path, { migrations: MIGRATIONS.slice(0, 2) }).db.close();
    const broken: Migration = {
      id: LATEST_SCHEMA_VERSION + 1,
      name: 'broken',
      up(db) {
        db.exec('CREATE TABLE half_done (x INTEGER)');
        throw new Error('boom');
      },
    };
    expect(() => openDatabase(path, { migrations: [...MIGRATIONS, broken] })).toThrow(
      expect.objectContaining({ code: 'migration-failed', message: expect.stringContaining(`migration ${broken.id} (broken) failed: boom`) }),
    );
    const db = new Database(path);
    try {
      expect(schemaVersion(db)).toBe(2);
      expect(tables(db)).not.toContain('runs');
      expect(tables(db)).not.toContain('half_done');
    } finally {
      db.close();
    }
  });

  it('rejects a migration list with gaps', () => {
    const gap = [MIGRATIONS[0], MIGRATIONS[2]] as Migration[];
    expect(() => openDatabase(join(dir, 'gap.db'), { migrations: gap })).toThrow(expect.objectContaining({ code: 'invalid-input' }));
  });
});

describe('the connection', () => {
  it('is WAL, foreign keys on, synchronous NORMAL, with a busy timeout', () => {
    const { db } = openDatabase(join(dir, 'pragmas.db'), { busyTimeoutMs: 1234 });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.pragma('synchronous', { simple: true })).toBe(1);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    } finally {
      db.close();
    }
  });

  it('reads a metric series through the (run_id, name, step) key, without a sort', () => {
    const { db } = openDatabase(join(dir, 'plan.db'));
    try {
      const index = db.prepare<[], { name: string; origin: string }>('PRAGMA index_list(metrics)').all();
      const pk = index.find((i) => i.origin === 'pk');
      expect(pk).toBeDefined();
      const cols = db.prepare<[], { name: string }>(`PRAGMA index_info(${JSON.stringify(pk?.name)})`).all().map((c) => c.name);
      expect(cols).toEqual(['run_id', 'name', 'step']);
      const plan = db
        .prepare<[], { detail: string }>("EXPLAIN QUERY PLAN SELECT step, value FROM metrics WHERE run_id = 1 AND name = 'loss' ORDER BY step")
        .all()
        .map((r) => r.detail)
        .join('\n');
      expect(plan).toMatch(/SEARCH metrics USING PRIMARY KEY \(run_id=\? AND name=\?\)/);
      expect(plan).not.toMatch(/TEMP B-TREE/);
    } finally {
      db.close();
    }
  });

  it('checkIntegrity reports a damaged file', () => {
    const path = join(dir, 'damaged.db');
    const { db } = openDatabase(path);
    const insert = db.prepare("INSERT INTO models (name, path, format, architecture, params, added_at) VALUES ('m', ?, 'hf', 'llama', 1, 1)");
    db.transaction(() => {
      for (let i = 0; i < 2000; i++) insert.run(`/models/${i}/${'x'.repeat(100)}`);
    })();
    db.close();
    const copy = join(dir, 'damaged-copy.db');
    copyFileSync(path, copy);
    // Scribble over the middle of the file: index pages of models.path get garbage.
    const damaged = new Database(copy);
    const pageSize = damaged.pragma('page_size', { simple: true }) as number;
    const pages = damaged.pragma('page_count', { simple: true }) as number;
    damaged.close();
    const bytes = readFileSync(copy);
    for (let p = Math.floor(pages / 2); p < pages - 1; p++) bytes.fill(0x5a, p * pageSize + 100, p * pageSize + 300);
    writeFileSync(copy, bytes);
    const broken = new Database(copy);
    try {
      let ok: boolean;
      try {
        ok = checkIntegrity(broken).ok;
      } catch (error) {
        ok = false; // SQLITE_CORRUPT raised while reading is a failed check too
        expect((error as { code?: string }).code).toMatch(/SQLITE_CORRUPT|SQLITE_NOTADB/);
      }
      expect(ok).toBe(false);
    } finally {
      broken.close();
    }
  });
});
