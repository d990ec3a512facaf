import { checkNumber, OptimizerError } from './errors.ts';
import type { HyperValue, OptimizerKind, OptimizerState, Param, ParamGroup } from './types.ts';

export interface TrackedParam<S extends string> {
  readonly param: Param;
  readonly group: ParamGroup;
  /** Updates applied so far; 0 means the slots hold no history yet. */
  step: number;
  readonly slots: Readonly<Record<S, Float32Array>>;
}

export const stateTensorKey = (slot: string, paramName: string): string => `${slot}/${paramName}`;

/** The lr a group uses this step, given the scheduled base lr. */
export const groupLr = (group: ParamGroup, scheduledLr: number): number =>
  (group.lr ?? scheduledLr) * (group.lrScale ?? 1);

/** Per-parameter optimizer state shared by all optimizers: slots (exp_avg, momentum_buffer, ...) and step counts. */
export class ParamStateTable<S extends string> {
  readonly tracked: readonly TrackedParam<S>[];
  private readonly byName: ReadonlyMap<string, TrackedParam<S>>;

  constructor(
    groups: readonly ParamGroup[],
    private readonly slotNames: readonly S[],
  ) {
    const tracked: TrackedParam<S>[] = [];
    const byName = new Map<string, TrackedParam<S>>();
    for (const group of groups) {
      checkGroup(group);
      for (const param of group.params) {
        if (!(param.data instanceof Float32Array)) {
          throw new OptimizerError('invalid-config', `parameter '${param.name}' data must be a Float32Array`, param.name);
        }
        if (byName.has(param.name)) {
          throw new OptimizerError('invalid-config', `parameter '${param.name}' appears more than once`, param.name);
        }
        const slots = Object.fromEntries(slotNames.map((s) => [s, new Float32Array(param.data.length)]));
        const entry: TrackedParam<S> = { param, group, step: 0, slots: slots as Record<S, Float32Array> };
        tracked.push(entry);
        byName.set(param.name, entry);
      }
    }
    this.tracked = tracked;
    this.byName = byName;
  }

  /** Checks the whole map before any update, so a bad gradient leaves params and state untouched. */
  checkGrads(grads: ReadonlyMap<string, Float32Array>): void {
    for (const [name, grad] of grads) {
      const entry = this.byName.get(name);
      if (!entry) throw new OptimizerError('invalid-gradient', `gradient for unknown parameter '${name}'`, name);
      if (!(grad instanceof Float32Array)) {
        throw new OptimizerError('invalid-gradient', `gradient for '${name}' is missing (not a Float32Array)`, name);
      }
      if (grad.length !== entry.param.data.length) {
        throw new OptimizerError(
          'invalid-gradient',
          `gradient for '${name}' has length ${grad.length}, expected ${entry.param.data.length}`,
          name,
        );
      }
    }
  }

  /**
   * One optimizer step's bookkeeping, shared by every optimizer: checks all gradients first, then calls `update`
   * for each parameter that has one (advancing its step count, as torch skips p.grad is None) with its group's lr
   * and weight decay.
   */
  forEachUpdate(
    grads: ReadonlyMap<string, Float32Array>,
    scheduledLr: number,
    defaultWeightDecay: number,
    update: (entry: TrackedParam<S>, grad: Float32Array, lr: number, weightDecay: number) => void,
  ): void {
    checkNumber(scheduledLr, 'learning rate', { min: 0 });
    this.checkGrads(grads);
    for (const entry of this.tracked) {
      const grad = grads.get(entry.param.name);
      if (grad === undefined) continue;
      entry.step += 1;
      update(entry, grad, groupLr(entry.group, scheduledLr), entry.group.weightDecay ?? defaultWeightDecay);
    }
  }

  toState(kind: OptimizerKind, step: number, hyper: Record<string, HyperValue>): OptimizerState {
    const paramSteps: Record<string, number> = {};
    const tensors: Record<string, Float32Array> = {};
    for (const { param, step: paramStep, slots } of this.tracked) {
      paramSteps[param.name] = paramStep;
      for (const slot of this.slotNames) tensors[stateTensorKey(slot, param.name)] = slots[slot].slice();
    }
    return { kind, step, hyper: { ...hyper }, paramSteps, tensors };
  }

  /** Validates everything first, then copies in; returns the saved optimizer step. */
  load(state: OptimizerState, kind: OptimizerKind): number {
    const step = this.validate(state, kind);
    for (const entry of this.tracked) {
      entry.step = state.paramSteps[entry.param.name] as number;
      for (const slot of this.slotNames) {
        entry.slots[slot].set(state.tensors[stateTensorKey(slot, entry.param.name)] as Float32Array);
      }
    }
    return step;
  }

  private validate(state: OptimizerState, kind: OptimizerKind): number {
    if (!isRecord(state)) throw new OptimizerError('invalid-state', 'optimizer state must be an object');
    if (state.kind !== kind) {
      throw new OptimizerError('invalid-state', `optimizer state is for '${String(state.kind)}', expected '${kind}'`);
    }
    const step = checkNumber(state.step, 'optimizer state step', { min: 0, integer: true }, 'invalid-state');
    const { paramSteps, tensors } = state;
    if (!isRecord(paramSteps) || !isRecord(tensors)) {
      throw new OptimizerError('invalid-state', 'optimizer state needs paramSteps and tensors objects');
    }
    for (const name of Object.keys(paramSteps)) {
      if (!this.byName.has(name)) {
        throw new OptimizerError('invalid-state', `optimizer state has unknown parameter '${name}'`, name);
      }
    }
    const expectedKeys = new Set<string>();
    for (const { param } of this.tracked) {
      const what = `optimizer state step of '${param.name}'`;
      const range = { min: 0, integer: true };
      checkNumber(paramSteps[param.name], what, range, 'invalid-state', param.name);
      if ((paramSteps[param.name] as number) > step) {
        throw new OptimizerError('invalid-state', `${what} exceeds the optimizer step ${step}`, param.name);
      }
      for (const slot of this.slotNames) {
        const key = stateTensorKey(slot, param.name);
        expectedKeys.add(key);
        checkStateTensor(tensors[key], key, param);
      }
    }
    for (const key of Object.keys(tensors)) {
      if (!expectedKeys.has(key)) {
        throw new OptimizerError('invalid-state', `optimizer state has unexpected tensor '${key}'`, key);
      }
    }
    return step;
  }
}

function checkStateTensor(tensor: unknown, key: string, param: Param): void {
  if (tensor === undefined) throw new OptimizerError('invalid-state', `optimizer state lacks tensor '${key}'`, key);
  if (!(tensor instanceof Float32Array)) {
    throw new OptimizerError('invalid-state', `optimizer state tensor '${key}' must be a Float32Array`, key);
  }
  if (tensor.length !== param.data.length) {
    throw new OptimizerError(
      'invalid-state',
      `optimizer state tensor '${key}' has length ${tensor.length}, expected ${param.data.length}`,
      key,
    );
  }
}

function checkGroup(group: ParamGroup): void {
  const what = (field: string): string => `param group '${group.name}' ${field}`;
  if (!Array.isArray(group.params)) throw new OptimizerError('invalid-config', `${what('params')} must be an array`);
  if (group.lr !== undefined) checkNumber(group.lr, what('lr'), { min: 0 });
  if (group.lrScale !== undefined) checkNumber(group.lrScale, what('lrScale'), { min: 0 });
  if (group.weightDecay !== undefined) checkNumber(group.weightDecay, what('weightDecay'), { min: 0 });
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
