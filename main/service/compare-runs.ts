// Runs side by side: which settings differ (their configs flattened to dotted fields, plus the content of the dataset
// each trained on) and every metric's final and best values.
import { createHash } from 'node:crypto';
import type { JsonValue, Run, Store } from '../store/index.ts';
import { StoreError } from '../store/index.ts';

export interface ComparedRun {
  readonly id: number;
  readonly name: string;
  readonly method: string;
  readonly status: string;
  readonly model: string;
  readonly dataset: string;
}

export interface ConfigDifference {
  /** A dotted path into the run configs (`training.lr`, `method.target_modules`). */
  readonly field: string;
  /** One per run, in the order asked; undefined where a run's config lacks the field. */
  readonly values: readonly (JsonValue | undefined)[];
}

export interface MetricPointAt {
  readonly step: number;
  readonly value: number;
}

export interface MetricComparison {
  readonly name: string;
  /** Each run's last sample, null where it has none. */
  readonly final: readonly (MetricPointAt | null)[];
  /** The lowest sample of a loss or perplexity, per run; absent for metrics without a better direction (lr, tok/s). */
  readonly best?: readonly (MetricPointAt | null)[];
}

export interface RunComparison {
  readonly runs: readonly ComparedRun[];
  readonly differences: readonly ConfigDifference[];
  /** Fields every run has with the same value. */
  readonly sameFields: number;
  readonly metrics: readonly MetricComparison[];
}

export class CompareRunsError extends Error {
  override readonly name = 'CompareRunsError';
}

/** Nested objects become dotted fields; arrays and scalars are values (compared as JSON). */
const flatten = (value: JsonValue, prefix: string, out: Map<string, JsonValue>): Map<string, JsonValue> => {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, JsonValue>);
    if (entries.length === 0 && prefix) out.set(prefix, value);
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, value);
  }
  return out;
};

const LOWER_IS_BETTER = /(^|\/)(loss|perplexity)$/;

/**
 * The dataset version a run trained on, by name, row count and a fingerprint of its rows: each run records its own
 * copy of a file, so two runs on the same data show the same label and any edit shows as a difference.
 */
const datasetLabel = (store: Store, run: Run): string => {
  const version = store.datasets.version(run.datasetVersionId);
  const hash = createHash('sha256');
  for (const r of store.datasets.rows(version.id)) hash.update(`${JSON.stringify(r.row)}\n`);
  return `${store.datasets.get(version.datasetId).name}: ${version.rowCount} rows, sha256 ${hash.digest('hex').slice(0, 12)}`;
};

/** Compares two or more runs of the history; an unknown id is a CompareRunsError naming it. */
export const compareRuns = (store: Store, ids: readonly number[]): RunComparison => {
  if (ids.length < 2) throw new CompareRunsError(`compare needs at least two run ids, got ${ids.length}`);
  const runs = ids.map((id) => {
    if (!Number.isInteger(id) || id <= 0) throw new CompareRunsError(`'${id}' is not a run id`);
    const run = store.runs.find(id);
    if (!run) throw new CompareRunsError(`no run ${id} in the history`);
    return run;
  });
  const compared = runs.map((r): ComparedRun => {
    let model: string;
    let dataset: string;
    try {
      model = store.models.get(r.modelId).path;
      dataset = datasetLabel(store, r);
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      [model, dataset] = ['?', '?'];
    }
    return { id: r.id, name: r.name, method: r.method, status: r.status, model, dataset };
  });

  const flat = runs.map((r, i) => flatten(r.config, '', new Map([['dataset content', compared[i]!.dataset]])));
  const fields = [...new Set(flat.flatMap((f) => [...f.keys()]))].sort();
  const differences: ConfigDifference[] = [];
  for (const field of fields) {
    const values = flat.map((f) => f.get(field));
    const texts = new Set(values.map((v) => (v === undefined ? '\u0000absent' : JSON.stringify(v))));
    if (texts.size > 1) differences.push({ field, values });
  }

  const names = [...new Set(runs.flatMap((r) => store.metrics.names(r.id)))].sort();
  const metrics = names.map((name): MetricComparison => {
    const series = runs.map((r) => store.metrics.series(r.id, name).filter((s) => !Number.isNaN(s.value)));
    const final = series.map((s) => (s.length ? { step: s.at(-1)!.step, value: s.at(-1)!.value } : null));
    if (!LOWER_IS_BETTER.test(name)) return { name, final };
    const best = series.map((s) => s.reduce<MetricPointAt | null>((b, x) => (b === null || x.value < b.value ? { step: x.step, value: x.value } : b), null));
    return { name, final, best };
  });
  return { runs: compared, differences, sameFields: fields.length - differences.length, metrics };
};
