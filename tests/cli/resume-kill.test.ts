// `peft-studio train` killed with SIGKILL at seeded step counts — after a step's event while the next step computes,
// and inside a checkpoint write (PEFT_STUDIO_FAULT=checkpoint-write:STEP, the writer's test hook) — then continued
// with --resume: the same run row finishes with exactly the uninterrupted run's history (every step once, bit for
// bit), adapter and a database that passes integrity_check and foreign_key_check.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRunConfig, RunConfigError } from '../../main/service/run-config.ts';
import { trainRun } from '../../main/service/train-run.ts';
import { openStore, type Store } from '../../main/store/index.ts';
import { checkpointsRoot, listCheckpoints, newestCheckpoint } from '../../main/train/checkpoint.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { seededRandom } from '../helpers/random.ts';

const model = tinyModelDir('qwen3');
const STEPS = 10;
const CHECKPOINT_EVERY = 3;
const EVAL_EVERY = 5;
// Seed 5 draws: mid-step at 7 (resumes from checkpoint 6), mid-checkpoint at 9 (from 6, past-checkpoint points logged),
// mid-step at 2 (no checkpoint yet: the same run restarts from step 0).
const SEED = 5;

type Line = { type: string; step?: number; runId?: number; message?: string; status?: string; resumedFrom?: number };
type Kill = { kind: 'mid-step' | 'mid-checkpoint'; step: number };

/** Three distinct kill points drawn by a seeded RNG: one of each kind, and a third of either. */
const chooseKills = (): Kill[] => {
  const rng = seededRandom(SEED);
  const steps = Array.from({ length: STEPS - 1 }, (_, i) => i + 1);
  // Mid-step: after step N's event, while N+1 computes (no checkpoint or evaluation runs after step N).
  const midStep = steps.filter((n) => n % CHECKPOINT_EVERY !== 0 && n % EVAL_EVERY !== 0).map((step): Kill => ({ kind: 'mid-step', step }));
  const midCheckpoint = steps.filter((n) => n % CHECKPOINT_EVERY === 0).map((step): Kill => ({ kind: 'mid-checkpoint', step }));
  const draw = (from: Kill[]): Kill => from.splice(Math.floor(rng() * from.length), 1)[0]!;
  const first = draw(midStep);
  const second = draw(midCheckpoint);
  return [first, second, draw([...midStep, ...midCheckpoint])];
};

const writeDataset = (dir: string): string => {
  const file = join(dir, 'chat.jsonl');
  const rows = Array.from({ length: 24 }, (_, i) => ({
    messages: [
      { role: 'user', content: `What is ${i} plus ${i}?` },
      { role: 'assistant', content: `The answer is ${2 * i}.` },
    ],
  }));
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

const writeConfig = (dir: string, dataset: string, name: string): string => {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      `model: ${model}`,
      `dataset: { path: ${dataset}, evalFraction: 0.1 }`,
      'method: { peft_type: LORA, r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: [q_proj, v_proj] }',
      `training: { microBatchSize: 2, maxSteps: ${STEPS}, lr: 0.01, evalEvery: ${EVAL_EVERY}, checkpointEvery: ${CHECKPOINT_EVERY}, maxLength: 64, seed: 3, session: { threads: 1 } }`,
      `output: ${join(dir, name)}`,
    ].join('\n'),
  );
  return file;
};

const parseLines = (stdout: string): Line[] => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);

const train = (...args: string[]): { lines: Line[]; status: number | null; stderr: string } => {
  const r = spawnSync(process.execPath, ['bin/peft-studio.mjs', 'train', ...args, '--json'], { encoding: 'utf8', timeout: 300_000 });
  return { lines: parseLines(r.stdout), status: r.status, stderr: r.stderr };
};

/** Runs `train` until it dies: SIGKILL from here after step `killAfterStep`'s event, or from its own fault hook. */
const trainUntilKilled = (args: string[], o: { killAfterStep?: number; fault?: string }): Promise<{ lines: Line[]; signal: NodeJS.Signals | null; pid: number }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/peft-studio.mjs', 'train', ...args, '--json'], {
      env: { ...process.env, ...(o.fault ? { PEFT_STUDIO_FAULT: o.fault } : {}) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: Line[] = [];
    createInterface({ input: child.stdout }).on('line', (text) => {
      if (!text.startsWith('{')) return;
      const line = JSON.parse(text) as Line;
      lines.push(line);
      if (line.type === 'step' && line.step === o.killAfterStep) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve({ lines, signal, pid: child.pid! }));
  });

const withStore = <T>(db: string, f: (s: Store) => T): T => {
  const store = openStore(db);
  try {
    return f(store);
  } finally {
    store.close();
  }
};

/** Every metric of a run as step → value, and a check that no step appears twice. */
const history = (store: Store, runId: number): Record<string, [number, number][]> =>
  Object.fromEntries(store.metrics.names(runId).filter((n) => n !== 'tok_per_s' && n !== 'rss_bytes').map((n) => [n, store.metrics.series(runId, n).map((p) => [p.step, p.value] as [number, number])]));

describe.skipIf(!model && !oracleRequired())('train --resume after SIGKILL (mid-step, mid-checkpoint-write)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-resume-kill-'));
  const db = join(dir, 'history.db');
  const dataset = writeDataset(dir);
  let baseline: { runId: number; history: Record<string, [number, number][]>; adapter: Buffer };

  beforeAll(() => {
    // The uninterrupted run; --resume with nothing to resume starts it fresh and says so.
    const r = train('--config', writeConfig(dir, dataset, 'straight'), '--db', db, '--resume');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines.some((l) => l.type === 'run' && /nothing to resume, starting run \d+ from step 0/.test(l.message!))).toBe(true);
    const result = r.lines.at(-1)!;
    expect(result).toMatchObject({ type: 'result', status: 'completed', steps: STEPS });
    withStore(db, (store) => {
      baseline = { runId: result.runId!, history: history(store, result.runId!), adapter: readFileSync(join(dir, 'straight', 'adapter', 'adapter_model.safetensors')) };
    });
    expect(baseline.history['train/loss']!.map(([step]) => step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(baseline.history['eval/loss']!.map(([step]) => step)).toEqual([EVAL_EVERY, 2 * EVAL_EVERY]);
  }, 300_000);

  const kills = chooseKills();
  console.log(`kill points (seed ${SEED}): ${kills.map((k) => `${k.kind} at step ${k.step}`).join(', ')}`);

  kills.forEach((kill, i) => {
    it(`killed ${kill.kind} at step ${kill.step}, resumed: the same run, the uninterrupted history bit for bit`, async () => {
      const name = `killed-${i}`;
      const config = writeConfig(dir, dataset, name);
      const root = checkpointsRoot(join(dir, name));
      const killed = await trainUntilKilled(['--config', config, '--db', db], kill.kind === 'mid-step' ? { killAfterStep: kill.step } : { fault: `checkpoint-write:${kill.step}` });
      expect(killed.signal).toBe('SIGKILL');
      const runId = killed.lines[0]!.runId!;
      const stepsSeen = killed.lines.filter((l) => l.type === 'step').map((l) => l.step!);
      expect(stepsSeen.at(-1)).toBeLessThan(STEPS);
      expect(killed.lines.some((l) => l.type === 'result')).toBe(false);
      const from = newestCheckpoint(root)?.step;
      if (kill.kind === 'mid-checkpoint') {
        // The interrupted write left its temporary folder with files in it, and no checkpoint that looks whole.
        const tmp = join(root, `step-${String(kill.step).padStart(8, '0')}.tmp-${killed.pid}`);
        expect(readdirSync(tmp).length).toBeGreaterThan(0);
        expect(listCheckpoints(root).map((d) => d.split('step-').at(-1))).not.toContain(String(kill.step).padStart(8, '0'));
        expect(stepsSeen.at(-1)).toBe(kill.step);
        expect(from).toBe(kill.step > CHECKPOINT_EVERY ? kill.step - CHECKPOINT_EVERY : undefined);
      }
      const leftPastCheckpoint = withStore(db, (store) => {
        expect(store.runs.get(runId).status).toBe('running');
        expect(store.integrity()).toMatchObject({ ok: true });
        return store.metrics.series(runId, 'train/loss').filter((p) => p.step > (from ?? 0)).length;
      });
      console.log(`${kill.kind} at ${kill.step}: last step event ${stepsSeen.at(-1)}, newest checkpoint ${from ?? 'none'}, ${leftPastCheckpoint} loss point(s) logged past it`);

      if (i === 0) {
        // A resume must keep the run's config: one changed field is refused before anything is touched.
        const store = openStore(db);
        try {
          const stored = parseRunConfig(store.runs.get(runId).config, 'stored');
          const changed = { ...stored, training: { ...stored.training, maxSteps: STEPS + 2 } };
          const refused = await trainRun(changed, store, { resume: true }).then(() => undefined, (e: unknown) => e);
          expect(refused).toBeInstanceOf(RunConfigError);
          expect((refused as Error).message).toMatch(new RegExp(`^run ${runId} was started with another config.*: training\\.maxSteps \\(${STEPS} → ${STEPS + 2}\\)$`));
          // A plain `train` into the folder of an unfinished run is refused too: it points at --resume.
          const fresh = await trainRun(stored, store).then(() => undefined, (e: unknown) => e);
          expect((fresh as Error).message).toMatch(new RegExp(`is the output of run ${runId} \\(running\\); continue it with --resume`));
          expect(store.runs.get(runId).status).toBe('running');
          expect(store.runs.list()).toHaveLength(2);
        } finally {
          store.close();
        }
      }

      const resumed = train('--config', config, '--db', db, '--resume');
      expect(resumed.stderr).toBe('');
      expect(resumed.status).toBe(0);
      const result = resumed.lines.at(-1)!;
      expect(result).toMatchObject({ type: 'result', runId, status: 'completed', steps: STEPS });
      expect(result.resumedFrom).toBe(from);
      expect(resumed.lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual(Array.from({ length: STEPS - (from ?? 0) }, (_, k) => (from ?? 0) + k + 1));
      expect(readdirSync(root).filter((d) => d.includes('.tmp-'))).toEqual([]);

      withStore(db, (store) => {
        const run = store.runs.get(runId);
        expect(run.status).toBe('completed');
        expect(run.error).toBeNull();
        expect(history(store, runId)).toEqual(baseline.history);
        for (const c of store.checkpoints.list(runId)) expect(existsSync(c.path), c.path).toBe(true);
        expect(store.adapters.list({ runId })).toHaveLength(1);
        expect(store.integrity()).toEqual({ ok: true, problems: [], foreignKeyViolations: [] });
      });
      expect(readFileSync(join(dir, name, 'adapter', 'adapter_model.safetensors')).equals(baseline.adapter)).toBe(true);
    }, 300_000);
  });

  it('the history holds one run per config: resuming never added a row', () => {
    withStore(db, (store) => expect(store.runs.list().map((r) => r.name).sort()).toEqual(['killed-0', 'killed-1', 'killed-2', 'straight']));
  });
});
