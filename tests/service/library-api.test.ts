// The Models and Adapters views' requests through the real dispatcher: models.open (describe + record, the recent
// list), models.download from a local Hub with progress and cancel, adapters.import (checked against the base model,
// naming the tensor that does not fit), adapters.exportPeft, and a merged GGUF export opened again as a model.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApiError, ApiEvent, ApiMethod, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import { openStore, type Store } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter } from './adapter-fixtures.ts';
import { startModelHub, type ModelHub } from './library-fake-hub.ts';

const llama = tinyModelDir('llama3');
const qwen = tinyModelDir('qwen3');

type Outcome<M extends ApiMethod> = { events: ApiEvent<M>[] } & ({ result: ApiResults[M]; error?: undefined } | { result?: undefined; error: ApiError });

/** One connection to an ApiServer over a store in `dir`; `ask` sends a request and waits for its outcome. */
const connect = (dir: string) => {
  const store: Store = openStore(join(dir, 'studio.db'));
  const waiting = new Map<string, { events: unknown[]; done: (o: Outcome<ApiMethod>) => void; onEvent?: (e: unknown) => void }>();
  const connection = new ApiServer({ store }).connect((raw) => {
    const m = JSON.parse(JSON.stringify(raw)) as ResponseMessage;
    const w = m.id === null ? undefined : waiting.get(m.id);
    if (!w) return;
    if (m.type === 'event') {
      w.events.push(m.event);
      w.onEvent?.(m.event);
    } else w.done(m.type === 'result' ? { events: w.events as never[], result: m.result } : { events: w.events as never[], error: m.error });
  });
  let n = 0;
  const ask = <M extends ApiMethod>(method: M, params: unknown, o: { id?: string; onEvent?: (e: ApiEvent<M>) => void } = {}): Promise<Outcome<M>> => {
    const id = o.id ?? `q${++n}`;
    return new Promise((resolve) => {
      waiting.set(id, { events: [], done: resolve as never, ...(o.onEvent ? { onEvent: o.onEvent as (e: unknown) => void } : {}) });
      void connection.receive({ id, method, params });
    });
  };
  const ok = async <M extends ApiMethod>(method: M, params: unknown): Promise<ApiResults[M]> => {
    const r = await ask(method, params);
    if (r.error) throw new Error(`${method} failed: ${r.error.message}`);
    return r.result!;
  };
  return { store, ask, ok, close: () => (connection.close(), store.close()) };
};

const folderBytes = (dir: string) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

describe.skipIf((!llama || !qwen) && !oracleRequired())('library requests (models, adapters)', () => {
  let work: string;
  let api: ReturnType<typeof connect>;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'peft-library-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  afterEach(() => {
    api?.close();
    vi.unstubAllEnvs();
  });

  it('models.open describes a model, records it, and models.list keeps the order of opening', async () => {
    api = connect(mkdtempSync(join(work, 'open-')));
    const first = await api.ok('models.open', { path: llama });
    expect(first.description).toMatchObject({ path: llama, format: 'hf', architecture: 'LlamaForCausalLM', modelType: 'llama', layers: 2, hiddenSize: 32, vocabSize: 128256, contextLength: 4096 });
    expect(first.description.bytes).toBe(folderBytes(llama!));
    expect(first.description.parameters).toBeGreaterThan(128256 * 32);
    expect(first.description.chatTemplate).toBeTruthy();
    expect(first.model).toMatchObject({ path: llama, name: 'llama3', format: 'hf', architecture: 'LlamaForCausalLM', params: first.description.parameters });
    expect(first.model.metadata).toMatchObject({ contextLength: 4096, layers: 2, bytes: first.description.bytes });

    await api.ok('models.open', { path: qwen });
    const again = await api.ok('models.open', { path: `${llama}/` });
    expect(again.model.id).toBe(first.model.id); // the same library entry, opened once more
    const listed = await api.ok('models.list', {});
    expect(listed).toHaveLength(2);
    const byOpening = [...listed].sort((a, b) => Number(b.metadata?.['openedAt']) - Number(a.metadata?.['openedAt']));
    expect(byOpening.map((m) => m.name)).toEqual(['llama3', 'qwen3']);
  });

  it('models.open refuses a folder that is not a model, naming the folder, and records nothing', async () => {
    api = connect(mkdtempSync(join(work, 'wrong-')));
    const notModel = join(work, 'just-some-folder');
    mkdirSync(notModel, { recursive: true });
    writeFileSync(join(notModel, 'notes.txt'), 'hello\n');
    const wrong = await api.ask('models.open', { path: notModel });
    expect(wrong.error).toMatchObject({ code: 'bad-input' });
    expect(wrong.error!.message).toContain(notModel);
    expect(wrong.error!.message).toMatch(/config\.json/);

    const adapter = randomAdapter(llama!, join(work, 'an-adapter-not-a-model'));
    const adapterAsModel = await api.ask('models.open', { path: adapter });
    expect(adapterAsModel.error!.message).toContain(adapter);
    const missing = await api.ask('models.open', { path: join(work, 'nowhere') });
    expect(missing.error!.message).toContain(join(work, 'nowhere'));
    expect((await api.ask('models.open', { path: '' })).error).toMatchObject({ code: 'bad-request', field: 'params.path' });
    expect(await api.ok('models.list', {})).toEqual([]);
  });

  describe('models.download from a local Hub', () => {
    let hub: ModelHub;
    beforeAll(async () => {
      hub = await startModelHub({ 'tiny-org/llama3': llama!, 'tiny-org/gguf-only': join(work, 'gguf-repo') });
    });
    afterAll(() => hub.close());
    const useHub = (cache: string) => {
      vi.stubEnv('HF_ENDPOINT', hub.endpoint);
      vi.stubEnv('HF_HUB_CACHE', cache);
      vi.stubEnv('HF_HOME', join(cache, 'home'));
      vi.stubEnv('HF_HUB_OFFLINE', '');
      vi.stubEnv('HF_TOKEN', '');
    };

    it('downloads into the HF cache with progress, opens and records the model; a second call reads the cache', async () => {
      const dir = mkdtempSync(join(work, 'download-'));
      useHub(join(dir, 'hub-cache'));
      api = connect(dir);
      hub.log.length = 0;
      const got = await api.ask('models.download', { repo: 'tiny-org/llama3' });
      if (got.error) throw new Error(got.error.message);
      const { result, events } = got;
      const commit = hub.commitOf('tiny-org/llama3');
      expect(result.snapshot).toBe(join(dir, 'hub-cache', 'models--tiny-org--llama3', 'snapshots', commit));
      expect(result.description).toMatchObject({ path: result.snapshot, format: 'hf', modelType: 'llama', layers: 2 });
      expect(result.model).toMatchObject({ name: 'tiny-org/llama3', path: result.snapshot });
      // The default selection: the weights and what the tokenizer and chat template need, not the oracle's logits.
      const files = readdirSync(result.snapshot).sort();
      expect(files).toContain('model.safetensors');
      expect(files).not.toContain('logits.f32');
      expect(result.description.bytes).toBe(files.reduce((n, f) => n + statSync(join(llama!, f)).size, 0));
      const weights = events.filter((e) => e.type === 'progress' && e.file === 'model.safetensors');
      expect(weights.length).toBeGreaterThan(1);
      expect(weights.at(-1)).toMatchObject({ received: statSync(join(llama!, 'model.safetensors')).size, total: statSync(join(llama!, 'model.safetensors')).size });
      expect(events.some((e) => e.type === 'stage' && e.message.includes(result.snapshot))).toBe(true);
      expect((await api.ok('models.list', {})).map((m) => m.name)).toEqual(['tiny-org/llama3']);

      hub.log.length = 0;
      const again = await api.ok('models.download', { repo: 'tiny-org/llama3' });
      expect(again.model.id).toBe(result.model.id);
      expect(hub.log.filter((r) => r.method === 'GET' && r.path.includes('/resolve/'))).toEqual([]);
    });

    it('is cancelled by jobs.cancel while bytes are flowing, and records nothing', async () => {
      const dir = mkdtempSync(join(work, 'cancel-'));
      useHub(join(dir, 'hub-cache'));
      api = connect(dir);
      hub.stallAfter = 1 << 20;
      try {
        let cancelled: Promise<unknown> | undefined;
        const got = await api.ask('models.download', { repo: 'tiny-org/llama3' }, {
          id: 'dl',
          onEvent: (e) => {
            if (e.type !== 'progress' || cancelled) return;
            // A refused cancel would leave the download hanging on the stalled body: drop it so the test fails fast.
            cancelled = api.ask('jobs.cancel', { requestId: 'dl' }).then((r) => (r.error && hub.dropConnections(), r.result ?? r.error));
          },
        });
        expect(await cancelled).toEqual({ found: true });
        expect(got.error?.message).toMatch(/cancelled/);
        expect(got.error?.message).toContain('tiny-org/llama3');
        expect(await api.ok('models.list', {})).toEqual([]);
      } finally {
        hub.stallAfter = null;
      }
    });

    it('names the repo it cannot find, rejects a malformed repo id, and opens the one GGUF a repo gives', async () => {
      const dir = mkdtempSync(join(work, 'gguf-dl-'));
      useHub(join(dir, 'hub-cache'));
      api = connect(dir);
      const unknown = await api.ask('models.download', { repo: 'tiny-org/no-such-model' });
      expect(unknown.error!.message).toContain('tiny-org/no-such-model');
      expect((await api.ask('models.download', { repo: '../etc' })).error).toMatchObject({ code: 'bad-request', field: 'params.repo' });

      // A GGUF of the tiny model (a merged export), served in a repo of its own.
      const adapter = randomAdapter(llama!, join(dir, 'adapter'));
      mkdirSync(join(work, 'gguf-repo'), { recursive: true });
      await api.ok('adapters.export', { model: llama, adapter, format: 'gguf', ggufType: 'f32', out: join(work, 'gguf-repo', 'tiny-f32.gguf') });
      writeFileSync(join(work, 'gguf-repo', 'README.md'), '# a GGUF repo\n');
      const got = await api.ok('models.download', { repo: 'tiny-org/gguf-only', include: ['*.gguf'] });
      expect(got.description).toMatchObject({ format: 'gguf', path: join(got.snapshot, 'tiny-f32.gguf'), modelType: 'llama', layers: 2, hiddenSize: 32 });
      expect(got.description.bytes).toBe(statSync(join(work, 'gguf-repo', 'tiny-f32.gguf')).size);
      expect(readdirSync(got.snapshot)).toEqual(['tiny-f32.gguf']);
      const noModel = await api.ask('models.download', { repo: 'tiny-org/gguf-only', include: ['README.md'] });
      expect(noModel.error!.message).toMatch(/neither a config\.json nor a \.gguf/);
    });
  });

  it('adapters.import checks the adapter against its base model, records it, and links the library model', async () => {
    api = connect(mkdtempSync(join(work, 'import-')));
    const opened = await api.ok('models.open', { path: llama });
    const adapter = randomAdapter(llama!, join(work, 'import-me'), {}, 3);
    const imported = await api.ok('adapters.import', { path: adapter, name: 'my adapter' });
    expect(imported.checkedAgainst).toBe(llama);
    expect(imported.adapter).toMatchObject({ name: 'my adapter', path: adapter, peftType: 'LORA', baseModel: llama, baseModelId: opened.model.id, runId: null });
    expect(imported.adapter.config).toMatchObject({ r: 4, lora_alpha: 8 });
    expect(await api.ok('adapters.list', {})).toEqual([imported.adapter]);
    const twice = await api.ask('adapters.import', { path: adapter });
    expect(twice.error).toMatchObject({ code: 'bad-input' });
    expect(twice.error!.message).toContain('already recorded');
  });

  it('adapters.import refuses an adapter of another model naming the tensor, and broken folders naming the file', async () => {
    api = connect(mkdtempSync(join(work, 'mismatch-')));
    const forLlama = randomAdapter(llama!, join(work, 'llama-adapter'), {}, 4);
    const mismatched = await api.ask('adapters.import', { path: forLlama, model: qwen });
    expect(mismatched.error).toMatchObject({ code: 'bad-input' });
    // llama3's q_proj is (32, 32), qwen3's (64, 32): lora_B of the first adapted q_proj does not fit.
    expect(mismatched.error!.message).toMatch(/tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[32, 4\]/);
    expect(mismatched.error!.message).toContain(qwen);

    // The same through the config: base_model_name_or_path names qwen3.
    const renamed = join(work, 'llama-adapter-says-qwen');
    cpSync(forLlama, renamed, { recursive: true });
    const config = JSON.parse(readFileSync(join(renamed, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(renamed, 'adapter_config.json'), JSON.stringify({ ...config, base_model_name_or_path: qwen }));
    expect((await api.ask('adapters.import', { path: renamed })).error!.message).toMatch(/q_proj\.lora_B\.weight/);

    const noConfig = join(work, 'no-config');
    mkdirSync(noConfig, { recursive: true });
    expect((await api.ask('adapters.import', { path: noConfig })).error!.message).toBe(`${noConfig} is not a PEFT adapter folder: it has no adapter_config.json`);
    const truncated = join(work, 'truncated');
    cpSync(forLlama, truncated, { recursive: true });
    writeFileSync(join(truncated, 'adapter_model.safetensors'), readFileSync(join(forLlama, 'adapter_model.safetensors')).subarray(0, 100));
    expect((await api.ask('adapters.import', { path: truncated })).error).toMatchObject({ code: 'bad-input' });
    const badRank = join(work, 'bad-rank');
    cpSync(forLlama, badRank, { recursive: true });
    writeFileSync(join(badRank, 'adapter_config.json'), JSON.stringify({ ...config, r: -2 }));
    expect((await api.ask('adapters.import', { path: badRank })).error!.message).toContain(join(badRank, 'adapter_config.json'));
    expect(await api.ok('adapters.list', {})).toEqual([]);
  });

  it('adapters.import records an adapter whose base is not on this machine, saying it was not checked', async () => {
    api = connect(mkdtempSync(join(work, 'unknown-base-')));
    vi.stubEnv('HF_HUB_CACHE', join(work, 'empty-hub-cache'));
    const adapter = join(work, 'from-elsewhere');
    cpSync(randomAdapter(llama!, join(work, 'elsewhere-src'), {}, 5), adapter, { recursive: true });
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ ...config, base_model_name_or_path: 'someone/unseen-model' }));
    const r = await api.ok('adapters.import', { path: adapter });
    expect(r.checkedAgainst).toBeNull();
    expect(r.adapter).toMatchObject({ name: 'from-elsewhere', baseModel: 'someone/unseen-model', baseModelId: null });
    expect(r.warnings.join('\n')).toContain("'someone/unseen-model' is not on this machine");
  });

  it('adapters.exportPeft copies the PEFT folder byte for byte and refuses to overwrite', async () => {
    api = connect(mkdtempSync(join(work, 'copy-')));
    const adapter = randomAdapter(llama!, join(work, 'copy-src'), {}, 6);
    const out = join(work, 'copy-out', 'peft');
    const r = await api.ok('adapters.exportPeft', { adapter, out });
    expect(r.dir).toBe(out);
    expect(readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    for (const f of readdirSync(out)) expect(readFileSync(join(out, f)).equals(readFileSync(join(adapter, f)))).toBe(true);
    const again = await api.ask('adapters.exportPeft', { adapter, out });
    expect(again.error).toMatchObject({ code: 'bad-input' });
    expect(again.error!.message).toMatch(/not empty/);
    expect((await api.ask('adapters.exportPeft', { adapter, out: join(adapter, 'inside') })).error!.message).toMatch(/inside the input/);
  });
});
