// The sweeps requests through the dispatcher on a tiny model: sweeps.start streams every trial's end with its
// objective, and sweeps.details gives back what the Sweeps view shows for it later (steps, losses, adapters, best,
// pruned trials).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import type { SweepEvent } from '../../main/service/sweep.ts';
import { IN_MEMORY, openStore, type Store } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const model = tinyModelDir('llama3');
let store: Store | undefined;
let dir: string | undefined;
afterEach(() => {
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const connection = () => {
  store = openStore(IN_MEMORY);
  const events = new Map<string, unknown[]>();
  const results = new Map<string, ResponseMessage>();
  const c = new ApiServer({ store }).connect((m) => {
    if (m.type === 'event') events.set(m.id, [...(events.get(m.id) ?? []), m.event]);
    else results.set(m.id ?? '', JSON.parse(JSON.stringify(m)) as ResponseMessage);
  });
  const ask = async <R>(id: string, method: string, params: unknown): Promise<R> => {
    await c.receive({ id, method, params });
    const m = results.get(id)!;
    if (m.type !== 'result') throw new Error(`${method} failed: ${JSON.stringify(m)}`);
    return m.result as R;
  };
  const fail = async (id: string, method: string, params: unknown) => {
    await c.receive({ id, method, params });
    const m = results.get(id)!;
    if (m.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(m)}`);
    return m.error;
  };
  return { ask, fail, events: (id: string) => (events.get(id) ?? []) as SweepEvent[] };
};

const sweepConfig = (extra: Record<string, unknown> = {}) => {
  dir = mkdtempSync(join(tmpdir(), 'peft-sweep-api-'));
  const dataset = join(dir, 'chat.jsonl');
  const rows = Array.from({ length: 24 }, (_, i) => ({ messages: [{ role: 'user', content: `What is ${i} plus one?` }, { role: 'assistant', content: `It is ${i + 1}.` }] }));
  writeFileSync(dataset, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return {
    name: 'api-sweep', model: model!, output: join(dir, 'out'),
    dataset: { path: dataset, evalFraction: 0.2 },
    method: { peft_type: 'LORA', target_modules: 'all-linear' },
    training: { microBatchSize: 2, maxSteps: 2, lr: 0.01, checkpointEvery: 0, maxLength: 64, seed: 3, session: { threads: 1 } },
    sweep: { mode: 'fused', space: { r: [2, 4], lora_alpha: [4, 8] }, ...extra },
  };
};

describe.skipIf(!model && !oracleRequired())('sweeps requests', () => {
  it('sweeps.details gives each trial its last step, losses, adapter and the best mark, matching what sweeps.start returned', async () => {
    const { ask, events } = connection();
    const outcome = await ask<ApiResults['sweeps.start']>('s', 'sweeps.start', { config: sweepConfig() });
    const done = events('s').filter((e) => e.type === 'trial-done');
    expect(done.map((e) => e.ordinal).sort()).toEqual([0, 1, 2, 3]);
    done.forEach((e) => expect(e.objective).toBe(outcome.trials[e.ordinal]!.objective));

    const details = await ask<ApiResults['sweeps.details']>('d', 'sweeps.details', { id: outcome.sweepId });
    expect(details.sweep).toMatchObject({ id: outcome.sweepId, status: 'completed', mode: 'fused' });
    expect(details.trials.map((t) => t.params)).toEqual(outcome.trials.map((t) => t.point));
    for (const t of details.trials) {
      const summary = outcome.trials[t.ordinal]!;
      expect(t).toMatchObject({ status: 'completed', runId: summary.runId, step: 2, adapterPath: summary.adapterDir, isBest: t.ordinal === outcome.best });
      expect(t.objective).toBeCloseTo(summary.objective!, 6);
      expect(t.evalLoss).toBeCloseTo(summary.objective!, 6);
      expect(Number.isFinite(t.loss)).toBe(true);
    }
    const objectives = details.trials.map((t) => t.objective!);
    expect(details.trials.find((t) => t.isBest)!.objective).toBe(Math.min(...objectives));
  });

  it('shows pruned trials with where they stopped and no adapter', async () => {
    const { ask } = connection();
    const outcome = await ask<ApiResults['sweeps.start']>('s', 'sweeps.start', { config: sweepConfig({ halving: { rungs: [1], keep: 0.5 } }) });
    const details = await ask<ApiResults['sweeps.details']>('d', 'sweeps.details', { id: outcome.sweepId });
    const pruned = details.trials.filter((t) => t.status === 'pruned');
    expect(pruned).toHaveLength(2);
    for (const t of pruned) expect(t).toMatchObject({ prunedAtStep: 1, step: 1, adapterPath: null, isBest: false });
    for (const t of details.trials.filter((x) => x.status === 'completed')) expect(t.adapterPath).toBe(outcome.trials[t.ordinal]!.adapterDir);
  });

  it('rejects an unknown sweep as bad input and a malformed id naming the field', async () => {
    const { fail } = connection();
    const unknown = await fail('u', 'sweeps.details', { id: 404 });
    expect(unknown.code).toBe('bad-input');
    expect(unknown.message).toContain('404');
    expect(await fail('m', 'sweeps.details', { id: 'one' })).toMatchObject({ code: 'bad-request', field: 'params.id' });
  });
});
