// The Models view and its state against the real service (tiny models on disk): opening by path makes the model
// the workspace's and shows its card; recently opened models reopen in one click; a wrong folder is named where it
// was typed; drop and Browse are desktop-only (a browser says to type the path); a Hub download shows progress and
// opens the model; several named chat templates show by name.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { ModelsState, modelsState } from '../../renderer/lib/state/models.svelte.ts';
import ModelsView from '../../renderer/views/ModelsView.svelte';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { startModelHub, type ModelHub } from '../service/library-fake-hub.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const llama = tinyModelDir('llama3');
const qwen = tinyModelDir('qwen3');

describe.skipIf((!llama || !qwen) && !oracleRequired())('Models', () => {
  let service: ServiceApi;
  let app: AppState;
  beforeEach(() => {
    service = serviceApi();
    setApi(service);
    app = new AppState();
  });
  afterEach(() => {
    setApi(undefined);
    service.close();
    vi.unstubAllEnvs();
  });

  it('state: opening a model shows it, makes it the workspace model and lists it; a wrong folder changes nothing', async () => {
    const models = new ModelsState(app);
    expect(await models.open(llama!)).toBe(true);
    expect(models.shown).toMatchObject({ path: llama, architecture: 'LlamaForCausalLM', layers: 2 });
    expect(app.workspace.model?.path).toBe(llama);
    expect(models.inUse).toBe(true);
    expect(models.recent.map((m) => m.path)).toEqual([llama]);

    const notModel = join(service.dir, 'not-a-model');
    mkdirSync(notModel);
    expect(await models.open(notModel)).toBe(false);
    expect(models.opening.error).toContain(notModel);
    expect(app.workspace.model?.path).toBe(llama);
    expect(models.shown?.path).toBe(llama);

    await models.open(qwen!);
    await models.open(llama!);
    expect(models.recent.map((m) => m.path)).toEqual([llama, qwen]);
    expect(modelsState(app)).toBe(modelsState(app)); // one per app, kept while other views are open
  });

  it('view: type a path and Open → the card (architecture, size, context, shape, template) says it is in use; recent models reopen', async () => {
    render(ModelsView, { app });
    expect(await screen.findByText('No model open yet')).toBeTruthy();
    await fireEvent.input(screen.getByTestId('model-path'), { target: { value: qwen } });
    await fireEvent.click(screen.getByTestId('model-open'));
    await screen.findByTestId('model-card');
    await fireEvent.input(screen.getByTestId('model-path'), { target: { value: llama } });
    await fireEvent.click(screen.getByTestId('model-open'));
    await waitFor(() => expect(within(screen.getByTestId('model-card')).getByText('llama3')).toBeTruthy());
    const card = within(screen.getByTestId('model-card'));
    expect(card.getByText(/LlamaForCausalLM/)).toBeTruthy();
    expect(card.getByText('4,096 tokens')).toBeTruthy();
    expect(card.getByText('128,256')).toBeTruthy();
    expect(card.getByText(/MB$/)).toBeTruthy();
    expect(card.getByTestId('model-in-use').textContent).toMatch(/model in use/);
    expect(card.getByTestId('chat-template').textContent).toContain('Chat template');
    expect(app.workspace.model?.path).toBe(llama);

    const recent = await screen.findAllByTestId('model-recent');
    expect(recent.map((r) => r.textContent)).toEqual([expect.stringContaining('llama3'), expect.stringContaining('qwen3')]);
    expect(recent[0]!.textContent).toContain('in use');
    await fireEvent.click(recent[1]!);
    await waitFor(() => expect(app.workspace.model?.path).toBe(qwen));
    expect(within(screen.getByTestId('model-card')).getByText('qwen3')).toBeTruthy();
    expect(service.sent.filter((s) => s.method === 'models.open').map((s) => s.params)).toEqual([{ path: qwen }, { path: llama }, { path: qwen }]);
  });

  it('view: a wrong folder is named in an error beside the path field, and no card appears', async () => {
    render(ModelsView, { app });
    const wrong = join(service.dir, 'empty-folder');
    mkdirSync(wrong);
    await fireEvent.input(screen.getByTestId('model-path'), { target: { value: wrong } });
    await fireEvent.click(screen.getByTestId('model-open'));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain(wrong);
    expect(alert.textContent).toContain('config.json');
    expect(screen.queryByTestId('model-card')).toBeNull();
    expect(app.workspace.model).toBeUndefined();
  });

  it('in a browser: no Browse buttons, and a drop says to type the path', async () => {
    render(ModelsView, { app });
    expect(screen.queryByText('Browse folder…')).toBeNull();
    await fireEvent.drop(screen.getByTestId('model-drop'), { dataTransfer: { files: [new File(['x'], 'model.gguf')] } });
    expect((await screen.findByText(/does not tell where "model.gguf" is on disk/)).textContent).toMatch(/type its path/);
    expect(service.sent.some((s) => s.method === 'models.open')).toBe(false);
  });

  it('on the desktop: a dropped folder opens from its path, and Browse opens what the dialog picked', async () => {
    // The desktop bridge's own functions (the preload's webUtils path and dialog) in front of the real service.
    const picked: string[] = [];
    setApi({ ...service, host: 'electron', pathForFile: () => qwen!, pickPath: async (o) => (picked.push(o.kind), llama!) });
    render(ModelsView, { app });
    await fireEvent.drop(screen.getByTestId('model-drop'), { dataTransfer: { files: [new File(['x'], 'qwen3')] } });
    await waitFor(() => expect(app.workspace.model?.path).toBe(qwen));
    await fireEvent.click(screen.getByText('Browse folder…'));
    await waitFor(() => expect(app.workspace.model?.path).toBe(llama));
    expect(picked).toEqual(['folder']);
  });

  it('shows several named chat templates by name', async () => {
    const named = join(service.dir, 'llama3-with-tools');
    mkdirSync(join(named, 'additional_chat_templates'), { recursive: true });
    for (const f of readdirSync(llama!)) symlinkSync(join(llama!, f), join(named, f));
    writeFileSync(join(named, 'additional_chat_templates', 'tool_use.jinja'), '{% for m in messages %}{{ m.content }}{% endfor %}');
    render(ModelsView, { app });
    await fireEvent.input(screen.getByTestId('model-path'), { target: { value: named } });
    await fireEvent.click(screen.getByTestId('model-open'));
    const template = await screen.findByTestId('chat-template');
    expect(template.querySelector('summary')!.textContent).toBe('Chat templates (2: default, tool_use)');
    expect(template.textContent).toContain('{% for m in messages %}{{ m.content }}{% endfor %}');
  });

  describe('downloads from a local Hub', () => {
    let hub: ModelHub;
    let work: string;
    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'peft-models-view-'));
      hub = await startModelHub({ 'tiny-org/qwen3': qwen! });
    });
    afterAll(async () => {
      await hub.close();
      rmSync(work, { recursive: true, force: true });
    });
    beforeEach(() => {
      const cache = mkdtempSync(join(work, 'cache-'));
      vi.stubEnv('HF_ENDPOINT', hub.endpoint);
      vi.stubEnv('HF_HUB_CACHE', cache);
      vi.stubEnv('HF_HOME', join(cache, 'home'));
      vi.stubEnv('HF_HUB_OFFLINE', '');
      vi.stubEnv('HF_TOKEN', '');
    });

    it('view: Download shows per-file progress, then the downloaded model is open and in use', async () => {
      render(ModelsView, { app });
      await fireEvent.input(screen.getByTestId('model-download-repo'), { target: { value: 'tiny-org/qwen3' } });
      await fireEvent.click(screen.getByTestId('model-download'));
      const card = await screen.findByTestId('model-card', {}, { timeout: 60_000 });
      expect(card.textContent).toContain(`models--tiny-org--qwen3`);
      expect(app.workspace.model?.architecture).toBe('Qwen3ForCausalLM');
      expect(screen.getByText('model.safetensors')).toBeTruthy();
      const models = modelsState(app);
      expect(models.downloadFraction).toBe(1);
      expect(models.recent.map((m) => m.name)).toEqual(['tiny-org/qwen3']);
    });

    it('state: a download is cancelled while its bytes flow, and says so', async () => {
      hub.stallAfter = 1 << 20;
      try {
        const models = new ModelsState(app);
        models.repo = 'tiny-org/qwen3';
        const done = models.download();
        await waitFor(() => expect(models.downloadFiles.some((f) => f.received > 0 && f.received < (f.total ?? Infinity))).toBe(true), { timeout: 30_000 });
        await models.cancelDownload();
        expect(await done).toBe(false);
        expect(models.downloading.status).toBe('cancelled');
        expect(models.downloading.error).toMatch(/cancelled/);
        expect(app.workspace.model).toBeUndefined();
      } finally {
        hub.stallAfter = null;
        hub.dropConnections();
      }
    });
  });
});
