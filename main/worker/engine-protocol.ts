// Typed messages between the main thread and the engine worker.
import type { GraphWire } from '../engine/ir/graph.ts';
import type { HostTensor, ProviderChoice } from '../engine/onnx/runtime.ts';
import type { Param } from '../engine/optim/index.ts';
import type { StepResult, TrainStepOptions, TrainStepState } from '../engine/train-step.ts';

export type TrainerSpec = Omit<TrainStepOptions, 'graph'> & { readonly graph: GraphWire };
export type Batch = Readonly<Record<string, HostTensor>>;

export interface RequestMap {
  createTrainer: { args: { spec: TrainerSpec }; result: { trainer: number; provider: ProviderChoice } };
  step: { args: { trainer: number; batch: Batch }; result: StepResult };
  /** `steps` optimizer steps cycling through `batches`; a 'step' event per step; stops early when cancelled. */
  run: { args: { trainer: number; batches: readonly Batch[]; steps: number; cancel: SharedArrayBuffer }; result: { steps: number; cancelled: boolean } };
  params: { args: { trainer: number }; result: Param[] };
  state: { args: { trainer: number }; result: TrainStepState };
  release: { args: { trainer: number }; result: null };
}
export type RequestKind = keyof RequestMap;

export type Request = { [K in RequestKind]: { readonly id: number; readonly kind: K; readonly args: RequestMap[K]['args'] } }[RequestKind];

export type EngineEvent = { readonly type: 'step'; readonly trainer: number; readonly result: StepResult };

export type WorkerMessage =
  | { readonly id: number; readonly kind: 'result'; readonly value: unknown }
  | { readonly id: number; readonly kind: 'error'; readonly error: { readonly name: string; readonly message: string } }
  | { readonly id: number; readonly kind: 'event'; readonly event: EngineEvent };
