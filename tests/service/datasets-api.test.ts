// The datasets requests through the real ApiServer over a real store on disk: import of every file type (by path
// and by content), the immutable version file runs point at, rows/search/problems, edits as versions with
// undo/redo/checkout, the chat-template preview, token histogram and split (against the training code), export.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openModel } from '../../main/models/open-model.ts';
import type { ApiMethod, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import { DatasetWorkCancelled, tokenHistogram } from '../../main/service/datasets-tokens.ts';
import { loadJobData } from '../../main/service/prepare.ts';
import { openStore, type Store } from '../../main/store/index.ts';
import { IGNORE_INDEX, loadDataset, tokenizeConversation, tokenizeDataset, type ChatRecord } from '../../main/train/dataset/index.ts';
import { tinyModelDir } from '../helpers/oracle-cache.ts';
import { BAD_DIR, GOOD_DIR, GOOD_FIXTURES } from '../train/dataset/helpers.ts';

const MODEL = tinyModelDir('llama3');

let dir: string;
let store: Store;
let ask: <M extends ApiMethod>(method: M, params: unknown) => Promise<ResponseMessage>;
let events: unknown[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'peft-datasets-api-'));
  store = openStore(join(dir, 'studio.db'));
  events = [];
  const sent: ResponseMessage[] = [];
  const connection = new ApiServer({ store }).connect((m) => sent.push(m));
  let n = 0;
  ask = async (method, params) => {
    const id = `q${++n}`;
    await connection.receive(JSON.stringify({ id, method, params }));
    const mine = sent.filter((m) => m.id === id);
    events.push(...mine.filter((m) => m.type === 'event').map((m) => (m as { event: unknown }).event));
    return mine.at(-1)!;
  };
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const ok = async <M extends ApiMethod>(method: M, params: unknown): Promise<ApiResults[M]> => {
  const m = await ask(method, params);
  if (m.type !== 'result') throw new Error(`${method} failed: ${JSON.stringify(m)}`);
  return m.result as ApiResults[M];
};
const failure = async (method: ApiMethod, params: unknown) => {
  const m = await ask(method, params);
  if (m.type !== 'error') throw new Error(`${method} should fail, got ${JSON.stringify(m)}`);
  return m.error;
};

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const alpaca = (i: number) => ({ instruction: `Question ${i}?`, input: '', output: `Answer number ${i}.` });
const importRows = (rows: unknown[], fileName = 'rows.jsonl') => ok('datasets.import', { content: jsonl(rows), fileName });

describe('datasets.file', () => {
  it('writes a version once as JSON Lines under the data folder and reuses it', async () => {
    const imported = await importRows([alpaca(1), alpaca(2), alpaca(3)]);
    const id = imported.dataset.id;
    const first = await ok('datasets.file', { id });
    expect(first).toEqual({ path: join(dir, 'datasets', String(id), 'v1.jsonl'), format: 'alpaca', rows: 3 });
    expect(readFileSync(first.path, 'utf8')).toBe(jsonl([alpaca(1), alpaca(2), alpaca(3)]));
    const written = statSync(first.path).mtimeMs;

    await ok('datasets.edit', { id, update: [{ key: 2, row: alpaca(20) }] });
    const head = await ok('datasets.file', { id });
    expect(head.path).toBe(join(dir, 'datasets', String(id), 'v2.jsonl'));
    expect(readFileSync(head.path, 'utf8')).toBe(jsonl([alpaca(1), alpaca(20), alpaca(3)]));
    const again = await ok('datasets.file', { id, versionId: imported.version.id });
    expect(again.path).toBe(first.path);
    expect(statSync(first.path).mtimeMs).toBe(written);
    expect(readFileSync(first.path, 'utf8')).toBe(jsonl([alpaca(1), alpaca(2), alpaca(3)]));
    // The training reader reads it as the dataset it is.
    expect((await loadDataset(head.path)).records).toHaveLength(3);
  });

  it('rejects an unknown dataset and a version of another dataset', async () => {
    expect(await failure('datasets.file', { id: 9 })).toMatchObject({ code: 'bad-input' });
    const a = await importRows([alpaca(1)]);
    const b = await importRows([alpaca(2)]);
    const e = await failure('datasets.file', { id: a.dataset.id, versionId: b.version.id });
    expect(e.code).toBe('bad-input');
    expect(e.message).toContain(`belongs to dataset ${b.dataset.id}`);
    expect(await failure('datasets.file', { id: 0 })).toMatchObject({ code: 'bad-request', field: 'params.id' });
  });
});

describe('datasets.import', () => {
  for (const [file, format, records] of GOOD_FIXTURES) {
    it(`${file}: by content and by path, the records training reads from the file`, async () => {
      const bytes = readFileSync(join(GOOD_DIR, file));
      const binary = file.endsWith('.parquet');
      const byContent = await ok('datasets.import', { content: bytes.toString(binary ? 'base64' : 'utf8'), encoding: binary ? 'base64' : 'text', fileName: file });
      const byPath = await ok('datasets.import', { path: join(GOOD_DIR, file) });
      for (const imported of [byContent, byPath]) {
        expect(imported.dataset).toMatchObject({ name: file, format });
        expect(imported.summary).toMatchObject({ format, errors: 0, records });
        const stored = await ok('datasets.file', { id: imported.dataset.id });
        const original = await loadDataset(join(GOOD_DIR, file));
        expect((await loadDataset(stored.path)).records.map((r) => ({ ...r, line: 0 }))).toEqual(original.records.map((r) => ({ ...r, line: 0 })));
      }
      expect(byPath.dataset.sourcePath).toBe(join(GOOD_DIR, file));
      expect(byContent.dataset.sourcePath).toBeNull();
    });
  }

  it('refuses a malformed JSON line, naming the file and line, and stores nothing', async () => {
    const content = readFileSync(join(BAD_DIR, 'broken-json-line.jsonl'), 'utf8');
    const e = await failure('datasets.import', { content, fileName: 'broken.jsonl' });
    expect(e.code).toBe('bad-input');
    expect(e.message).toMatch(/^broken\.jsonl has 1 error:\nbroken\.jsonl:3: /);
    const byPath = await failure('datasets.import', { path: join(BAD_DIR, 'broken-json-line.jsonl') });
    expect(byPath.message).toContain(`${join(BAD_DIR, 'broken-json-line.jsonl')}:3:`);
    expect(await ok('datasets.list', {})).toEqual([]);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM dataset_rows').get()).toEqual({ n: 0 });
  });

  it('refuses unreadable files and rows of no known format', async () => {
    expect((await failure('datasets.import', { path: join(BAD_DIR, 'corrupt.parquet') })).message).toContain('corrupt.parquet:1: cannot read this Parquet file');
    expect((await failure('datasets.import', { content: 'a,b\n1,2\n', fileName: 'data.xlsx' })).message).toContain('unknown file type');
    const unknown = await failure('datasets.import', { content: jsonl([{ question: 'q', answer: 'a' }]), fileName: 'qa.jsonl' });
    expect(unknown.code).toBe('bad-input');
    expect(unknown.message).toContain('none of 1 record has the fields of a known format');
    expect(await ok('datasets.list', {})).toEqual([]);
  });

  it('rejects a malformed payload naming the field', async () => {
    expect(await failure('datasets.import', { path: '/a.jsonl', content: '{}', fileName: 'a.jsonl' })).toMatchObject({ code: 'bad-request', field: 'params.path' });
    expect(await failure('datasets.import', {})).toMatchObject({ code: 'bad-request', field: 'params.path' });
    expect(await failure('datasets.import', { content: '{}' })).toMatchObject({ code: 'bad-request', field: 'params.fileName' });
    expect(await failure('datasets.import', { content: '{}', fileName: 'a.jsonl', format: 'excel' })).toMatchObject({ field: 'params.format' });
  });

  it('imports rows that break their format, shows their problems on their rows', async () => {
    const rows = [alpaca(1), { instruction: 'No answer', input: '', output: '' }, alpaca(3), alpaca(1)];
    const imported = await importRows(rows);
    expect(imported.summary).toMatchObject({ format: 'alpaca', errors: 1, warnings: 1, records: 2 });
    const page = await ok('datasets.rows', { id: imported.dataset.id });
    expect(page.columns).toEqual(['instruction', 'input', 'output']);
    expect(page.rows.map((r) => [r.index, r.problems.map((p) => p.severity)])).toEqual([[1, []], [2, ['error']], [3, []], [4, ['warning']]]);
    expect(page.rows[1]!.problems[0]!.message).toContain('"output" is empty');
    expect(page.rows[3]!.problems[0]!.message).toContain('exact duplicate of the record at line 1');
    const problems = await ok('datasets.problems', { id: imported.dataset.id });
    expect(problems.problems.map((p) => [p.key, p.index, p.severity])).toEqual([[2, 2, 'error'], [4, 4, 'warning']]);
  });
});

describe('rows, search, edits', () => {
  it('pages, searches every word and filters by problems, over the whole version', async () => {
    const rows = Array.from({ length: 120 }, (_, i) => (i % 10 === 9 ? { instruction: `Broken ${i}`, output: '' } : alpaca(i)));
    const { dataset } = await importRows(rows);
    const page = await ok('datasets.rows', { id: dataset.id, offset: 100, limit: 50 });
    expect(page.total).toBe(120);
    expect(page.rows.map((r) => r.index)).toEqual(Array.from({ length: 20 }, (_, i) => 101 + i));
    const found = await ok('datasets.rows', { id: dataset.id, search: 'ANSWER  11' });
    const expected = rows.flatMap((r, i) => (Object.values(r).some((t) => t.toLowerCase().includes('answer') && t.includes('11')) ? [i + 1] : []));
    expect(found.rows.map((r) => r.index)).toEqual(expected);
    expect(expected).toEqual([12, 111, 112, 113, 114, 115, 116, 117, 118, 119]);
    expect((await ok('datasets.rows', { id: dataset.id, search: 'answer', limit: 5 })).total).toBe(108);
    const errors = await ok('datasets.rows', { id: dataset.id, filter: 'errors' });
    expect(errors.total).toBe(12);
    expect(errors.rows.every((r) => r.problems.some((p) => p.severity === 'error'))).toBe(true);
    expect((await ok('datasets.rows', { id: dataset.id, filter: 'errors', search: 'broken 119' })).rows.map((r) => r.key)).toEqual([120]);
    expect(await failure('datasets.rows', { id: dataset.id, limit: 0 })).toMatchObject({ code: 'bad-request', field: 'params.limit' });
  });

  it('makes each edit a version; undo, redo and checkout move the head', async () => {
    const { dataset, version: v1 } = await importRows([alpaca(1), alpaca(2)]);
    const id = dataset.id;
    const edited = await ok('datasets.edit', { id, update: [{ key: 1, row: alpaca(10) }] });
    expect(edited.version).toMatchObject({ number: 2, message: 'edit row 1', rowCount: 2 });
    expect(edited.undo).toEqual({ canUndo: true, canRedo: false });
    const added = await ok('datasets.edit', { id, insert: [alpaca(3)], delete: [2] });
    expect(added.version).toMatchObject({ number: 3, message: 'add 1 row, delete 1 row', rowCount: 2 });
    const rowsOf = async () => (await ok('datasets.rows', { id })).rows.map((r) => [r.key, (r.row as { output: string }).output]);
    expect(await rowsOf()).toEqual([[1, 'Answer number 10.'], [3, 'Answer number 3.']]);

    expect((await ok('datasets.undo', { id })).version.number).toBe(2);
    expect(await rowsOf()).toEqual([[1, 'Answer number 10.'], [2, 'Answer number 2.']]);
    const redone = await ok('datasets.redo', { id });
    expect(redone.version.number).toBe(3);
    expect(redone.undo).toEqual({ canUndo: true, canRedo: false });
    expect(await rowsOf()).toEqual([[1, 'Answer number 10.'], [3, 'Answer number 3.']]);

    const back = await ok('datasets.checkout', { id, versionId: v1.id });
    expect(back.head.number).toBe(1);
    expect(back.versions.map((v) => v.number)).toEqual([1, 2, 3]);
    expect(await rowsOf()).toEqual([[1, 'Answer number 1.'], [2, 'Answer number 2.']]);
    const undoAtStart = await failure('datasets.undo', { id });
    expect(undoAtStart).toMatchObject({ code: 'bad-input' });
    expect(undoAtStart.message).toContain('first version');
    expect(await failure('datasets.edit', { id, update: [{ key: 99, row: alpaca(1) }] })).toMatchObject({ code: 'bad-input' });
    expect(await failure('datasets.edit', { id })).toMatchObject({ code: 'bad-input' });
  });

  it('derives an edit\'s rows and problems from its parent exactly as reading the version back gives them', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => (i % 7 === 3 ? { instruction: `Broken ${i}`, output: '' } : alpaca(i)));
    const { dataset } = await importRows(rows);
    const id = dataset.id;
    await ok('datasets.rows', { id });
    await ok('datasets.edit', { id, update: [{ key: 4, row: alpaca(4) }, { key: 9, row: alpaca(1) }], delete: [2, 30], insert: [alpaca(7), { instruction: 'x', output: '' }] });
    await ok('datasets.edit', { id, insert: [alpaca(100)], delete: [31] });
    const derived = await ok('datasets.rows', { id, limit: 100 });
    const derivedProblems = await ok('datasets.problems', { id });
    // A second service on the same database has no cached versions: it reads the head back from the store.
    const fresh = openStore(join(dir, 'studio.db'));
    try {
      const sent: ResponseMessage[] = [];
      const connection = new ApiServer({ store: fresh }).connect((m) => sent.push(m));
      await connection.receive({ id: 'r', method: 'datasets.rows', params: { id, limit: 100 } });
      await connection.receive({ id: 'p', method: 'datasets.problems', params: { id } });
      expect(sent.find((m) => m.id === 'r')).toEqual({ id: 'r', type: 'result', result: JSON.parse(JSON.stringify(derived)) });
      expect(sent.find((m) => m.id === 'p')).toEqual({ id: 'p', type: 'result', result: JSON.parse(JSON.stringify(derivedProblems)) });
    } finally {
      fresh.close();
    }
    expect(derived.total).toBe(30);
    expect(derivedProblems.problems.map((p) => [p.index, p.severity])).toEqual([[4, 'warning'], [10, 'error'], [17, 'error'], [24, 'error'], [29, 'error']]);
  });

  it('exports a version as JSON Lines to a path or as content, and deletes a dataset with its files', async () => {
    const { dataset } = await importRows([alpaca(1), alpaca(2)], 'my data.jsonl');
    const content = await ok('datasets.export', { id: dataset.id });
    expect(content).toMatchObject({ rows: 2, fileName: 'my_data-v1.jsonl', content: jsonl([alpaca(1), alpaca(2)]) });
    const toFolder = await ok('datasets.export', { id: dataset.id, path: dir });
    expect(toFolder.path).toBe(join(dir, 'my_data-v1.jsonl'));
    expect(readFileSync(toFolder.path!, 'utf8')).toBe(content.content);
    const missing = await failure('datasets.export', { id: dataset.id, path: join(dir, 'nope', 'x.jsonl') });
    expect(missing).toMatchObject({ code: 'bad-input' });
    expect(missing.message).toContain(join(dir, 'nope'));

    const file = await ok('datasets.file', { id: dataset.id });
    expect(await ok('datasets.delete', { id: dataset.id })).toEqual({ deleted: dataset.id });
    expect(existsSync(file.path)).toBe(false);
    expect(await ok('datasets.list', {})).toEqual([]);
  });
});

describe.skipIf(!MODEL)('with the tiny Llama 3 tokenizer', () => {
  const model = MODEL!;
  const conversation = {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Capital of France?' },
      { role: 'assistant', content: 'Paris.' },
      { role: 'user', content: 'And of Spain?' },
      { role: 'assistant', content: 'Madrid.' },
    ],
  };

  it('previews a row through the chat template with training\'s own mask highlighted', async () => {
    const { dataset } = await importRows([conversation]);
    const preview = await ok('datasets.preview', { id: dataset.id, key: 1, model });
    expect(preview.tokens.map((t) => t.text).join('')).toBe(preview.text);
    const tokenizer = openModel(model).tokenizer;
    const record: ChatRecord = { kind: 'chat', line: 1, messages: conversation.messages as ChatRecord['messages'] };
    const expected = tokenizeConversation(tokenizer, record, { trainOn: 'assistant' });
    expect(preview.tokens.map((t) => t.id)).toEqual(expected.inputIds);
    expect(preview.tokens.map((t) => t.trained)).toEqual(expected.labels.map((l) => l !== IGNORE_INDEX));
    const trainedText = preview.tokens.filter((t) => t.trained).map((t) => t.text).join('');
    expect(trainedText).toContain('Paris.');
    expect(trainedText).toContain('Madrid.');
    expect(trainedText).not.toContain('Capital');
    const all = await ok('datasets.preview', { id: dataset.id, key: 1, model, trainOn: 'all' });
    expect(all.tokens.every((t) => t.trained)).toBe(true);
    expect(all.trainedTokens).toBe(all.tokens.length - 1);
  });

  it('refuses to preview a broken row or without a model, saying why', async () => {
    const { dataset } = await importRows([{ messages: [{ role: 'user', content: 'only a question' }] }]);
    const broken = await failure('datasets.preview', { id: dataset.id, key: 1, model });
    expect(broken).toMatchObject({ code: 'bad-input' });
    expect(broken.message).toContain('no assistant turn');
    expect(await failure('datasets.preview', { id: dataset.id, key: 1, model: join(dir, 'no-model') })).toMatchObject({ code: 'bad-input' });
    expect(await failure('datasets.preview', { id: dataset.id, key: 1 })).toMatchObject({ code: 'bad-request', field: 'params.model' });
  });

  it('counts token lengths in bins, as training tokenizes, with progress', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => ({ instruction: `Say ${'word '.repeat(i % 37)}`, output: `${'ok '.repeat(i % 11)}done ${i}` }));
    const { dataset } = await importRows(rows);
    const histogram = await ok('datasets.histogram', { id: dataset.id, model, maxLength: 40, bins: 10 });
    const loaded = await loadDataset((await ok('datasets.file', { id: dataset.id })).path);
    const lengths = tokenizeDataset(loaded.records, openModel(model).tokenizer).examples.map((e) => e.inputIds.length);
    expect(histogram.bins.reduce((n, b) => n + b.count, 0)).toBe(300);
    for (const b of histogram.bins) expect(b.count).toBe(lengths.filter((n) => n >= b.from && n <= b.to).length);
    expect(histogram.bins.length).toBeLessThanOrEqual(10);
    expect(histogram.stats).toMatchObject({ examples: 300, min: Math.min(...lengths), max: Math.max(...lengths) });
    expect(histogram.overMaxLength).toBe(lengths.filter((n) => n > 40).length);
    expect(events).toContainEqual({ phase: 'tokenizing', done: 300, total: 300 });
  });

  it('stops tokenizing between chunks when its request is cancelled', async () => {
    const rows = Array.from({ length: 600 }, (_, i) => alpaca(i));
    const { dataset } = await importRows(rows);
    const abort = new AbortController();
    const seen: number[] = [];
    const work = tokenHistogram(store, { id: dataset.id, model }, { signal: abort.signal, emit: (p) => (seen.push(p.done), abort.abort()) });
    await expect(work).rejects.toBeInstanceOf(DatasetWorkCancelled);
    expect(seen).toEqual([256]);
  });

  it('splits exactly as a training run does', async () => {
    const rows = Array.from({ length: 57 }, (_, i) => (i === 5 ? alpaca(0) : alpaca(i)));
    const { dataset } = await importRows(rows);
    const file = await ok('datasets.file', { id: dataset.id });
    for (const [evalFraction, seed] of [[0.1, 42], [0.3, 7], [0, 42]] as const) {
      const split = await ok('datasets.split', { id: dataset.id, evalFraction, seed, model, maxLength: 64 });
      const job = await loadJobData({ model, dataset: { path: file.path, evalFraction, trainOn: 'assistant' }, training: { maxLength: 64, seed } as never });
      expect([split.train, split.eval]).toEqual([job.train.length, job.eval.length]);
      expect(split.basis).toBe('examples');
      expect(split.evalKeys).toHaveLength(split.eval);
    }
    const records = await ok('datasets.split', { id: dataset.id, evalFraction: 0.1 });
    expect(records).toMatchObject({ basis: 'records', train: 50, eval: 6, errors: 0 });
    expect(await failure('datasets.split', { id: dataset.id, evalFraction: 1 })).toMatchObject({ field: 'params.evalFraction' });
  });
});
