// bench:train's results: what each side's child prints, and the table comparing them against the goals.
import type { BenchJob, DatasetKind } from './train-setup.ts';
import { median } from './stats.ts';

/** One side's run on one job, as its child prints it (JSON, one line). */
export interface SideResult {
  readonly side: 'ours' | 'pytorch';
  readonly provider: string;
  readonly threads: number;
  readonly timedSeconds: number;
  /** CPU seconds of the timed steps (every thread): compare with timedSeconds × threads to see contention. */
  readonly timedCpuSeconds: number;
  /** Real (non-padding) tokens in the timed steps. */
  readonly timedTokens: number;
  readonly tokensPerSecond: number;
  /** Every step, warmup included. */
  readonly stepSeconds: readonly number[];
  /** Training loss of every step, warmup included. */
  readonly losses: readonly number[];
  /** Token-mean loss on the held-out examples (chat dataset). */
  readonly evalBefore?: number;
  readonly evalAfter?: number;
  /** RSS with the model loaded and ready to train, before the first step. */
  readonly readyRssBytes: number;
  readonly peakRssBytes: number;
  /** Set by the parent: the machine's 1-minute load average as the child started and ended. */
  readonly load?: readonly [number, number];
}

export interface DatasetOutcome {
  readonly kind: DatasetKind;
  readonly job: BenchJob;
  readonly ours?: SideResult;
  readonly pytorch?: SideResult;
}

/** The goals: throughput at least this multiple of PyTorch's, peak RSS at most this fraction of it. */
export const GOALS: Readonly<Record<DatasetKind, { readonly speedup: number; readonly rss: number }>> = {
  fixed: { speedup: 1.5, rss: 0.55 },
  chat: { speedup: 2.5, rss: 0.55 },
};

export const TITLES: Readonly<Record<DatasetKind, string>> = {
  fixed: '(a) fixed 256-token rows',
  chat: '(b) chat, assistant-only loss',
};

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const fmtLoss = (x: number | undefined): string => (x === undefined ? '—' : x.toFixed(4));

const table = (head: readonly string[], rows: readonly (readonly string[])[]): string[] => {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const fmt = (cells: readonly string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
};

/** The comparison table: tok/s and peak RSS per dataset, ours vs PyTorch's, the ratio and the goal. */
export const comparisonTable = (outcomes: readonly DatasetOutcome[]): string[] => {
  const rows: string[][] = [];
  for (const o of outcomes) {
    const goal = GOALS[o.kind];
    const { ours, pytorch } = o;
    const speed = ours && pytorch ? ours.tokensPerSecond / pytorch.tokensPerSecond : undefined;
    const rss = ours && pytorch ? ours.peakRssBytes / pytorch.peakRssBytes : undefined;
    const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'pass' : 'MISS');
    rows.push([
      TITLES[o.kind],
      'tok/s',
      ours ? ours.tokensPerSecond.toFixed(1) : 'failed',
      pytorch ? pytorch.tokensPerSecond.toFixed(1) : 'failed',
      speed === undefined ? '—' : `${speed.toFixed(2)}×`,
      `≥ ${goal.speedup}×`,
      verdict(speed === undefined ? undefined : speed >= goal.speedup),
    ]);
    rows.push([
      '',
      'peak RSS',
      ours ? mb(ours.peakRssBytes) : 'failed',
      pytorch ? mb(pytorch.peakRssBytes) : 'failed',
      rss === undefined ? '—' : `${rss.toFixed(2)}×`,
      `≤ ${goal.rss}×`,
      verdict(rss === undefined ? undefined : rss <= goal.rss),
    ]);
  }
  return table(['dataset', 'metric', 'ours', 'PyTorch+PEFT', 'ratio', 'goal', ''], rows);
};

/** Per dataset: what was timed, step times, memory before the first step, and the losses as a sanity check. */
export const detailLines = (o: DatasetOutcome): string[] => {
  const { job, ours, pytorch } = o;
  const pct = (n: number) => `${((100 * job.timedTokens) / n).toFixed(0)}%`;
  const lines = [
    `${TITLES[o.kind]}: ${job.timedTokens} real tokens timed (${job.timedTargets} targets), ${job.train.length} training examples; ` +
      `positions computed: ours ${job.timedPositions.ours} (${pct(job.timedPositions.ours)} real), PyTorch ${job.timedPositions.pytorch} (${pct(job.timedPositions.pytorch)} real); ` +
      `LM head rows: ours ${job.timedTargets}, PyTorch ${job.timedPositions.pytorch}`,
  ];
  const side = (name: string, r: SideResult | undefined, warmup: number, steps: string) =>
    r
      ? `  ${name.padEnd(13)} ${steps}, ${r.timedSeconds.toFixed(1)} s timed (${r.timedCpuSeconds.toFixed(1)} CPU s: ${(r.timedTokens / r.timedCpuSeconds).toFixed(1)} tok/CPU-s), median timed step ${median(r.stepSeconds.slice(warmup)).toFixed(2)} s, ` +
        `RSS ready ${mb(r.readyRssBytes)}, peak ${mb(r.peakRssBytes)} (${r.provider}, ${r.threads} threads` +
        `${r.load ? `, load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}` : ''})`
      : `  ${name.padEnd(13)} failed (its stderr is above)`;
  lines.push(side('ours', ours, job.warmupSteps, `${job.warmupSteps} + ${job.timedSteps} steps (packed rows of ≤ ${job.maxLength})`));
  lines.push(side('PyTorch+PEFT', pytorch, job.refWarmup.length, `${job.refWarmup.length} + ${job.refTimed.length} steps (padded batches of ${job.microBatchSize})`));
  if (!ours || !pytorch) return lines;
  if (o.kind === 'fixed') {
    const d = Math.abs(ours.losses[0]! - pytorch.losses[0]!);
    lines.push(`  loss, step 1: ours ${fmtLoss(ours.losses[0])}, PyTorch ${fmtLoss(pytorch.losses[0])}, |Δ| ${d.toExponential(1)} (same batch, same weights: expect ≲ 1e-3)`);
    const last = ours.losses.length;
    const dl = Math.abs(ours.losses.at(-1)! - pytorch.losses.at(-1)!);
    lines.push(`  loss, step ${last} (after the timed steps): ours ${fmtLoss(ours.losses.at(-1))}, PyTorch ${fmtLoss(pytorch.losses.at(-1))}, |Δ| ${dl.toExponential(1)}`);
  } else {
    const d = Math.abs(ours.evalBefore! - pytorch.evalBefore!);
    lines.push(`  eval loss (${job.eval.length} held-out conversations) before training: ours ${fmtLoss(ours.evalBefore)}, PyTorch ${fmtLoss(pytorch.evalBefore)}, |Δ| ${d.toExponential(1)}`);
    lines.push(`  eval loss after the timed steps: ours ${fmtLoss(ours.evalAfter)}, PyTorch ${fmtLoss(pytorch.evalAfter)} (same examples; ours in fewer, larger packed steps)`);
    lines.push(`  last training loss: ours ${fmtLoss(ours.losses.at(-1))}, PyTorch ${fmtLoss(pytorch.losses.at(-1))}`);
  }
  return lines;
};
