/** Good fixtures in every format and file type; CSV, JSON and text reading details; detection evidence. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectFormat, formatProblem, loadDataset, type ChatRecord } from '../../../main/train/dataset/index.ts';
import { parseCsvRecords } from '../../../main/train/dataset/read-csv.ts';
import { ProblemLog } from '../../../main/train/dataset/problems.ts';
import { GOOD_DIR, GOOD_FIXTURES } from './helpers.ts';

const chat = (r: unknown): ChatRecord['messages'] => (r as ChatRecord).messages;

describe('good fixtures', () => {
  for (const [file, format, records] of GOOD_FIXTURES) {
    it(`${file}: ${format}, ${records} records, no problems`, async () => {
      const loaded = await loadDataset(join(GOOD_DIR, file));
      expect(loaded.problems.map(formatProblem)).toEqual([]);
      expect(loaded.format).toBe(format);
      expect(loaded.records).toHaveLength(records);
      expect(loaded.detection.evidence).toContain(`${records} of ${records} record`);
    });
  }

  it('normalises every format to chat messages with their source lines', async () => {
    const alpaca = await loadDataset(join(GOOD_DIR, 'alpaca.json'));
    expect(alpaca.records.map((r) => r.line)).toEqual([2, 7, 12]);
    expect(chat(alpaca.records[0])).toEqual([
      { role: 'user', content: 'Translate to French.\n\nGood morning' },
      { role: 'assistant', content: 'Bonjour' },
    ]);
    expect(chat(alpaca.records[2])[0]).toEqual({ role: 'system', content: 'Answer in one word.' });

    const sharegpt = await loadDataset(join(GOOD_DIR, 'sharegpt.json'));
    expect(chat(sharegpt.records[0]).map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
    expect(sharegpt.records.map((r) => r.line)).toEqual([3, 10]);

    const openai = await loadDataset(join(GOOD_DIR, 'openai.jsonl'));
    expect(openai.records.map((r) => r.line)).toEqual([1, 2, 4, 5]); // line 3 is blank
    expect(chat(openai.records[2])[0]?.content).toBe('Spell cat backwards.'); // text parts joined
    const tool = chat(openai.records[3]);
    expect(tool.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(tool[1]).toMatchObject({ content: '', tool_calls: [{ type: 'function' }] });
    expect(openai.stats.messages).toEqual({ system: 1, user: 5, assistant: 6, tool: 1 });

    const pc = await loadDataset(join(GOOD_DIR, 'prompt-completion.jsonl'));
    expect(chat(pc.records[0])).toEqual([
      { role: 'user', content: 'The opposite of hot is' },
      { role: 'assistant', content: ' cold.' },
    ]);
    expect(chat(pc.records[2])).toEqual([
      { role: 'user', content: 'Say hi in Spanish.' },
      { role: 'assistant', content: 'Hola.' },
    ]);
  });

  it('reads CSV with a BOM, CRLF, quoted newlines and doubled quotes; lines are physical', async () => {
    const loaded = await loadDataset(join(GOOD_DIR, 'alpaca.csv'));
    expect(loaded.records.map((r) => r.line)).toEqual([2, 5, 6]);
    expect(chat(loaded.records[0])[1]?.content).toBe('Soft rain on the roof,\nthe garden drinks in silence,\nclouds walk slowly home.');
    expect(chat(loaded.records[1])[1]?.content).toBe('Hello, world!');
    expect(chat(loaded.records[2])).toEqual([
      { role: 'user', content: 'Quote the word "yes".' },
      { role: 'assistant', content: '"yes"' },
    ]);
  });

  it('reads Parquet list<struct> chat columns and plain columns (hyparquet, offline)', async () => {
    const loaded = await loadDataset(join(GOOD_DIR, 'openai.parquet'));
    expect(chat(loaded.records[1])).toEqual([
      { role: 'system', content: 'Reply in French.' },
      { role: 'user', content: 'Thank you' },
      { role: 'assistant', content: 'Merci' },
    ]);
    expect(loaded.records.map((r) => r.line)).toEqual([1, 2, 3]);
  });

  it('reads text as paragraphs (default) or lines', async () => {
    const paragraphs = await loadDataset(join(GOOD_DIR, 'raw.txt'));
    expect(paragraphs.records.map((r) => r.line)).toEqual([1, 5, 7]);
    const lines = await loadDataset(join(GOOD_DIR, 'raw.txt'), { textSplit: 'lines' });
    expect(lines.records.map((r) => r.line)).toEqual([1, 2, 3, 5, 7, 8]);
    expect(lines.records[0]).toMatchObject({ kind: 'text', text: expect.stringMatching(/^Call me Ishmael/) });
  });
});

describe('reading details', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-dataset-load-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('splits CSV per RFC 4180', () => {
    const log = new ProblemLog('x.csv');
    const records = parseCsvRecords('a,b\r\n"x, y","line1\nline2"\r\n"",""""\nlast,row', log);
    expect(log.problems).toEqual([]);
    expect(records).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['x, y', 'line1\nline2'] },
      { line: 4, fields: ['', '"'] },
      { line: 5, fields: ['last', 'row'] },
    ]);
  });

  it('reads a .json file of one object per line (what datasets.to_json writes) as JSON Lines', async () => {
    const path = write('lines.json', '{"text": "one"}\n{"text": "two"}\n{"text": "three"\n');
    const loaded = await loadDataset(path, { displayName: 'lines.json' });
    expect(loaded.records.map((r) => r.line)).toEqual([1, 2]);
    expect(loaded.problems.map(formatProblem)).toEqual([expect.stringMatching(/^lines\.json:3: broken JSON/)]);
  });

  it('accepts {"data": [...]} and other wrapper keys, and a single record object', async () => {
    expect((await loadDataset(write('w.json', '{"version": 2, "train": [{"text": "a"}, {"text": "b"}]}'))).records).toHaveLength(2);
    expect((await loadDataset(write('one.json', '{"text": "only"}'))).records).toHaveLength(1);
    const other = await loadDataset(write('other.json', '{"version": 2, "items": []}'), { displayName: 'other.json' });
    expect(other.problems.map(formatProblem)).toEqual([expect.stringMatching(/^other\.json:1: a \.json dataset is a list of records .*version, items/)]);
  });

  it('reports every broken record of a .json list and keeps the others', async () => {
    const path = write('list.json', '[\n {"text": "a"},\n {"text": tru},\n {"text": "c"},\n {"text": "d",}\n]\n');
    const loaded = await loadDataset(path, { displayName: 'list.json' });
    expect(loaded.records.map((r) => r.line)).toEqual([2, 4]);
    expect(loaded.problems.map(formatProblem)).toEqual([
      'list.json:3: broken JSON: unexpected "}" (not a JSON value)',
      expect.stringMatching(/^list\.json:5: broken JSON: expected double-quoted property name \(column 15, in the record starting at line 5\)/),
    ]);
  });

  it('a chosen format checks every record against it and hints what a record looks like', async () => {
    const path = write('c.jsonl', '{"text": "plain"}\n{"prompt": "p", "completion": "c"}\n');
    const loaded = await loadDataset(path, { format: 'prompt-completion', displayName: 'c.jsonl' });
    expect(loaded.detection.evidence).toBe('prompt-completion (chosen); of the records, 1 looks like text');
    expect(loaded.problems.map(formatProblem)).toEqual([
      'c.jsonl:1: no "prompt" field ("prompt" and "completion") (this record looks like text)',
      'c.jsonl:1: no "completion" field ("prompt" and "completion") (this record looks like text)',
    ]);
    expect(loaded.records).toHaveLength(1);
  });

  it('keeps duplicates when asked, still warning', async () => {
    const path = write('d.jsonl', '{"text": "a"}\n{"text": "b"}\n{"text": "a"}\n');
    const dropped = await loadDataset(path);
    expect(dropped.records).toHaveLength(2);
    expect(dropped.stats.duplicates).toBe(1);
    expect(dropped.problems).toMatchObject([{ line: 3, severity: 'warning' }]);
    expect((await loadDataset(path, { keepDuplicates: true })).records).toHaveLength(3);
  });

  it('detection reports its evidence and picks the majority', () => {
    const d = detectFormat([{ messages: [] }, { messages: [] }, { instruction: 'x', output: 'y' }, { foo: 1 }]);
    expect(d.format).toBe('openai');
    expect(d.evidence).toMatch(/^openai \(.*\): 2 of 4 records; 1 looks like alpaca, 1 match no format$/);
    expect(detectFormat([{ conversations: [] }]).format).toBe('sharegpt');
    expect(detectFormat([{ prompt: 'a', completion: 'b' }]).format).toBe('prompt-completion');
    expect(detectFormat([{ text: 'a' }]).format).toBe('text');
    expect(detectFormat([{ a: 1 }]).format).toBeUndefined();
  });

  it('maps ShareGPT and OpenAI role names, and either item style in either list', async () => {
    const path = write(
      'roles.jsonl',
      [
        '{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}, {"from": "observation", "value": "o"}, {"from": "gpt", "value": "b"}]}',
        '{"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        '{"conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}], "system": "be brief"}',
      ].join('\n'),
    );
    const loaded = await loadDataset(path);
    expect(loaded.problems).toEqual([]);
    expect(chat(loaded.records[0]).map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant']);
    expect(chat(loaded.records[1]).map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(chat(loaded.records[2])[0]).toEqual({ role: 'system', content: 'be brief' });
  });

  it('warns about messages after the last assistant turn and leaves out empty system prompts', async () => {
    const path = write(
      't.jsonl',
      '{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "more?"}]}\n',
    );
    const loaded = await loadDataset(path, { displayName: 't.jsonl' });
    expect(loaded.problems.map(formatProblem)).toEqual([
      't.jsonl:1: warning: messages[0] is an empty system prompt (left out)',
      't.jsonl:1: warning: the conversation ends with 1 message after the last assistant turn (not trained)',
    ]);
    expect(chat(loaded.records[0]).map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
  });

  it('never drops a record silently: null answers and wrong types are errors', async () => {
    const path = write(
      'n.jsonl',
      ['{"instruction": "a", "output": null}', '{"instruction": "b", "response": "ok"}', '{"prompt": "p", "completion": 3}', '{"prompt": "p", "completion": null}'].join('\n'),
    );
    const alpaca = await loadDataset(path, { format: 'alpaca', displayName: 'n.jsonl' });
    expect(alpaca.records).toHaveLength(1);
    expect(alpaca.stats.invalid).toBe(3);
    expect(alpaca.problems.map(formatProblem)[0]).toBe('n.jsonl:1: "output" is null: an empty assistant turn (nothing to train on)');
    const pc = await loadDataset(path, { format: 'prompt-completion', displayName: 'n.jsonl' });
    expect(pc.problems.map(formatProblem).filter((p) => /^n\.jsonl:[34]:/.test(p))).toEqual([
      'n.jsonl:3: "completion" must be text, got a number',
      'n.jsonl:4: "completion" is null: an empty assistant turn (nothing to train on)',
    ]);
    expect(pc.stats.invalid + pc.stats.records).toBe(4);
  });

  it('reports a missing file', async () => {
    const loaded = await loadDataset(join(dir, 'nope.jsonl'), { displayName: 'nope.jsonl' });
    expect(loaded.problems.map(formatProblem)).toEqual(['nope.jsonl:1: cannot read the file: it does not exist']);
  });
});
