import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../main/store/index.ts';
import { seedRunPrerequisites, testStore, type TestStore } from './helpers.ts';

let t: TestStore;
let store: Store;
let seed: ReturnType<typeof seedRunPrerequisites>;
beforeEach(() => {
  t = testStore();
  store = t.store;
  seed = seedRunPrerequisites(store);
});
afterEach(() => t.dispose());

const count = (table: string): number => (store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
const newRun = () => store.runs.create({ name: 'r', method: 'lora', modelId: seed.modelId, datasetVersionId: seed.datasetVersionId, config: {} });

describe('adapters', () => {
  it('add (trained or imported), get, list by run and base model, rename, delete', () => {
    const run = newRun();
    const trained = store.adapters.add({
      runId: run.id,
      name: 'lora r8',
      path: '/adapters/1',
      peftType: 'LORA',
      config: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] },
      baseModel: 'HuggingFaceTB/SmolLM2-135M-Instruct',
      baseModelId: seed.modelId,
    });
    const imported = store.adapters.add({ name: 'imported', path: '/adapters/2', peftType: 'VERA', config: {}, baseModel: 'other' });
    expect(trained).toMatchObject({ runId: run.id, peftType: 'LORA', config: { r: 8, lora_alpha: 16 }, baseModelId: seed.modelId });
    expect(imported).toMatchObject({ runId: null, baseModelId: null });
    expect(store.adapters.list().map((a) => a.id)).toEqual([imported.id, trained.id]);
    expect(store.adapters.list({ runId: run.id }).map((a) => a.id)).toEqual([trained.id]);
    expect(store.adapters.list({ baseModelId: seed.modelId }).map((a) => a.id)).toEqual([trained.id]);
    expect(store.adapters.rename(imported.id, 'vera').name).toBe('vera');
    expect(() => store.adapters.add({ name: 'dup', path: '/adapters/1', peftType: 'LORA', config: {}, baseModel: 'x' })).toThrow(
      expect.objectContaining({ code: 'conflict' }),
    );
    expect(() => store.adapters.add({ runId: 999, name: 'x', path: '/x', peftType: 'LORA', config: {}, baseModel: 'x' })).toThrow(
      expect.objectContaining({ code: 'not-found' }),
    );
    store.adapters.delete(imported.id);
    expect(() => store.adapters.get(imported.id)).toThrow(expect.objectContaining({ code: 'not-found' }));
  });
});

describe('sweeps and trials', () => {
  it('create with trials, run them, prune, pick the best, finish', () => {
    const grid = [4, 8, 16].flatMap((r) => [8, 16].map((alpha) => ({ r, alpha })));
    const { sweep, trials } = store.sweeps.create({ name: 'r × alpha', mode: 'fused', config: { lr: 2e-4, steps: 100 }, trials: grid });
    expect(sweep).toMatchObject({ mode: 'fused', status: 'queued', config: { lr: 2e-4, steps: 100 }, startedAt: null });
    expect(trials.map((x) => [x.ordinal, x.params, x.status, x.isBest])).toEqual(grid.map((p, i) => [i, p, 'queued', false]));
    expect(store.sweeps.setStatus(sweep.id, 'running').startedAt).not.toBeNull();

    trials.forEach((trial, i) => {
      store.sweeps.updateTrial(trial.id, { status: 'running', runId: newRun().id });
      if (i % 2 === 0) store.sweeps.updateTrial(trial.id, { status: 'pruned', prunedAtStep: 50, objective: 3 - i * 0.1 });
      else store.sweeps.updateTrial(trial.id, { status: 'completed', objective: 2 - i * 0.1 });
    });
    const done = store.sweeps.trials(sweep.id);
    expect(done.every((x) => x.finishedAt !== null)).toBe(true);
    expect(done.filter((x) => x.status === 'pruned').map((x) => x.prunedAtStep)).toEqual([50, 50, 50]);
    expect(() => store.sweeps.updateTrial(done[0]?.id ?? -1, { status: 'running' })).toThrow(expect.objectContaining({ code: 'invalid-transition' }));
    expect(() => store.sweeps.updateTrial(done[0]?.id ?? -1, { objective: Number.NaN })).toThrow(/finite/);

    const best = done.filter((x) => x.status === 'completed').reduce((a, b) => ((a.objective ?? 9) <= (b.objective ?? 9) ? a : b));
    store.sweeps.markBest(done[1]?.id ?? -1);
    store.sweeps.markBest(best.id);
    expect(store.sweeps.best(sweep.id)?.id).toBe(best.id);
    expect(store.sweeps.trials(sweep.id).filter((x) => x.isBest)).toHaveLength(1);
    expect(store.sweeps.setStatus(sweep.id, 'completed').finishedAt).not.toBeNull();
    expect(() => store.sweeps.setStatus(sweep.id, 'running')).toThrow(expect.objectContaining({ code: 'invalid-transition' }));
    expect(store.sweeps.list().map((s) => s.id)).toEqual([sweep.id]);
  });

  it('the schema itself allows one best trial per sweep', () => {
    const { sweep } = store.sweeps.create({ name: 's', mode: 'sequential', config: {}, trials: [{ r: 1 }, { r: 2 }] });
    expect(() => store.db.prepare('UPDATE trials SET is_best = 1 WHERE sweep_id = ?').run(sweep.id)).toThrow(/UNIQUE/);
  });

  it('rejects empty sweeps and unknown modes; delete cascades to trials, runs stay', () => {
    expect(() => store.sweeps.create({ name: 's', mode: 'fused', config: {}, trials: [] })).toThrow(/at least one trial/);
    expect(() => store.sweeps.create({ name: 's', mode: 'parallel' as 'fused', config: {}, trials: [{}] })).toThrow(/sweep mode/);
    const run = newRun();
    const { sweep, trials } = store.sweeps.create({ name: 's', mode: 'sequential', config: {}, trials: [{ r: 1 }, { r: 2 }] });
    store.sweeps.updateTrial(trials[0]?.id ?? -1, { runId: run.id });
    store.sweeps.delete(sweep.id);
    expect(count('trials')).toBe(0);
    expect(store.runs.get(run.id).id).toBe(run.id);
  });
});

describe('chat', () => {
  it('sessions with adapters side by side; messages record which pane answered', () => {
    const a1 = store.adapters.add({ name: 'terse', path: '/a1', peftType: 'LORA', config: {}, baseModel: 'tiny' });
    const a2 = store.adapters.add({ name: 'pirate', path: '/a2', peftType: 'LORA', config: {}, baseModel: 'tiny' });
    const session = store.chats.createSession({ title: 'compare', modelId: seed.modelId, settings: { temperature: 0 }, adapterIds: [a2.id, a1.id] });
    expect(session).toMatchObject({ title: 'compare', modelId: seed.modelId, settings: { temperature: 0 }, adapterIds: [a2.id, a1.id] });
    store.chats.addMessage({ sessionId: session.id, role: 'system', content: 'be brief' });
    store.chats.addMessage({ sessionId: session.id, role: 'user', content: 'hi' });
    store.chats.addMessage({ sessionId: session.id, role: 'assistant', content: 'Hello! How can I help?' });
    store.chats.addMessage({ sessionId: session.id, role: 'assistant', content: 'Hi.', adapterId: a1.id, stats: { tokens: 2, tokPerS: 40.5 } });
    const arr = store.chats.addMessage({ sessionId: session.id, role: 'assistant', content: 'Arr!', adapterId: a2.id });
    expect(store.chats.session(session.id).updatedAt).toBe(arr.createdAt);
    expect(store.chats.messages(session.id).map((m) => [m.role, m.adapterName, m.content])).toEqual([
      ['system', null, 'be brief'],
      ['user', null, 'hi'],
      ['assistant', null, 'Hello! How can I help?'],
      ['assistant', 'terse', 'Hi.'],
      ['assistant', 'pirate', 'Arr!'],
    ]);
    expect(store.chats.messages(session.id)[3]?.stats).toEqual({ tokens: 2, tokPerS: 40.5 });
    expect(() => store.chats.addMessage({ sessionId: session.id, role: 'user', content: 'x', adapterId: a1.id })).toThrow(/does not come from an adapter/);
    expect(() => store.chats.createSession({ title: 'x', adapterIds: [a1.id, a1.id] })).toThrow(/twice/);
    expect(() => store.chats.createSession({ title: 'x', adapterIds: [999] })).toThrow(expect.objectContaining({ code: 'not-found' }));

    // Deleting an adapter closes its pane; its messages keep the adapter's name.
    store.adapters.delete(a1.id);
    expect(store.chats.session(session.id).adapterIds).toEqual([a2.id]);
    expect(store.chats.messages(session.id)[3]).toMatchObject({ adapterId: null, adapterName: 'terse' });

    expect(store.chats.updateSession(session.id, { title: 'renamed', adapterIds: [] })).toMatchObject({ title: 'renamed', adapterIds: [] });
    const other = store.chats.createSession({ title: 'newer' });
    expect(store.chats.sessions().map((s) => s.id)).toEqual([other.id, session.id]);
    store.chats.deleteSession(session.id);
    expect(count('chat_messages')).toBe(0);
    expect(store.integrity().ok).toBe(true);
  });
});
