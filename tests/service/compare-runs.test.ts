import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompareRunsError, compareRuns } from '../../main/service/compare-runs.ts';
import { openStore } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { trainTinyRun, writeChatDataset } from './adapter-fixtures.ts';

const llama = tinyModelDir('llama3');

describe.skipIf(!llama && !oracleRequired())('compareRuns', () => {
  it('lists exactly the config fields that differ and each metric final and best', async () => {
    const work = mkdtempSync(join(tmpdir(), 'peft-compare-'));
    const dataset = writeChatDataset(work);
    const store = openStore(join(work, 'history.db'));
    const a = await trainTinyRun(store, { model: llama!, dataset, output: join(work, 'a'), name: 'small', r: 2, lr: 0.05, steps: 3 });
    const b = await trainTinyRun(store, { model: llama!, dataset, output: join(work, 'b'), name: 'large', r: 8, lr: 0.01, steps: 3 });

    const c = compareRuns(store, [a.runId, b.runId]);
    expect(c.runs.map((r) => [r.id, r.name, r.status, r.model])).toEqual([[a.runId, 'small', 'completed', llama], [b.runId, 'large', 'completed', llama]]);
    // Each run recorded its own copy of the file: the same rows, so the dataset is not a difference.
    expect(c.runs[0]!.dataset).toMatch(/^chat\.jsonl: 24 rows, sha256 [0-9a-f]{12}$/);
    expect(c.runs[1]!.dataset).toBe(c.runs[0]!.dataset);
    expect(Object.fromEntries(c.differences.map((d) => [d.field, d.values]))).toEqual({
      'method.lora_alpha': [4, 16],
      'method.r': [2, 8],
      name: ['small', 'large'],
      output: [join(work, 'a'), join(work, 'b')],
      'training.lr': [0.05, 0.01],
    });
    expect(c.sameFields).toBeGreaterThan(10);

    const byName = new Map(c.metrics.map((m) => [m.name, m]));
    const loss = byName.get('train/loss')!;
    for (const [i, run] of [a, b].entries()) {
      const series = store.metrics.series(run.runId, 'train/loss');
      expect(loss.final[i]).toEqual({ step: 3, value: series.at(-1)!.value });
      expect(loss.best![i]!.value).toBe(Math.min(...series.map((s) => s.value)));
    }
    expect(byName.get('eval/loss')!.best).toBeDefined();
    expect(byName.get('lr')!.best).toBeUndefined();
    expect(() => compareRuns(store, [a.runId, 999])).toThrow(CompareRunsError);
    expect(() => compareRuns(store, [a.runId])).toThrow(/at least two/);
    store.close();
  });
});
