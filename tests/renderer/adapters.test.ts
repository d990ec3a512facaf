// The Adapters view and its state against the real service: trained and imported adapters listed with method, base,
// run and rank; import (and a mismatched adapter's error naming the tensor, in place); a weighted merge of the
// selection; export as a PEFT copy and a GGUF, with errors shown in the export panel; open the selection in Chat.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, setApi } from '../../renderer/lib/api.ts';
import { AdaptersState, adaptersState } from '../../renderer/lib/state/adapters.svelte.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import AdaptersView from '../../renderer/views/AdaptersView.svelte';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter, trainTinyRun, writeChatDataset } from '../service/adapter-fixtures.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const llama = tinyModelDir('llama3');
const qwen = tinyModelDir('qwen3');

const typeInto = (testId: string, value: string) => fireEvent.input(screen.getByTestId(testId), { target: { value } });
const rows = () => screen.queryAllByTestId('adapter-row');
const rowOf = (name: string) => rows().find((r) => within(r).queryByText(name) !== null)!;
const panel = (label: string) => within(screen.getByRole('region', { name: label }));

/** An adapter written in PEFT's format and recorded in the library as a finished import would record it. */
const recorded = (service: ServiceApi, dir: string, seed: number): string => {
  const path = randomAdapter(llama!, dir, {}, seed);
  const base = service.store.models.findByPath(llama!)!;
  const config = JSON.parse(readFileSync(join(path, 'adapter_config.json'), 'utf8')) as Record<string, never>;
  service.store.adapters.add({ name: dir.split('/').pop()!, path, peftType: 'LORA', config, baseModel: llama!, baseModelId: base.id });
  return path;
};

describe.skipIf((!llama || !qwen) && !oracleRequired())('Adapters', () => {
  let service: ServiceApi;
  let app: AppState;
  beforeEach(async () => {
    service = serviceApi();
    setApi(service);
    app = new AppState();
    await api().request('models.open', { path: llama! }); // the base is in the model library
  });
  afterEach(() => {
    setApi(undefined);
    service.close();
  });

  it('state: lists trained and imported adapters, finds their base model, and opens the selection in Chat', async () => {
    const dataset = writeChatDataset(service.dir, 12);
    const trained = await trainTinyRun(service.store, { model: llama!, dataset, output: join(service.dir, 'run-a'), name: 'run-a', r: 2, lr: 1e-3, steps: 2 });
    const lib = new AdaptersState(app);
    lib.importPath = randomAdapter(llama!, join(service.dir, 'written'), {}, 2);
    expect(await lib.importAdapter()).toBe(true);
    expect(lib.adapters.map((a) => [a.name, a.runId, a.peftType])).toEqual([['written', null, 'LORA'], ['run-a', trained.runId, 'LORA']]);
    expect(lib.selected).toEqual([lib.adapters[0]!.id]); // the imported adapter is selected
    expect(lib.basePathOf(lib.adapters[1]!)).toBe(llama);
    expect(lib.defaultBaseModel).toBe(llama);

    lib.toggle(lib.adapters[1]!.id);
    expect(lib.selection.map((a) => a.name)).toEqual(['written', 'run-a']);
    expect(lib.weightOf(lib.adapters[0]!.id)).toBe('0.5');
    expect(await lib.openInChat()).toBe(true);
    expect(app.view).toBe('chat');
    expect(app.workspace.chatAdapters).toEqual([join(service.dir, 'written'), trained.adapterDir]);
    expect(app.workspace.model?.path).toBe(llama);
    expect(adaptersState(app)).toBe(adaptersState(app));
  });

  it('view: import a PEFT folder → a row with name, method, base, run and rank; a mismatched adapter names the tensor in place', async () => {
    render(AdaptersView, { app });
    expect(await screen.findByText('No adapters yet')).toBeTruthy();
    const adapter = randomAdapter(llama!, join(service.dir, 'my-lora'), { r: 8, lora_alpha: 16 }, 3);
    await typeInto('adapter-import-path', adapter);
    await fireEvent.click(screen.getByTestId('adapter-import'));
    await waitFor(() => expect(rows()).toHaveLength(1));
    const cells = [...rows()[0]!.querySelectorAll('td')].map((td) => td.textContent);
    expect(cells.slice(1, 7)).toEqual(['my-lora', 'LORA', llama, 'imported', '8', adapter]);
    expect(panel('Import an adapter').getByRole('status').textContent).toContain(`checked against ${llama}`);

    const forQwen = randomAdapter(qwen!, join(service.dir, 'qwen-lora'), {}, 4);
    await typeInto('adapter-import-path', forQwen);
    // …checked against the llama base instead of the qwen3 one its config names: a mismatch.
    const config = JSON.parse(readFileSync(join(forQwen, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(forQwen, 'adapter_config.json'), JSON.stringify({ ...config, base_model_name_or_path: llama }));
    await fireEvent.click(screen.getByTestId('adapter-import'));
    const alert = await panel('Import an adapter').findByRole('alert');
    expect(alert.textContent).toMatch(/tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[64, 4\]/);
    expect(rows()).toHaveLength(1);
  });

  it('view: merge the selected adapters with weights, export a PEFT copy and a GGUF, errors in the export panel', async () => {
    const a = recorded(service, join(service.dir, 'lora-a'), 5);
    const b = recorded(service, join(service.dir, 'lora-b'), 6);
    render(AdaptersView, { app });
    await waitFor(() => expect(rows()).toHaveLength(2));

    await fireEvent.click(screen.getByTestId('adapter-merge'));
    expect(screen.getByRole('alert').textContent).toMatch(/Select the adapters to merge/);
    await fireEvent.click(rowOf('lora-a'));
    await fireEvent.click(rowOf('lora-b'));
    expect(rowOf('lora-a').getAttribute('aria-selected')).toBe('true');
    const merge = panel('Merge adapters');
    await fireEvent.input(merge.getByLabelText('Weight of lora-a'), { target: { value: '0.75' } });
    await fireEvent.input(merge.getByLabelText('Weight of lora-b'), { target: { value: '0.25' } });
    await fireEvent.click(screen.getByTestId('adapter-merge'));
    await waitFor(() => expect(rows()).toHaveLength(3), { timeout: 30_000 });
    const mergedDir = join(service.dir, `merged-${adaptersState(app).selected.join('-')}`);
    expect(merge.getByRole('status').textContent).toContain(`Merged into ${mergedDir}: rank 8`);
    expect(merge.getByRole('status').textContent).toContain('weights 0.75, 0.25');
    expect(JSON.parse(readFileSync(join(mergedDir, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 8, base_model_name_or_path: llama });
    expect(service.sent.find((s) => s.method === 'adapters.merge')?.params).toMatchObject({ model: llama, adapters: [a, b], weights: [0.75, 0.25], combination: 'cat' });

    // Export the first selected adapter (lora-a): a PEFT copy, then a merged f32 GGUF.
    const exportPanel = panel('Export an adapter');
    await fireEvent.click(screen.getByTestId('adapter-export'));
    await waitFor(() => expect(exportPanel.getByRole('status').textContent).toContain(`${a}-peft`));
    expect(readdirSync(`${a}-peft`).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    await fireEvent.click(screen.getByTestId('adapter-export'));
    expect((await exportPanel.findByRole('alert')).textContent).toMatch(/not empty/); // it never overwrites

    await fireEvent.change(exportPanel.getByLabelText('Format'), { target: { value: 'gguf' } });
    await fireEvent.change(exportPanel.getByLabelText('GGUF type'), { target: { value: 'f32' } });
    await fireEvent.click(screen.getByTestId('adapter-export'));
    await waitFor(() => expect(exportPanel.getByRole('status').textContent).toContain(`${a}-merged.gguf`), { timeout: 60_000 });
    expect(existsSync(`${a}-merged.gguf`)).toBe(true);
    const opened = await api().request('models.open', { path: `${a}-merged.gguf` });
    expect(opened.description).toMatchObject({ format: 'gguf', layers: 2, hiddenSize: 32 });
  });

  it('view: open in chat takes the selection (at most 4) to Chat on its base model; Ctrl+Enter does the same', async () => {
    for (const n of [1, 2, 3, 4, 5]) recorded(service, join(service.dir, `l${n}`), n);
    render(AdaptersView, { app });
    await waitFor(() => expect(rows()).toHaveLength(5));
    await fireEvent.click(screen.getByTestId('adapter-open-chat'));
    expect(screen.getByRole('alert').textContent).toMatch(/Select the adapters to chat with/);
    for (const r of rows()) await fireEvent.click(r);
    await fireEvent.click(screen.getByTestId('adapter-open-chat'));
    expect(screen.getByRole('alert').textContent).toMatch(/at most 4 adapters/);
    expect(app.view).toBe('models');
    await fireEvent.click(rowOf('l1'));
    await fireEvent.keyDown(window, { key: 'Enter', ctrlKey: true });
    await waitFor(() => expect(app.view).toBe('chat'));
    expect(app.workspace.chatAdapters).toEqual([5, 4, 3, 2].map((n) => join(service.dir, `l${n}`)));
    expect(app.workspace.model?.path).toBe(llama);
  });
});
