// The sweep form's values → a checked plan (every problem named by its field) → the sweeps.start config. A field
// with one value fixes it for every trial; several values sweep it (r and alpha always span the grid's axes).
import { parseNumber, parseNumberList, parseRungs, parseTargetAlternatives, type TargetModules } from './grid-input.ts';

export type FieldKey =
  | 'name' | 'r' | 'alpha' | 'lr' | 'dropout' | 'targets' | 'steps' | 'microBatch' | 'maxLength'
  | 'evalFraction' | 'evalEvery' | 'seed' | 'rungs' | 'keep' | 'dataset' | 'output';

export interface FormValues {
  readonly name: string;
  readonly r: string;
  readonly alpha: string;
  readonly lr: string;
  readonly dropout: string;
  readonly targets: string;
  readonly mode: 'fused' | 'sequential';
  readonly steps: string;
  readonly microBatch: string;
  readonly maxLength: string;
  readonly evalFraction: string;
  readonly evalEvery: string;
  readonly seed: string;
  readonly halving: boolean;
  readonly rungs: string;
  readonly keep: string;
  readonly datasetId: number | undefined;
  readonly datasetPath: string;
}

export interface SweepPlan {
  readonly name: string;
  readonly mode: 'fused' | 'sequential';
  readonly r: readonly number[];
  readonly alpha: readonly number[];
  readonly lr: readonly number[];
  readonly dropout: readonly number[];
  readonly targets: readonly TargetModules[];
  readonly steps: number;
  readonly microBatch: number;
  readonly maxLength: number;
  readonly evalFraction: number;
  readonly evalEvery: number;
  readonly seed: number;
  readonly halving?: { readonly rungs: readonly number[]; readonly keep: number };
  /** How many trials the grid holds. */
  readonly trials: number;
}

export type FieldErrors = Partial<Record<FieldKey, string>>;

const NAME = /^[\w.-]+$/;

export const planOf = (f: FormValues): { readonly plan?: SweepPlan; readonly errors: FieldErrors } => {
  const errors: FieldErrors = {};
  const take = <T>(key: FieldKey, parsed: { value?: T; error?: string }): T | undefined => {
    if (parsed.error !== undefined) errors[key] = parsed.error;
    return parsed.value;
  };
  const name = f.name.trim();
  if (!NAME.test(name)) errors.name = name ? 'use letters, digits, - _ and . (it names the trials’ folder)' : 'give the sweep a name';
  const r = take('r', parseNumberList(f.r, { integer: true, above: 0, example: '4, 8, 16' }));
  const alpha = take('alpha', parseNumberList(f.alpha, { above: 0, example: '8, 16, 32' }));
  const lr = take('lr', parseNumberList(f.lr, { above: 0, example: '2e-4' }));
  const dropout = take('dropout', parseNumberList(f.dropout, { atLeast: 0, below: 1, example: '0, 0.05' }));
  const targets = take('targets', parseTargetAlternatives(f.targets));
  const steps = take('steps', parseNumber(f.steps, { integer: true, above: 0, example: '50' }, 'the number of steps'));
  const microBatch = take('microBatch', parseNumber(f.microBatch, { integer: true, above: 0, example: '4' }, 'a micro-batch size'));
  const maxLength = take('maxLength', parseNumber(f.maxLength, { integer: true, atLeast: 2, example: '512' }, 'a maximum length'));
  const evalFraction = take('evalFraction', parseNumber(f.evalFraction, { above: 0, below: 1, example: '0.1' }, 'an eval fraction (the heatmap ranks trials by eval loss)'));
  const evalEvery = take('evalEvery', parseNumber(f.evalEvery, { integer: true, above: 0, example: '10' }, 'how often to evaluate'));
  const seed = take('seed', parseNumber(f.seed, { integer: true, atLeast: 0, example: '42' }, 'a seed'));
  let halving: SweepPlan['halving'];
  if (f.halving) {
    if (f.mode !== 'fused') errors.rungs = 'successive halving needs fused mode (the trials must progress together to be compared)';
    const rungs = take('rungs', parseRungs(f.rungs, steps));
    const keep = take('keep', parseNumber(f.keep, { above: 0, below: 1, example: '0.5' }, 'the fraction kept at each rung'));
    if (rungs && keep !== undefined) halving = { rungs, keep };
  }
  if (f.datasetId === undefined && f.datasetPath.trim() === '') errors.dataset = 'pick a dataset, or type the path of a dataset file';
  if (Object.keys(errors).length > 0) return { errors };
  const plan: SweepPlan = {
    name, mode: f.mode, r: r!, alpha: alpha!, lr: lr!, dropout: dropout!, targets: targets!, steps: steps!, microBatch: microBatch!,
    maxLength: maxLength!, evalFraction: evalFraction!, evalEvery: evalEvery!, seed: seed!, ...(halving ? { halving } : {}),
    trials: r!.length * alpha!.length * lr!.length * dropout!.length * targets!.length,
  };
  return { plan, errors };
};

/** The sweep's search space as the service takes it (fields with one value are fixed in the method instead). */
export type SweepSpaceInput = Record<'r' | 'lora_alpha', readonly number[]> & { lr?: readonly number[]; lora_dropout?: readonly number[]; target_modules?: readonly TargetModules[] };

export const spaceOf = (plan: SweepPlan): SweepSpaceInput => ({
  r: plan.r, lora_alpha: plan.alpha,
  ...(plan.lr.length > 1 ? { lr: plan.lr } : {}),
  ...(plan.dropout.length > 1 ? { lora_dropout: plan.dropout } : {}),
  ...(plan.targets.length > 1 ? { target_modules: plan.targets } : {}),
});

export const sweepConfigOf = (plan: SweepPlan, where: { readonly model: string; readonly datasetPath: string; readonly output: string }) => {
  const space = spaceOf(plan);
  return {
    name: plan.name,
    model: where.model,
    dataset: { path: where.datasetPath, evalFraction: plan.evalFraction },
    method: { peft_type: 'LORA', r: plan.r[0]!, lora_alpha: plan.alpha[0]!, lora_dropout: plan.dropout[0]!, target_modules: plan.targets[0]! },
    training: { maxSteps: plan.steps, lr: plan.lr[0]!, microBatchSize: plan.microBatch, maxLength: plan.maxLength, evalEvery: plan.evalEvery, seed: plan.seed },
    output: where.output,
    sweep: { mode: plan.mode, search: 'grid' as const, space, ...(plan.halving ? { halving: plan.halving } : {}) },
  };
};

/** The fields a sweep can vary, in the order the service nests them (the first varies slowest). */
const SWEPT_IN_ORDER = ['r', 'lora_alpha', 'lr', 'lora_dropout', 'target_modules'] as const;

/** Every point of the grid, numbered as the service numbers its trials. */
export const gridPoints = (space: SweepSpaceInput): Record<string, unknown>[] => {
  let points: Record<string, unknown>[] = [{}];
  for (const field of SWEPT_IN_ORDER) {
    const values = space[field];
    if (values) points = points.flatMap((p) => values.map((v) => ({ ...p, [field]: v })));
  }
  return points;
};

const FIELD_OF_PATH: Readonly<Record<string, FieldKey>> = {
  r: 'r', lora_alpha: 'alpha', lr: 'lr', lora_dropout: 'dropout', target_modules: 'targets', maxSteps: 'steps',
  microBatchSize: 'microBatch', maxLength: 'maxLength', evalFraction: 'evalFraction', evalEvery: 'evalEvery', seed: 'seed',
  halving: 'rungs', path: 'dataset', output: 'output', name: 'name',
};

/**
 * Which form field a service error is about: from the payload field it names (a rejected payload), the config field
 * its message names ('sweep.space.r must be ...', 'target_modules [...] matched no linear layer'), or the dataset
 * file it names; undefined when none (the error then shows by the Start button).
 */
export const formFieldOfServiceError = (message: string, o: { readonly field?: string | undefined; readonly datasetPath?: string } = {}): FieldKey | undefined => {
  const path = o.field ?? /(?:sweep\.space|training|dataset|sweep)\.(\w+)/.exec(message)?.[0] ?? /\b(target_modules|lora_dropout|lora_alpha)\b/.exec(message)?.[1] ?? /\b(output|name) must\b/.exec(message)?.[1];
  const key = path === undefined ? undefined : FIELD_OF_PATH[path.split('.').at(-1)!];
  if (key !== undefined) return key;
  return o.datasetPath && message.includes(o.datasetPath) ? 'dataset' : undefined;
};
