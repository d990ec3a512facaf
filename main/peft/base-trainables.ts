// Base-model tensors a LoRA config makes trainable, as PEFT does:
//   bias='all' | 'lora_only' (mark_only_lora_as_trainable): the biases of every module / of the adapted ones are
//   trained in place, under the base parameter's key: `<module>.base_layer.bias` where LoRA wraps the module,
//   `<module>.bias` elsewhere.
//   modules_to_save (ModulesToSaveWrapper): every module whose name ends with a listed name gets a trainable copy,
//   `<module>.modules_to_save.<adapter>.<param>`; the original stays frozen (with tied embeddings, the other
//   user of the tensor keeps reading the frozen one).
import { isStatic, type Graph, type Node } from '../engine/ir/index.ts';
import { readInitializer } from '../engine/io/initializer.ts';
import { PeftError } from './errors.ts';
import { frozenSource, isWeightBinding } from './frozen-weights.ts';
import type { TrainableTensor } from './method.ts';

export interface BaseTrainables {
  readonly params: readonly TrainableTensor[];
  /** node id → (input index → the trainable tensor that replaces the frozen one read there). */
  readonly substitutions: ReadonlyMap<number, ReadonlyMap<number, string>>;
}

export interface BaseTrainableOptions {
  readonly bias: 'none' | 'all' | 'lora_only';
  readonly modulesToSave: readonly string[];
  /** Modules LoRA adapts: PEFT wraps them, so their own parameters live under `base_layer`. */
  readonly adapted: ReadonlySet<string>;
  readonly adapter: string;
}

/** PEFT's in-memory key of a modules_to_save copy's parameter; saved as `<module>.<param>`. */
export const modulesToSaveKey = (module: string, param: string, adapter: string): string =>
  `base_model.model.${module}.modules_to_save.${adapter}.${param}`;

/** PEFT's key of a trained base bias (the same in memory and on disk). */
export const baseBiasKey = (module: string, adapted: boolean): string =>
  `base_model.model.${module}${adapted ? '.base_layer' : ''}.bias`;

const PARAM = /^(?:.+\.)?(?:weight|bias)$/;

/** Module names the graph has: every prefix of a parameter's name, and the LM head (which may read a tied tensor). */
const moduleNames = (graph: Graph): Set<string> => {
  const names = new Set<string>();
  for (const id of graph.initializers.keys()) {
    const parts = graph.value(id).name.split('.');
    if (!PARAM.test(parts[parts.length - 1]!)) continue;
    for (let i = 1; i < parts.length; i++) names.add(parts.slice(0, i).join('.'));
  }
  if (graph.nodes.some((n) => n.name === 'lm_head')) names.add('lm_head');
  return names;
};

/** PEFT's _set_trainable: a module is saved when its name ends with a listed name; the outermost match wins. */
const modulesToSave = (graph: Graph, listed: readonly string[]): string[] => {
  const names = moduleNames(graph);
  const found = new Set<string>();
  for (const entry of listed) {
    const matches = [...names].filter((name) => name.endsWith(entry));
    if (matches.length === 0) throw new PeftError(`modules_to_save: '${entry}' matches no module of the model`);
    for (const m of matches) found.add(m);
  }
  return [...found].filter((m) => ![...found].some((outer) => m.startsWith(`${outer}.`)));
};

/** Which parameter of `module` a node of it reads at input `index`, if that input is one. */
const paramOf = (graph: Graph, node: Node, index: number, module: string): string | undefined => {
  const source = frozenSource(graph, node.inputs[index]!);
  if (source === undefined) return undefined;
  const name = graph.value(source).name;
  if (name.startsWith(`${module}.`)) {
    const param = name.slice(module.length + 1);
    return PARAM.test(param) ? param : undefined;
  }
  // A tied LM head reads the embedding's tensor: name it by the position it has in the linear layer.
  if (node.name !== module) return undefined;
  if (node.op === 'Gemm') return index === 1 ? 'weight' : index === 2 ? 'bias' : undefined;
  if (node.op === 'Gather') return index === 0 ? 'weight' : undefined;
  return undefined;
};

export const baseTrainables = (graph: Graph, o: BaseTrainableOptions): BaseTrainables => {
  const params = new Map<string, TrainableTensor>();
  const substitutions = new Map<number, Map<number, string>>();
  const substitute = (node: Node, index: number, name: string, module: string, role: string): void => {
    const source = frozenSource(graph, node.inputs[index]!)!;
    if (!params.has(name)) {
      const { shape } = graph.value(source).type;
      if (!isStatic(shape)) throw new PeftError(`'${graph.value(source).name}' has a symbolic shape and cannot be trained`);
      params.set(name, { name, shape, data: readInitializer(graph, graph.value(source).name), module, role });
    }
    const byInput = substitutions.get(node.id) ?? new Map<number, string>();
    byInput.set(index, name);
    substitutions.set(node.id, byInput);
  };

  const saved = modulesToSave(graph, o.modulesToSave);
  const savedModuleOf = (node: Node): string | undefined => saved.find((m) => node.name === m || node.name.startsWith(`${m}.`));
  for (const node of graph.nodes) {
    if (isWeightBinding(graph, node)) continue;
    const module = savedModuleOf(node);
    node.inputs.forEach((_, index) => {
      if (module !== undefined) {
        const param = paramOf(graph, node, index, module);
        if (param !== undefined) substitute(node, index, modulesToSaveKey(module, param, o.adapter), module, 'modules_to_save');
        return;
      }
      if (o.bias === 'none') return;
      const source = frozenSource(graph, node.inputs[index]!);
      const name = source === undefined ? '' : graph.value(source).name;
      if (!name.endsWith('.bias')) return;
      const owner = name.slice(0, -'.bias'.length);
      const adapted = o.adapted.has(owner);
      if (o.bias === 'all' || adapted) substitute(node, index, baseBiasKey(owner, adapted), owner, 'bias');
    });
  }
  return { params: [...params.values()], substitutions };
};
