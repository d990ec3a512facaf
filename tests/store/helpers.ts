import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type OpenStoreOptions, type Store } from '../../main/store/index.ts';

/** A fresh folder under the OS temp dir, removed by the returned cleanup. */
export const tempDir = (): { dir: string; cleanup: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-store-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

/** A deterministic clock: 1000, 1001, 1002, ... */
export const tickingClock = (start = 1000): (() => number) => {
  let t = start;
  return () => t++;
};

export interface TestStore {
  readonly store: Store;
  readonly path: string;
  readonly dir: string;
  dispose(): void;
}

/** A migrated store in a temp file (WAL needs a file), with a ticking clock. */
export const testStore = (options: OpenStoreOptions = {}): TestStore => {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'history.db');
  const store = openStore(path, { now: tickingClock(), ...options });
  return {
    store,
    path,
    dir,
    dispose: () => {
      store.close();
      cleanup();
    },
  };
};

let seeded = 0;

/** A model and a one-version dataset, enough to create runs. */
export const seedRunPrerequisites = (store: Store): { modelId: number; datasetId: number; datasetVersionId: number } => {
  const model = store.models.add({ name: 'tiny', path: `/models/tiny-${++seeded}`, format: 'hf', architecture: 'llama', params: 1000 });
  const { dataset, version } = store.datasets.create({
    name: 'd',
    format: 'alpaca',
    rows: [{ instruction: 'a', output: 'b' }],
  });
  return { modelId: model.id, datasetId: dataset.id, datasetVersionId: version.id };
};

export const ENVIRONMENT = { ort: '1.30.0', provider: 'cpu', threads: 2, node: process.version } as const;
