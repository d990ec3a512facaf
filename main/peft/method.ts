// A PEFT method = a validated config (PEFT's field names) + a pure Graph → Graph rewrite that adds the method's
// trainable tensors as graph inputs (with their initial values) + the mapping to PEFT's saved keys + optional
// optimizer groups and step hooks. Methods find what to adapt by HF module names; they never import a model.
import type { Graph } from '../engine/ir/index.ts';

/** A tensor the method trains: a graph input, its initial value, and what it is for. */
export interface TrainableTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
  /** The HF module it adapts (e.g. `model.layers.3.self_attn.q_proj`); '' for model-wide tensors. */
  readonly module: string;
  /** Its part in the method (`lora_A`, `lora_B`, `lora_magnitude_vector`, `vera_lambda_d`, `bias`, ...). */
  readonly role: string;
}

/** Frozen tensors a method adds (VeRA's shared projections): inline initializers, saved when PEFT saves them. */
export interface FrozenTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface AdaptedGraph {
  readonly graph: Graph;
  readonly params: readonly TrainableTensor[];
  readonly frozen?: readonly FrozenTensor[];
  /** Adapted module names with per-module details (rank, scale, ...). */
  readonly modules: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

export interface ApplyOptions {
  /** PEFT's adapter name, part of each parameter's in-memory key. */
  readonly adapterName?: string;
  /** Seed of random initial values. */
  readonly seed?: number;
}

export interface ParsedConfig<C> {
  readonly config: C;
  /** Unknown fields (e.g. from a newer PEFT): ignored, reported. */
  readonly warnings: readonly string[];
}

/** An optimizer group over some of the method's tensors (LoRA+ gives B matrices a larger lr). */
export interface ParamGroupSpec {
  readonly name: string;
  readonly params: readonly string[];
  readonly lrScale?: number;
  readonly weightDecay?: number;
}

export interface PeftMethod<C extends { readonly peft_type: string } = { readonly peft_type: string }> {
  /** PEFT's peft_type (LORA, VERA, ADALORA, ...), or our own name where PEFT lacks the method. */
  readonly peftType: string;
  readonly label: string;
  parseConfig(raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<C>;
  apply(graph: Graph, config: C, o?: ApplyOptions): AdaptedGraph;
  /** In-memory key → key in adapter_model.safetensors. */
  savedKey(key: string, adapter: string): string;
  paramGroups?(params: readonly TrainableTensor[], config: C): ParamGroupSpec[];
}
