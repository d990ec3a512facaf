// Side-by-side chat with adapters of mixed methods: LoRA shares the base model's batched pass, IA3 / bottleneck /
// fully fine-tuned columns run their own graphs; every column answers exactly as it does alone (greedy and sampled
// with one seed), the columns stream interleaved, and the CLI prints them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { chat } from '../../main/generate/chat.ts';
import { Generator } from '../../main/generate/generator.ts';
import { openAdapterGenerator } from '../../main/generate/method-adapter.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openModel, type OpenedModel } from '../../main/models/open-model.ts';
import { chatSideBySide, type ChatSampling } from '../../main/service/chat.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { METHOD_CASES } from './method-adapter-fixtures.ts';

const llama = tinyModelDir('llama3');
const SESSION = { threads: 2 };
const PROMPT = 'Name a river.';
const METHODS = ['LORA', 'IA3', 'BOTTLENECK (Houlsby)', 'FULL (a model folder)'];

/** What one column answers on its own: chat() over a single generator (base, or the adapter opened by the table). */
const alone = async (opened: OpenedModel, adapter: string | null, sampling: ChatSampling): Promise<string> => {
  const { generator } = adapter ? await openAdapterGenerator(opened.model, adapter, SESSION) : { generator: await Generator.create(opened.model, SESSION) };
  let text = '';
  for await (const piece of chat(generator, opened, [{ role: 'user', content: PROMPT }], { maxNewTokens: sampling.maxNewTokens ?? 128, ...sampling })) text += piece;
  await generator.release();
  return text;
};

describe.skipIf(!llama && !oracleRequired())('side-by-side chat with adapters of mixed methods', () => {
  let root: string;
  let opened: OpenedModel;
  const adapters: string[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'chat-side-by-side-'));
    opened = openModel(llama!);
    const { model } = opened;
    for (const name of METHODS) {
      const c = METHOD_CASES.find((x) => x.name === name)!;
      adapters.push(c.make({ model, modelDir: llama!, graph: buildLogitsGraph(model), dir: join(root, name.split(' ')[0]!.toLowerCase()) }).dir);
    }
  });

  /** Each adapter column's peft_type and pass, in METHODS' order. */
  const KINDS = [['LORA', 'batched'], ['IA3', 'own'], ['BOTTLENECK', 'own'], ['FULL', 'own']];

  it.each([
    { kind: 'greedy', sampling: { maxNewTokens: 10 }, adapterCount: 4 },
    // Sampling sorts the 128k-token vocabulary for every token: few tokens and columns keep it quick.
    { kind: 'sampled', sampling: { maxNewTokens: 5, temperature: 0.9, topK: 40, seed: 3 }, adapterCount: 2 },
  ])('$kind: every column answers as it does alone, the columns streaming together', async ({ sampling, adapterCount }) => {
    const dirs = adapters.slice(0, adapterCount);
    const order: number[] = [];
    const r = await chatSideBySide({ model: opened, adapters: dirs, prompt: PROMPT, sampling, session: SESSION, onToken: (t) => order.push(t.column) });
    expect(r.columns.map((c) => [c.label, c.peftType, c.pass])).toEqual([['base', null, 'batched'], ...dirs.map((dir, i) => [dir, ...KINDS[i]!])]);
    const expected = [await alone(opened, null, sampling)];
    for (const dir of dirs) expected.push(await alone(opened, dir, sampling));
    console.log(`NUM ${JSON.stringify(r.columns.map((c) => c.text))}`);
    expect(r.columns.map((c) => c.text)).toEqual(expected);
    expect(new Set(expected).size).toBe(expected.length);
    // Interleaved: the last column starts before the first one ends.
    expect(order.indexOf(adapterCount)).toBeGreaterThanOrEqual(0);
    expect(order.indexOf(adapterCount)).toBeLessThan(order.lastIndexOf(0));
  });

  it('the CLI streams three different answers plus the base, and names a bad adapter', () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', 'chat', '--model', llama!, ...args], { encoding: 'utf8', timeout: 120_000 });
    const r = cli(...adapters.slice(0, 3).flatMap((dir) => ['--adapter', dir]), '--max-tokens', '8', '--json', PROMPT);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { column: string; text?: string; answer?: string; peftType?: string | null; pass?: string });
    const answers = lines.filter((l) => l.answer !== undefined);
    expect(answers.map((a) => [a.column, a.peftType, a.pass])).toEqual([
      ['base', null, 'batched'],
      [adapters[0], 'LORA', 'batched'],
      [adapters[1], 'IA3', 'own'],
      [adapters[2], 'BOTTLENECK', 'own'],
    ]);
    expect(new Set(answers.map((a) => a.answer)).size).toBe(4);
    const pieces = lines.filter((l) => l.text !== undefined);
    for (const a of answers) expect(pieces.filter((p) => p.column === a.column).map((p) => p.text).join('').trim()).toBe(a.answer);
    const columns = pieces.map((p) => p.column);
    expect(columns.indexOf(adapters[2]!)).toBeLessThan(columns.lastIndexOf('base'));

    const unknown = join(root, 'oft');
    mkdirSync(unknown);
    writeFileSync(join(unknown, 'adapter_config.json'), JSON.stringify({ peft_type: 'OFT' }));
    const bad = cli('--adapter', adapters[0]!, '--adapter', unknown, PROMPT);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(`${unknown}/adapter_config.json: peft_type 'OFT' cannot be opened; supported: LORA`);
    const badTokens = cli('--max-tokens', 'lots', PROMPT);
    expect([badTokens.status, badTokens.stderr.trim()]).toEqual([2, "peft-studio chat: --max-tokens must be an integer ≥ 1, got 'lots'"]);
  });
});
