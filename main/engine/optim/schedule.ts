import { checkNumber, OptimizerError } from './errors.ts';

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface ScheduleConfig {
  readonly kind: ScheduleKind;
  readonly baseLr: number;
  /** Linear warmup from 0 to baseLr over these steps. */
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Floor of the decay as a fraction of baseLr (linear/cosine); default 0. */
  readonly minLrRatio?: number;
}

const KINDS: readonly ScheduleKind[] = ['constant', 'linear', 'cosine'];

export function validateSchedule(config: ScheduleConfig): void {
  if (!KINDS.includes(config.kind)) {
    throw new OptimizerError('invalid-config', `schedule kind must be one of ${KINDS.join(', ')}, got ${String(config.kind)}`);
  }
  checkNumber(config.baseLr, 'schedule baseLr', { min: 0 });
  const warmup = checkNumber(config.warmupSteps, 'schedule warmupSteps', { min: 0, integer: true });
  const total = checkNumber(config.totalSteps, 'schedule totalSteps', { min: 0, integer: true });
  if (config.kind !== 'constant' && warmup > total) {
    throw new OptimizerError('invalid-config', `schedule warmupSteps (${warmup}) exceeds totalSteps (${total})`);
  }
  if (config.minLrRatio !== undefined) {
    checkNumber(config.minLrRatio, 'schedule minLrRatio', { min: 0 });
    if (config.minLrRatio > 1) {
      throw new OptimizerError('invalid-config', `schedule minLrRatio must be <= 1, got ${config.minLrRatio}`);
    }
  }
}

/**
 * The lr multiplier at `step`: the lambdas of transformers' get_{constant,linear,cosine}_schedule_with_warmup
 * (cosine with num_cycles 0.5, so pi·2·num_cycles = pi). minLrRatio lifts the decay as
 * get_cosine_with_min_lr_schedule_with_warmup does.
 * Like transformers, cosine past totalSteps rises again; linear stays at its floor.
 */
export function lrMultiplier(config: ScheduleConfig, step: number): number {
  validateSchedule(config);
  checkNumber(step, 'schedule step', { min: 0, integer: true });
  const { warmupSteps, totalSteps } = config;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (config.kind === 'constant') return 1;
  const minRatio = config.minLrRatio ?? 0;
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const decay =
    config.kind === 'linear'
      ? Math.max(0, (totalSteps - step) / decaySteps)
      : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((step - warmupSteps) / decaySteps))));
  return minRatio === 0 ? decay : decay * (1 - minRatio) + minRatio;
}

export function lrAt(config: ScheduleConfig, step: number): number {
  return config.baseLr * lrMultiplier(config, step);
}
