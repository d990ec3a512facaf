// The runs area of the API: methods.list (every method with its form fields, defaults straight from the methods'
// own parsers) and runs.summaries (the history table: steps, final and eval loss) after a real run on a tiny model.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { peftMethod, peftMethods } from '../../main/peft/registry.ts';
import type { ApiMethod, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import type { ConfigField, MethodInfo } from '../../main/service/method-catalog.ts';
import { parseRunConfig } from '../../main/service/run-config.ts';
import { IN_MEMORY, openStore, type Store } from '../../main/store/index.ts';
import { TRAINABLE_METHODS } from '../../main/train/method-training.ts';
import { tinyModelDir } from '../helpers/oracle-cache.ts';

let store: Store | undefined;
const dirs: string[] = [];
afterEach(() => {
  store?.close();
  store = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const connect = () => {
  store = openStore(IN_MEMORY);
  const sent: ResponseMessage[] = [];
  const connection = new ApiServer({ store }).connect((m) => sent.push(JSON.parse(JSON.stringify(m)) as ResponseMessage));
  let n = 0;
  const ask = async <M extends ApiMethod>(method: M, params: unknown): Promise<{ result: ApiResults[M]; events: unknown[] }> => {
    const id = `q${++n}`;
    await connection.receive({ id, method, params });
    const mine = sent.filter((m) => m.id === id);
    const last = mine.at(-1)!;
    if (last.type !== 'result') throw new Error(`${method} failed: ${JSON.stringify(last)}`);
    return { result: last.result as ApiResults[M], events: mine.filter((m) => m.type === 'event').map((m) => (m as { event: unknown }).event) };
  };
  return { ask, sent, connection };
};

/**
 * What a run supplies for the few fields the parsers require that no form default covers: AdaLoRA's total_step (the
 * run fills it with its step count) and AdapterFusion's adapters (the user picks trained ones; here one inline config).
 */
const SUPPLIED: Readonly<Record<string, Record<string, unknown>>> = {
  ADALORA: { total_step: 50 },
  ADAPTER_FUSION: { adapters: ['left'], adapter_configs: { left: { peft_type: 'BOTTLENECK' } } },
};
/** LoRA's optimizer variants: method-block fields train-run takes, not adapter_config fields. */
const OPTIMIZER_VARIANTS = new Set(['loraplus_lr_ratio', 'lora_fa']);

const requiredOf = (m: MethodInfo) => Object.fromEntries(m.fields.filter((f) => f.required && f.default !== null).map((f) => [f.name, f.default]));
const parse = (peftType: string, raw: Record<string, unknown>) => peftMethod(peftType).parseConfig({ ...raw, peft_type: peftType } as never, 'test') as { config: Record<string, unknown>; warnings: readonly string[] };

const valueFits = (f: ConfigField, v: unknown): boolean => {
  if (v === null) return true;
  switch (f.kind) {
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'choice':
      return (f.choices ?? []).includes(v as never);
    case 'list':
      return Array.isArray(v) || typeof v === 'string';
  }
};

describe('methods.list', () => {
  it('lists every method of the registry, trainable as method-training says, each field with an explanation', async () => {
    const { ask } = connect();
    const { result } = await ask('methods.list', {});
    expect(result.methods.map((m) => m.peftType)).toEqual(peftMethods().map((m) => m.peftType));
    for (const m of result.methods) {
      expect(m.trainable, m.peftType).toBe(TRAINABLE_METHODS.includes(m.peftType));
      expect(m.label).toBe(peftMethod(m.peftType).label);
      expect(m.summary.length, m.peftType).toBeGreaterThan(10);
      expect(new Set(m.fields.map((f) => f.name)).size, `${m.peftType}: a field listed twice`).toBe(m.fields.length);
      for (const f of m.fields) {
        expect(f.explain.length, `${m.peftType}.${f.name}`).toBeGreaterThan(10);
        expect(valueFits(f, f.default), `${m.peftType}.${f.name} default ${JSON.stringify(f.default)} is not a ${f.kind}`).toBe(true);
      }
    }
    expect(result.methods.find((m) => m.peftType === 'LORA')?.fields.map((f) => f.name)).toEqual(expect.arrayContaining(['r', 'lora_alpha', 'target_modules', 'use_dora']));
  });

  it("gives each field the default its method's parser yields for a config that leaves it out", async () => {
    const { ask } = connect();
    const { result } = await ask('methods.list', {});
    let compared = 0;
    for (const m of result.methods) {
      const parsed = parse(m.peftType, { ...SUPPLIED[m.peftType], ...requiredOf(m) }).config;
      for (const f of m.fields) {
        if (f.required || OPTIMIZER_VARIANTS.has(f.name) || f.name in (SUPPLIED[m.peftType] ?? {})) continue;
        expect(f.default, `${m.peftType}.${f.name}`).toEqual(parsed[f.name] ?? null);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(60);
    const lora = result.methods.find((m) => m.peftType === 'LORA')!;
    // A default the form would show wrongly: AdaLoRA's total_step is the run's, never a number of the catalog's.
    expect(result.methods.find((m) => m.peftType === 'ADALORA')!.fields.find((f) => f.name === 'total_step')!.default).toBeNull();
    expect(lora.fields.find((f) => f.name === 'loraplus_lr_ratio')!.default).toBeNull();
  });

  it('has required fields the parsers really require, and defaults that parse back unchanged without warnings', async () => {
    const { ask } = connect();
    const { result } = await ask('methods.list', {});
    for (const m of result.methods) {
      for (const f of m.fields.filter((x) => x.required)) {
        const without = Object.fromEntries(Object.entries({ ...SUPPLIED[m.peftType], ...requiredOf(m) }).filter(([k]) => k !== f.name));
        if (m.peftType === 'ADAPTER_FUSION') continue; // adapter_paths is one way to name the adapters (inline configs are another)
        expect(() => parse(m.peftType, without), `${m.peftType} without ${f.name}`).toThrow(f.name);
      }
      const block = Object.fromEntries(m.fields.filter((f) => f.default !== null && !OPTIMIZER_VARIANTS.has(f.name)).map((f) => [f.name, f.default]));
      const back = parse(m.peftType, { ...SUPPLIED[m.peftType], ...block });
      expect(back.warnings, m.peftType).toEqual([]);
      for (const [k, v] of Object.entries(block)) expect(back.config[k], `${m.peftType}.${k}`).toEqual(v);
    }
  });

  it("lists the training and dataset blocks with parseRunConfig's defaults", async () => {
    const { ask } = connect();
    const { result } = await ask('methods.list', {});
    const defaults = parseRunConfig({ model: 'm', dataset: { path: 'd' }, method: {}, output: 'o' }, 'test');
    const training = defaults.training as unknown as Record<string, unknown>;
    const names = result.training.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(['maxSteps', 'epochs', 'lr', 'microBatchSize', 'gradientAccumulation', 'maxLength', 'evalEvery', 'checkpointEvery', 'warmupSteps', 'schedule', 'seed', 'recompute']));
    for (const f of result.training) {
      const expected = training[f.name] ?? (f.kind === 'boolean' ? false : null);
      expect(f.default, `training.${f.name}`).toEqual(expected);
    }
    expect(result.training.find((f) => f.name === 'lr')!.default).toBe(defaults.training.lr);
    expect(result.dataset.find((f) => f.name === 'evalFraction')!.default).toBe(defaults.dataset.evalFraction);
    expect(result.dataset.find((f) => f.name === 'trainOn')!.default).toBe(defaults.dataset.trainOn);
  });

  it('rejects params that are not an object', async () => {
    const { connection, sent } = connect();
    await connection.receive({ id: 'x', method: 'methods.list', params: 42 });
    expect(sent.at(-1)).toMatchObject({ id: 'x', type: 'error', error: { code: 'bad-request' } });
  });
});

const model = tinyModelDir('llama3');

describe.skipIf(!model)('runs.summaries and runs.metrics', () => {
  it('shows a trained run with its steps, final train loss and last eval loss', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-run-api-'));
    dirs.push(dir);
    const rows = Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Count on from ${i + 1}:`, completion: ` ${Array.from({ length: (i % 4) + 2 }, (_, k) => i + 2 + k).join(' ')}` }));
    writeFileSync(join(dir, 'data.jsonl'), `${rows.join('\n')}\n`);
    const { ask } = connect();
    const config = {
      name: 'summary-run',
      model,
      dataset: { path: join(dir, 'data.jsonl'), evalFraction: 0.25 },
      method: { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
      training: { maxSteps: 4, microBatchSize: 2, maxLength: 32, evalEvery: 2, checkpointEvery: 100, lr: 0.01 },
      output: join(dir, 'out'),
    };
    const { result: trained, events } = await ask('train.start', { config });
    expect(trained.status).toBe('completed');
    const steps = events.filter((e): e is { type: 'step'; loss: number } => (e as { type: string }).type === 'step');
    const evals = events.filter((e): e is { type: 'eval'; loss: number } => (e as { type: string }).type === 'eval');
    expect(steps).toHaveLength(4);
    expect(evals.length).toBeGreaterThan(0);

    const { result: summaries } = await ask('runs.summaries', {});
    expect(summaries).toHaveLength(1);
    const [s] = summaries;
    expect(s).toMatchObject({ id: trained.runId, name: 'summary-run', status: 'completed', steps: 4, plannedSteps: 4 });
    expect(s!.finalLoss).toBeCloseTo(steps.at(-1)!.loss, 5);
    expect(s!.lastEvalLoss).toBeCloseTo(evals.at(-1)!.loss, 5);
    expect((await ask('runs.summaries', { status: 'running' })).result).toEqual([]);

    // runs.metrics: per series only the points after the step the client has; a series it does not name comes whole.
    const { result: shown } = await ask('runs.show', { id: trained.runId });
    const { result: whole } = await ask('runs.metrics', { id: trained.runId });
    expect(whole.metrics).toEqual(shown.metrics);
    expect(whole.run).toEqual(shown.run);
    const { result: after2 } = await ask('runs.metrics', { id: trained.runId, since: { 'train/loss': 2 } });
    expect(after2.metrics['train/loss']!.map((m) => m.step)).toEqual([3, 4]);
    expect(after2.metrics['train/loss']).toEqual(shown.metrics['train/loss']!.slice(2));
    expect(after2.metrics['eval/loss']).toEqual(shown.metrics['eval/loss']);
    const last = Object.fromEntries(Object.entries(shown.metrics).map(([name, samples]) => [name, samples.at(-1)!.step]));
    const { result: none } = await ask('runs.metrics', { id: trained.runId, since: last });
    expect(Object.values(none.metrics).every((samples) => samples.length === 0)).toBe(true);
    expect(Object.keys(none.metrics).sort()).toEqual(Object.keys(shown.metrics).sort());
    await expect(ask('runs.metrics', { id: trained.runId, since: { 'train/loss': 1.5 } })).rejects.toThrow(/bad-request.*params\.since/);
    await expect(ask('runs.metrics', { id: 999 })).rejects.toThrow(/bad-input/);
  });
});
