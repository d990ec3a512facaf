import type { GraphBuilder, Node, Tensor } from '../graph.ts';
import type { Attrs, DType, Shape, TensorType } from '../types.ts';

export interface InferCtx {
  readonly op: string;
  readonly node: string;
  /** Throws a ShapeError naming the op and node. */
  fail(detail: string): never;
}

/** What an op's ONNX emission can do; implemented by the emitter. */
export interface EmitCtx {
  readonly node: Node;
  /** ONNX value names of the node's inputs and outputs. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly inputTypes: readonly TensorType[];
  readonly outputTypes: readonly TensorType[];
  /** Adds an ONNX node. Attributes listed in `floats` are written as FLOAT, other numbers as INT. */
  add(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs?: Attrs,
    opts?: { readonly floats?: readonly string[]; readonly domain?: string },
  ): void;
  /** A fresh intermediate value name derived from the node name. */
  tmp(hint: string): string;
  /** The name of an int64 1-D constant. */
  int64s(values: readonly number[]): string;
  /** A scalar constant of the given dtype. */
  scalar(value: number, dtype: DType): string;
  /** An int64 1-D tensor holding `dims`, with symbolic dims read at run time from the graph inputs. */
  shape(dims: Shape): string;
}

export interface VjpCtx {
  readonly node: Node;
  readonly attrs: Attrs;
  readonly g: GraphBuilder;
  /** Forward inputs and outputs (recomputed copies under gradient checkpointing). */
  readonly x: readonly Tensor[];
  readonly y: readonly Tensor[];
  /** Gradient of the loss w.r.t. each output; undefined where nothing flows back. */
  readonly gy: readonly (Tensor | undefined)[];
  /** Whether the gradient of input i is wanted; rules skip work for the others. */
  readonly needs: readonly boolean[];
}

/**
 * One record per op: shape inference, ONNX emission and VJP.
 * A rule returns each input's gradient in the *output's broadcast shape*: the autodiff reduces it.
 */
export interface OpDef {
  readonly type: string;
  infer(inputs: readonly TensorType[], attrs: Attrs, ctx: InferCtx): TensorType[];
  /** Default: one ONNX node of type `onnxType ?? type` with the IR attrs (minus `irOnlyAttrs`). */
  emit?(e: EmitCtx): void;
  readonly onnxType?: string;
  readonly domain?: string;
  readonly floatAttrs?: readonly string[];
  readonly irOnlyAttrs?: readonly string[];
  /** Absent: the op is not differentiable (gradients stop here; e.g. comparisons, shapes, integer math). */
  vjp?(ctx: VjpCtx): (Tensor | undefined)[];
}

const registry = new Map<string, OpDef>();

export const registerOp = (def: OpDef): OpDef => {
  if (registry.has(def.type)) throw new Error(`op '${def.type}' is registered twice`);
  registry.set(def.type, def);
  return def;
};

export const getOp = (type: string): OpDef => {
  const def = registry.get(type);
  if (!def) throw new Error(`unknown op '${type}' (import main/engine/ir to register the op set)`);
  return def;
};

export const registeredOps = (): readonly OpDef[] => [...registry.values()];
