// What PEFT's prompt-learning methods (prompt tuning, P-tuning, prefix tuning) share. A model graph built for them
// declares one placeholder input holding the virtual tokens (VIRTUAL_TOKEN_INPUTS; models/prompt-learning.ts says how
// the decoder sees them); a method's rewrite replaces that input by its computation from the trainable tensors, so
// the method stays a pure Graph → Graph rewrite that never imports a model. PEFT saves one tensor for all three,
// `prompt_embeddings` (V, width): what the encoder produces, which is also what PEFT loads in inference mode.
// One difference from PEFT's loss: with virtual tokens in front, PEFT also trains the last virtual token to predict
// an example's first token when that token carries a label; our batches never form a target before an example's first
// token (batch.ts), so that one target per example is left out (chat data masks the prompt, so it rarely matters).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, reshape, type GraphBuilder, type Tensor } from '../engine/ir/index.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { writeSafetensors } from '../engine/io/safetensors.ts';
import { type FieldFail, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles } from './peft-io.ts';

export const PROMPT_LEARNING_TYPES = ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING'] as const;
export type PromptLearningType = (typeof PROMPT_LEARNING_TYPES)[number];

/** Placeholder graph inputs, replaced by a method's rewrite. */
export const VIRTUAL_TOKEN_INPUTS = {
  /** (V, C), or (K, V, C) for K ensembled prompts: virtual input embeddings (prompt tuning, P-tuning). */
  embeddings: 'virtual_tokens.embeddings',
  /** (V, L, 2, Hkv, D): each layer's keys and values of the virtual tokens (prefix tuning). */
  keyValues: 'virtual_tokens.key_values',
} as const;

/** How a method's virtual tokens enter the model: a graph builder's `virtualTokens` option. */
export interface VirtualTokenSpec {
  readonly kind: keyof typeof VIRTUAL_TOKEN_INPUTS;
  readonly count: number;
  /** Prompt ensembles: K prompts, row b of a batch using prompt b mod K. */
  readonly prompts?: number;
}

/** The model sizes the prompt-learning methods need (a ModelConfig has them). */
export interface PromptModelDims {
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/** For graph builders: the placeholder input, as the decoder's `virtualTokens` option wants it. */
export const virtualTokenInput = (g: GraphBuilder, dims: PromptModelDims, spec: VirtualTokenSpec): { embeddings: Tensor } | { keyValues: Tensor } => {
  if (!(Number.isInteger(spec.count) && spec.count > 0)) throw new PeftError(`virtual tokens: count ${spec.count} must be a positive integer`);
  if (spec.kind === 'embeddings') {
    const K = spec.prompts ?? 1;
    return { embeddings: g.input(VIRTUAL_TOKEN_INPUTS.embeddings, 'float32', K > 1 ? [K, spec.count, dims.hiddenSize] : [spec.count, dims.hiddenSize]) };
  }
  return { keyValues: g.input(VIRTUAL_TOKEN_INPUTS.keyValues, 'float32', [spec.count, dims.numLayers, 2, dims.numKvHeads, dims.headDim]) };
};

/**
 * A prompt-learning method: its graph must be built with virtualTokens(config) (buildTrainingGraph's and
 * buildGenerationGraph's option), and it saves as PEFT does, from the trained tensors and the model's sizes.
 * Rows may be packed: every packed example sees the virtual tokens and its positions start at V.
 */
export interface PromptLearningMethod<C extends { readonly peft_type: string }, O extends ApplyOptions = ApplyOptions> extends PeftMethod<C> {
  apply(graph: Graph, config: C, o?: O): AdaptedGraph;
  virtualTokens(config: C): VirtualTokenSpec;
  saveAdapter(dir: string, config: C, params: readonly TrainableTensor[], dims: PromptModelDims, o?: ApplyOptions): void;
}

/** Fields every prompt-learning config has (PEFT's PromptLearningConfig); PEFT fills the model's sizes in at creation. */
export interface PromptLearningFields {
  readonly num_virtual_tokens: number;
  readonly token_dim?: number | null;
  readonly num_transformer_submodules?: number | null;
  readonly num_attention_heads?: number | null;
  readonly num_layers?: number | null;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

const COMMON_FIELDS = ['peft_type', 'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers', 'modules_to_save'];

const positiveOrNull = (c: Readonly<Record<string, unknown>>, field: string, fail: FieldFail): void => {
  const v = c[field];
  if (v !== undefined && v !== null && !(Number.isInteger(v) && (v as number) > 0)) fail(field, 'must be a positive integer or null');
};

/** Checks the shared fields; returns the unknown-field warnings for `ownFields` + the shared ones. */
export const checkPromptLearningFields = (c: Readonly<Record<string, unknown>>, fail: FieldFail, ownFields: readonly string[], where: string): string[] => {
  if (!(Number.isInteger(c.num_virtual_tokens) && (c.num_virtual_tokens as number) > 0)) fail('num_virtual_tokens', 'must be a positive integer');
  for (const f of ['token_dim', 'num_attention_heads', 'num_layers', 'num_transformer_submodules']) positiveOrNull(c, f, fail);
  if (c.num_transformer_submodules !== undefined && c.num_transformer_submodules !== null && c.num_transformer_submodules !== 1) {
    fail('num_transformer_submodules', 'must be 1: decoder-only models have one transformer (2 is for encoder-decoder models)');
  }
  if (c.task_type !== undefined && c.task_type !== null && c.task_type !== 'CAUSAL_LM') fail('task_type', "must be 'CAUSAL_LM' (or null): only causal LMs are supported");
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) fail('modules_to_save', 'is not available for prompt learning');
  return unknownFieldWarnings(c, [...COMMON_FIELDS, ...ownFields], where);
};

/** PEFT's in-memory key of a prompt encoder tensor (`prompt_encoder.<adapter>.<part>`). */
export const promptEncoderKey = (adapter: string, part: string): string => `prompt_encoder.${adapter}.${part}`;

/** The method's own tensors are saved as one computed tensor; only a bare embedding maps to it key for key. */
export const promptLearningSavedKey = (key: string, adapter: string): string =>
  key === promptEncoderKey(adapter, 'embedding.weight') ? 'prompt_embeddings' : key;

export const trainable = (name: string, shape: readonly number[], data: Float32Array, role: string): TrainableTensor => ({ name, shape, data, module: '', role });

export interface Substitution {
  readonly graph: Graph;
  /** The placeholder's shape: (V, C), (K, V, C) or (V, L, 2, Hkv, D). */
  readonly shape: readonly number[];
}

/**
 * Replaces the placeholder input `kind` by what `build` computes (from trainable inputs it declares), and drops it
 * from the graph's inputs. `build` runs once, when the first consumer is rebuilt, outside any recompute block.
 */
export const substituteVirtualTokens = (
  graph: Graph,
  kind: VirtualTokenSpec['kind'],
  method: string,
  build: (g: GraphBuilder, shape: readonly number[]) => Tensor,
): Graph => {
  const name = VIRTUAL_TOKEN_INPUTS[kind];
  if (!graph.has(name) || !graph.inputs.includes(graph.idOf(name))) {
    throw new PeftError(`${method} needs a model graph built with virtual ${kind} (the graph builder's virtualTokens option, from the method's virtualTokens(config)); this graph has no '${name}' input`);
  }
  const id = graph.idOf(name);
  const shape = graph.value(id).type.shape as number[];
  let replacement: Tensor | undefined;
  const rewritten = rewriteGraph(graph, (node, ctx) => {
    if (!node.inputs.includes(id)) return undefined;
    replacement ??= ctx.b.inBlock(undefined, () => build(ctx.b, shape));
    const inputs = node.inputs.map((x, i) => (x === id ? replacement! : ctx.inputs[i]!));
    return ctx.b.apply(node.op, inputs, node.attrs, { name: node.name });
  });
  const values = new Map([...rewritten.values].filter(([v]) => v !== id));
  return new Graph(values, rewritten.nodes, rewritten.inputs.filter((v) => v !== id), rewritten.outputs, rewritten.initializers);
};

/** (V, L·2·Hkv·D) in PEFT's layout → the placeholder's (V, L, 2, Hkv, D). */
export const asKeyValues = (flat: Tensor, shape: readonly number[]): Tensor => reshape(flat, shape as number[], 'as_key_values');

// --- adapter files ---

/** Writes adapter_config.json (PEFT's fields, inference_mode true) and adapter_model.safetensors {prompt_embeddings}. */
export const writePromptEmbeddings = (dir: string, config: Readonly<Record<string, unknown>>, embeddings: { readonly shape: readonly number[]; readonly data: Float32Array }): void => {
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), { prompt_embeddings: embeddings });
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

/** The fields PEFT writes into every prompt-learning adapter_config.json besides the method's own. */
export const savedCommonFields = (c: PromptLearningFields, sizes: { token_dim: number; num_attention_heads: number; num_layers: number }) => ({
  auto_mapping: null,
  base_model_name_or_path: c.base_model_name_or_path ?? null,
  inference_mode: true,
  modules_to_save: null,
  num_attention_heads: sizes.num_attention_heads,
  num_layers: sizes.num_layers,
  num_transformer_submodules: 1,
  num_virtual_tokens: c.num_virtual_tokens,
  revision: null,
  task_type: 'CAUSAL_LM',
  token_dim: sizes.token_dim,
});

export interface LoadedPromptAdapter {
  readonly peftType: PromptLearningType;
  readonly config: Record<string, unknown>;
  readonly warnings: readonly string[];
  /** `prompt_embeddings` (V, width): virtual embeddings (prompt tuning, P-tuning) or key/values (prefix tuning). */
  readonly embeddings: { readonly shape: readonly number[]; readonly data: Float32Array };
  /** How the graph must be built to take it. */
  readonly spec: VirtualTokenSpec;
}

/** Reads a PEFT prompt-learning adapter folder; `parse` is the method's config parser (for its checks and warnings). */
export const readPromptAdapter = (
  dir: string,
  parse: (peftType: PromptLearningType, raw: Record<string, unknown>, where: string) => { readonly warnings: readonly string[] },
): LoadedPromptAdapter => {
  const loaded = loadAdapterFiles(dir);
  const where = join(dir, ADAPTER_CONFIG);
  const peftType = loaded.config.peft_type as PromptLearningType;
  if (!PROMPT_LEARNING_TYPES.includes(peftType)) throw new PeftError(`${where}: peft_type ${JSON.stringify(peftType)} is not a prompt-learning method (${PROMPT_LEARNING_TYPES.join(', ')})`);
  const { warnings } = parse(peftType, loaded.config, where);
  const extra = [...loaded.tensors.keys()].filter((k) => k !== 'prompt_embeddings');
  if (extra.length) throw new PeftError(`${dir}: tensor '${extra[0]}' has no place in a ${peftType} adapter (it holds prompt_embeddings only)`);
  const t = loaded.tensors.get('prompt_embeddings');
  if (!t) throw new PeftError(`${dir}: tensor 'prompt_embeddings' is missing from ${ADAPTER_WEIGHTS}`);
  const V = Number(loaded.config.num_virtual_tokens);
  if (t.shape.length !== 2 || t.shape[0] !== V) {
    throw new PeftError(`${dir}: tensor 'prompt_embeddings' has shape [${t.shape.join(', ')}], num_virtual_tokens=${V} needs [${V}, width]`);
  }
  return { peftType, config: loaded.config, warnings, embeddings: t, spec: { kind: peftType === 'PREFIX_TUNING' ? 'keyValues' : 'embeddings', count: V } };
};

/**
 * A loaded adapter on a graph built with `loaded.spec`, as PEFT runs it in inference mode: `prompt_embeddings` is the
 * one trainable tensor (`prompt_encoder.<adapter>.embedding.weight`), fed to the placeholder as it is.
 */
export const applyPromptEmbeddings = (graph: Graph, loaded: LoadedPromptAdapter, adapter = 'default'): AdaptedGraph => {
  const { shape, data } = loaded.embeddings;
  const param = trainable(promptEncoderKey(adapter, 'embedding.weight'), shape, Float32Array.from(data), 'prompt_embeddings');
  const adapted = substituteVirtualTokens(graph, loaded.spec.kind, loaded.peftType, (g, want) => {
    const width = want.slice(1).reduce((a, b) => a * b, 1);
    if (want[0] !== shape[0] || width !== shape[1]) {
      throw new PeftError(`${loaded.peftType} adapter: 'prompt_embeddings' [${shape.join(', ')}] does not fit this model, which needs [${want[0]}, ${width}] (an adapter for another base model?)`);
    }
    const t = g.input(param.name, 'float32', shape);
    return loaded.spec.kind === 'keyValues' ? asKeyValues(t, want) : t;
  });
  return { graph: adapted, params: [param], modules: new Map([['prompt_encoder', { num_virtual_tokens: shape[0]! }]]) };
};
