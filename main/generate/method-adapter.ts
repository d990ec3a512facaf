// An adapter folder of any method the engine has, opened for generation (chat) and evaluation through one table keyed
// by peft_type (METHOD_OPENERS). Most methods are graph rewrites: the method's own rewrite is applied to a graph of
// the base model and the saved tensors become the values of its trainable inputs — baked in as constants for chat
// (the session is the base model's with the adapter in: no extra inputs, one session per adapter), fed as inputs for
// evaluation. FULL is a whole model folder of its own; prompt learning chats through a baked key/value prefix.
// LoRA adapters that fit serving slots can also share one batched pass with the base model (side-by-side.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type InitializerData } from '../engine/ir/index.ts';
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import { openHfFolder, type LoadedModel } from '../models/hf-folder.ts';
import { applyAdalora, assignAdaloraWeights, parseAdaloraConfig } from '../peft/adalora.ts';
import { loadAdapterFusion } from '../peft/adapter-fusion.ts';
import { loadTensorAdapter } from '../peft/base-tensor-io.ts';
import { assignSavedTensors, loadBottleneckAdapter } from '../peft/bottleneck.ts';
import { PeftError } from '../peft/errors.ts';
import { loadIa3Adapter } from '../peft/ia3.ts';
import { applyLongLora } from '../peft/longlora.ts';
import { parseLongLoraConfig } from '../peft/longlora-config.ts';
import { applyLora } from '../peft/lora.ts';
import { parseLoraConfig, pissaIterations } from '../peft/lora-config.ts';
import type { AdaptedGraph, TrainableTensor } from '../peft/method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, assignAdapterWeights, loadAdapterFiles } from '../peft/peft-io.ts';
import { applyVera, parseVeraConfig, veraSavedKey } from '../peft/vera.ts';
import { applyPromptEmbeddings, type VirtualTokenSpec } from '../peft/virtual-tokens.ts';
import { Generator } from './generator.ts';
import { GEN, buildGenerationGraph } from './kv-graph.ts';
// prompt-adapter.ts imports bakeAdapterTensors from here: its functions are only called inside openers, never while
// either module is being evaluated, so the import cycle is harmless.
import { promptAdapterGenerationGraph, readPromptLearningAdapter } from './prompt-adapter.ts';

/** The adapter folder being opened and the base model it is opened on. */
export interface AdapterContext {
  readonly dir: string;
  readonly base: LoadedModel;
}

/** Builds a graph of `model` (the generation graph, or training's loss graph), with virtual-token placeholders if asked. */
export type GraphFactory = (model: LoadedModel, o: { readonly virtualTokens?: VirtualTokenSpec }) => Graph;

/** A method's rewrite applied to a graph of the base model, its trainable tensors holding the saved values. */
export interface LoadedRewrite {
  readonly adapted: AdaptedGraph;
  /** The adapter config's warnings (unknown fields, fields PEFT ignores). */
  readonly warnings: readonly string[];
}

export type MethodOpener =
  | {
      readonly kind: 'rewrite';
      /** Always the inference form: dropout off, no regularization term on the loss. */
      readonly adapt: (ctx: AdapterContext, build: (o?: { readonly virtualTokens?: VirtualTokenSpec }) => Graph) => LoadedRewrite;
      /** Chat's graph, where baking `adapt`'s tensors into the generation graph is not how the method generates. */
      readonly generationGraph?: (ctx: AdapterContext, session: SessionOptions) => Promise<{ readonly graph: Graph; readonly warnings: readonly string[] }>;
    }
  | {
      /** A whole model of its own, checked to fit the base (same tensors, same shapes). */
      readonly kind: 'model';
      readonly open: (ctx: AdapterContext) => LoadedModel;
    };

const rewrite = (adapt: Extract<MethodOpener, { kind: 'rewrite' }>['adapt']): MethodOpener => ({ kind: 'rewrite', adapt });
const configFile = (dir: string): string => join(dir, ADAPTER_CONFIG);

const lora = rewrite(({ dir }, build) => {
  const loaded = loadAdapterFiles(dir);
  const { config, warnings } = parseLoraConfig(loaded.config, configFile(dir));
  if (pissaIterations(config.init_lora_weights) !== undefined) {
    // The residual base came from a randomized SVD whose draws are not saved: it cannot be rebuilt exactly.
    throw new PeftError(`${configFile(dir)}: init_lora_weights='${String(config.init_lora_weights)}' adapters need the residual base they were trained on; convert the adapter to plain LoRA first`);
  }
  const adapted = applyLora(build(), { ...config, lora_dropout: 0 });
  return { adapted: { ...adapted, params: assignAdapterWeights(adapted.params, loaded) }, warnings };
});

// No graph here has AdaLoRA's loss output, so its orthogonal regularization (a training term) is never added.
const ADALORA_NO_LOSS = 'adalora.inference_has_no_loss_output';

const VERA_PROJECTIONS = ['base_model.vera_A', 'base_model.vera_B'] as const;

/** The saved prompt_embeddings: a placeholder input of the training graph; chat bakes them into a key/value prefix. */
const promptLearning: MethodOpener = {
  kind: 'rewrite',
  adapt: ({ dir }, build) => {
    const loaded = readPromptLearningAdapter(dir);
    return { adapted: applyPromptEmbeddings(build({ virtualTokens: loaded.spec }), loaded), warnings: loaded.warnings };
  },
  generationGraph: async ({ dir, base }, session) => {
    const loaded = readPromptLearningAdapter(dir);
    return { graph: await promptAdapterGenerationGraph(base, loaded, session), warnings: loaded.warnings };
  },
};

/**
 * peft_type → how its folder opens. Delta-LoRA and LoRA-drop save plain PEFT LoRA folders (peft_type LORA; their
 * sidecars only serve resuming), so they open as LORA.
 */
export const METHOD_OPENERS: Readonly<Record<string, MethodOpener>> = {
  LORA: lora,
  ADALORA: rewrite(({ dir }, build) => {
    const loaded = loadAdapterFiles(dir);
    const { config, warnings } = parseAdaloraConfig(loaded.config, configFile(dir));
    const adapted = applyAdalora(build(), { ...config, lora_dropout: 0 }, { lossOutput: ADALORA_NO_LOSS });
    return { adapted: { ...adapted, params: assignAdaloraWeights(adapted.params, loaded) }, warnings };
  }),
  VERA: rewrite(({ dir }, build) => {
    const loaded = loadAdapterFiles(dir);
    const { config, warnings } = parseVeraConfig(loaded.config, configFile(dir));
    const [savedA, savedB] = VERA_PROJECTIONS.map((k) => loaded.tensors.get(k));
    if (config.save_projection && (!savedA || !savedB)) throw new PeftError(`${dir}: save_projection=true but ${ADAPTER_WEIGHTS} lacks '${VERA_PROJECTIONS[savedA ? 1 : 0]}'`);
    // Without saved projections they are regenerated from projection_prng_key, as PEFT does (the same bits).
    const projections = savedA && savedB ? { vera_A: savedA, vera_B: savedB } : undefined;
    const adapted = applyVera(build(), { ...config, vera_dropout: 0 }, projections ? { projections } : {});
    return { adapted: { ...adapted, params: assignSavedTensors(adapted.params, loaded, (k) => veraSavedKey(k, 'default'), new Set(VERA_PROJECTIONS)) }, warnings };
  }),
  LONGLORA: rewrite(({ dir }, build) => {
    const loaded = loadAdapterFiles(dir);
    const { config, warnings } = parseLongLoraConfig(loaded.config, configFile(dir));
    // S²-Attn is a training device: inference (and so evaluation here) attends in full, with the trained RoPE scaling.
    const adapted = applyLongLora(build(), { ...config, lora_dropout: 0 }, { attention: 'full' });
    return { adapted: { ...adapted, params: assignAdapterWeights(adapted.params, loaded) }, warnings };
  }),
  IA3: rewrite(({ dir, base }, build) => loadIa3Adapter(dir, build(), { modelType: base.config.modelType })),
  BOTTLENECK: rewrite(({ dir }, build) => loadBottleneckAdapter(dir, build())),
  ADAPTER_FUSION: rewrite(({ dir }, build) => loadAdapterFusion(dir, build(), { inference: true })),
  BITFIT: rewrite(({ dir }, build) => loadTensorAdapter(dir, build())),
  SELECTIVE: rewrite(({ dir }, build) => loadTensorAdapter(dir, build())),
  FULL: { kind: 'model', open: ({ dir, base }) => checkFitsBase(openHfFolder(dir), base, dir) },
  PROMPT_TUNING: promptLearning,
  P_TUNING: promptLearning,
  PREFIX_TUNING: promptLearning,
};

/** A fully fine-tuned model must be the base's architecture: every tensor of one present in the other, same shape. */
const checkFitsBase = (model: LoadedModel, base: LoadedModel, dir: string): LoadedModel => {
  for (const [name, w] of model.weights) {
    const b = base.weights.get(name);
    if (!b) throw new PeftError(`${dir}: tensor '${name}' of this fine-tuned model is not in the base model ${base.source} (a model of another architecture?)`);
    if (b.shape.join() !== w.shape.join()) {
      throw new PeftError(`${dir}: tensor '${name}' has shape [${w.shape.join(', ')}], the base model's is [${b.shape.join(', ')}] (a fine-tune of another base model?)`);
    }
  }
  const missing = [...base.weights.keys()].find((name) => !model.weights.has(name));
  if (missing) throw new PeftError(`${dir}: tensor '${missing}' of the base model ${base.source} is missing from this fine-tuned model`);
  return model;
};

/** peft_type of an adapter folder; 'FULL' for a Hugging Face model folder (what full fine-tuning saves). */
export const adapterPeftType = (dir: string): string => {
  const file = configFile(dir);
  if (existsSync(file)) {
    let peftType: unknown;
    try {
      peftType = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>).peft_type;
    } catch (err) {
      throw new PeftError(`${file}: malformed JSON (${(err as Error).message})`);
    }
    if (typeof peftType !== 'string') throw new PeftError(`${file}: peft_type is missing (or not a string), so the method is unknown`);
    return peftType;
  }
  if (existsSync(join(dir, 'config.json'))) return 'FULL';
  throw new PeftError(`${dir} is not a PEFT adapter folder: it has no ${ADAPTER_CONFIG} (nor the config.json of a fully fine-tuned model)`);
};

/** The table's entry for the folder; an unknown peft_type lists the supported ones. */
export const methodOpener = (dir: string): { readonly peftType: string; readonly opener: MethodOpener } => {
  const peftType = adapterPeftType(dir);
  const opener = METHOD_OPENERS[peftType];
  if (!opener) throw new PeftError(`${configFile(dir)}: peft_type '${peftType}' cannot be opened; supported: ${Object.keys(METHOD_OPENERS).join(', ')}`);
  return { peftType, opener };
};

/** A PeftError that does not say which folder it is about gets the folder in front. */
const naming = (dir: string, err: unknown): unknown =>
  err instanceof PeftError && !err.message.includes(dir) ? new PeftError(`${dir}: ${err.message}`) : err;

export interface AdapterGraph {
  readonly peftType: string;
  /** The model the graph runs: the base, or FULL's own. */
  readonly model: LoadedModel;
  /** `build`'s graph with the adapter applied; its `params` are inputs holding the saved values (feed them). */
  readonly graph: Graph;
  readonly params: readonly TrainableTensor[];
  readonly warnings: readonly string[];
}

/** The adapter in `dir` applied to `build`'s graph (training's loss graph for evaluation), its tensors as inputs. */
export const loadAdapterGraph = (base: LoadedModel, dir: string, build: GraphFactory): AdapterGraph => {
  const { peftType, opener } = methodOpener(dir);
  try {
    if (opener.kind === 'model') {
      const model = opener.open({ dir, base });
      return { peftType, model, graph: build(model, {}), params: [], warnings: [] };
    }
    const { adapted, warnings } = opener.adapt({ dir, base }, (o = {}) => build(base, o));
    return { peftType, model: base, graph: adapted.graph, params: adapted.params, warnings };
  } catch (err) {
    throw naming(dir, err);
  }
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

/** A KV-cache generation graph with an adapter in, and the model it runs on. */
export interface AdapterGenerationGraph {
  readonly peftType: string;
  readonly model: LoadedModel;
  /** Same inputs and outputs as buildGenerationGraph(model)'s. */
  readonly graph: Graph;
  readonly warnings: readonly string[];
}

const generationInputs = (model: LoadedModel): Set<string> =>
  new Set([GEN.inputIds, GEN.positionIds, GEN.mask, ...Array.from({ length: model.config.numLayers }, (_, l) => [GEN.pastKey(l), GEN.pastValue(l)]).flat()]);

/** The generation graph answering with the adapter in `dir` (a Generator or MultiAdapterGenerator.forGraph runs it). */
export const adapterGenerationGraph = async (base: LoadedModel, dir: string, session: SessionOptions = {}): Promise<AdapterGenerationGraph> => {
  const { peftType, opener } = methodOpener(dir);
  try {
    if (opener.kind === 'model') {
      const model = opener.open({ dir, base });
      return { peftType, model, graph: buildGenerationGraph(model), warnings: [] };
    }
    if (opener.generationGraph) return { peftType, model: base, ...(await opener.generationGraph({ dir, base }, session)) };
    const { adapted, warnings } = opener.adapt({ dir, base }, (o = {}) => buildGenerationGraph(base, o));
    const graph = bakeAdapterTensors(adapted);
    const fed = generationInputs(base);
    const extra = graph.inputs.map((id) => graph.value(id).name).filter((name) => !fed.has(name));
    if (extra.length) throw new PeftError(`${dir}: the ${peftType} rewrite needs runtime inputs a chat session does not feed: ${extra.join(', ')}`);
    return { peftType, model: base, graph, warnings };
  } catch (err) {
    throw naming(dir, err);
  }
};

export interface AdapterGenerator {
  readonly generator: Generator;
  readonly peftType: string;
  /** The adapter config's warnings (unknown fields, fields PEFT ignores). */
  readonly warnings: readonly string[];
}

/** A generator answering with the adapter in `dir` applied (use it with chat()); release its generator when done. */
export const openAdapterGenerator = async (model: LoadedModel, dir: string, session: SessionOptions = {}): Promise<AdapterGenerator> => {
  const opened = await adapterGenerationGraph(model, dir, session);
  return { generator: await Generator.create(opened.model, session, opened.graph), peftType: opened.peftType, warnings: opened.warnings };
};
