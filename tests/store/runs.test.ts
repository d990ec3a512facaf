import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INTERRUPTED, RUN_STATUSES, RUN_TRANSITIONS, StoreError, type RunStatus, type Store } from '../../main/store/index.ts';
import { ENVIRONMENT, seedRunPrerequisites, testStore, type TestStore } from './helpers.ts';

let t: TestStore;
let store: Store;
let seed: ReturnType<typeof seedRunPrerequisites>;
beforeEach(() => {
  t = testStore();
  store = t.store;
  seed = seedRunPrerequisites(store);
});
afterEach(() => t.dispose());

const newRun = (name = 'run', config = { r: 8, alpha: 16, lr: 2e-4, targets: ['q_proj', 'v_proj'] }) =>
  store.runs.create({ name, method: 'lora', modelId: seed.modelId, datasetVersionId: seed.datasetVersionId, config });
const count = (table: string): number => (store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

describe('models', () => {
  it('add, get, find by path, list, update, delete', () => {
    const m = store.models.add({ name: 'SmolLM2', path: '/m/smol.gguf', format: 'gguf', architecture: 'llama', params: 134_515_008, metadata: { quant: 'Q4_1' } });
    expect(store.models.get(m.id)).toEqual(m);
    expect(m).toMatchObject({ format: 'gguf', params: 134_515_008, metadata: { quant: 'Q4_1' } });
    expect(store.models.findByPath('/m/smol.gguf')?.id).toBe(m.id);
    expect(store.models.find(9999)).toBeUndefined();
    expect(store.models.list().map((x) => x.id)).toEqual([m.id, seed.modelId]);
    expect(store.models.update(m.id, { name: 'smol' })).toMatchObject({ name: 'smol', metadata: { quant: 'Q4_1' } });
    expect(() => store.models.add({ ...m, metadata: {} })).toThrow(expect.objectContaining({ code: 'conflict' }));
    expect(() => store.models.add({ name: 'x', path: '/x', format: 'onnx' as 'hf', architecture: 'llama', params: 1 })).toThrow(/format/);
    store.models.delete(m.id);
    expect(() => store.models.get(m.id)).toThrow(expect.objectContaining({ code: 'not-found', message: `model ${m.id} does not exist` }));
  });

  it('a model used by runs cannot be deleted; adapters and chats only forget it', () => {
    const run = newRun();
    const adapter = store.adapters.add({ name: 'a', path: '/a', peftType: 'LORA', config: {}, baseModel: 'tiny', baseModelId: seed.modelId });
    const chat = store.chats.createSession({ title: 'c', modelId: seed.modelId });
    expect(() => store.models.delete(seed.modelId)).toThrow(expect.objectContaining({ code: 'in-use' }));
    // The schema enforces it too, for writes that bypass the store.
    expect(() => store.db.prepare('DELETE FROM models WHERE id = ?').run(seed.modelId)).toThrow(/FOREIGN KEY/);
    expect(() => store.db.prepare('DELETE FROM datasets WHERE id = ?').run(seed.datasetId)).toThrow(/FOREIGN KEY/);
    store.runs.delete(run.id);
    store.models.delete(seed.modelId);
    expect(store.adapters.get(adapter.id).baseModelId).toBeNull();
    expect(store.chats.session(chat.id).modelId).toBeNull();
  });
});

describe('runs', () => {
  it('create, get, list with filters, update', () => {
    const a = newRun('a');
    const b = newRun('b');
    expect(a).toMatchObject({
      name: 'a',
      method: 'lora',
      status: 'queued',
      config: { r: 8, alpha: 16, lr: 2e-4, targets: ['q_proj', 'v_proj'] },
      environment: null,
      error: null,
      startedAt: null,
      finishedAt: null,
      datasetVersionId: seed.datasetVersionId,
    });
    expect(store.runs.list().map((r) => r.name)).toEqual(['b', 'a']);
    store.runs.start(b.id, ENVIRONMENT);
    expect(store.runs.list({ status: 'running' }).map((r) => r.id)).toEqual([b.id]);
    expect(store.runs.list({ modelId: seed.modelId, limit: 1 }).map((r) => r.id)).toEqual([b.id]);
    expect(store.runs.list({ limit: 1, offset: 1 }).map((r) => r.id)).toEqual([a.id]);
    expect(store.runs.update(a.id, { name: 'a2', config: { r: 4 } })).toMatchObject({ name: 'a2', config: { r: 4 } });
    expect(() => store.runs.update(b.id, { config: { r: 4 } })).toThrow(expect.objectContaining({ code: 'invalid-transition' }));
    expect(store.runs.update(b.id, { name: 'b2' }).environment).toEqual(ENVIRONMENT);
    expect(() => store.runs.create({ name: 'x', method: 'lora', modelId: 999, datasetVersionId: seed.datasetVersionId, config: {} })).toThrow(
      expect.objectContaining({ code: 'not-found' }),
    );
    expect(() => newRun('bad', { lr: Number.NaN } as never)).toThrow(/run config\.lr is NaN/);
  });

  it('follows the life cycle and records its times, environment and error', () => {
    const run = newRun();
    const started = store.runs.start(run.id, ENVIRONMENT);
    expect(started).toMatchObject({ status: 'running', environment: ENVIRONMENT, finishedAt: null });
    const startedAt = started.startedAt;
    expect(startedAt).toBeGreaterThan(run.createdAt);
    expect(store.runs.pause(run.id).status).toBe('paused');
    expect(store.runs.resume(run.id).startedAt).toBe(startedAt);
    const failed = store.runs.fail(run.id, 'NaN loss at step 12');
    expect(failed).toMatchObject({ status: 'failed', error: 'NaN loss at step 12' });
    expect(failed.finishedAt).toBeGreaterThan(startedAt ?? Infinity);
    expect(() => store.runs.resume(run.id)).toThrow(expect.objectContaining({ code: 'invalid-transition', message: `run ${run.id} cannot go from failed to running` }));
    expect(() => store.runs.fail(newRun().id, '')).toThrow(/needs its error text/);
  });

  it('allows exactly the transitions of RUN_TRANSITIONS', () => {
    const walk: Record<RunStatus, RunStatus[]> = {
      queued: [],
      running: ['running'],
      paused: ['running', 'paused'],
      completed: ['running', 'completed'],
      failed: ['failed'],
      cancelled: ['cancelled'],
    };
    for (const from of RUN_STATUSES) {
      for (const to of RUN_STATUSES) {
        const run = newRun(`${from}->${to}`);
        for (const s of walk[from]) store.runs.setStatus(run.id, s, { error: 'e' });
        expect(store.runs.get(run.id).status).toBe(from);
        const allowed = RUN_TRANSITIONS[from].includes(to);
        const attempt = () => store.runs.setStatus(run.id, to, { error: 'e' });
        if (allowed) expect(attempt().status).toBe(to);
        else expect(attempt).toThrow(StoreError);
      }
    }
  });

  it('markInterrupted turns runs left running into resumable paused runs', () => {
    const a = newRun('a');
    const b = newRun('b');
    const c = newRun('c');
    store.runs.start(a.id, ENVIRONMENT);
    store.runs.start(c.id, ENVIRONMENT);
    expect(store.runs.markInterrupted()).toEqual([a.id, c.id]);
    expect(store.runs.get(a.id)).toMatchObject({ status: 'paused', error: INTERRUPTED });
    expect(store.runs.get(b.id).status).toBe('queued');
    expect(store.runs.resume(a.id)).toMatchObject({ status: 'running', error: null });
  });

  it('delete cascades to metrics and checkpoints, returns checkpoint paths; adapters and trials stay', () => {
    const run = newRun();
    const other = newRun('other');
    store.metrics.append([{ runId: run.id, name: 'loss', step: 1, value: 2 }, { runId: other.id, name: 'loss', step: 1, value: 3 }]);
    store.checkpoints.add({ runId: run.id, step: 20, path: '/c/20', bytes: 10 });
    store.checkpoints.add({ runId: run.id, step: 10, path: '/c/10', bytes: 10 });
    const adapter = store.adapters.add({ runId: run.id, name: 'a', path: '/a', peftType: 'LORA', config: { r: 8 }, baseModel: 'tiny' });
    const { trials } = store.sweeps.create({ name: 's', mode: 'fused', config: {}, trials: [{ r: 8 }] });
    store.sweeps.updateTrial(trials[0]?.id ?? -1, { runId: run.id, status: 'running' });
    expect(store.runs.delete(run.id)).toEqual({ checkpointPaths: ['/c/10', '/c/20'] });
    expect(store.metrics.count(run.id)).toBe(0);
    expect(store.metrics.count(other.id)).toBe(1);
    expect(count('checkpoints')).toBe(0);
    expect(store.adapters.get(adapter.id).runId).toBeNull();
    expect(store.sweeps.trial(trials[0]?.id ?? -1)).toMatchObject({ runId: null, status: 'running' });
    expect(store.runs.find(run.id)).toBeUndefined();
    expect(store.integrity()).toEqual({ ok: true, problems: [], foreignKeyViolations: [] });
  });
});

describe('metrics', () => {
  it('append in one transaction, read series, names, latest; NaN and Infinity round-trip', () => {
    const run = newRun();
    store.metrics.append([
      { runId: run.id, name: 'loss', step: 2, value: 1.5, time: 20 },
      { runId: run.id, name: 'loss', step: 1, value: 2.5, time: 10 },
      { runId: run.id, name: 'lr', step: 1, value: 1e-4 },
      { runId: run.id, name: 'grad_norm', step: 3, value: Number.NaN },
      { runId: run.id, name: 'grad_norm', step: 4, value: Number.POSITIVE_INFINITY },
    ]);
    expect(store.metrics.series(run.id, 'loss')).toEqual([{ step: 1, value: 2.5, time: 10 }, { step: 2, value: 1.5, time: 20 }]);
    expect(store.metrics.series(run.id, 'grad_norm').map((s) => s.value)).toEqual([Number.NaN, Number.POSITIVE_INFINITY]);
    expect(store.metrics.names(run.id)).toEqual(['grad_norm', 'loss', 'lr']);
    const latest = store.metrics.latest(run.id);
    expect(latest.get('loss')).toEqual({ step: 2, value: 1.5, time: 20 });
    expect(latest.get('grad_norm')?.step).toBe(4);
    expect(store.metrics.count(run.id)).toBe(5);
  });

  it('a step logged again replaces its value; deleteAfter forgets later steps; series can be ranged and thinned', () => {
    const run = newRun();
    store.metrics.append(Array.from({ length: 100 }, (_, i) => ({ runId: run.id, name: 'loss', step: i, value: i })));
    store.metrics.append([{ runId: run.id, name: 'loss', step: 50, value: -1 }]);
    expect(store.metrics.count(run.id)).toBe(100);
    expect(store.metrics.series(run.id, 'loss', { fromStep: 49, toStep: 51 }).map((s) => s.value)).toEqual([49, -1, 51]);
    const thin = store.metrics.series(run.id, 'loss', { maxPoints: 10 });
    expect(thin.length).toBeLessThanOrEqual(11);
    expect(thin[0]?.step).toBe(0);
    expect(thin.at(-1)?.step).toBe(99);
    expect(store.metrics.deleteAfter(run.id, 79)).toBe(20);
    expect(store.metrics.latest(run.id).get('loss')?.step).toBe(79);
  });

  it('a batch naming a missing run writes nothing', () => {
    const run = newRun();
    expect(() =>
      store.metrics.append([{ runId: run.id, name: 'loss', step: 1, value: 1 }, { runId: 999, name: 'loss', step: 1, value: 1 }]),
    ).toThrow(expect.objectContaining({ code: 'not-found' }));
    expect(store.metrics.count(run.id)).toBe(0);
    expect(() => store.metrics.append([{ runId: run.id, name: 'loss', step: -1, value: 1 }])).toThrow(/integer ≥ 0/);
  });
});

describe('checkpoints', () => {
  it('add, replace the same step, list, latest, keepLatest, totalBytes, delete', () => {
    const run = newRun();
    const c1 = store.checkpoints.add({ runId: run.id, step: 100, path: '/ck/100', bytes: 1000 });
    store.checkpoints.add({ runId: run.id, step: 200, path: '/ck/200', bytes: 2000 });
    store.checkpoints.add({ runId: run.id, step: 300, path: '/ck/300', bytes: 3000 });
    const again = store.checkpoints.add({ runId: run.id, step: 200, path: '/ck/200b', bytes: 2100 });
    expect(store.checkpoints.list(run.id).map((c) => [c.step, c.path])).toEqual([[100, '/ck/100'], [200, '/ck/200b'], [300, '/ck/300']]);
    expect(again.bytes).toBe(2100);
    expect(store.checkpoints.latest(run.id)?.step).toBe(300);
    expect(store.checkpoints.totalBytes(run.id)).toBe(6100);
    expect(store.checkpoints.get(c1.id)).toEqual(c1);
    expect(store.checkpoints.keepLatest(run.id, 2).map((c) => c.path)).toEqual(['/ck/100']);
    expect(store.checkpoints.delete(again.id).step).toBe(200);
    expect(store.checkpoints.list(run.id).map((c) => c.step)).toEqual([300]);
    expect(() => store.checkpoints.add({ runId: 999, step: 1, path: '/x', bytes: 0 })).toThrow(expect.objectContaining({ code: 'not-found' }));
    expect(store.checkpoints.latest(newRun().id)).toBeUndefined();
  });
});
