// The Datasets view against the real service, driven through the data-testids the end-to-end test uses: drop a
// file, edit a cell (Enter commits, Shift+Enter is a newline, Escape cancels), undo/redo by button and keyboard,
// search, problems on their rows, versions, and with a model open the preview's highlighted tokens, the histogram
// and the split counts.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import DatasetsView from '../../renderer/views/DatasetsView.svelte';
import { tinyModelDir } from '../helpers/oracle-cache.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const MODEL = tinyModelDir('llama3');
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const chat = (q: string, a: string) => ({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });

let service: ServiceApi;
let app: AppState;
beforeEach(async () => {
  service = serviceApi();
  setApi(service);
  app = new AppState();
  await app.load();
  app.view = 'datasets';
});
afterEach(() => {
  setApi(undefined);
  service.close();
});

const drop = async (name: string, content: string) => {
  await fireEvent.drop(screen.getByTestId('dataset-drop'), { dataTransfer: { files: [new File([content], name)], types: ['Files'] } });
};
const rows = () => screen.queryAllByTestId('dataset-row');
const cellTexts = (row: HTMLElement) => within(row).getAllByTestId('dataset-cell').map((c) => c.textContent);
const waitForRows = (n: number) => waitFor(() => expect(rows()).toHaveLength(n), { timeout: 20_000 });

const editCell = async (cell: HTMLElement, text: string, key: { key: string; shiftKey?: boolean } = { key: 'Enter' }) => {
  await fireEvent.dblClick(cell);
  const editor = screen.getByTestId('dataset-cell-editor') as HTMLTextAreaElement;
  await fireEvent.input(editor, { target: { value: text } });
  await fireEvent.keyDown(editor, key);
  return editor;
};

describe('DatasetsView', () => {
  it('says what to do when empty, imports a dropped file and shows its rows', async () => {
    render(DatasetsView, { app });
    expect(screen.getByText('No dataset open')).toBeTruthy();
    await drop('capitals.jsonl', jsonl([chat('Capital of Peru?', 'Lima.'), chat('Capital of Chile?', 'Santiago.')]));
    await waitForRows(2);
    expect(cellTexts(rows()[0]!)).toEqual(['userCapital of Peru?', 'assistantLima.']);
    expect(app.workspace.datasetId).toBe((await api().request('datasets.list', {}))[0]!.id);
    expect(screen.getByTestId('dataset-problems').textContent).toContain('no problems');
    expect(screen.getAllByTestId('dataset-version')).toHaveLength(1);
  });

  it('shows why a dropped file was refused', async () => {
    render(DatasetsView, { app });
    await drop('broken.jsonl', '{"text": "fine"}\n{"text": \n');
    expect((await screen.findByRole('alert', {}, { timeout: 20_000 })).textContent).toContain('broken.jsonl:2:');
    expect(rows()).toHaveLength(0);
  });

  it('edits a cell, undoes and redoes it by button and keyboard; Escape cancels, Shift+Enter is a newline', async () => {
    render(DatasetsView, { app });
    await drop('capitals.jsonl', jsonl([chat('Capital of Peru?', 'Lima.'), chat('Capital of Chile?', 'Santiago.')]));
    await waitForRows(2);
    const answer = () => within(rows()[1]!).getAllByTestId('dataset-cell')[1]!;

    await editCell(answer(), 'Santiago de Chile.');
    await waitFor(() => expect(answer().textContent).toBe('assistantSantiago de Chile.'));
    expect(screen.queryByTestId('dataset-cell-editor')).toBeNull();
    await waitFor(() => expect(screen.getAllByTestId('dataset-version')).toHaveLength(2));

    await fireEvent.click(screen.getByTestId('dataset-undo'));
    await waitFor(() => expect(answer().textContent).toBe('assistantSantiago.'));
    await fireEvent.click(screen.getByTestId('dataset-redo'));
    await waitFor(() => expect(answer().textContent).toBe('assistantSantiago de Chile.'));
    await fireEvent.keyDown(document.body, { key: 'z', ctrlKey: true });
    await waitFor(() => expect(answer().textContent).toBe('assistantSantiago.'));
    await fireEvent.keyDown(document.body, { key: 'Z', ctrlKey: true, shiftKey: true });
    await waitFor(() => expect(answer().textContent).toBe('assistantSantiago de Chile.'));

    // Escape: nothing changes; Shift+Enter inside the editor does not commit.
    const editor = await editCell(answer(), 'thrown away', { key: 'Escape' });
    expect(editor.isConnected).toBe(false);
    expect(answer().textContent).toBe('assistantSantiago de Chile.');
    const multiline = await editCell(answer(), 'line one', { key: 'Enter', shiftKey: true });
    expect(multiline.isConnected).toBe(true);
    // Ctrl+Z in the text field is the field's own undo, not the dataset's.
    await fireEvent.keyDown(multiline, { key: 'z', ctrlKey: true });
    await fireEvent.input(multiline, { target: { value: 'line one\nline two' } });
    await fireEvent.blur(multiline);
    await waitFor(() => expect(answer().textContent).toBe('assistantline one\nline two'));
    expect((await api().request('datasets.show', { id: app.workspace.datasetId! })).versions).toHaveLength(3);
  });

  it('adds and deletes rows, searches, shows problems on their rows and checks out an older version', async () => {
    render(DatasetsView, { app });
    await drop('qa.csv', 'instruction,output\nName a color,Blue\nName a fruit,\nName a planet,Mars\n');
    await waitForRows(3);
    const problems = within(rows()[1]!).getAllByTestId('dataset-row-problem');
    expect(problems.map((p) => p.textContent)).toEqual(['✖ "output" is empty: an empty assistant turn (nothing to train on)']);
    expect(screen.getByTestId('dataset-problems').getAttribute('data-errors')).toBe('1');

    await fireEvent.click(screen.getByTestId('dataset-add-row'));
    await waitForRows(4);
    expect(cellTexts(rows()[3]!)).toEqual(['', '']);
    await fireEvent.click(within(rows()[0]!).getAllByTestId('dataset-cell')[0]!);
    await fireEvent.click(screen.getByTestId('dataset-delete-row'));
    await waitForRows(3);
    expect(cellTexts(rows()[0]!)).toEqual(['Name a fruit', '']);

    await fireEvent.input(screen.getByTestId('dataset-search'), { target: { value: 'planet' } });
    await fireEvent.keyDown(screen.getByTestId('dataset-search'), { key: 'Enter' });
    await waitForRows(1);
    expect(cellTexts(rows()[0]!)).toEqual(['Name a planet', 'Mars']);

    const versions = screen.getAllByTestId('dataset-version');
    expect(versions.map((v) => v.getAttribute('data-version'))).toEqual(['3', '2', '1']);
    await fireEvent.click(versions[2]!);
    await fireEvent.input(screen.getByTestId('dataset-search'), { target: { value: '' } });
    await fireEvent.keyDown(screen.getByTestId('dataset-search'), { key: 'Enter' });
    await waitForRows(3);
    expect(cellTexts(rows()[0]!)).toEqual(['Name a color', 'Blue']);
    expect(screen.getByTestId('dataset-undo').hasAttribute('disabled')).toBe(true);
  });

  it('without a model, the preview says to open one and the split counts rows', async () => {
    render(DatasetsView, { app });
    await drop('capitals.jsonl', jsonl(Array.from({ length: 20 }, (_, i) => chat(`Question ${i}`, `Answer ${i}`))));
    await waitForRows(20);
    const preview = screen.getByTestId('dataset-preview');
    expect(preview.textContent).toContain('No model open');
    await waitFor(() => expect(screen.getByTestId('dataset-split-counts').textContent).toMatch(/19 train · 1 eval/));
    await fireEvent.click(within(preview).getByText('Open a model in Models'));
    expect(app.view).toBe('models');
  });
});

describe.skipIf(!MODEL)('DatasetsView with the tiny Llama 3 open', () => {
  it('previews the clicked row with its trained tokens highlighted, counts token lengths and splits examples', async () => {
    app.workspace.model = await api().request('models.describe', { path: MODEL! });
    render(DatasetsView, { app });
    await drop('capitals.jsonl', jsonl(Array.from({ length: 12 }, (_, i) => chat(`Capital number ${i}?`, `City ${'x'.repeat(i)}.`))));
    await waitForRows(12);
    await fireEvent.click(within(rows()[3]!).getAllByTestId('dataset-cell')[0]!);
    const preview = screen.getByTestId('dataset-preview');
    await waitFor(() => expect(preview.querySelectorAll('[data-trained="true"]').length).toBeGreaterThan(0), { timeout: 20_000 });
    const trained = [...preview.querySelectorAll('[data-trained="true"]')].map((t) => t.textContent).join('');
    expect(trained).toContain('City xxx.');
    expect(trained).not.toContain('Capital number');
    expect([...preview.querySelectorAll('[data-trained="false"]')].map((t) => t.textContent).join('')).toContain('Capital number 3?');

    const histogram = screen.getByTestId('dataset-histogram');
    await waitFor(() => expect(histogram.getAttribute('data-counts')).not.toBe(''), { timeout: 20_000 });
    const counts = histogram.getAttribute('data-counts')!.split(',').map(Number);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(12);
    expect(histogram.textContent).toContain('12 examples');
    await waitFor(() => expect(screen.getByTestId('dataset-split-counts').textContent).toMatch(/11 train · 1 eval\s*examples, exactly as training/));
  });
});
