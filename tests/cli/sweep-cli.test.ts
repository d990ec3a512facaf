import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { openStore } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', ...args], { encoding: 'utf8', timeout: 300_000 });
const model = tinyModelDir('qwen3');

const writeSweep = (dir: string, mode: 'fused' | 'sequential', extra: string[] = []): string => {
  const dataset = join(dir, 'chat.jsonl');
  const rows = Array.from({ length: 48 }, (_, i) => ({
    messages: [
      { role: 'user', content: `What is ${i} times two?` },
      { role: 'assistant', content: `Twice ${i} is ${2 * i}.` },
    ],
  }));
  writeFileSync(dataset, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const config = join(dir, `${mode}.yaml`);
  writeFileSync(
    config,
    [
      `name: ${mode}-sweep`,
      `model: ${model}`,
      `dataset: { path: ${dataset}, evalFraction: 0.2 }`,
      'method: { peft_type: LORA, r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj, down_proj] }',
      'training: { microBatchSize: 2, maxSteps: 4, lr: 0.01, evalEvery: 2, checkpointEvery: 0, maxLength: 64, seed: 7, session: { threads: 1 } }',
      `output: ${join(dir, mode)}`,
      'sweep:',
      `  mode: ${mode}`,
      '  space: { r: [2, 8], lora_alpha: [4, 32] }',
      ...extra,
    ].join('\n'),
  );
  return config;
};

interface SweepResult {
  sweepId: number;
  best: number;
  trials: { ordinal: number; status: string; objective: number; adapterDir: string; runId: number; point: { r: number; lora_alpha: number } }[];
  matrix: { rows: number[]; cols: number[]; cells: (number | null)[][] };
}
const result = (stdout: string): SweepResult => JSON.parse(stdout.trim().split('\n').at(-1)!) as SweepResult;

describe.skipIf(!model && !oracleRequired())('peft-studio sweep', () => {
  it('runs a 2×2 r/alpha sweep fused and sequentially: the same objectives, a filled matrix, the best trial and adapters in the history', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-cli-sweep-'));
    const db = join(dir, 'history.db');
    const fusedRun = cli('sweep', '--config', writeSweep(dir, 'fused'), '--db', db, '--json');
    expect(fusedRun.stderr).toBe('');
    expect(fusedRun.status).toBe(0);
    const fused = result(fusedRun.stdout);
    expect(fused.trials.map((t) => t.point)).toEqual([{ r: 2, lora_alpha: 4 }, { r: 2, lora_alpha: 32 }, { r: 8, lora_alpha: 4 }, { r: 8, lora_alpha: 32 }]);
    expect(fused.matrix.rows).toEqual([2, 8]);
    expect(fused.matrix.cols).toEqual([4, 32]);
    expect(fused.matrix.cells.flat().every((v) => typeof v === 'number')).toBe(true);
    const objectives = fused.trials.map((t) => t.objective);
    expect(fused.best).toBe(objectives.indexOf(Math.min(...objectives)));
    expect(new Set(objectives).size).toBe(4);

    const seqRun = cli('sweep', '--config', writeSweep(dir, 'sequential'), '--db', db, '--json');
    expect(seqRun.status).toBe(0);
    const seq = result(seqRun.stdout);
    seq.trials.forEach((t, i) => expect(Math.abs(t.objective - objectives[i]!)).toBeLessThan(1e-4 * objectives[i]!));

    const store = openStore(db);
    for (const out of [fused, seq]) {
      const sweep = store.sweeps.get(out.sweepId);
      expect(sweep.status).toBe('completed');
      const trials = store.sweeps.trials(sweep.id);
      expect(trials.map((t) => t.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
      expect(store.sweeps.best(sweep.id)!.ordinal).toBe(out.best);
      for (const t of out.trials) {
        expect(store.runs.get(t.runId).status).toBe('completed');
        expect(store.metrics.series(t.runId, 'train/loss')).toHaveLength(4);
        expect(store.metrics.series(t.runId, 'eval/loss').at(-1)!.value).toBeCloseTo(t.objective, 6);
        const adapter = loadAdapterFiles(t.adapterDir);
        expect(adapter.config).toMatchObject({ r: t.point.r, lora_alpha: t.point.lora_alpha, peft_type: 'LORA' });
        expect(adapter.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape[0]).toBe(t.point.r);
      }
    }
    expect(store.integrity().ok).toBe(true);
    store.close();

    const show = cli('sweep', 'show', String(fused.sweepId), '--db', db);
    expect(show.status).toBe(0);
    expect(show.stdout).toMatch(/trial 0: r=2 lora_alpha=4 — completed, eval loss/);
    expect(show.stdout).toMatch(/r \\ alpha\s+4\s+32/);
  });

  it('prunes with successive halving and records the pruned trials', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-cli-sweep-'));
    const db = join(dir, 'history.db');
    const run = cli('sweep', '--config', writeSweep(dir, 'fused', ['  halving: { rungs: [1, 2], keep: 0.5 }']), '--db', db, '--json');
    expect(run.status).toBe(0);
    const out = result(run.stdout);
    expect(out.trials.map((t) => t.status).sort()).toEqual(['completed', 'pruned', 'pruned', 'pruned']);
    const store = openStore(db);
    const pruned = store.sweeps.trials(out.sweepId).filter((t) => t.status === 'pruned');
    expect(pruned.map((t) => t.prunedAtStep).sort()).toEqual([1, 1, 2]);
    expect(existsSync(out.trials.find((t) => t.status === 'completed')!.adapterDir)).toBe(true);
    store.close();
  });

  it('names the file and field of a bad sweep config and exits 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-cli-sweep-'));
    const config = writeSweep(dir, 'fused').replace(/fused\.yaml$/, 'bad.yaml');
    writeFileSync(config, `name: x\nmodel: ${model}\ndataset: { path: d.jsonl }\nmethod: { peft_type: LORA }\noutput: o\nsweep: { space: { rank: [1, 2] } }\n`);
    const r = cli('sweep', '--config', config, '--db', join(dir, 'h.db'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml: sweep\.space\.rank cannot be swept/);
  });
});
