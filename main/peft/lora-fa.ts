// LoRA-FA (Zhang et al., 2023): LoRA with every A frozen and B trained by the LoRA-FA optimizer. HF PEFT 0.17 has
// it as an optimizer factory (peft/optimizers/lorafa.py, create_lorafa_optimizer); here it is a Graph → Graph
// step that turns the adapted graph's A inputs into frozen initializers (no dA in the backward graph, no
// activations kept for it) plus the engine's LoraFA optimizer over the B matrices. The adapter stays plain LoRA.
import { Graph } from '../engine/ir/index.ts';
import { LoraFA, type LoraFaOptions, type LowRankFactor } from '../engine/optim/lorafa.ts';
import type { Optimizer, Param, ParamGroup } from '../engine/optim/index.ts';
import { PeftError } from './errors.ts';
import type { LoraConfig } from './lora-config.ts';
import type { AdaptedGraph, FrozenTensor, TrainableTensor } from './method.ts';

/**
 * The LoRA graph with each lora_A as an inline initializer: params keep the rest (B), frozen gains the A's. Pure:
 * the returned tensors are copies, so training them leaves `adapted` as it was.
 */
export const freezeLoraA = (adapted: AdaptedGraph): AdaptedGraph => {
  const graph = adapted.graph;
  const frozenA = adapted.params.filter((p) => p.role === 'lora_A');
  if (frozenA.length === 0) throw new PeftError('LoRA-FA needs a LoRA-adapted graph: it has no lora_A tensor');
  const initializers = new Map(graph.initializers);
  const ids = new Set<number>();
  for (const a of frozenA) {
    const id = graph.idOf(a.name);
    if (!graph.inputs.includes(id)) throw new PeftError(`'${a.name}' is not an input of the adapted graph`);
    ids.add(id);
    initializers.set(id, { kind: 'inline', data: Float32Array.from(a.data) });
  }
  const frozen: FrozenTensor[] = [
    ...(adapted.frozen ?? []),
    ...frozenA.map((a) => ({ name: a.name, shape: a.shape, data: Float32Array.from(a.data) })),
  ];
  return {
    graph: new Graph(graph.values, graph.nodes, graph.inputs.filter((id) => !ids.has(id)), graph.outputs, initializers),
    params: adapted.params.filter((p) => p.role !== 'lora_A').map((p) => ({ ...p, data: Float32Array.from(p.data) })),
    frozen,
    modules: adapted.modules,
  };
};

/** create_lorafa_optimizer's one scale for every module: α/r, or α/√r with rsLoRA (rank_pattern is not consulted). */
export const loraFaScaling = (config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number =>
  config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;

/** The frozen A of each B in a frozen LoRA-FA graph, keyed by B's name. */
export const loraFaFactors = (adapted: AdaptedGraph, scaling: number): Map<string, LowRankFactor> => {
  const frozen = new Map((adapted.frozen ?? []).map((t) => [t.name, t]));
  const factors = new Map<string, LowRankFactor>();
  for (const b of adapted.params.filter((p) => p.role === 'lora_B')) {
    const aName = b.name.replace('.lora_B.', '.lora_A.');
    const a = frozen.get(aName);
    if (!a) throw new PeftError(`'${b.name}' has no frozen '${aName}': apply freezeLoraA first`);
    const rank = a.shape[0]!;
    if (b.shape[1] !== rank) throw new PeftError(`'${b.name}' has shape [${b.shape.join(', ')}], its A '${aName}' rank ${rank}`);
    factors.set(b.name, { a: a.data, rank, scaling });
  }
  return factors;
};

export interface LoraFaSettings extends LoraFaOptions {
  /** create_lorafa_optimizer's weight_decay (default 0). */
  readonly weightDecay?: number;
}

/**
 * create_lorafa_optimizer over a frozen LoRA-FA graph: one group of `params` (the live tensors the trainer feeds,
 * by default the graph's), unless `groups` are given; betas (0.9, 0.999), eps 1e-6, bias correction.
 */
export const createLoraFaOptimizer = (
  adapted: AdaptedGraph,
  config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>,
  settings: LoraFaSettings = {},
  params: readonly Param[] = adapted.params,
  groups: readonly ParamGroup[] = [{ name: 'lorafa', params }],
): Optimizer => new LoraFA(groups, loraFaFactors(adapted, loraFaScaling(config)), settings);

/** What saveAdapter writes for a LoRA-FA run: the frozen A's and the trained B's, under LoRA's keys. */
export const loraFaAdapterTensors = (adapted: AdaptedGraph): TrainableTensor[] => [
  ...(adapted.frozen ?? []).filter((t) => t.name.includes('.lora_A.')).map((t) => ({ ...t, module: '', role: 'lora_A' })),
  ...adapted.params,
];
