import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { INTERRUPTED, openStore } from '../../main/store/index.ts';
import { tempDir } from './helpers.ts';

const CHILD = resolve(dirname(fileURLToPath(import.meta.url)), 'crash-writer.ts');

interface Killed {
  /** Runs the child reported as committed. */
  readonly committedRuns: number[];
  /** Per stream run: metric points the child reported as flushed. */
  readonly streamed: Map<number, number>;
  readonly walBytesAtKill: number;
}

/** Starts the writer child, lets it commit `minCommits` times plus `extraMs`, then SIGKILLs it. */
const runAndKill = (path: string, generation: number, minCommits: number, extraMs: number): Promise<Killed> =>
  new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path, String(generation)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const committedRuns: number[] = [];
    const streamed = new Map<number, number>();
    let stderr = '';
    let buffer = '';
    let killScheduled = false;
    let walBytesAtKill = 0;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const [, run, stream, flushed] = line.split(' ');
        committedRuns.push(Number(run));
        streamed.set(Number(stream), Number(flushed));
      }
      if (!killScheduled && committedRuns.length >= minCommits) {
        killScheduled = true;
        setTimeout(() => {
          const wal = `${path}-wal`;
          walBytesAtKill = existsSync(wal) ? statSync(wal).size : 0;
          child.kill('SIGKILL');
        }, extraMs);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer child exited (code ${code}, signal ${signal}) before it was killed:\n${stderr}`));
      else resolvePromise({ committedRuns, streamed, walBytesAtKill });
    });
  });

describe('crash safety', () => {
  const { dir, cleanup } = tempDir();
  afterAll(cleanup);

  it('a writer killed with SIGKILL mid-write leaves a sound database that keeps every committed row', async () => {
    const path = join(dir, 'crash.db');
    const allCommitted: number[] = [];
    const streams = new Map<number, number>();
    // Three kills, at seeded points: soon after start, mid-stream, later (WAL checkpoints happen along the way).
    for (const [generation, minCommits, extraMs] of [[1, 3, 37], [2, 20, 211], [3, 40, 523]] as const) {
      const killed = await runAndKill(path, generation, minCommits, extraMs);
      expect(killed.committedRuns.length).toBeGreaterThanOrEqual(minCommits);
      allCommitted.push(...killed.committedRuns);
      for (const [run, n] of killed.streamed) streams.set(run, n);

      const store = openStore(path);
      try {
        expect(store.integrity()).toEqual({ ok: true, problems: [], foreignKeyViolations: [] });
        for (const id of allCommitted) {
          const run = store.runs.find(id);
          expect(run, `committed run ${id}`).toBeDefined();
          expect(store.metrics.count(id)).toBe(50);
          expect(store.checkpoints.latest(id)?.path).toBe(`/ckpt/${id}`);
          expect(store.datasets.rows(run?.datasetVersionId ?? -1).length).toBeGreaterThan(1);
        }
        for (const [streamRun, flushed] of streams) expect(store.metrics.count(streamRun)).toBeGreaterThanOrEqual(flushed);
        // Every run the killed writer left running is found and made resumable.
        const interrupted = store.runs.markInterrupted();
        expect(interrupted.length).toBeGreaterThanOrEqual(killed.committedRuns.length);
        expect(store.runs.get(killed.committedRuns.at(-1) ?? -1)).toMatchObject({ status: 'paused', error: INTERRUPTED });
        console.log(
          `crash ${generation}: killed after ${killed.committedRuns.length} commits (+${extraMs} ms), WAL ${killed.walBytesAtKill} bytes at kill; ` +
            `${allCommitted.length} committed runs and ${[...streams.values()].reduce((a, b) => a + b, 0)} streamed metrics all present; integrity ok`,
        );
      } finally {
        store.close();
      }
    }
  }, 120_000);
});
