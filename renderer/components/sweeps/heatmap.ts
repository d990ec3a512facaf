// The heatmap's model: trials placed on the r × lora_alpha grid, one cell per pair (several trials share a cell when
// the sweep also varies lr, dropout or target modules: the cell shows the best of them, as the CLI's matrix does),
// and the colour scale from the lowest eval loss to the highest.

export type TrialState = 'queued' | 'running' | 'completed' | 'pruned' | 'cancelled' | 'failed';

/** What the heatmap needs of a trial. */
export interface HeatmapTrial {
  readonly ordinal: number;
  readonly r: number;
  readonly alpha: number;
  readonly status: TrialState;
  /** Final eval loss (completed trials). */
  readonly objective?: number | undefined;
  /** Where a pruned trial stopped, and its eval loss there. */
  readonly prunedAtStep?: number | undefined;
  readonly evalLoss?: number | undefined;
}

export interface HeatmapCell {
  readonly r: number;
  readonly alpha: number;
  /** The lowest final eval loss among the cell's completed trials; undefined until one has finished. */
  readonly value: number | undefined;
  /** completed once a trial finished with a value; else the furthest along of its trials' states. */
  readonly status: TrialState;
  /** The cell's trials (ordinals); `trial` is the one its value comes from (else the first). */
  readonly trials: readonly number[];
  readonly trial: number;
  readonly best: boolean;
  readonly prunedAtStep?: number | undefined;
  /** A pruned cell's eval loss where it stopped (not on the colour scale: it is not a final value). */
  readonly prunedEvalLoss?: number | undefined;
}

export interface HeatmapMatrix {
  /** r values (rows), ascending. */
  readonly rows: readonly number[];
  /** lora_alpha values (columns), ascending. */
  readonly cols: readonly number[];
  readonly cells: readonly (readonly HeatmapCell[])[];
}

const finite = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);

/** Which state a cell shows when none of its trials completed: running beats queued beats the ends. */
const STATE_ORDER: readonly TrialState[] = ['running', 'queued', 'pruned', 'cancelled', 'failed', 'completed'];

export const heatmapOf = (trials: readonly HeatmapTrial[], best: number | undefined): HeatmapMatrix => {
  const rows = [...new Set(trials.map((t) => t.r))].sort((a, b) => a - b);
  const cols = [...new Set(trials.map((t) => t.alpha))].sort((a, b) => a - b);
  const cells = rows.map((r) =>
    cols.map((alpha): HeatmapCell => {
      const here = trials.filter((t) => t.r === r && t.alpha === alpha);
      const done = here.filter((t) => t.status === 'completed' && finite(t.objective));
      const top = done.reduce<HeatmapTrial | undefined>((m, t) => (m === undefined || t.objective! < m.objective! ? t : m), undefined);
      const status = top ? 'completed' : STATE_ORDER.find((s) => here.some((t) => t.status === s)) ?? 'queued';
      const pruned = status === 'pruned' ? here.find((t) => t.status === 'pruned') : undefined;
      return {
        r, alpha, status,
        value: top?.objective,
        trials: here.map((t) => t.ordinal),
        trial: (top ?? pruned ?? here[0])!.ordinal,
        best: best !== undefined && here.some((t) => t.ordinal === best),
        ...(pruned ? { prunedAtStep: pruned.prunedAtStep, prunedEvalLoss: pruned.evalLoss } : {}),
      };
    }),
  );
  return { rows, cols, cells };
};

/** The value range the colours span: the finished cells' lowest and highest eval loss. */
export const valueRange = (m: HeatmapMatrix): { readonly min: number; readonly max: number } | undefined => {
  const values = m.cells.flat().map((c) => c.value).filter(finite);
  return values.length ? { min: Math.min(...values), max: Math.max(...values) } : undefined;
};

// Viridis, reversed so the best (lowest) loss is the bright end; readable in light and dark themes and by the
// colour-blind.
const STOPS: readonly (readonly [number, number, number])[] = [
  [253, 231, 37], [94, 201, 98], [33, 145, 140], [59, 82, 139], [68, 1, 84],
];

/** The colour of a position on the scale: 0 = the lowest eval loss, 1 = the highest. */
export const heatColour = (t: number): string => {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [STOPS[i]!, STOPS[i + 1]!];
  const mix = (k: 0 | 1 | 2) => Math.round(a[k] + (b[k] - a[k]) * f);
  return `rgb(${mix(0)}, ${mix(1)}, ${mix(2)})`;
};

/** Where a value sits on the scale (0 when every value is the same). */
export const scalePosition = (value: number, range: { readonly min: number; readonly max: number }): number =>
  range.max > range.min ? (value - range.min) / (range.max - range.min) : 0;

/** Dark text on the bright end of the scale, light text on the dark end. */
export const textOn = (t: number): string => (t < 0.45 ? '#111' : '#fff');
