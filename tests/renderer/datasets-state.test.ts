// DatasetsState against the real service: files imported as the browser sends them (text, Parquet as base64, and
// by path when the desktop gives one), edits as versions with undo/redo, search, problems on their rows, the
// chat-template preview's trained tokens, the token histogram and the split, export.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openModel } from '../../main/models/open-model.ts';
import { loadDataset, splitTrainEval, tokenizeDataset } from '../../main/train/dataset/index.ts';
import { api, setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { DatasetsState, importParamsOf } from '../../renderer/lib/state/datasets.svelte.ts';
import { tinyModelDir } from '../helpers/oracle-cache.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const GOOD = join(import.meta.dirname, '../fixtures/datasets');
const MODEL = tinyModelDir('llama3');
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const alpaca = (i: number) => ({ instruction: `Question ${i}?`, input: '', output: `Answer ${i}.` });
const fileOf = (name: string, content: string | Uint8Array): File => new File([content as BlobPart], name);

let service: ServiceApi;
let app: AppState;
let state: DatasetsState;
beforeEach(async () => {
  service = serviceApi();
  setApi(service);
  app = new AppState();
  await app.load();
  state = new DatasetsState(app);
});
afterEach(() => {
  setApi(undefined);
  service.close();
});

const outputs = () => state.page!.rows.map((r) => (r.row as { output: string }).output);

describe('DatasetsState', () => {
  it('imports a dropped file by content, opens it and makes it the workspace dataset', async () => {
    await state.importFiles([fileOf('qa.jsonl', jsonl([alpaca(1), alpaca(2), alpaca(3)]))]);
    expect(state.importTask.status).toBe('done');
    expect(service.sent.find((m) => m.method === 'datasets.import')?.params).toEqual({ content: jsonl([alpaca(1), alpaca(2), alpaca(3)]), encoding: 'text', fileName: 'qa.jsonl' });
    expect(state.details?.dataset).toMatchObject({ name: 'qa.jsonl', format: 'alpaca', rowCount: 3 });
    expect(app.workspace.datasetId).toBe(state.id);
    expect(state.datasets.map((d) => d.name)).toEqual(['qa.jsonl']);
    expect(outputs()).toEqual(['Answer 1.', 'Answer 2.', 'Answer 3.']);
    expect(state.page?.summary).toMatchObject({ format: 'alpaca', errors: 0, warnings: 0 });
  });

  it('sends Parquet as base64 and a path when the desktop app knows one', async () => {
    const parquet = readFileSync(join(GOOD, 'openai.parquet'));
    const params = await importParamsOf(fileOf('openai.parquet', new Uint8Array(parquet)), () => null);
    // The bytes arrive intact (the service's Parquet import of this content is tested in tests/service: under
    // jsdom, vitest resolves hyparquet's browser build, which cannot read files).
    expect(params).toEqual({ content: parquet.toString('base64'), encoding: 'base64', fileName: 'openai.parquet' });

    setApi({ ...service, pathForFile: () => join(GOOD, 'sharegpt.json') });
    await state.importFiles([fileOf('sharegpt.json', 'ignored: the path is read')]);
    expect(service.sent.filter((m) => m.method === 'datasets.import').at(-1)?.params).toEqual({ path: join(GOOD, 'sharegpt.json') });
    expect(state.details?.dataset).toMatchObject({ name: 'sharegpt.json', format: 'sharegpt', sourcePath: join(GOOD, 'sharegpt.json') });
  });

  it('shows why a malformed file was refused, and imports nothing', async () => {
    await state.importFiles([fileOf('bad.jsonl', '{"prompt": "a", "completion": "b"}\n{"prompt": "c", \n')]);
    expect(state.importTask.status).toBe('failed');
    expect(state.importTask.error).toMatch(/^bad\.jsonl has 1 error:\nbad\.jsonl:2: /);
    expect(state.details).toBeUndefined();
    expect(await api().request('datasets.list', {})).toEqual([]);
  });

  it('edits, undoes and redoes through the service, each edit a version', async () => {
    await state.importFiles([fileOf('qa.jsonl', jsonl([alpaca(1), alpaca(2)]))]);
    const key = state.page!.rows[1]!.key;
    expect(await state.updateRow(key, { ...alpaca(2), output: 'Changed.' })).toBe(true);
    expect(outputs()).toEqual(['Answer 1.', 'Changed.']);
    expect(state.details?.head.number).toBe(2);
    expect(state.details?.undo).toEqual({ canUndo: true, canRedo: false });
    await state.undo();
    expect(outputs()).toEqual(['Answer 1.', 'Answer 2.']);
    expect(state.details?.undo).toEqual({ canUndo: false, canRedo: true });
    await state.redo();
    expect(outputs()).toEqual(['Answer 1.', 'Changed.']);
    expect(state.details?.head.number).toBe(2);

    await state.addRow();
    expect(state.page!.rows.at(-1)!.row).toEqual({ instruction: '', input: '', output: '' });
    expect(state.activeKey).toBe(state.page!.rows.at(-1)!.key);
    expect(state.page!.rows.at(-1)!.problems.map((p) => p.message)).toEqual(['"instruction" is empty', '"output" is empty: an empty assistant turn (nothing to train on)']);
    await state.deleteRows();
    expect(state.page!.rows).toHaveLength(2);
    state.toggleSelected(state.page!.rows[0]!.key);
    state.toggleSelected(state.page!.rows[1]!.key);
    await state.deleteRows();
    expect(state.page!.rows).toHaveLength(0);
    expect(state.details?.versions.map((v) => v.message)).toEqual(['import qa.jsonl', `edit row ${key}`, 'add 1 row', 'delete 1 row', 'delete 2 rows']);
    expect(await state.checkout(state.details!.versions[0]!.id)).toBe(true);
    expect(outputs()).toEqual(['Answer 1.', 'Answer 2.']);
    expect(state.details?.undo.canUndo).toBe(false);
    expect(await state.undo()).toBe(false);
  });

  it('searches and filters server-side over every page', async () => {
    const rows = Array.from({ length: 130 }, (_, i) => (i % 40 === 7 ? { instruction: `Broken ${i}`, output: '' } : alpaca(i)));
    await state.importFiles([fileOf('many.jsonl', jsonl(rows))]);
    expect(state.page?.rows).toHaveLength(50);
    expect(state.page?.total).toBe(130);
    await state.goTo(100);
    expect(state.page?.rows.map((r) => r.index)).toEqual(Array.from({ length: 30 }, (_, i) => 101 + i));
    await state.setSearch('ANSWER 12');
    const matching = rows.flatMap((r, i) => {
      const text = Object.values(r).join('\n').toLowerCase();
      return text.includes('answer') && text.includes('12') ? [i + 1] : [];
    });
    expect(state.page?.rows.map((r) => r.index)).toEqual(matching);
    expect(matching).toEqual([13, 113, 121, 122, 123, 124, 125, 126, 127, 129, 130]);
    expect(state.offset).toBe(0);
    await state.setSearch('', 'errors');
    expect(state.page?.rows.map((r) => r.index)).toEqual([8, 48, 88, 128]);
    expect(state.page?.rows[0]!.problems[0]!.message).toContain('"output" is empty');
    expect(state.page?.summary.errors).toBe(4);
  });

  it('exports the head as JSON Lines to a path, or as content for a download', async () => {
    await state.importFiles([fileOf('qa.jsonl', jsonl([alpaca(1)]))]);
    state.exportPath = service.dir;
    const written = await state.exportJsonl();
    expect(written?.path).toBe(join(service.dir, 'qa-v1.jsonl'));
    expect(readFileSync(written!.path!, 'utf8')).toBe(jsonl([alpaca(1)]));
    state.exportPath = '';
    expect((await state.exportJsonl())?.content).toBe(jsonl([alpaca(1)]));
  });

  it('splits over the rows without a model, as training would', async () => {
    await state.importFiles([fileOf('qa.jsonl', jsonl(Array.from({ length: 40 }, (_, i) => alpaca(i))))]);
    expect(state.splitTask.result).toMatchObject({ basis: 'records', train: 38, eval: 2 });
    state.evalFraction = 0.25;
    state.seed = 3;
    await state.computeSplit();
    const expected = splitTrainEval(Array.from({ length: 40 }, (_, i) => i), { evalFraction: 0.25, seed: 3 });
    expect(state.splitTask.result).toMatchObject({ train: 30, eval: 10 });
    expect(state.splitTask.result?.evalKeys).toEqual(expected.eval.map((i) => i + 1));
  });
});

describe.skipIf(!MODEL)('DatasetsState with the tiny Llama 3 open', () => {
  const chat = (q: string, a: string) => ({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });

  beforeEach(async () => {
    app.workspace.model = await api().request('models.describe', { path: MODEL! });
  });

  it('previews the active row with the trained tokens marked, for assistant turns or every token', async () => {
    await state.importFiles([fileOf('chat.jsonl', jsonl([chat('Capital of Peru?', 'Lima.'), chat('Capital of Chile?', 'Santiago.')]))]);
    await state.select(state.page!.rows[1]!.key);
    const preview = state.previewTask.result!;
    expect(preview.index).toBe(2);
    const trained = preview.tokens.filter((t) => t.trained).map((t) => t.text).join('');
    expect(trained).toContain('Santiago.');
    expect(trained).not.toContain('Chile');
    expect(preview.tokens.map((t) => t.text).join('')).toBe(preview.text);
    await state.setTrainOn('all');
    expect(state.previewTask.result?.tokens.every((t) => t.trained)).toBe(true);
  });

  it('counts token lengths per bin and splits the tokenized examples', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => chat(`Repeat ${'la '.repeat(i)}`, `${'la '.repeat(i)}done`));
    await state.importFiles([fileOf('chat.jsonl', jsonl(rows))]);
    const histogram = state.histogramTask.result!;
    const loaded = await loadDataset((await api().request('datasets.file', { id: state.id! })).path);
    const lengths = tokenizeDataset(loaded.records, openModel(MODEL!).tokenizer).examples.map((e) => e.inputIds.length);
    expect(histogram.bins.reduce((n, b) => n + b.count, 0)).toBe(30);
    for (const b of histogram.bins) expect(b.count).toBe(lengths.filter((n) => n >= b.from && n <= b.to).length);
    expect(state.histogramProgress).toEqual({ phase: 'tokenizing', done: 30, total: 30 });
    expect(state.splitTask.result).toMatchObject({ basis: 'examples', train: 28, eval: 2 });
    state.maxLength = 16;
    await state.computeHistogram();
    expect(state.histogramTask.result?.overMaxLength).toBe(lengths.filter((n) => n > 16).length);
  });
});
