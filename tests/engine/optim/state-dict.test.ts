import { describe, expect, it } from 'vitest';
import {
  createOptimizer,
  stateTensorKey,
  type OptimizerConfig,
  type OptimizerState,
  type Param,
  type ParamGroup,
} from '../../../main/engine/optim/index.ts';
import { catchOptimizerError, expectBitIdentical, seededValues } from './helpers.ts';

const SHAPES = { 'layers.0.lora_A': 8, 'layers.0.lora_B': 4, 'layers.1.lora_A': 6 } as const;
const NAMES = Object.keys(SHAPES) as (keyof typeof SHAPES)[];

function makeGroups(initial: ReadonlyMap<string, Float32Array>): { groups: ParamGroup[]; params: Param[] } {
  const params = NAMES.map((name) => ({ name, data: (initial.get(name) as Float32Array).slice() }));
  const [a0, b0, a1] = params as [Param, Param, Param];
  return {
    params,
    groups: [
      { name: 'A', params: [a0, a1] },
      { name: 'B', params: [b0], lrScale: 16, weightDecay: 0 },
    ],
  };
}

function gradsAt(step: number): Map<string, Float32Array> {
  const grads = new Map<string, Float32Array>();
  NAMES.forEach((name, k) => {
    // layers.1 has no gradient on odd steps, so per-parameter steps diverge from the optimizer step.
    if (name === 'layers.1.lora_A' && step % 2 === 1) return;
    grads.set(name, seededValues(1000 * step + k, SHAPES[name]));
  });
  return grads;
}

/** What a checkpoint writer does: JSON for everything but the tensors, raw bytes for the tensors. */
function throughCheckpoint(state: OptimizerState): OptimizerState {
  const { tensors, ...json } = state;
  const restored = JSON.parse(JSON.stringify(json)) as Omit<OptimizerState, 'tensors'>;
  const bytes = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, new Float32Array(t.slice().buffer)]));
  return { ...restored, tensors: bytes };
}

const CONFIGS: OptimizerConfig[] = [
  { kind: 'adamw', weightDecay: 0.05 },
  { kind: 'sgd', momentum: 0.9, weightDecay: 0.01 },
  { kind: 'sgd', momentum: 0.9, nesterov: true },
  { kind: 'sgd' },
];

describe.each(CONFIGS)('stateDict round trip: $kind config #%#', (config) => {
  const initial = new Map(NAMES.map((name, k) => [name, seededValues(50 + k, SHAPES[name])] as const));
  const lrAtStep = (step: number): number => 1e-3 * (1 + step / 10);

  it('resumes bit-identically to an uninterrupted run', () => {
    const straight = makeGroups(initial);
    const straightOpt = createOptimizer(config, straight.groups);
    for (let step = 0; step < 6; step++) straightOpt.step(gradsAt(step), lrAtStep(step));

    const first = makeGroups(initial);
    const firstOpt = createOptimizer(config, first.groups);
    for (let step = 0; step < 3; step++) firstOpt.step(gradsAt(step), lrAtStep(step));
    const saved = throughCheckpoint(firstOpt.stateDict());

    const resumedInitial = new Map(first.params.map((p) => [p.name, p.data] as const));
    const resumed = makeGroups(resumedInitial);
    const resumedOpt = createOptimizer(config, resumed.groups);
    resumedOpt.loadStateDict(saved);
    for (let step = 3; step < 6; step++) resumedOpt.step(gradsAt(step), lrAtStep(step));

    resumed.params.forEach((p, i) => expectBitIdentical(p.data, (straight.params[i] as Param).data));
    expect(resumedOpt.stateDict()).toEqual(straightOpt.stateDict());
  });

  it('returns a snapshot that later steps do not change', () => {
    const { groups } = makeGroups(initial);
    const optimizer = createOptimizer(config, groups);
    optimizer.step(gradsAt(0), 1e-3);
    const snapshot = optimizer.stateDict();
    const copy = throughCheckpoint(snapshot);
    optimizer.step(gradsAt(1), 1e-3);
    expect(snapshot).toEqual(copy);
  });
});

describe('loadStateDict validation', () => {
  const initial = new Map(NAMES.map((name, k) => [name, seededValues(k, SHAPES[name])] as const));
  const trained = (): OptimizerState => {
    const optimizer = createOptimizer({ kind: 'adamw' }, makeGroups(initial).groups);
    optimizer.step(gradsAt(0), 1e-3);
    optimizer.step(gradsAt(1), 1e-3);
    return optimizer.stateDict();
  };
  const loadInto = (state: OptimizerState, config: OptimizerConfig = { kind: 'adamw' }) => () =>
    createOptimizer(config, makeGroups(initial).groups).loadStateDict(state);
  const key = stateTensorKey('exp_avg_sq', 'layers.0.lora_B');

  it('names the tensor whose length does not match', () => {
    const state = trained();
    const error = catchOptimizerError(loadInto({ ...state, tensors: { ...state.tensors, [key]: new Float32Array(3) } }));
    expect(error.code).toBe('invalid-state');
    expect(error.tensor).toBe(key);
    expect(error.message).toMatch(/length 3, expected 4/);
  });

  it('names missing, extra and non-Float32Array tensors', () => {
    const state = trained();
    const { [key]: _dropped, ...withoutKey } = state.tensors;
    expect(catchOptimizerError(loadInto({ ...state, tensors: withoutKey })).tensor).toBe(key);
    const extra = { ...state.tensors, 'exp_avg/layers.9.lora_A': new Float32Array(2) };
    expect(catchOptimizerError(loadInto({ ...state, tensors: extra })).tensor).toBe('exp_avg/layers.9.lora_A');
    const wrongType = { ...state.tensors, [key]: new Float64Array(4) as unknown as Float32Array };
    expect(catchOptimizerError(loadInto({ ...state, tensors: wrongType })).message).toMatch(/Float32Array/);
  });

  it('rejects a different kind, bad steps and unknown parameters', () => {
    const state = trained();
    expect(catchOptimizerError(loadInto(state, { kind: 'sgd', momentum: 0.9 })).message).toMatch(/'adamw'/);
    expect(() => loadInto({ ...state, step: -1 })()).toThrow(/step/);
    const tooFar = { ...state.paramSteps, 'layers.0.lora_A': 7 };
    expect(catchOptimizerError(loadInto({ ...state, paramSteps: tooFar })).tensor).toBe('layers.0.lora_A');
    const { 'layers.1.lora_A': _gone, ...fewer } = state.paramSteps;
    expect(catchOptimizerError(loadInto({ ...state, paramSteps: fewer })).tensor).toBe('layers.1.lora_A');
    const unknown = { ...state.paramSteps, ghost: 1 };
    expect(catchOptimizerError(loadInto({ ...state, paramSteps: unknown })).tensor).toBe('ghost');
    expect(() => loadInto(null as unknown as OptimizerState)()).toThrow(/object/);
  });

  it('changes nothing when validation fails', () => {
    const optimizer = createOptimizer({ kind: 'adamw' }, makeGroups(initial).groups);
    optimizer.step(gradsAt(0), 1e-3);
    const before = optimizer.stateDict();
    const other = trained();
    const bad = { ...other, tensors: { ...other.tensors, [key]: new Float32Array(1) } };
    expect(() => optimizer.loadStateDict(bad)).toThrow();
    expect(optimizer.stateDict()).toEqual(before);
  });
});
