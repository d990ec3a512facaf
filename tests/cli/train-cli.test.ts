import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', ...args], { encoding: 'utf8', timeout: 300_000 });
const model = tinyModelDir('qwen3');

const writeDataset = (dir: string): string => {
  const file = join(dir, 'chat.jsonl');
  const rows = Array.from({ length: 40 }, (_, i) => ({
    messages: [
      { role: 'user', content: `What is ${i} plus ${i}?` },
      { role: 'assistant', content: `The answer is ${2 * i}.` },
    ],
  }));
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

describe.skipIf(!model && !oracleRequired())('peft-studio train / runs / dataset inspect', () => {
  it('trains from a YAML config, records the run, metrics, checkpoints and adapter in SQLite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-cli-train-'));
    const dataset = writeDataset(dir);
    const db = join(dir, 'history.db');
    const config = join(dir, 'run.yaml');
    writeFileSync(
      config,
      [
        'name: sums',
        `model: ${model}`,
        `dataset: { path: ${dataset}, evalFraction: 0.1 }`,
        'method: { peft_type: LORA, r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj] }',
        'training: { microBatchSize: 2, maxSteps: 6, lr: 0.01, evalEvery: 3, checkpointEvery: 3, maxLength: 64, session: { threads: 1 } }',
        `output: ${join(dir, 'run')}`,
      ].join('\n'),
    );
    const r = cli('train', '--config', config, '--db', db, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { runId: number; status: string; adapterDir: string };
    expect(result.status).toBe('completed');
    expect(existsSync(join(result.adapterDir, 'adapter_model.safetensors'))).toBe(true);

    const store = openStore(db);
    const run = store.runs.get(result.runId);
    expect(run.status).toBe('completed');
    expect(store.metrics.series(run.id, 'train/loss')).toHaveLength(6);
    expect(store.metrics.series(run.id, 'eval/loss')).toHaveLength(2);
    expect(store.checkpoints.list(run.id).length).toBeGreaterThan(0);
    expect(store.adapters.list({ runId: run.id })).toHaveLength(1);
    expect(store.integrity().ok).toBe(true);
    store.close();

    const list = cli('runs', 'list', '--db', db);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/completed\s+LORA\s+sums/);
    const show = cli('runs', 'show', String(result.runId), '--db', db);
    expect(show.stdout).toMatch(/train\/loss: 6 points/);
  });

  it('train --resume: --run needs --resume, an unknown run id is unusable input (exit 2)', () => {
    const db = join(mkdtempSync(join(tmpdir(), 'peft-cli-resume-')), 'history.db');
    const lone = cli('train', '--run', '3', '--db', db);
    expect(lone.status).toBe(2);
    expect(lone.stderr).toMatch(/--run ID names the run to continue; give it with --resume/);
    const unknown = cli('train', '--resume', '--run', '999', '--db', db);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/there is no run 999 in the history/);
  });

  it('dataset inspect: exit 0 for a usable file, 2 with FILE:LINE messages for a broken one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-cli-ds-'));
    const good = cli('dataset', 'inspect', writeDataset(dir), '--model', model!);
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/usable; format/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [\n');
    const r = cli('dataset', 'inspect', bad);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain(`${bad}:2:`);
  });
});
