// Adapters: trained by a run, or imported from disk (runId null). They outlive their run.
import { checkText, found, type Clock } from './common.ts';
import { translateConstraint } from './errors.ts';
import { fromJson, objectToJson, type JsonObject } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';

export interface Adapter {
  readonly id: number;
  /** The run that trained it; null when imported, or when that run was deleted. */
  readonly runId: number | null;
  readonly name: string;
  readonly path: string;
  /** PEFT's peft_type: 'LORA', 'VERA', ... */
  readonly peftType: string;
  /** adapter_config.json as saved. */
  readonly config: JsonObject;
  /** The base model it was trained against, as named in its config (HF id or path). */
  readonly baseModel: string;
  /** That base model in the library, when it is there. */
  readonly baseModelId: number | null;
  readonly createdAt: number;
}

export interface NewAdapter {
  readonly runId?: number;
  readonly name: string;
  readonly path: string;
  readonly peftType: string;
  readonly config: JsonObject;
  readonly baseModel: string;
  readonly baseModelId?: number;
}

interface AdapterRow {
  id: number;
  run_id: number | null;
  name: string;
  path: string;
  peft_type: string;
  config: string;
  base_model: string;
  base_model_id: number | null;
  created_at: number;
}

const toAdapter = (r: AdapterRow): Adapter => ({
  id: r.id,
  runId: r.run_id,
  name: r.name,
  path: r.path,
  peftType: r.peft_type,
  config: fromJson<JsonObject>(r.config, `config of adapter ${r.id}`),
  baseModel: r.base_model,
  baseModelId: r.base_model_id,
  createdAt: r.created_at,
});

export class AdapterStore {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {}

  /** StoreError 'conflict' for a path already recorded, 'not-found' for a missing run or base model. */
  add(input: NewAdapter): Adapter {
    const config = objectToJson(input.config, 'adapter config');
    const row = translateConstraint(
      () =>
        this.db
          .prepare<[number | null, string, string, string, string, string, number | null, number], AdapterRow>(
            `INSERT INTO adapters (run_id, name, path, peft_type, config, base_model, base_model_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
          )
          .get(
            input.runId ?? null,
            checkText(input.name, 'adapter name'),
            checkText(input.path, 'adapter path'),
            checkText(input.peftType, 'adapter peft_type'),
            config,
            checkText(input.baseModel, 'adapter base model'),
            input.baseModelId ?? null,
            this.now(),
          ),
      {
        unique: `an adapter at ${input.path} is already recorded`,
        foreignKey: `adapter refers to run ${input.runId} or model ${input.baseModelId}, which does not exist`,
      },
    );
    return toAdapter(found(row, 'the inserted adapter'));
  }

  get(id: number): Adapter {
    return toAdapter(found(this.db.prepare<[number], AdapterRow>('SELECT * FROM adapters WHERE id = ?').get(id), `adapter ${id}`));
  }

  /** Newest first; optionally those of one run or one base model. */
  list(filter: { runId?: number; baseModelId?: number } = {}): Adapter[] {
    return this.db
      .prepare<{ run: number | null; model: number | null }, AdapterRow>(
        `SELECT * FROM adapters WHERE (:run IS NULL OR run_id = :run) AND (:model IS NULL OR base_model_id = :model)
          ORDER BY created_at DESC, id DESC`,
      )
      .all({ run: filter.runId ?? null, model: filter.baseModelId ?? null })
      .map(toAdapter);
  }

  rename(id: number, name: string): Adapter {
    this.get(id);
    this.db.prepare('UPDATE adapters SET name = ? WHERE id = ?').run(checkText(name, 'adapter name'), id);
    return this.get(id);
  }

  /** Forgets an adapter (its files stay); chat panes using it close, its chat messages keep its name. */
  delete(id: number): Adapter {
    const adapter = this.get(id);
    this.db.prepare('DELETE FROM adapters WHERE id = ?').run(id);
    return adapter;
  }
}
