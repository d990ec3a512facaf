// Typed errors of the store. Every failure the store reports on purpose is a StoreError with a code a caller
// can switch on; raw SQLite errors that reach a caller are wrapped where the store knows what they mean.

export type StoreErrorCode =
  /** The database was written by a newer PEFT Studio: its schema has migrations this build does not know. */
  | 'newer-schema'
  /** A migration recorded in the database has another name than this build's migration of the same id. */
  | 'migration-mismatch'
  /** A migration threw; the whole upgrade was rolled back. */
  | 'migration-failed'
  | 'not-found'
  /** A uniqueness rule (a model path, a checkpoint step, ...) would be broken. */
  | 'conflict'
  /** The row is referenced by others that must go first (a model or dataset used by runs). */
  | 'in-use'
  | 'invalid-input'
  /** A status change that the life cycle does not allow (a completed run cannot start again). */
  | 'invalid-transition'
  | 'nothing-to-undo'
  | 'nothing-to-redo'
  /** The object (a metrics writer, the store) was closed. */
  | 'closed'
  /** PRAGMA integrity_check or foreign_key_check found problems. */
  | 'integrity';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The SQLite extended result code of a better-sqlite3 error ('SQLITE_CONSTRAINT_UNIQUE', ...), if it is one. */
export const sqliteCode = (error: unknown): string | undefined =>
  error instanceof Error && 'code' in error && typeof error.code === 'string' && error.code.startsWith('SQLITE_')
    ? error.code
    : undefined;

/** True for the errors a retry can cure (another connection holds the write lock past the busy timeout). */
export const isTransientSqliteError = (error: unknown): boolean => {
  const code = sqliteCode(error);
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
};

/**
 * Runs `write`, turning the constraint failures it may raise into StoreErrors that say what was wrong:
 * `unique` names the thing that already exists, `foreignKey` the row that does not.
 */
export const translateConstraint = <T>(write: () => T, what: { unique?: string; foreignKey?: string }): T => {
  try {
    return write();
  } catch (error) {
    const code = sqliteCode(error);
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      if (what.unique) throw new StoreError('conflict', what.unique, { cause: error });
    }
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY' && what.foreignKey) {
      throw new StoreError('not-found', what.foreignKey, { cause: error });
    }
    if (code === 'SQLITE_CONSTRAINT_CHECK') {
      throw new StoreError('invalid-input', `a value breaks a rule of the schema: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
};
