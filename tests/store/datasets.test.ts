import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_DELTA_DEPTH, MIN_DELTA_ENTRY_BUDGET, type DatasetEdit, type JsonValue, type Store } from '../../main/store/index.ts';
import { ENVIRONMENT, testStore, type TestStore } from './helpers.ts';

let t: TestStore;
let store: Store;
beforeEach(() => {
  t = testStore();
  store = t.store;
});
afterEach(() => t.dispose());

const rowsOf = (versionId: number): [number, JsonValue][] => store.datasets.rows(versionId).map((r) => [r.key, r.row]);
const count = (table: string): number => (store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

/** Mulberry32: a tiny seeded PRNG. */
const prng = (seed: number): (() => number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};

describe('datasets', () => {
  it('imports rows as version 1 and reads them back, paged', () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({ instruction: `q${i}`, output: `a${i}`, n: i }));
    const { dataset, version } = store.datasets.create({ name: 'qa', format: 'alpaca', sourcePath: '/data/qa.jsonl', rows });
    expect(dataset).toMatchObject({ name: 'qa', format: 'alpaca', sourcePath: '/data/qa.jsonl', headVersionId: version.id, rowCount: 25 });
    expect(version).toMatchObject({ number: 1, parentId: null, kind: 'snapshot', rowCount: 25, message: 'import' });
    expect(store.datasets.rows(version.id).map((r) => r.row)).toEqual(rows);
    expect(store.datasets.rows(version.id, { offset: 20, limit: 3 }).map((r) => r.key)).toEqual([21, 22, 23]);
    expect(store.datasets.row(version.id, 3)).toEqual(rows[2]);
    expect(store.datasets.row(version.id, 99)).toBeUndefined();
    expect(store.datasets.list().map((d) => d.id)).toEqual([dataset.id]);
    expect(store.datasets.rename(dataset.id, 'qa2').name).toBe('qa2');
  });

  it('edits make versions; undo and redo move the head; every version stays readable', () => {
    const { dataset, version: v1 } = store.datasets.create({ name: 'd', format: 'text', rows: ['a', 'b', 'c'] });
    const v2 = store.datasets.commit(dataset.id, { update: [{ key: 2, row: 'B' }] }, 'capitalize b');
    const v3 = store.datasets.commit(dataset.id, { delete: [1], insert: ['d', 'e'] }, 'drop a, add d e');
    expect(v2).toMatchObject({ number: 2, parentId: v1.id, kind: 'delta', rowCount: 3 });
    expect(v3).toMatchObject({ number: 3, parentId: v2.id, kind: 'delta', rowCount: 4 });
    expect(rowsOf(v3.id)).toEqual([[2, 'B'], [3, 'c'], [4, 'd'], [5, 'e']]);
    expect(store.datasets.undoState(dataset.id)).toEqual({ canUndo: true, canRedo: false });

    expect(store.datasets.undo(dataset.id).id).toBe(v2.id);
    expect(store.datasets.get(dataset.id)).toMatchObject({ headVersionId: v2.id, rowCount: 3 });
    expect(store.datasets.undo(dataset.id).id).toBe(v1.id);
    expect(store.datasets.undoState(dataset.id)).toEqual({ canUndo: false, canRedo: true });
    expect(() => store.datasets.undo(dataset.id)).toThrow(expect.objectContaining({ code: 'nothing-to-undo' }));
    expect(store.datasets.redo(dataset.id).id).toBe(v2.id);
    expect(store.datasets.redo(dataset.id).id).toBe(v3.id);
    expect(() => store.datasets.redo(dataset.id)).toThrow(expect.objectContaining({ code: 'nothing-to-redo' }));

    // A new edit after an undo branches; redo then follows the newest branch, and the old branch stays readable.
    store.datasets.undo(dataset.id);
    const v4 = store.datasets.commit(dataset.id, { update: [{ key: 3, row: 'C' }] }, 'branch');
    expect(v4).toMatchObject({ number: 4, parentId: v2.id });
    expect(store.datasets.undoState(dataset.id)).toEqual({ canUndo: true, canRedo: false });
    store.datasets.undo(dataset.id);
    expect(store.datasets.redo(dataset.id).id).toBe(v4.id);
    // Keys are never reused across branches: the branch's insert gets 6, not 4.
    const v5 = store.datasets.commit(dataset.id, { insert: ['x'] }, 'insert on branch');
    expect(rowsOf(v5.id)).toEqual([[1, 'a'], [2, 'B'], [3, 'C'], [6, 'x']]);
    expect(rowsOf(v3.id)).toEqual([[2, 'B'], [3, 'c'], [4, 'd'], [5, 'e']]);
    expect(rowsOf(v1.id)).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect(store.datasets.checkout(dataset.id, v3.id).id).toBe(v3.id);
    expect(store.datasets.versions(dataset.id).map((v) => v.number)).toEqual([1, 2, 3, 4, 5]);
  });

  it('rejects edits that name rows the head does not have, or change nothing', () => {
    const { dataset } = store.datasets.create({ name: 'd', format: 'text', rows: ['a', 'b'] });
    store.datasets.commit(dataset.id, { delete: [1] }, 'drop a');
    expect(() => store.datasets.commit(dataset.id, { update: [{ key: 1, row: 'A' }] }, 'x')).toThrow(expect.objectContaining({ code: 'invalid-input' }));
    expect(() => store.datasets.commit(dataset.id, { delete: [7] }, 'x')).toThrow(/row 7: it is not in the head version/);
    expect(() => store.datasets.commit(dataset.id, { delete: [2], update: [{ key: 2, row: 'B' }] }, 'x')).toThrow(/appears twice/);
    expect(() => store.datasets.commit(dataset.id, {}, 'x')).toThrow(/must change something/);
    expect(() => store.datasets.commit(dataset.id, { insert: [Number.NaN] }, 'x')).toThrow(/finite/);
    expect(() => store.datasets.checkout(dataset.id + 1, store.datasets.get(dataset.id).headVersionId)).toThrow();
    expect(store.datasets.versions(dataset.id)).toHaveLength(2);
  });

  it('bounds delta chains with snapshots, and a large edit is a snapshot', () => {
    const { dataset } = store.datasets.create({ name: 'd', format: 'text', rows: Array.from({ length: 100 }, (_, i) => `r${i}`) });
    const kinds: string[] = [];
    for (let i = 0; i < MAX_DELTA_DEPTH + 3; i++) kinds.push(store.datasets.commit(dataset.id, { update: [{ key: 1, row: `edit ${i}` }] }, `e${i}`).kind);
    expect(kinds.slice(0, MAX_DELTA_DEPTH)).toEqual(Array(MAX_DELTA_DEPTH).fill('delta'));
    expect(kinds[MAX_DELTA_DEPTH]).toBe('snapshot');
    expect(kinds[MAX_DELTA_DEPTH + 1]).toBe('delta');
    const depth = store.db.prepare('SELECT MAX(chain_depth) AS d FROM dataset_versions').get() as { d: number };
    expect(depth.d).toBe(MAX_DELTA_DEPTH);
    // A one-row edit stores one entry, not 100.
    const head = store.datasets.get(dataset.id).headVersionId;
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM dataset_version_entries WHERE version_id = ?').get(head)).toEqual({ n: 1 });
    // An edit touching more entries than the chain budget (max(MIN_DELTA_ENTRY_BUDGET, rows / 2)) is a snapshot.
    const large = store.datasets.create({ name: 'large', format: 'text', rows: Array.from({ length: 3000 }, (_, i) => `r${i}`) });
    const small = store.datasets.commit(large.dataset.id, { delete: Array.from({ length: 500 }, (_, i) => i + 1) }, 'drop 500');
    expect(small).toMatchObject({ kind: 'delta', rowCount: 2500 });
    const big = store.datasets.commit(large.dataset.id, { delete: Array.from({ length: 1600 }, (_, i) => i + 501) }, 'drop 1600');
    expect(1600).toBeGreaterThan(MIN_DELTA_ENTRY_BUDGET);
    expect(big).toMatchObject({ kind: 'snapshot', rowCount: 900 });
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM dataset_version_entries WHERE version_id = ?').get(big.id)).toEqual({ n: 900 });
    expect(store.datasets.rows(big.id).map((r) => r.row)).toEqual(Array.from({ length: 900 }, (_, i) => `r${i + 2100}`));
  });

  it('random edit sequences read back exactly like an in-memory reference, at every version', () => {
    const random = prng(7);
    const initial = Array.from({ length: 300 }, (_, i) => ({ text: `row ${i}` }));
    const { dataset, version } = store.datasets.create({ name: 'r', format: 'text', rows: initial });
    const reference = new Map<number, Map<number, JsonValue>>([[version.id, new Map(initial.map((r, i) => [i + 1, r]))]]);
    let nextKey = initial.length + 1;
    for (let step = 0; step < 120; step++) {
      if (random() < 0.15) {
        const state = store.datasets.undoState(dataset.id);
        if (state.canUndo && random() < 0.6) store.datasets.undo(dataset.id);
        else if (state.canRedo) store.datasets.redo(dataset.id);
        continue;
      }
      const head = store.datasets.get(dataset.id).headVersionId;
      const current = new Map(reference.get(head));
      const keys = [...current.keys()];
      const pick = (): number => keys.splice(Math.floor(random() * keys.length), 1)[0] ?? -1;
      const edit: { insert: JsonValue[]; update: { key: number; row: JsonValue }[]; delete: number[] } = { insert: [], update: [], delete: [] };
      const size = random() < 0.1 ? 120 : 1 + Math.floor(random() * 6);
      for (let i = 0; i < size; i++) {
        const r = random();
        if (r < 0.4 && keys.length > 0) edit.update.push({ key: pick(), row: { text: `step ${step} edit ${i}` } });
        else if (r < 0.7 && keys.length > 0) edit.delete.push(pick());
        else edit.insert.push({ text: `step ${step} new ${i}` });
      }
      for (const u of edit.update) current.set(u.key, u.row);
      for (const k of edit.delete) current.delete(k);
      for (const row of edit.insert) current.set(nextKey++, row);
      const v = store.datasets.commit(dataset.id, edit as DatasetEdit, `step ${step}`);
      expect(v.rowCount).toBe(current.size);
      reference.set(v.id, current);
    }
    expect(reference.size).toBeGreaterThan(90);
    const kinds = new Set(store.datasets.versions(dataset.id).map((v) => v.kind));
    expect(kinds).toEqual(new Set(['snapshot', 'delta']));
    for (const [versionId, expected] of reference) {
      expect(rowsOf(versionId)).toEqual([...expected].sort((a, b) => a[0] - b[0]));
    }
  });

  it('delete cascades to versions and rows, but not while a run used a version', () => {
    const model = store.models.add({ name: 'm', path: '/m', format: 'gguf', architecture: 'llama', params: 1 });
    const { dataset } = store.datasets.create({ name: 'd', format: 'text', rows: ['a', 'b'] });
    const v2 = store.datasets.commit(dataset.id, { insert: ['c'] }, 'add c');
    const run = store.runs.create({ name: 'r', method: 'lora', modelId: model.id, datasetVersionId: v2.id, config: {} });
    store.runs.start(run.id, ENVIRONMENT);
    // Undoing does not free the version the run pinned: it is still readable exactly.
    store.datasets.undo(dataset.id);
    expect(rowsOf(store.runs.get(run.id).datasetVersionId)).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect(() => store.datasets.delete(dataset.id)).toThrow(expect.objectContaining({ code: 'in-use', message: expect.stringContaining(`runs ${run.id}`) }));
    store.runs.delete(run.id);
    store.datasets.delete(dataset.id);
    for (const table of ['datasets', 'dataset_versions', 'dataset_rows', 'dataset_version_entries']) expect(count(table), table).toBe(0);
    expect(store.integrity().ok).toBe(true);
  });
});
