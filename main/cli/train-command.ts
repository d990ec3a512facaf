import { readRunConfig } from '../service/run-config.ts';
import { storedRunConfig } from '../service/run-resume.ts';
import { trainRun } from '../service/train-run.ts';
import { onInterrupt } from './interrupt.ts';
import { progressLine } from './progress.ts';
import { openHistory } from './store-path.ts';

export interface TrainArgs {
  readonly config?: string | undefined;
  readonly db?: string | undefined;
  readonly json?: boolean | undefined;
  /** Continue the interrupted run of this config (or of --run ID) from its newest checkpoint. */
  readonly resume?: boolean | undefined;
  readonly run?: string | undefined;
}

export const runTrainCommand = async (a: TrainArgs): Promise<number> => {
  const runId = a.run === undefined ? undefined : Number(a.run);
  if (runId !== undefined && !(Number.isInteger(runId) && runId > 0)) {
    console.error(`peft-studio train: --run ${a.run} is not a run id`);
    return 2;
  }
  if (runId !== undefined && !a.resume) {
    console.error('peft-studio train: --run ID names the run to continue; give it with --resume');
    return 2;
  }
  if (!a.config && runId === undefined) {
    console.error('peft-studio train: --config FILE is required (YAML or JSON), or --resume --run ID');
    return 2;
  }
  const store = openHistory(a.db);
  let trainerRef: { pause(): void } | undefined;
  const stopListening = onInterrupt('pausing with a checkpoint', () => trainerRef?.pause());
  try {
    const config = a.config ? readRunConfig(a.config) : storedRunConfig(store, runId!);
    const out = await trainRun(config, store, {
      ...(a.resume ? { resume: true } : {}),
      ...(runId !== undefined ? { runId } : {}),
      control: (t) => (trainerRef = t),
      onEvent: (e) => {
        if (a.json) console.log(JSON.stringify(e));
        else if (e.type === 'run') console.log(e.message);
        else if (e.type === 'step') process.stdout.write(`\r${progressLine(e)}`);
        else if (e.type === 'eval') process.stdout.write(`\n  eval loss ${e.loss.toFixed(4)} (perplexity ${e.perplexity.toFixed(2)}) at step ${e.step}\n`);
        else if (e.type === 'checkpoint') process.stdout.write(`\n  checkpoint ${e.dir}\n`);
      },
    });
    const line = `run ${out.runId} ${out.result.status} after ${out.result.steps} steps${out.resumedFrom !== undefined ? ` (resumed from step ${out.resumedFrom})` : ''}${out.adapterDir ? `; adapter: ${out.adapterDir}` : ''}${out.modelDir ? `; model: ${out.modelDir}` : ''}`;
    if (a.json) console.log(JSON.stringify({ type: 'result', runId: out.runId, status: out.result.status, steps: out.result.steps, adapterDir: out.adapterDir, modelDir: out.modelDir, resumedFrom: out.resumedFrom }));
    else console.log(`\n${line}`);
    return out.result.status === 'paused' ? 130 : 0;
  } finally {
    stopListening();
    store.close();
  }
};

export const runRunsCommand = (sub: string | undefined, a: { db?: string | undefined; json?: boolean | undefined }, id?: string): number => {
  const store = openHistory(a.db);
  try {
    if (sub === 'list' || sub === undefined) {
      const runs = store.runs.list();
      if (a.json) console.log(JSON.stringify(runs));
      else for (const r of runs) console.log(`${String(r.id).padStart(4)}  ${r.status.padEnd(10)} ${r.method.padEnd(8)} ${r.name}`);
      return 0;
    }
    if (sub === 'show') {
      const run = store.runs.find(Number(id));
      if (!run) {
        console.error(`peft-studio runs show: no run ${id ?? '(give an id)'}`);
        return 2;
      }
      const series = Object.fromEntries(store.metrics.names(run.id).map((n) => [n, store.metrics.series(run.id, n)]));
      if (a.json) console.log(JSON.stringify({ run, metrics: series, checkpoints: store.checkpoints.list(run.id) }));
      else {
        console.log(`run ${run.id} ${run.name}: ${run.status}, method ${run.method}${run.error ? `\nerror: ${run.error}` : ''}`);
        for (const [name, points] of Object.entries(series)) {
          const last = points.at(-1);
          console.log(`  ${name}: ${points.length} points${last ? `, last ${last.value.toPrecision(5)} at step ${last.step}` : ''}`);
        }
      }
      return 0;
    }
    console.error(`peft-studio runs: unknown subcommand '${sub}' (list, show ID)`);
    return 2;
  } finally {
    store.close();
  }
};
