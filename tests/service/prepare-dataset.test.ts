// A run on a dataset of the library (the app's Train and Sweeps views give it the version's file, datasets.file)
// records that version, not a second copy of the dataset; any other file is recorded as a new dataset.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { versionFile } from '../../main/service/datasets-files.ts';
import { recordDataset, type JobData } from '../../main/service/prepare.ts';
import { openStore, type Store } from '../../main/store/index.ts';

const rows = [{ text: 'one' }, { text: 'two' }, { text: 'three' }];
const job = (records: readonly object[]) => ({ records, format: 'text' }) as unknown as JobData;
const config = (path: string) => ({ model: 'm', dataset: { path }, training: {} }) as never;

describe('recordDataset', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'peft-prepare-'));
    store = openStore(join(dir, 'history.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reuses the library version a datasets.file path holds, and only that', () => {
    const { dataset } = store.datasets.create({ name: 'notes.jsonl', format: 'text', rows });
    const edited = store.datasets.commit(dataset.id, { delete: [store.datasets.rows(dataset.headVersionId)[0]!.key] }, 'drop one');
    const v1 = store.datasets.versions(dataset.id).find((v) => v.number === 1)!;
    expect(recordDataset(store, config(versionFile(store, dataset.id, v1.id).path), job(rows))).toBe(v1.id);
    expect(recordDataset(store, config(versionFile(store, dataset.id).path), job(rows.slice(1)))).toBe(edited.id);
    expect(store.datasets.list()).toHaveLength(1);

    // The same file changed behind the app's back (another row count): what was read becomes a dataset of its own.
    const changed = recordDataset(store, config(versionFile(store, dataset.id).path), job(rows));
    expect(changed).not.toBe(edited.id);
    // A user's own file, even one named like a version file, is a new dataset too.
    const own = join(dir, 'v1.jsonl');
    writeFileSync(own, rows.map((r) => JSON.stringify(r)).join('\n'));
    expect(recordDataset(store, config(own), job(rows))).not.toBe(v1.id);
    expect(store.datasets.list()).toHaveLength(3);
  });
});
