import { AdamW, type AdamWConfig } from './adamw.ts';
import { OptimizerError } from './errors.ts';
import { SGD, type SgdConfig } from './sgd.ts';
import type { Optimizer, ParamGroup } from './types.ts';

export { AdamW, type AdamWConfig, type AdamWOptions } from './adamw.ts';
export { SGD, type SgdConfig, type SgdOptions } from './sgd.ts';
export { clipGradNorm, globalGradNorm, type ClipResult, type GradTensors } from './clip.ts';
export { lrAt, lrMultiplier, validateSchedule, type ScheduleConfig, type ScheduleKind } from './schedule.ts';
export { OptimizerError, type OptimizerErrorCode } from './errors.ts';
export { groupLr, stateTensorKey } from './param-state.ts';
export type { HyperValue, Optimizer, OptimizerKind, OptimizerState, Param, ParamGroup } from './types.ts';

export type OptimizerConfig = AdamWConfig | SgdConfig;

export function createOptimizer(config: OptimizerConfig, groups: readonly ParamGroup[]): Optimizer {
  switch (config.kind) {
    case 'adamw':
      return new AdamW(groups, config);
    case 'sgd':
      return new SGD(groups, config);
    default: {
      const kind: unknown = (config as { kind: unknown }).kind;
      throw new OptimizerError('invalid-config', `unknown optimizer kind '${String(kind)}'`);
    }
  }
}
