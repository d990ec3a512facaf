// Which run a `train --resume` continues, and whether it may: the run row (by id, or the newest one that wrote to the
// config's output folder), its config (it must be the one the run started with, or the continuation would not be
// the same run), its dataset (the same rows as the version it pinned) and that no live process still runs it.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { FINISHED_RUN_STATUSES, type JsonValue, type Run, type Store } from '../store/index.ts';
import { parseRunConfig, RunConfigError, type RunConfig } from './run-config.ts';

/** JSON with sorted keys: two configs are the same run when these strings are equal. */
const canonical = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
};

/** Dotted paths where two configs differ (the name aside: a run may be renamed). */
const differences = (a: unknown, b: unknown, path = ''): string[] => {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !(path === '' && k === 'name')).sort();
    return keys.flatMap((k) => differences(a[k], b[k], path ? `${path}.${k}` : k));
  }
  return canonical(a) === canonical(b) ? [] : [`${path} (${canonical(a) ?? 'unset'} → ${canonical(b) ?? 'unset'})`];
};

const sameOutput = (run: Run, config: RunConfig): boolean => typeof run.config.output === 'string' && resolve(run.config.output) === resolve(config.output);

/** The config a run was started with, as a RunConfig (train --resume --run ID without --config). */
export const storedRunConfig = (store: Store, runId: number): RunConfig => {
  const run = store.runs.find(runId);
  if (!run) throw new RunConfigError(`there is no run ${runId} in the history`);
  return parseRunConfig(run.config, `run ${runId}'s stored config`);
};

/** An unfinished run (queued, running or paused) that wrote to this output folder, newest first. */
export const unfinishedRunFor = (store: Store, config: RunConfig): Run | undefined =>
  store.runs.list().find((r) => sameOutput(r, config) && !FINISHED_RUN_STATUSES.includes(r.status));

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * The run to continue, or undefined when there is none (the caller starts a new run and says so). An explicit id
 * that cannot be resumed, a changed config, or a run still running in a live process is a RunConfigError.
 */
export const findRunToResume = (store: Store, config: RunConfig, runId?: number): Run | undefined => {
  let run: Run | undefined;
  if (runId !== undefined) {
    run = store.runs.find(runId);
    if (!run) throw new RunConfigError(`there is no run ${runId} in the history`);
    if (FINISHED_RUN_STATUSES.includes(run.status)) throw new RunConfigError(`run ${runId} is ${run.status}: there is nothing to resume`);
  } else {
    run = unfinishedRunFor(store, config);
    if (!run) return undefined;
  }
  const changed = differences(run.config, JSON.parse(JSON.stringify(config)) as JsonValue);
  if (changed.length > 0) {
    throw new RunConfigError(`run ${run.id} was started with another config; a resumed run must keep it (start a new run to change it): ${changed.join('; ')}`);
  }
  const env = run.environment;
  if (run.status === 'running' && env && typeof env.pid === 'number' && env.host === hostname() && env.pid !== process.pid && isAlive(env.pid)) {
    throw new RunConfigError(`run ${run.id} is running in process ${env.pid} on this machine; stop it (Ctrl-C pauses it) before resuming`);
  }
  return run;
};

/** Row-for-row equality of a dataset file's records with the version a run pinned (resume needs the same data). */
export const checkDatasetUnchanged = (store: Store, run: Run, records: readonly unknown[], file: string): void => {
  const pinned = store.datasets.rows(run.datasetVersionId);
  const first = pinned.length !== records.length ? Math.min(pinned.length, records.length) : pinned.findIndex((r, i) => canonical(r.row) !== canonical(records[i]));
  if (first >= 0) {
    throw new RunConfigError(
      `${file} has changed since run ${run.id} started (${pinned.length !== records.length ? `${records.length} records, the run's version has ${pinned.length}` : `record ${first + 1} differs`}); resuming needs the same data`,
    );
  }
};
