// The workbench end to end, as a user drives it: Debian Chromium (playwright-core) on the built renderer served by
// `peft-studio serve` with the real engine and store, on a tiny Llama-3 model. Drop a dataset file, edit a row and
// undo it, train and watch the loss chart grow, run a 2×2 r/alpha sweep and watch its heatmap fill, chat with the
// base and the trained adapter side by side and get two different streamed answers. Each view is photographed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { buildRenderer, chromiumPath, dropFiles, launchChromium, screenshot, startServe, type Served } from './harness.ts';

const model = tinyModelDir('llama3');
const chromium = chromiumPath();
const missing = [!model && 'the tiny llama3 model (tests/oracle/make_tiny_models.py)', !chromium && 'Debian chromium (apt-get install chromium)'].filter(Boolean);
if (missing.length > 0 && !oracleRequired()) console.warn(`\n!!! e2e workbench test SKIPPED: needs ${missing.join(' and ')} (.ci/run installs both)\n`);

/** Eight short chats in the messages format, one per line (what a user drops). */
const DATASET = Array.from({ length: 8 }, (_, i) =>
  JSON.stringify({ messages: [{ role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `${i} plus ${i} is ${2 * i}.` }] }),
).join('\n');

const byTestId = (id: string) => `[data-testid="${id}"]`;

describe.skipIf(missing.length > 0 && !oracleRequired())('the workbench in Chromium against serve', () => {
  let dir: string;
  let served: Served;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    expect(missing, `missing: ${missing.join(', ')}`).toEqual([]);
    dir = mkdtempSync(join(tmpdir(), 'peft-e2e-'));
    served = await startServe({ db: join(dir, 'history.db'), renderer: buildRenderer(join(dir, 'renderer')) });
    browser = await launchChromium(chromium!);
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(120_000);
    await page.goto(served.url);
  });

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // What the page showed when a step failed (beside the views' own screenshots).
  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail' && page) await screenshot(page, `failed-${task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`);
  });

  /** Picks the option of a <select> whose text contains `text` (the dropped dataset, whatever its position). */
  const selectContaining = async (select: string, text: string) => {
    const value = await page.locator(`${select} option`, { hasText: text }).first().getAttribute('value');
    await page.selectOption(select, value!);
  };

  const open = async (view: string) => {
    await page.click(byTestId(`nav-${view}`));
    await page.waitForSelector(byTestId(`view-${view}`));
  };

  it('the page cannot reach Node: no require, no process, only window.api', async () => {
    const reach = await page.evaluate(() => ({
      require: typeof (globalThis as { require?: unknown }).require,
      process: typeof (globalThis as { process?: unknown }).process,
      module: typeof (globalThis as { module?: unknown }).module,
      api: Object.keys(window.api ?? {}).sort(),
    }));
    expect(reach).toEqual({ require: 'undefined', process: 'undefined', module: 'undefined', api: ['host', 'pathForFile', 'pickPath', 'request'] });
  });

  it('opens the model', async () => {
    await open('models');
    await page.fill(byTestId('model-path'), model!);
    await page.click(byTestId('model-open'));
    const card = await page.waitForSelector(byTestId('model-card'));
    expect(await card.textContent()).toMatch(/llama/i);
    await screenshot(page, '1-models');
  });

  it('imports a dropped dataset file, edits a row and undoes the edit', async () => {
    await open('datasets');
    await dropFiles(page, byTestId('dataset-drop'), [{ name: 'arithmetic.jsonl', content: DATASET, type: 'application/jsonl' }]);
    await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 8, byTestId('dataset-row'));
    const cell = page.locator(byTestId('dataset-cell')).first();
    const before = (await cell.textContent())!;
    await cell.dblclick();
    await page.fill(byTestId('dataset-cell-editor'), 'edited in the e2e test');
    await page.keyboard.press('Enter');
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes('edited in the e2e test'), byTestId('dataset-cell'));
    await screenshot(page, '2-datasets-edited');
    await page.click(byTestId('dataset-undo'));
    await page.waitForFunction(({ sel, text }) => document.querySelector(sel)?.textContent === text, { sel: byTestId('dataset-cell'), text: before });
    expect(await page.locator(byTestId('dataset-cell')).first().textContent()).toBe(before);
    await screenshot(page, '2-datasets');
  });

  it('trains a run and the loss chart grows', async () => {
    await open('train');
    await page.selectOption(byTestId('train-method'), 'LORA');
    await selectContaining(byTestId('train-dataset'), 'arithmetic.jsonl');
    await page.fill(byTestId('train-steps'), '8');
    // A high rate, so that 8 steps move the tiny model's answers away from the base model's.
    await page.fill(byTestId('train-training-lr'), '0.05');
    // The memory and time estimate is there before anything starts.
    expect(await page.textContent(byTestId('train-estimate-memory'), { timeout: 60_000 })).toMatch(/\d+(\.\d+)? [KMG]?B/);
    await page.click(byTestId('train-start'));
    const chart = byTestId('chart-train-loss');
    const pointsSeen: number[] = [];
    for (;;) {
      const points = Number(await page.getAttribute(chart, 'data-points'));
      if (points !== pointsSeen.at(-1)) pointsSeen.push(points);
      const status = (await page.textContent(byTestId('train-status'))) ?? '';
      if (/completed|failed|cancelled|error/i.test(status)) break;
      await page.waitForTimeout(200);
    }
    expect(await page.textContent(byTestId('train-status'))).toMatch(/completed/i);
    expect(pointsSeen.at(-1)).toBeGreaterThanOrEqual(8);
    // Live: the chart was seen with some points before it had them all.
    expect(pointsSeen.some((n) => n > 0 && n < pointsSeen.at(-1)!)).toBe(true);
    await screenshot(page, '3-train');
  });

  it('shows the run in Runs with its curves', async () => {
    await open('runs');
    await page.locator(byTestId('run-row')).first().click();
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('data-points')) >= 8, byTestId('chart-run-loss'));
    // A finished run has its final eval loss, whatever its eval interval (50 here, for 8 steps).
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('data-points')) === 1, byTestId('chart-run-eval-loss'));
    await screenshot(page, '4-runs');
  });

  it('runs a 2×2 r/alpha sweep and the heatmap fills', async () => {
    await open('sweeps');
    await selectContaining(byTestId('sweep-dataset'), 'arithmetic.jsonl');
    await page.fill(byTestId('sweep-r'), '2, 4');
    await page.fill(byTestId('sweep-alpha'), '4, 8');
    await page.fill(byTestId('sweep-steps'), '3');
    await page.click(byTestId('sweep-start'));
    await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 4, `${byTestId('heatmap-cell')}[data-value]`, { timeout: 120_000 });
    const values = await page.$$eval(`${byTestId('heatmap-cell')}[data-value]`, (cells) => cells.map((c) => Number(c.getAttribute('data-value'))));
    expect(values.every(Number.isFinite)).toBe(true);
    await page.waitForSelector(byTestId('sweep-best'));
    await screenshot(page, '5-sweeps');
  });

  it('keeps one dataset: the run and the sweep recorded the version that was dropped, not copies', async () => {
    await open('datasets');
    await page.waitForSelector(byTestId('dataset-item'));
    expect(await page.locator(byTestId('dataset-item')).count()).toBe(1);
  });

  it('shows the adapter library', async () => {
    await open('adapters');
    await page.waitForSelector(byTestId('adapter-row'));
    await screenshot(page, '6-adapters');
  });

  it('chats with the base and the trained adapter side by side: two different streamed answers', async () => {
    await open('runs');
    // The run trained in Train is the oldest (lowest id); the sweep's trials came after it.
    const ids = await page.$$eval(byTestId('run-row'), (rows) => rows.map((r) => Number(r.getAttribute('data-run-id'))));
    await page.click(`${byTestId('run-row')}[data-run-id="${Math.min(...ids)}"]`);
    await page.click(byTestId('run-open-chat'));
    await page.waitForSelector(byTestId('view-chat'));
    await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, byTestId('chat-column'));
    await page.click('summary:has-text("Settings")');
    await page.fill(byTestId('chat-max-tokens'), '24');
    await page.fill(byTestId('chat-prompt'), 'What is 3 plus 3?');
    await page.click(byTestId('chat-send'));
    // Streaming: some answer is seen part-way before the columns finish.
    const lengths: number[][] = [];
    for (;;) {
      const texts = await page.$$eval(byTestId('chat-answer'), (els) => els.map((e) => e.textContent ?? ''));
      lengths.push(texts.map((t) => t.length));
      const busy = await page.isEnabled(byTestId('chat-stop')).catch(() => false);
      if (!busy && texts.every((t) => t.length > 0)) break;
      await page.waitForTimeout(100);
    }
    const answers = await page.$$eval(byTestId('chat-answer'), (els) => els.map((e) => e.textContent ?? ''));
    expect(answers).toHaveLength(2);
    expect(answers[0]!.length).toBeGreaterThan(0);
    expect(answers[1]!.length).toBeGreaterThan(0);
    expect(answers[0]).not.toBe(answers[1]);
    expect(new Set(lengths.map((l) => l.join(','))).size).toBeGreaterThan(2);
    await screenshot(page, '7-chat');
  });

  it('raised no uncaught error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
