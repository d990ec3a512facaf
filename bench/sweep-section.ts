// bench:train's fused-sweep section: K=4 LoRA trials (r × alpha) on SmolLM2 at equal tokens per trial — fused in one
// graph vs one after another, and fused with successive halving vs the full grid. Goals: fused ≤ 1.0× the sequential
// time on CPU, fused peak RSS ≤ one run's + (K−1)× its activation memory, pruned ≤ 0.5× the full grid's time.
import { join } from 'node:path';
import type { SweepChildResult } from './sweep-child.ts';
import type { BenchSection } from './train.bench.ts';

/** r ∈ {8, 16} × alpha ∈ {16, 32} on every linear layer. */
export const SWEEP_TRIALS = [8, 16].flatMap((r) => [16, 32].map((alpha) => ({ r, lora_alpha: alpha })));
export const SWEEP_STEPS = Number(process.env.BENCH_SWEEP_STEPS ?? 6);
/** Halving at steps 1 and 2: 4 trials → 2 → 1. */
export const SWEEP_RUNGS = [1, 2];

const GIB = 2 ** 30;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

export const fusedSweepSection: BenchSection = {
  title: `Fused sweep: K=${SWEEP_TRIALS.length} trials (r ∈ {8, 16} × α ∈ {16, 32}), ${SWEEP_STEPS} steps each, micro-batch 4 × 256, fixed-length rows`,
  run: async (ctx) => {
    const work = ctx.jobs.get('fixed')?.workDir;
    if (!work) return ['(skipped: the fixed-length job did not run)'];
    const child = (mode: string) => {
      console.error(`fused sweep: ${mode}…`);
      const r = ctx.runChild<SweepChildResult>(process.execPath, [...process.execArgv, join(import.meta.dirname, 'sweep-child.ts'), mode, work]);
      if (!r.result) throw new Error(`sweep child '${mode}' failed (exit ${r.exitCode})`);
      return r.result;
    };
    const single = child('single');
    const sequential = child('sequential');
    const fused = child('fused');
    const pruned = child('pruned');
    const activation = single.peakRssBytes - single.readyRssBytes!;
    const rssBound = single.peakRssBytes + (SWEEP_TRIALS.length - 1) * activation;
    const row = (label: string, r: SweepChildResult) =>
      `${label.padEnd(34)}${r.seconds.toFixed(1).padStart(9)} s${(r.peakRssBytes / GIB).toFixed(2).padStart(9)} GiB${String(r.trialSteps).padStart(8)}   ${r.finalLosses.map((l) => l.toFixed(3)).join(' ')}`;
    return [
      `${'run'.padEnd(34)}${'wall'.padStart(11)}${'peak RSS'.padStart(13)}${'trial-steps'.padStart(12)}   final train loss per trial`,
      row('one trial alone', single),
      row('4 trials one after another', sequential),
      row('4 trials fused (one graph)', fused),
      row(`fused + halving at steps ${SWEEP_RUNGS.join(', ')}`, pruned),
      '',
      `one run's activation memory (peak − ready RSS): ${(activation / GIB).toFixed(2)} GiB`,
      `fused / sequential wall time: ${(fused.seconds / sequential.seconds).toFixed(2)}× (goal ≤ 1.00×: ${verdict(fused.seconds <= sequential.seconds)})`,
      `fused peak RSS ${(fused.peakRssBytes / GIB).toFixed(2)} GiB vs one run + 3 × activations ${(rssBound / GIB).toFixed(2)} GiB (${verdict(fused.peakRssBytes <= rssBound)})`,
      `pruned / full fused grid wall time: ${(pruned.seconds / fused.seconds).toFixed(2)}× (goal ≤ 0.50×: ${verdict(pruned.seconds <= 0.5 * fused.seconds)})`,
    ];
  },
};
