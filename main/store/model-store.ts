// The model library: base models on disk (HF folders, GGUF files).
import { checkCount, checkOneOf, checkText, found, type Clock } from './common.ts';
import { StoreError, translateConstraint } from './errors.ts';
import { fromJsonOrNull, objectToJson, type JsonObject } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';

export type ModelFormat = 'hf' | 'gguf';
export const MODEL_FORMATS: readonly ModelFormat[] = ['hf', 'gguf'];

export interface Model {
  readonly id: number;
  readonly name: string;
  readonly path: string;
  readonly format: ModelFormat;
  /** 'llama', 'qwen2', 'qwen3', ... */
  readonly architecture: string;
  /** Parameter count. */
  readonly params: number;
  /** Anything else worth showing (dtype, context length, quantization), as parsed from the model. */
  readonly metadata: JsonObject | null;
  readonly addedAt: number;
}

export interface NewModel {
  readonly name: string;
  readonly path: string;
  readonly format: ModelFormat;
  readonly architecture: string;
  readonly params: number;
  readonly metadata?: JsonObject;
}

interface ModelRow {
  id: number;
  name: string;
  path: string;
  format: ModelFormat;
  architecture: string;
  params: number;
  metadata: string | null;
  added_at: number;
}

const toModel = (r: ModelRow): Model => ({
  id: r.id,
  name: r.name,
  path: r.path,
  format: r.format,
  architecture: r.architecture,
  params: r.params,
  metadata: fromJsonOrNull<JsonObject>(r.metadata, `models.metadata of model ${r.id}`),
  addedAt: r.added_at,
});

export class ModelStore {
  private readonly insertStatement;
  private readonly byId;
  private readonly byPath;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {
    this.insertStatement = db.prepare<[string, string, string, string, number, string | null, number], ModelRow>(
      `INSERT INTO models (name, path, format, architecture, params, metadata, added_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    );
    this.byId = db.prepare<[number], ModelRow>('SELECT * FROM models WHERE id = ?');
    this.byPath = db.prepare<[string], ModelRow>('SELECT * FROM models WHERE path = ?');
  }

  /** Adds a model; StoreError 'conflict' when a model with this path is already in the library. */
  add(input: NewModel): Model {
    checkOneOf(input.format, MODEL_FORMATS, 'model format');
    const metadata = input.metadata === undefined ? null : objectToJson(input.metadata, 'model metadata');
    const row = translateConstraint(
      () =>
        this.insertStatement.get(
          checkText(input.name, 'model name'),
          checkText(input.path, 'model path'),
          input.format,
          checkText(input.architecture, 'model architecture'),
          checkCount(input.params, 'model params'),
          metadata,
          this.now(),
        ),
      { unique: `a model at ${input.path} is already in the library` },
    );
    return toModel(found(row, 'the inserted model'));
  }

  get(id: number): Model {
    return toModel(found(this.byId.get(id), `model ${id}`));
  }

  find(id: number): Model | undefined {
    const row = this.byId.get(id);
    return row && toModel(row);
  }

  findByPath(path: string): Model | undefined {
    const row = this.byPath.get(path);
    return row && toModel(row);
  }

  /** Newest first. */
  list(): Model[] {
    return this.db.prepare<[], ModelRow>('SELECT * FROM models ORDER BY added_at DESC, id DESC').all().map(toModel);
  }

  update(id: number, patch: { name?: string; metadata?: JsonObject | null }): Model {
    const current = this.get(id);
    const name = patch.name === undefined ? current.name : checkText(patch.name, 'model name');
    const metadata =
      patch.metadata === undefined
        ? current.metadata && objectToJson(current.metadata, 'model metadata')
        : patch.metadata && objectToJson(patch.metadata, 'model metadata');
    this.db.prepare('UPDATE models SET name = ?, metadata = ? WHERE id = ?').run(name, metadata, id);
    return this.get(id);
  }

  /**
   * Removes a model from the library (not from disk). StoreError 'in-use' while runs were trained on it (their
   * history would lose its base); adapters and chat sessions only forget the link.
   */
  delete(id: number): void {
    this.get(id);
    const runs = this.db.prepare<[number], { id: number }>('SELECT id FROM runs WHERE model_id = ? ORDER BY id LIMIT 6').all(id);
    if (runs.length > 0) {
      const ids = runs.slice(0, 5).map((r) => r.id).join(', ');
      throw new StoreError('in-use', `model ${id} is the base of runs ${ids}${runs.length > 5 ? ', ...' : ''}: delete those runs first`);
    }
    this.db.prepare('DELETE FROM models WHERE id = ?').run(id);
  }
}
