import { Graph, GraphBuilder, type Tensor } from '../ir/graph.ts';
import { cast } from '../ir/ops/shape-ops.ts';
import type { Attrs, DType } from '../ir/types.ts';

/**
 * Ops kept in float32 under mixed precision (as PyTorch autocast keeps them): their results feed
 * normalizations, softmax and the loss, where float16's range and precision are not enough.
 */
export const FLOAT32_OPS: ReadonlySet<string> = new Set([
  'Softmax', 'LogSoftmax', 'ReduceSum', 'ReduceMean', 'ReduceMax', 'Exp', 'Log', 'Pow', 'Sqrt', 'Reciprocal', 'Erf',
]);

const DTYPE_ATTRS = ['to', 'dtype'] as const;

export interface MixedPrecisionOptions {
  /** Compute dtype of everything outside FLOAT32_OPS. */
  readonly compute?: 'float16';
  readonly float32Ops?: ReadonlySet<string>;
}

/**
 * Graph → Graph: float32 compute becomes float16, except FLOAT32_OPS. Graph inputs (trainable master weights,
 * batches) and outputs keep their float32 dtype; casts sit at the boundary, so the autodiff applied afterwards
 * yields float32 gradients for float32 inputs. Initializers are cast in-graph (ORT folds the casts once).
 */
export const toMixedPrecision = (graph: Graph, o: MixedPrecisionOptions = {}): Graph => {
  const low: DType = o.compute ?? 'float16';
  const keep32 = o.float32Ops ?? FLOAT32_OPS;
  const boundary = new Set([...graph.inputs, ...graph.initializers.keys()]);
  const values = new Map([...graph.values].filter(([id]) => boundary.has(id)));
  const src = GraphBuilder.from(new Graph(values, [], graph.inputs, [], graph.initializers));
  // value id → tensor in the new graph, per dtype
  const versions = new Map<number, Map<DType, Tensor>>();
  const put = (id: number, t: Tensor): void => {
    const m = versions.get(id) ?? new Map<DType, Tensor>();
    m.set(t.dtype, t);
    versions.set(id, m);
  };
  const as = (id: number, dtype: DType): Tensor => {
    const m = versions.get(id)!;
    const hit = m.get(dtype);
    if (hit) return hit;
    const any = [...m.values()][0]!;
    if (any.dtype !== 'float32' && any.dtype !== low) return any;
    const t = src.scope(`${graph.value(id).name}.as_${dtype}`, () => cast(any, dtype));
    m.set(dtype, t);
    return t;
  };
  for (const id of [...graph.inputs, ...graph.initializers.keys()]) put(id, src.tensor(id));
  const outputs = new Set(graph.outputs);

  for (const node of graph.nodes) {
    const target: DType = keep32.has(node.op) ? 'float32' : low;
    const inputs = node.inputs.map((id) => {
      const original = graph.value(id).type.dtype;
      return original === 'float32' ? as(id, target) : as(id, original);
    });
    const attrs: Record<string, unknown> = { ...node.attrs };
    for (const k of DTYPE_ATTRS) if (attrs[k] === 'float32') attrs[k] = target;
    // A float32 graph output computed in float16 leaves its name to the cast back to float32.
    const renamed = target !== 'float32' && node.outputs.some((id) => outputs.has(id) && graph.value(id).type.dtype === 'float32');
    const name = renamed ? `${node.name}.${target}` : node.name;
    const outs = src.inBlock(node.block, () => src.apply(node.op, inputs, attrs as Attrs, { name }));
    node.outputs.forEach((id, k) => put(id, outs[k]!));
  }
  for (const id of graph.outputs) {
    const v = graph.value(id);
    src.output(as(id, v.type.dtype), v.name);
  }
  return src.build();
};
