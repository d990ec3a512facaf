// A sweep's search space and results: grid or seeded random points over LoRA's r, lora_alpha, lora_dropout and
// target_modules and the learning rate; the eval-loss matrix over r × alpha; the best trial.
import { createRng } from '../engine/random.ts';
import { RunConfigError } from './run-config.ts';

/** The fields a sweep can vary. lr is the trial's learning rate; the others are LoRA adapter_config fields. */
export const SWEEP_FIELDS = ['r', 'lora_alpha', 'lr', 'lora_dropout', 'target_modules'] as const;
export type SweepField = (typeof SWEEP_FIELDS)[number];

/** A list of values, or (random search) a range: uniform, or log-uniform with log: true; integer rounds. */
export type SweepDimension = readonly unknown[] | { readonly min: number; readonly max: number; readonly log?: boolean; readonly integer?: boolean };

export type SweepSpace = Readonly<Partial<Record<SweepField, SweepDimension>>>;

export type TrialPoint = Readonly<Partial<Record<SweepField, unknown>>>;

export interface SearchPlan {
  readonly search: 'grid' | 'random';
  /** Random search: how many points. */
  readonly trials?: number;
  readonly seed?: number;
}

const isRange = (d: SweepDimension): d is Exclude<SweepDimension, readonly unknown[]> => !Array.isArray(d);

/** Every combination, in row-major order of the fields as SWEEP_FIELDS lists them. */
const grid = (space: SweepSpace, where: string): TrialPoint[] => {
  let points: Record<string, unknown>[] = [{}];
  for (const field of SWEEP_FIELDS) {
    const d = space[field];
    if (d === undefined) continue;
    if (isRange(d)) throw new RunConfigError(`${where}: sweep.space.${field} is a range; a grid needs a list of values (or use search: random)`);
    points = points.flatMap((p) => d.map((v) => ({ ...p, [field]: v })));
  }
  return points;
};

const sample = (d: SweepDimension, rng: () => number): unknown => {
  if (!isRange(d)) return d[Math.floor(rng() * d.length)];
  const u = rng();
  const v = d.log ? Math.exp(Math.log(d.min) + u * (Math.log(d.max) - Math.log(d.min))) : d.min + u * (d.max - d.min);
  return d.integer ? Math.round(v) : v;
};

/** The sweep's points: the full grid, or `trials` distinct seeded random points. */
export const sweepPoints = (space: SweepSpace, plan: SearchPlan, where: string): TrialPoint[] => {
  const fields = Object.keys(space);
  for (const f of fields) if (!(SWEEP_FIELDS as readonly string[]).includes(f)) throw new RunConfigError(`${where}: sweep.space.${f} cannot be swept (one of ${SWEEP_FIELDS.join(', ')})`);
  if (fields.length === 0) throw new RunConfigError(`${where}: sweep.space is empty; give values for at least one of ${SWEEP_FIELDS.join(', ')}`);
  for (const f of SWEEP_FIELDS) {
    const d = space[f];
    if (d === undefined) continue;
    if (isRange(d) ? !(Number.isFinite(d.min) && Number.isFinite(d.max) && d.min <= d.max && (!d.log || d.min > 0)) : d.length === 0) {
      throw new RunConfigError(`${where}: sweep.space.${f} must be a non-empty list or a range { min, max } with min ≤ max (and min > 0 for log)`);
    }
  }
  if (plan.search === 'grid') return grid(space, where);
  const n = plan.trials ?? 8;
  if (!(Number.isInteger(n) && n >= 1)) throw new RunConfigError(`${where}: sweep.trials must be a positive integer`);
  const rng = createRng(plan.seed ?? 0);
  const seen = new Set<string>();
  const points: TrialPoint[] = [];
  // Distinct points while they exist (a small discrete space may hold fewer than n).
  for (let tries = 0; points.length < n && tries < n * 50; tries++) {
    const p = Object.fromEntries(SWEEP_FIELDS.filter((f) => space[f] !== undefined).map((f) => [f, sample(space[f]!, rng)]));
    const key = JSON.stringify(p);
    if (seen.has(key)) continue;
    seen.add(key);
    points.push(p);
  }
  return points;
};

/** A point as a label: `r=8 lora_alpha=16`. */
export const pointLabel = (p: TrialPoint): string =>
  Object.entries(p)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
    .join(' ');

export interface TrialOutcome {
  readonly point: TrialPoint;
  /** Final eval loss; undefined when the trial has none (failed, or pruned before evaluating). */
  readonly objective?: number;
  readonly pruned?: boolean;
}

export interface SweepMatrix {
  readonly rows: readonly number[];
  readonly cols: readonly number[];
  /** cells[i][j]: the best objective among trials with r = rows[i] and lora_alpha = cols[j] (other fields vary). */
  readonly cells: readonly (readonly (number | null)[])[];
}

/** Eval loss over r × lora_alpha (the r and alpha of the sweep's base config stand in where they are not swept). */
export const sweepMatrix = (outcomes: readonly TrialOutcome[], base: { readonly r: number; readonly lora_alpha: number }): SweepMatrix => {
  const rOf = (o: TrialOutcome) => Number(o.point.r ?? base.r);
  const aOf = (o: TrialOutcome) => Number(o.point.lora_alpha ?? base.lora_alpha);
  const rows = [...new Set(outcomes.map(rOf))].sort((a, b) => a - b);
  const cols = [...new Set(outcomes.map(aOf))].sort((a, b) => a - b);
  const cells = rows.map((r) =>
    cols.map((a) => {
      const values = outcomes.filter((o) => rOf(o) === r && aOf(o) === a && o.objective !== undefined && !o.pruned).map((o) => o.objective!);
      return values.length ? Math.min(...values) : null;
    }),
  );
  return { rows, cols, cells };
};

/** The index of the best finished (not pruned) trial, or undefined when none finished with an objective. */
export const bestTrial = (outcomes: readonly TrialOutcome[]): number | undefined => {
  let best: number | undefined;
  outcomes.forEach((o, i) => {
    if (o.pruned || o.objective === undefined || !Number.isFinite(o.objective)) return;
    if (best === undefined || o.objective < outcomes[best]!.objective!) best = i;
  });
  return best;
};

/** The matrix as text: rows r, columns alpha, '—' where no trial finished, '*' on the best cell. */
export const formatMatrix = (m: SweepMatrix): string => {
  const all = m.cells.flat().filter((v): v is number => v !== null);
  const best = all.length ? Math.min(...all) : undefined;
  const cell = (v: number | null) => (v === null ? '—' : `${v.toFixed(4)}${v === best ? '*' : ''}`).padStart(10);
  const head = `${'r \\ alpha'.padEnd(10)}${m.cols.map((c) => String(c).padStart(10)).join('')}`;
  return [head, ...m.rows.map((r, i) => `${String(r).padEnd(10)}${m.cells[i]!.map(cell).join('')}`)].join('\n');
};
