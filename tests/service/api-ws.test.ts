// The API over a real WebSocket against the real service, store and engine on the tiny Qwen3: describe the model,
// inspect a dataset, train with step events, list and show runs, cancel a run, pause and resume one.
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelDescription, RunDetails, TrainResult } from '../../main/service/api-contract.ts';
import type { ChatSideBySideResult } from '../../main/service/chat.ts';
import { serveApi, type RunningServer } from '../../main/server/ws-server.ts';
import { openStore, type Run, type Store } from '../../main/store/index.ts';
import type { DatasetInspection } from '../../main/train/dataset/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { connectApi, type ApiTestClient } from './api-ws-client.ts';

const model = tinyModelDir('qwen3');

/** Element count of every tensor, read from the safetensors header itself. */
const safetensorsParameters = (file: string): number => {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { shape?: number[] }>;
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .reduce((n, [, t]) => n + t.shape!.reduce((a, d) => a * d, 1), 0);
};

const writeDataset = (dir: string): string => {
  const file = join(dir, 'sums.jsonl');
  const rows = Array.from({ length: 40 }, (_, i) => ({
    messages: [
      { role: 'user', content: `What is ${i} plus ${i}?` },
      { role: 'assistant', content: `The answer is ${2 * i}.` },
    ],
  }));
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

describe.skipIf(!model && !oracleRequired())('API over WebSocket on the tiny Qwen3', () => {
  let dir: string;
  let dataset: string;
  let store: Store;
  let server: RunningServer;
  let client: ApiTestClient;
  const runConfig = (name: string, maxSteps: number) => ({
    name,
    model: model!,
    dataset: { path: dataset, evalFraction: 0.1 },
    method: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] },
    training: { microBatchSize: 2, maxSteps, lr: 0.01, evalEvery: 1000, checkpointEvery: 1000, maxLength: 64, session: { threads: 1 } },
    output: join(dir, name),
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peft-api-ws-'));
    dataset = writeDataset(dir);
    store = openStore(join(dir, 'history.db'));
    server = await serveApi({ store });
    client = await connectApi(server.apiUrl);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    store?.close();
  });

  it('describes the model: architecture, size, context length, chat template', async () => {
    const r = await client.request('d1', 'models.describe', { path: model });
    expect(r.error).toBeUndefined();
    const d = r.result as ModelDescription;
    const config = JSON.parse(readFileSync(join(model!, 'config.json'), 'utf8')) as { max_position_embeddings: number; num_hidden_layers: number };
    expect(d.architecture).toBe('Qwen3ForCausalLM');
    expect(d.format).toBe('hf');
    expect(d.contextLength).toBe(config.max_position_embeddings);
    expect(d.layers).toBe(config.num_hidden_layers);
    expect(d.parameters).toBe(safetensorsParameters(join(model!, 'model.safetensors')));
    expect(d.bytes).toBe(readdirSync(model!).reduce((n, f) => n + statSync(join(model!, f)).size, 0));
    expect(d.chatTemplate).toBe(readFileSync(join(model!, 'chat_template.jinja'), 'utf8'));
  });

  it('inspects a dataset with the model tokenizer', async () => {
    const r = await client.request('i1', 'datasets.inspect', { path: dataset, model });
    const report = r.result as DatasetInspection;
    expect(report).toMatchObject({ usable: true, format: 'openai', rows: 40, errors: 0 });
    expect(report.tokens?.examples).toBe(40);
  });

  it('trains a run, streaming its steps, then lists and shows it', async () => {
    const r = await client.request('t1', 'train.start', { config: runConfig('ws-run', 4) });
    expect(r.error).toBeUndefined();
    const result = r.result as TrainResult;
    expect(result).toMatchObject({ status: 'completed', steps: 4 });
    expect(existsSync(join(result.adapterDir!, 'adapter_model.safetensors'))).toBe(true);
    const steps = r.events.filter((e) => (e as { type: string }).type === 'step') as { step: number; loss: number }[];
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(steps.every((s) => Number.isFinite(s.loss))).toBe(true);

    const runs = (await client.request('l1', 'runs.list', {})).result as Run[];
    expect(runs.map((x) => [x.id, x.name, x.status])).toContainEqual([result.runId, 'ws-run', 'completed']);
    const shown = (await client.request('s1', 'runs.show', { id: result.runId })).result as RunDetails;
    expect(shown.metrics['train/loss']!.map((p) => p.value)).toEqual(steps.map((s) => s.loss));
    expect(shown.adapters.map((a) => a.path)).toEqual([result.adapterDir]);
  });

  it('cancels a training run by its request id', async () => {
    let cancelled: Promise<unknown> | undefined;
    const r = await client.request('t2', 'train.start', { config: runConfig('ws-cancel', 200) }, (e) => {
      if ((e as { type: string }).type === 'step' && !cancelled) cancelled = client.request('c2', 'jobs.cancel', { requestId: 't2' });
    });
    expect((await cancelled) as { result: unknown }).toMatchObject({ result: { found: true } });
    const result = r.result as TrainResult;
    expect(result.status).toBe('cancelled');
    expect(result.steps).toBeLessThan(200);
    expect(store.runs.get(result.runId).status).toBe('cancelled');
  });

  it('pauses a run with a checkpoint and resumes it to the end', async () => {
    const config = runConfig('ws-pause', 6);
    let paused: Promise<unknown> | undefined;
    const first = await client.request('t3', 'train.start', { config }, (e) => {
      if ((e as { type: string }).type === 'step' && !paused) paused = client.request('p3', 'jobs.pause', { requestId: 't3' });
    });
    await paused;
    const stopped = first.result as TrainResult;
    expect(stopped.status).toBe('paused');
    expect(store.runs.get(stopped.runId).status).toBe('paused');

    const second = await client.request('t4', 'train.start', { config, resume: true });
    const resumed = second.result as TrainResult;
    expect(resumed).toMatchObject({ runId: stopped.runId, status: 'completed', resumedFrom: stopped.steps });
    const steps = second.events.filter((e) => (e as { type: string }).type === 'step').map((e) => (e as { step: number }).step);
    expect(steps[0]).toBe(stopped.steps + 1);
    expect(steps.at(-1)).toBe(6);
  });

  it('streams a side-by-side chat answer token by token', async () => {
    const r = await client.request('ch1', 'chat.sideBySide', { model, prompt: 'What is 2 plus 2?', sampling: { maxNewTokens: 6, temperature: 0 } });
    expect(r.error).toBeUndefined();
    const result = r.result as ChatSideBySideResult;
    expect(result.columns).toHaveLength(1);
    const tokens = r.events as { column: number; text: string }[];
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens.map((t) => t.text).join('')).toBe(result.columns[0]!.text);
  });

  it('cancels a connection\'s training run when the connection closes', async () => {
    const other = await connectApi(server.apiUrl);
    const config = runConfig('ws-close', 200);
    await new Promise<void>((resolve) => {
      void other.request('t5', 'train.start', { config }, (e) => {
        if ((e as { type: string }).type === 'step') resolve();
      });
    });
    other.close();
    const run = () => store.runs.list().find((x) => x.name === 'ws-close')!;
    await expect.poll(() => run().status, { timeout: 60_000 }).toBe('cancelled');
    expect(store.metrics.series(run().id, 'train/loss').length).toBeLessThan(200);
  });

  it('refuses to cancel work that cannot stop early, naming the request', async () => {
    const [evalReply, cancelReply] = await Promise.all([
      client.request('e1', 'eval.run', { model, dataset, adapters: [], maxLength: 32 }),
      client.request('c5', 'jobs.cancel', { requestId: 'e1' }),
    ]);
    expect(cancelReply.error).toMatchObject({ code: 'bad-request', field: 'params.requestId' });
    expect(cancelReply.error!.message).toContain('eval.run');
    expect(evalReply.error).toBeUndefined();
  });
});
