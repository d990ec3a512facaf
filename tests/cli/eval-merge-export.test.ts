import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openGguf } from '../../main/models/gguf/reader.ts';
import { openStore } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter, trainTinyRun, writeChatDataset } from '../service/adapter-fixtures.ts';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', ...args], { encoding: 'utf8', timeout: 300_000 });
const llama = tinyModelDir('llama3');
const qwen = tinyModelDir('qwen3');

interface EvalJson {
  type: 'result';
  columns: { label: string; loss: number; perplexity: number; tokens: number }[];
}
const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').at(-1)!) as T;

describe.skipIf((!llama || !qwen) && !oracleRequired())('peft-studio eval / merge / export / runs compare', () => {
  let work: string;
  let dataset: string;
  let db: string;
  const runs: { id: number; adapter: string }[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'peft-cli-eval-'));
    dataset = writeChatDataset(work);
    db = join(work, 'history.db');
    const store = openStore(db);
    for (const [name, r, lr] of [['small', 2, 0.05], ['large', 8, 0.01]] as const) {
      const out = await trainTinyRun(store, { model: llama!, dataset, output: join(work, name), name, r, lr, steps: 3 });
      runs.push({ id: out.runId, adapter: out.adapterDir! });
    }
    store.close();
  });

  it('eval prints one line per column, the same numbers as --json, and records adapter columns with --db', () => {
    const text = cli('eval', '--model', llama!, '--adapter', runs[0]!.adapter, '--dataset', dataset, '--threads', '1');
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    const parsed = lines.map((l) => /^(\S+)\s+eval loss (\d+\.\d{4})\s+perplexity (\d+\.\d+)\s+tokens (\d+)$/.exec(l)!);
    expect(parsed.map((m) => m[1])).toEqual(['base', runs[0]!.adapter]);
    expect(Number(parsed[0]![2])).not.toBe(Number(parsed[1]![2]));

    const json = cli('eval', '--model', llama!, '--adapter', runs[0]!.adapter, '--dataset', dataset, '--threads', '1', '--json', '--db', db, '--no-base');
    expect(json.status).toBe(0);
    const r = lastJson<EvalJson & { recorded: { runId: number }[] }>(json.stdout);
    expect(r.columns).toHaveLength(1);
    expect(r.columns[0]!.loss.toFixed(4)).toBe(parsed[1]![2]);
    expect(String(r.columns[0]!.tokens)).toBe(parsed[1]![4]);
    expect(r.recorded.map((x) => x.runId)).toEqual([runs[0]!.id]);
  });

  it('merge, then export hf: eval of the merged folder gives the merged adapter eval loss; gguf-lora writes an adapter GGUF', () => {
    const merged = join(work, 'merged');
    const m = cli('merge', '--model', llama!, '--adapter', runs[0]!.adapter, '--adapter', runs[1]!.adapter, '--weights', '0.5,0.5', '--combination', 'cat', '--out', merged, '--db', db);
    expect(m.stderr).toBe('');
    expect(m.status).toBe(0);
    expect(m.stdout).toMatch(/cat of 2 adapter\(s\) \(weights 0\.5, 0\.5\), rank 10/);
    const store = openStore(db);
    expect(store.adapters.list().map((a) => a.path)).toContain(merged);
    store.close();

    const hf = join(work, 'merged-hf');
    const e = cli('export', '--model', llama!, '--adapter', merged, '--format', 'hf', '--out', hf);
    expect(e.status).toBe(0);
    expect(existsSync(join(hf, 'model.safetensors'))).toBe(true);
    const adapterEval = lastJson<EvalJson>(cli('eval', '--model', llama!, '--adapter', merged, '--dataset', dataset, '--threads', '1', '--json').stdout);
    const folderEval = lastJson<EvalJson>(cli('eval', '--model', hf, '--dataset', dataset, '--threads', '1', '--json').stdout);
    const [base, adapter] = adapterEval.columns.map((c) => c.loss) as [number, number];
    const fromFolder = folderEval.columns[0]!.loss;
    console.log(`CLI: base ${base.toFixed(6)}, merged adapter ${adapter.toFixed(6)}, merged HF folder ${fromFolder.toFixed(6)}`);
    expect(Math.abs(fromFolder - adapter)).toBeLessThan(1e-4);
    expect(Math.abs(base - adapter)).toBeGreaterThan(1e-3);

    const lora = join(work, 'merged.gguf');
    expect(cli('export', '--model', llama!, '--adapter', merged, '--format', 'gguf-lora', '--gguf-type', 'f16', '--out', lora).status).toBe(0);
    expect(openGguf(lora).string('general.type')).toBe('adapter');
  });

  it('runs compare shows the config fields that differ and the metrics side by side', () => {
    const [a, b] = runs.map((r) => String(r.id)) as [string, string];
    const text = cli('runs', 'compare', a, b, '--db', db);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/config: 5 field\(s\) differ/);
    expect(text.stdout).toMatch(/^ {2}method\.r\s+2\s+8$/m);
    expect(text.stdout).toMatch(/^ {2}training\.lr\s+0\.05\s+0\.01$/m);
    expect(text.stdout).toMatch(/^ {2}train\/loss\s+\S+ @3/m);
    expect(text.stdout).not.toMatch(/^ {2}model\s/m);
    const json = lastJson<{ differences: { field: string }[] }>(cli('runs', 'compare', a, b, '--db', db, '--json').stdout);
    expect(json.differences.map((d) => d.field)).toEqual(['method.lora_alpha', 'method.r', 'name', 'output', 'training.lr']);
  });

  it('exits 2 on unusable input, naming the file, line or tensor', () => {
    const foreign = randomAdapter(qwen!, join(work, 'qwen-adapter'));
    const broken = join(work, 'broken.jsonl');
    writeFileSync(broken, '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [\n');
    const tensor = /qwen-adapter: tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[64, 4\]/;
    const cases: [string[], RegExp | string][] = [
      [['eval', '--model', join(work, 'no-such-model'), '--dataset', dataset], /no-such-model does not exist/],
      [['eval', '--model', llama!, '--adapter', foreign, '--dataset', dataset], tensor],
      [['eval', '--model', llama!, '--dataset', broken], `${broken}:2:`],
      [['export', '--model', llama!, '--adapter', foreign, '--format', 'gguf', '--out', join(work, 'x.gguf')], tensor],
      [['export', '--model', llama!, '--adapter', foreign, '--format', 'zip', '--out', join(work, 'x')], /--format must be one of hf, gguf, gguf-lora, ollama/],
      [['merge', '--model', llama!, '--adapter', runs[0]!.adapter, '--adapter', runs[1]!.adapter, '--weights', '1', '--out', join(work, 'y')], /--weights must be 2 comma-separated numbers/],
      [['runs', 'compare', String(runs[0]!.id), '999', '--db', db], /no run 999/],
      [['eval', '--model', llama!, '--dataset', dataset, '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(existsSync(join(work, 'x.gguf'))).toBe(false);
  });
});
