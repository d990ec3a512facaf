// bench:train — LoRA r=16 (alpha 32, dropout 0) on every linear layer of SmolLM2-135M-Instruct, micro-batch 4 × 256,
// AdamW, ours (the product's Trainer) vs PyTorch + PEFT (bench/train_ref.py in the oracle venv), same float32 HF
// folder, same initial LoRA tensors, same thread count, each side in its own fresh child process so its peak RSS is
// its own:
//   (a) fixed rows: every row exactly 256 tokens of Moby-Dick, every token a target — the same FLOPs on both sides;
//   (b) a chat dataset (Moby-Dick continuations, assistant-only loss): ours packs examples into rows and computes the
//       LM head only at target positions; PyTorch gets the usual HF batches of 4 padded examples with labels -100 on
//       non-assistant tokens — the same examples in the same order. tok/s counts real (non-padding) tokens.
// Goals: ≥ 1.5× PyTorch's tok/s on (a), ≥ 2.5× on (b), ≤ 0.55× its peak RSS.
// Env: BENCH_THREADS (default: all cores), BENCH_WARMUP (steps, default 2), BENCH_STEPS (timed steps of (a), default 8),
// BENCH_CHAT_STEPS (timed steps of (b), default 10), BENCH_ONLY=fixed|chat, PEFT_ORACLE_PYTHON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { comparisonTable, detailLines, TITLES, type DatasetOutcome, type SideResult } from './train-report.ts';
import { cacheRoot, ensureF32Folder, writeJob, type BenchJob, type DatasetKind } from './train-setup.ts';
import { fusedSweepSection } from './sweep-section.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const warmupSteps = Number(process.env.BENCH_WARMUP ?? 2);
const TIMED_STEPS: Readonly<Record<DatasetKind, number>> = {
  fixed: Number(process.env.BENCH_STEPS ?? 8),
  chat: Number(process.env.BENCH_CHAT_STEPS ?? 10),
};

const oraclePython = (): string | undefined => {
  const python = process.env.PEFT_ORACLE_PYTHON ?? join(cacheRoot(), 'oracle-venv', 'bin', 'python');
  return existsSync(python) ? python : undefined;
};

export interface ChildOutcome<T> {
  readonly result?: T;
  readonly exitCode: number | null;
  readonly seconds: number;
  /** The machine's 1-minute load average when the child started and ended (other work on the cores skews timings). */
  readonly load: readonly [number, number];
}

/** Runs a fresh child process (its maxRSS is its own) and parses the JSON object on its last stdout line. */
export const runChild = <T>(command: string, args: readonly string[]): ChildOutcome<T> => {
  const started = performance.now();
  const loadBefore = loadavg()[0]!;
  const run = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const seconds = (performance.now() - started) / 1000;
  const load = [loadBefore, loadavg()[0]!] as const;
  const line = run.stdout?.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !line.startsWith('{')) return { exitCode: run.status, seconds, load };
  return { result: JSON.parse(line) as T, exitCode: 0, seconds, load };
};

/** Our side: bench/train-ours.ts under the same loader (tsx) this process runs under. */
const runOurs = (workDir: string) => runChild<SideResult>(process.execPath, [...process.execArgv, join(BENCH_DIR, 'train-ours.ts'), workDir]);
const runPytorch = (python: string, workDir: string) => runChild<SideResult>(python, [join(BENCH_DIR, 'train_ref.py'), workDir]);

// ─── Later sections: the fused-sweep comparison ───────────────────────────────────────────────────────────────────
// Sections after the PyTorch comparison (bench/sweep-section.ts: K=4 LoRA trials in one fused graph vs the same 4
// trained one after another, and with successive halving). Each gets the float32 folder, the thread count, both jobs
// (examples, our epoch order, hyperparameters) and runChild for fresh child processes, and returns its own lines.

export interface BenchContext {
  readonly modelDir: string;
  readonly threads: number;
  /** Each dataset's work folder (job.json, init-adapter/) and job, as the PyTorch comparison used them. */
  readonly jobs: ReadonlyMap<DatasetKind, { readonly workDir: string; readonly job: BenchJob }>;
  readonly runChild: typeof runChild;
}

export interface BenchSection {
  readonly title: string;
  readonly run: (ctx: BenchContext) => Promise<readonly string[]>;
}

/** Sections printed after the PyTorch comparison, in order. */
export const LATER_SECTIONS: BenchSection[] = [fusedSweepSection];

// ─── The PyTorch comparison ───────────────────────────────────────────────────────────────────────────────────────

const main = async (): Promise<void> => {
  if (!(warmupSteps >= 1)) throw new Error(`BENCH_WARMUP must be at least 1, got ${process.env.BENCH_WARMUP}`);
  const kinds = (['fixed', 'chat'] as const).filter((k) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY === k);
  const benchStart = performance.now();
  const modelDir = ensureF32Folder();
  const python = oraclePython();
  if (!python) console.error('ORACLE MISSING: no oracle venv (bash tests/oracle/setup.sh, or set PEFT_ORACLE_PYTHON): only our side runs');
  console.log(
    `bench:train — SmolLM2-135M-Instruct (float32 HF folder ${modelDir}), LoRA r=16 α=32 dropout 0 on all linear layers, ` +
      `AdamW, micro-batch 4 × 256, ${threads} threads, ${warmupSteps} warmup steps`,
  );
  const root = mkdtempSync(join(tmpdir(), 'peft-bench-train-'));
  const outcomes: DatasetOutcome[] = [];
  const jobs = new Map<DatasetKind, { workDir: string; job: BenchJob }>();
  try {
    for (const kind of kinds) {
      const workDir = join(root, kind);
      const job = writeJob(modelDir, { kind, threads, warmupSteps, timedSteps: TIMED_STEPS[kind], workDir });
      jobs.set(kind, { workDir, job });
      console.error(`${TITLES[kind]}: ours…`);
      const ours = runOurs(workDir);
      console.error(`  ours: ${ours.result ? 'done' : `failed (exit ${ours.exitCode})`} in ${ours.seconds.toFixed(0)} s`);
      // PyTorch loads the initial LoRA tensors our child saved, so it cannot run without it.
      const pytorch = python && ours.result ? runPytorch(python, workDir) : undefined;
      if (pytorch) console.error(`  PyTorch+PEFT: ${pytorch.result ? 'done' : `failed (exit ${pytorch.exitCode})`} in ${pytorch.seconds.toFixed(0)} s`);
      outcomes.push({
        kind,
        job,
        ...(ours.result ? { ours: { ...ours.result, load: ours.load } } : {}),
        ...(pytorch?.result ? { pytorch: { ...pytorch.result, load: pytorch.load } } : {}),
      });
    }
    console.log('');
    for (const line of comparisonTable(outcomes)) console.log(line);
    console.log('');
    for (const o of outcomes) for (const line of detailLines(o)) console.log(line);
    const busiest = Math.max(...outcomes.flatMap((o) => [o.ours?.load ?? [0, 0], o.pytorch?.load ?? [0, 0]].flat()));
    if (busiest > availableParallelism()) {
      console.log(`note: other work shared the cores (load average up to ${busiest.toFixed(1)} on ${availableParallelism()} cores): wall-clock timings are skewed; tok/CPU-s is less so`);
    }
    console.log('where the time and memory go: npx tsx bench/train-profile.ts fixed|chat (forward vs backward vs optimizer; session options)');
    for (const section of LATER_SECTIONS) {
      console.log(`\n${section.title}`);
      for (const line of await section.run({ modelDir, threads, jobs, runChild })) console.log(line);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  console.log(`\nbench:train took ${((performance.now() - benchStart) / 1000).toFixed(0)} s`);
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
