import type { Store } from '../store/index.ts';
import { formatMatrix, pointLabel, sweepMatrix, type TrialPoint } from '../service/sweep-space.ts';
import { readSweepConfig, runSweep, type SweepControl } from '../service/sweep.ts';
import { onInterrupt } from './interrupt.ts';
import { progressLine } from './progress.ts';
import { openHistory } from './store-path.ts';

interface SweepArgs {
  readonly config?: string | undefined;
  readonly db?: string | undefined;
  readonly json?: boolean | undefined;
}

/** `peft-studio sweep --config FILE`: runs the sweep; Ctrl-C cancels after the current step (twice: at once). */
export const runSweepCommand = async (a: SweepArgs): Promise<number> => {
  if (!a.config) {
    console.error('peft-studio sweep: --config FILE is required (a run config with a sweep: { mode, space } block)');
    return 2;
  }
  const config = readSweepConfig(a.config);
  const store = openHistory(a.db);
  let control: SweepControl | undefined;
  const stopListening = onInterrupt('cancelling', () => control?.cancel());
  try {
    const out = await runSweep(config, store, {
      control: (c) => (control = c),
      onEvent: (e) => {
        if (a.json) console.log(JSON.stringify(e));
        else if (e.type === 'sweep') console.log(e.message);
        else if (e.type === 'progress') process.stdout.write(`\r${e.event.step}/${e.event.totalSteps} steps, ${e.event.trials} trials running, ${e.event.tokensPerSecond.toFixed(0)} tok/s (all trials), RSS ${(e.event.rssBytes / 2 ** 30).toFixed(2)} GiB   `);
        else if (e.type === 'trial' && e.event.type === 'step' && 'loss' in e.event) process.stdout.write(`\rtrial ${e.ordinal} ${progressLine(e.event)}`);
        else if (e.type === 'trial-done') process.stdout.write(`\ntrial ${e.ordinal} ${e.status}${e.objective !== undefined ? `, eval loss ${e.objective.toFixed(4)}` : ''}\n`);
      },
    });
    if (a.json) console.log(JSON.stringify({ type: 'result', ...out }));
    else {
      console.log(`\nsweep ${out.sweepId}: eval loss over r × alpha (* = best)\n${formatMatrix(out.matrix)}`);
      if (out.best !== undefined) {
        const best = out.trials[out.best]!;
        console.log(`best: trial ${best.ordinal} (${pointLabel(best.point)}), eval loss ${best.objective!.toFixed(4)}, adapter ${best.adapterDir}`);
      }
    }
    return out.trials.some((t) => t.status === 'cancelled') ? 130 : 0;
  } finally {
    stopListening();
    store.close();
  }
};

/** `peft-studio sweep show ID`: the trials, their objectives and the r × alpha matrix from the history. */
export const runSweepShow = (id: string | undefined, a: SweepArgs): number => {
  const store: Store = openHistory(a.db);
  try {
    const sweep = store.sweeps.list().find((s) => s.id === Number(id));
    if (!sweep) {
      console.error(`peft-studio sweep show: no sweep ${id ?? '(give an id)'}`);
      return 2;
    }
    const trials = store.sweeps.trials(sweep.id);
    const method = (sweep.config.method ?? {}) as { r?: number; lora_alpha?: number };
    const matrix = sweepMatrix(
      trials.map((t) => ({ point: t.params as TrialPoint, ...(t.objective !== null ? { objective: t.objective } : {}), pruned: t.status === 'pruned' })),
      { r: method.r ?? 8, lora_alpha: method.lora_alpha ?? 8 },
    );
    if (a.json) console.log(JSON.stringify({ sweep, trials, matrix }));
    else {
      console.log(`sweep ${sweep.id} ${sweep.name}: ${sweep.status}, ${sweep.mode}`);
      for (const t of trials) {
        console.log(`  trial ${t.ordinal}${t.isBest ? ' (best)' : ''}: ${pointLabel(t.params as TrialPoint)} — ${t.status}${t.objective !== null ? `, eval loss ${t.objective.toFixed(4)}` : ''}${t.runId !== null ? `, run ${t.runId}` : ''}`);
      }
      console.log(formatMatrix(matrix));
    }
    return 0;
  } finally {
    store.close();
  }
};
