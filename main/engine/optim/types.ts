export interface Param {
  readonly name: string;
  /** Updated in place by the optimizer. */
  readonly data: Float32Array;
}

export interface ParamGroup {
  readonly name: string;
  readonly params: readonly Param[];
  /** Absolute learning rate; replaces the scheduled lr for this group. */
  readonly lr?: number;
  /** Multiplier of the group's lr (the scheduled lr, or `lr` when set); LoRA+ uses ratio × lr for B matrices. */
  readonly lrScale?: number;
  /** Overrides the optimizer's weight decay for this group. */
  readonly weightDecay?: number;
}

export type OptimizerKind = 'adamw' | 'sgd';

export type HyperValue = number | boolean;

/**
 * Everything but `tensors` is plain JSON; `tensors` is flat so a checkpoint writer can put it
 * straight into a safetensors file. Tensor keys are `${slot}/${paramName}` (see stateTensorKey).
 */
export interface OptimizerState {
  readonly kind: OptimizerKind;
  /** Number of step() calls so far. */
  readonly step: number;
  /** The optimizer's hyperparameters when saved; informational, the constructor config wins on load. */
  readonly hyper: Readonly<Record<string, HyperValue>>;
  /** Updates applied per parameter; like torch, a parameter without a gradient in a step does not advance. */
  readonly paramSteps: Readonly<Record<string, number>>;
  readonly tensors: Readonly<Record<string, Float32Array>>;
}

export interface Optimizer {
  readonly kind: OptimizerKind;
  /** `lr` is the scheduled base lr for this step; group `lr`/`lrScale` are applied inside. */
  step(grads: ReadonlyMap<string, Float32Array>, lr: number): void;
  /** A snapshot: tensors are copies, so later steps do not change it. */
  stateDict(): OptimizerState;
  /** Validates kind, names and lengths before changing anything; throws OptimizerError naming the tensor. */
  loadStateDict(state: OptimizerState): void;
}
