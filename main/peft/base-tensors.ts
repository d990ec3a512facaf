// Training the model's own tensors (BitFit, SELECTIVE, FULL): chosen checkpoint tensors stop being frozen
// initializers and become float32 graph inputs initialised from the checkpoint (bf16/f16 values read as float32
// masters). Every read of a chosen tensor — both users of a tied embedding — takes the one trainable input, so its
// gradient sums over its uses as PyTorch's shared Parameter does. In memory a tensor is named as PEFT names a
// trained base parameter, `base_model.model.<HF name>` (a graph cannot hold an input and the initializer it
// replaces under one name); on disk it is saved under its HF name.
import { dirname } from 'node:path';
import { isStatic, type DType, type Graph, type Tensor } from '../engine/ir/index.ts';
import { readInitializer } from '../engine/io/initializer.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import type { BaseTrainables } from './base-trainables.ts';
import { PeftError } from './errors.ts';
import { frozenSource, isWeightBinding } from './frozen-weights.ts';
import type { AdaptedGraph, TrainableTensor } from './method.ts';

const KEY_PREFIX = 'base_model.model.';

/** The in-memory key of a trained checkpoint tensor (PEFT's name of a base parameter it trains in place). */
export const baseTensorKey = (hfName: string): string => `${KEY_PREFIX}${hfName}`;

/** The HF name a trained checkpoint tensor is saved under. */
export const hfNameOfKey = (key: string): string => (key.startsWith(KEY_PREFIX) ? key.slice(KEY_PREFIX.length) : key);

/** A tensor of the checkpoint as the graph holds it. */
export interface CheckpointTensor {
  /** HF name, e.g. `model.layers.0.self_attn.q_proj.bias`. */
  readonly name: string;
  readonly id: number;
  readonly dtype: DType;
  readonly shape: readonly (number | string)[];
  /** Kept in 4-bit blocks (GGUF Q4, QLoRA's NF4 / int4): its float values exist only inside the kernel. */
  readonly quantized: boolean;
  /** Other HF names of the same tensor: `lm_head.weight` where the LM head is tied to the embedding. */
  readonly aliases: readonly string[];
}

const PARAM = /(?:^|\.)(?:weight|bias)$/;
const FLOATS: ReadonlySet<DType> = new Set(['float32', 'bfloat16', 'float16']);

/** The checkpoint's parameters in the graph (constants the model builder made are not among them), in graph order. */
export const checkpointTensors = (graph: Graph): CheckpointTensor[] => {
  const aliases = new Map<number, string[]>();
  for (const node of graph.nodes) {
    // A linear layer reading another module's weight (a tied LM head) also answers to `<layer>.weight`.
    if (node.op !== 'Gemm' || !node.attrs.transB || node.inputs.length < 2) continue;
    const source = frozenSource(graph, node.inputs[1]!);
    const own = `${node.name}.weight`;
    if (source === undefined || graph.value(source).name === own || graph.has(own)) continue;
    aliases.set(source, [...(aliases.get(source) ?? []), own]);
  }
  const out: CheckpointTensor[] = [];
  for (const id of graph.initializers.keys()) {
    const { name, type } = graph.value(id);
    if (!PARAM.test(name)) continue;
    out.push({ name, id, dtype: type.dtype, shape: type.shape, quantized: !FLOATS.has(type.dtype), aliases: aliases.get(id) ?? [] });
  }
  return out;
};

/** Where the model came from, for messages: the folder of its weights file, when the graph reads one. */
export const modelLabel = (graph: Graph): string => {
  for (const data of graph.initializers.values()) if (data.kind === 'external') return dirname(data.file);
  return 'this model';
};

const moduleOf = (hfName: string): string => hfName.replace(/\.(?:weight|bias)$/, '');

/**
 * The chosen tensors as trainable inputs: each read of one (directly or through its float32 Cast) is substituted.
 * `method` names the method in errors; a quantized tensor is refused, naming it.
 */
export const trainableTensors = (graph: Graph, chosen: readonly CheckpointTensor[], method: string): BaseTrainables => {
  const byId = new Map(chosen.map((t) => [t.id, t]));
  const params: TrainableTensor[] = [];
  for (const t of chosen) {
    if (t.quantized) {
      throw new PeftError(
        `${method}: '${t.name}' is stored quantized (${t.dtype} 4-bit blocks) in ${modelLabel(graph)} and cannot be trained; ` +
          'open the model with float weights (a float GGUF, or without keeping 4-bit blocks), or leave this tensor out and train LoRA on it',
      );
    }
    if (!isStatic(t.shape)) throw new PeftError(`${method}: '${t.name}' has a symbolic shape and cannot be trained`);
    const role = t.name.endsWith('.bias') ? 'bias' : 'weight';
    params.push({ name: baseTensorKey(t.name), shape: t.shape, data: readInitializer(graph, t.name), module: moduleOf(t.name), role });
  }
  const substitutions = new Map<number, Map<number, string>>();
  for (const node of graph.nodes) {
    if (isWeightBinding(graph, node)) continue;
    node.inputs.forEach((input, index) => {
      const source = frozenSource(graph, input);
      const t = source === undefined ? undefined : byId.get(source);
      if (!t) return;
      const byInput = substitutions.get(node.id) ?? new Map<number, string>();
      byInput.set(index, baseTensorKey(t.name));
      substitutions.set(node.id, byInput);
    });
  }
  return { params, substitutions };
};

/** The graph with the substitutions made: one float32 input per trained tensor, read wherever the frozen one was. */
export const withTrainableTensors = (graph: Graph, trainables: BaseTrainables): AdaptedGraph => {
  const byName = new Map(trainables.params.map((p) => [p.name, p]));
  const inputs = new Map<string, Tensor>();
  const adapted = rewriteGraph(graph, (node, ctx) => {
    const substituted = trainables.substitutions.get(node.id);
    if (!substituted) return undefined;
    const replaced = ctx.inputs.map((t, i) => {
      const name = substituted.get(i);
      if (name === undefined) return t;
      let input = inputs.get(name);
      if (!input) {
        input = ctx.b.input(name, 'float32', byName.get(name)!.shape);
        inputs.set(name, input);
      }
      return input;
    });
    return ctx.b.apply(node.op, replaced, node.attrs, { name: node.name });
  });
  const modules = new Map<string, Record<string, number>>();
  for (const p of trainables.params) {
    const m = modules.get(p.module) ?? { tensors: 0, parameters: 0 };
    modules.set(p.module, { tensors: m.tensors! + 1, parameters: m.parameters! + p.data.length });
  }
  return { graph: adapted, params: trainables.params, modules };
};
