/**
 * Every malformed file in tests/fixtures/bad-datasets is unusable and gets a clear `FILE:LINE: message`: the line
 * the problem is on and words that say what is wrong. A 50 MB line is generated here, not committed.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblem, inspectDataset, loadDataset, prepareDataset } from '../../../main/train/dataset/index.ts';
import { ProblemLog } from '../../../main/train/dataset/problems.ts';
import { readTextLines, type ReadLinesSummary } from '../../../main/train/dataset/read-lines.ts';
import { BAD_DIR, qwen3Tokenizer } from './helpers.ts';

/** file → the problems it must report: [line, words of the message] (errors unless marked). */
const EXPECTED: Readonly<Record<string, readonly (readonly [number, RegExp])[]>> = {
  'alpaca-empty-instruction.csv': [[2, /"instruction" is empty/]],
  'alpaca-missing-output.jsonl': [[2, /no "output" field/]],
  'alpaca-wrong-types.json': [
    [2, /"instruction" must be text, got a list/],
    [3, /"output" must be text, got a number/],
  ],
  'binary.txt': [[2, /not valid UTF-8/]],
  'bom-broken.json': [[4, /broken JSON: expected ',' or '\}' after property value \(column 29/]],
  'bom-then-invalid-utf8.jsonl': [[2, /not valid UTF-8/]],
  'broken-json-line.jsonl': [[3, /broken JSON: expected ',' or '\}'/]],
  'corrupt.parquet': [[1, /cannot read this Parquet file/]],
  'csv-duplicate-header.csv': [[1, /names column "output" twice/]],
  'csv-field-count.csv': [
    [3, /this row has 2 fields, the header has 3/],
    [4, /this row has 5 fields, the header has 3/],
  ],
  'csv-header-only.csv': [[1, /header row but no data rows/]],
  'csv-stray-quote.csv': [[3, /a quote inside unquoted field 1/]],
  'csv-text-after-quote.csv': [[2, /text after the closing quote/]],
  'csv-unbalanced-quote.csv': [[3, /quoted field opens here and is never closed/]],
  'data.xlsx': [[1, /unknown file type '\.xlsx'/]],
  'duplicates-only.jsonl': [
    [1, /every record of the file is this one \(4 copies\)/],
    [2, /warning: exact duplicate of the record at line 1/],
    [3, /warning: exact duplicate of the record at line 1/],
    [4, /warning: exact duplicate of the record at line 1/],
  ],
  'empty-array.json': [[1, /no records/]],
  'empty-assistant.jsonl': [[2, /messages\[1\] is an empty assistant turn/]],
  'empty-messages.jsonl': [[1, /messages is an empty list/]],
  'empty.jsonl': [[1, /the file is empty/]],
  'image-content.jsonl': [[1, /"image_url" part; only text parts/]],
  'latin1.csv': [[4, /not valid UTF-8/]],
  'latin1.jsonl': [[2, /not valid UTF-8/]],
  'missing-comma.json': [[3, /broken JSON: .*a missing comma\?.*in the record starting at line 2/]],
  'mixed-formats.jsonl': [
    [3, /mixed formats: this record is alpaca .* but the file is openai .*3 of 5 records/],
    [4, /mixed formats: this record is sharegpt/],
  ],
  'nested-garbage.json': [
    [3, /messages must be a list of messages, got an object/],
    [4, /messages\[0\] must be an object with role and content, got a list/],
    [4, /messages\[1\] must be an object/],
    [5, /messages\[0\]\.content must be text, got an object/],
  ],
  'no-assistant.jsonl': [[2, /no assistant turn/]],
  'not-objects.jsonl': [
    [1, /a record must be an object .*got a list/],
    [2, /got "just a string"/],
    [3, /got 42/],
    [4, /got null/],
  ],
  'null-content.jsonl': [[1, /messages\[0\]\.content is null/]],
  'prompt-missing-completion.jsonl': [[2, /no "completion" field/]],
  'sharegpt-missing-value.jsonl': [[1, /conversations\[1\] has no "value" field/]],
  'sharegpt-unknown-from.json': [[3, /conversations\[1\]\.from "robot" is not a known role/]],
  'single-number.json': [[1, /a list of records or an object with a "data" list/]],
  'trailing-garbage.json': [[4, /more text after the closing '\]'/]],
  'truncated-array.json': [[4, /truncated JSON: the record starting at line 4 is never closed/]],
  'unknown-fields.jsonl': [
    [1, /no known format: the record's fields are "question", "answer"/],
    [2, /no known format/],
  ],
  'unknown-role.jsonl': [[2, /messages\[1\]\.role "bot" is not a known role/]],
  'utf16.jsonl': [[1, /UTF-16 LE/]],
  'whitespace-only.json': [[1, /the file is empty/]],
  'wrong-types.jsonl': [
    [1, /messages\[1\]\.content must be text, got a number/],
    [3, /messages must be a list of messages, got text/],
  ],
};

describe('bad datasets', () => {
  const files = readdirSync(BAD_DIR).sort();

  it('holds at least 25 malformed files, each with its expected problems listed here', () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
    expect(files).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const file of files) {
    it(`${file}: unusable, with FILE:LINE: messages`, async () => {
      const report = await inspectDataset(join(BAD_DIR, file), { displayName: file });
      expect(report.usable).toBe(false);
      const printed = report.problems.map(formatProblem);
      for (const [line, words] of EXPECTED[file] ?? []) {
        const prefix = `${file}:${line}: `;
        const hit = printed.find((p) => p.startsWith(prefix) && words.test(p.slice(prefix.length)));
        expect(hit, `${prefix}${words} among\n${printed.join('\n')}`).toBeDefined();
      }
      // Nothing unexpected: every error of the file is one listed above.
      const errors = report.problems.filter((p) => p.severity === 'error');
      expect(errors.length).toBe((EXPECTED[file] ?? []).filter(([, w]) => !w.source.startsWith('warning')).length);
    });
  }

  it('training refuses a bad file with the same FILE:LINE: messages', async () => {
    const file = 'mixed-formats.jsonl';
    const report = await inspectDataset(join(BAD_DIR, file), { displayName: file });
    const error = await prepareDataset(join(BAD_DIR, file), qwen3Tokenizer(), { displayName: file }).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('DatasetError');
    for (const p of report.problems) expect((error as Error).message).toContain(formatProblem(p));
  });
});

describe('a 50 MB line (generated)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-dataset-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is reported by its line number without reading it into memory; the other lines load', async () => {
    const path = join(dir, 'huge-line.jsonl');
    const fd = openSync(path, 'w');
    writeSync(fd, '{"instruction": "Say hi", "output": "Hi"}\n');
    writeSync(fd, '{"instruction": "Long", "output": "');
    const chunk = Buffer.alloc(1 << 20, 'a');
    for (let k = 0; k < 50; k++) writeSync(fd, chunk);
    writeSync(fd, '"}\n{"instruction": "Say bye", "output": "Bye"}\n');
    closeSync(fd);
    const loaded = await loadDataset(path, { displayName: 'huge-line.jsonl' });
    expect(loaded.problems.map(formatProblem)).toEqual([
      'huge-line.jsonl:2: line 2 is 50.0 MiB long, over the 16.0 MiB limit per line; is it really one JSON record per line? (raise maxLineBytes to read it)',
    ]);
    expect(loaded.records.map((r) => r.line)).toEqual([1, 3]);
    // The reader never holds more of a line than the limit, however long the line is.
    const summary: ReadLinesSummary = { lines: 0, bytes: 0 };
    const lines: number[] = [];
    for await (const l of readTextLines(path, new ProblemLog('huge-line.jsonl'), { maxLineBytes: 1 << 20 }, summary)) lines.push(l.line);
    expect(lines).toEqual([1, 3]);
    expect(summary.maxHeldBytes).toBeLessThanOrEqual(1 << 20);
    expect(summary.bytes).toBeGreaterThan(50 << 20);
  });

  it('loads with a higher limit', async () => {
    const path = join(dir, 'long-line.jsonl');
    const fd = openSync(path, 'w');
    writeSync(fd, `{"instruction": "Long", "output": "${'b'.repeat(3 << 20)}"}\n`);
    closeSync(fd);
    const tight = await loadDataset(path, { maxLineBytes: 1 << 20 });
    expect(tight.problems[0]?.message).toMatch(/line 1 is 3\.0 MiB long, over the 1\.0 MiB limit/);
    const loose = await loadDataset(path, { maxLineBytes: 4 << 20 });
    expect(loose.problems).toEqual([]);
    expect(loose.records).toHaveLength(1);
  });
});
