// Chat with one adapter of a method the serving slots (LoRA only) cannot carry: the method's own rewrite is applied
// to the KV-cache generation graph and the adapter's tensors become constants of that graph, so the session is the
// base model's with the adapter baked in (no extra inputs; one session per adapter).
import { Graph, type InitializerData } from '../engine/ir/index.ts';
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { PeftError } from '../peft/errors.ts';
import { loadIa3Adapter } from '../peft/ia3.ts';
import type { AdaptedGraph } from '../peft/method.ts';
import { loadAdapterFiles } from '../peft/peft-io.ts';
import { Generator } from './generator.ts';
import { buildGenerationGraph } from './kv-graph.ts';

type AdapterLoader = (dir: string, graph: Graph, model: LoadedModel) => { readonly adapted: AdaptedGraph; readonly warnings: readonly string[] };

/** Methods a baked-in adapter can be chatted with, by peft_type. */
const LOADERS: Readonly<Record<string, AdapterLoader>> = {
  IA3: (dir, graph, model) => loadIa3Adapter(dir, graph, { modelType: model.config.modelType }),
};

/** `adapted.graph` with every trainable tensor turned into an inline constant holding its value. */
export const bakeAdapterTensors = (adapted: AdaptedGraph): Graph => {
  const { graph, params } = adapted;
  const baked = new Map<number, InitializerData>();
  for (const p of params) {
    if (!graph.has(p.name)) throw new PeftError(`adapter tensor '${p.name}' is not an input of the adapted graph`);
    baked.set(graph.idOf(p.name), { kind: 'inline', data: p.data });
  }
  const inputs = graph.inputs.filter((id) => !baked.has(id));
  return new Graph(graph.values, graph.nodes, inputs, graph.outputs, new Map([...graph.initializers, ...baked]));
};

export interface AdapterGenerator {
  readonly generator: Generator;
  readonly peftType: string;
  /** The adapter config's warnings (unknown fields, fields PEFT ignores). */
  readonly warnings: readonly string[];
}

/** A generator answering with the adapter in `dir` applied (use it with chat()); release its generator when done. */
export const openAdapterGenerator = async (model: LoadedModel, dir: string, session: SessionOptions = {}): Promise<AdapterGenerator> => {
  const peftType = String(loadAdapterFiles(dir).config.peft_type);
  const load = LOADERS[peftType];
  if (!load) {
    throw new PeftError(`${dir}: peft_type '${peftType}' cannot be baked into a chat session; supported: ${Object.keys(LOADERS).join(', ')} (LoRA adapters chat through serving slots)`);
  }
  const base = buildGenerationGraph(model);
  const { adapted, warnings } = load(dir, base, model);
  const graph = bakeAdapterTensors(adapted);
  const extra = graph.inputs.map((id) => graph.value(id).name).filter((name) => !base.has(name));
  if (extra.length) throw new PeftError(`${dir}: the ${peftType} rewrite needs runtime inputs a chat session does not feed: ${extra.join(', ')}`);
  return { generator: await Generator.create(model, session, graph), peftType, warnings };
};
