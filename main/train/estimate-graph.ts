// What one forward+backward run of a gradient graph costs inside onnxruntime, found by walking the graph with concrete
// sizes: matmul FLOPs (forward, backward, recomputation), the bytes every other op reads and writes, and the peak of
// the intermediate tensors alive at once when the nodes run in the order ORT's CPU session runs them. Pure: no ORT.
import { isStatic, type Dim, type Graph, type Node } from '../engine/ir/index.ts';
import { dtypeByteSize } from '../engine/ir/types.ts';

export class EstimateError extends Error {
  override readonly name = 'EstimateError';
}

/** Values for the graph's symbolic dims (`batch`, `seq`, `targets`, …). */
export type DimValues = Readonly<Record<string, number>>;

/** The value of a dim such as `2*batch*seq`, `(seq-1)` or `(past+seq)`. */
export const evalDim = (d: Dim, values: DimValues): number => {
  if (typeof d === 'number') return d;
  const expr = d.replace(/\s+/g, '');
  const split = (s: string, separators: string): string[] => {
    const parts: string[] = [];
    let depth = 0;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s[i]!;
      if (c === '(') depth++;
      else if (c === ')') depth--;
      else if (depth === 0 && separators.includes(c) && i > start) {
        parts.push(s.slice(start, i));
        start = i;
      }
    }
    parts.push(s.slice(start));
    return parts;
  };
  const term = (s: string): number => {
    if (/^\d+$/.test(s)) return Number(s);
    if (s.startsWith('(') && s.endsWith(')')) return sum(s.slice(1, -1));
    const v = values[s];
    if (v === undefined) throw new EstimateError(`the graph has a dim '${s}' (in '${d}') with no value; known: ${Object.keys(values).join(', ')}`);
    return v;
  };
  const product = (s: string): number => split(s, '*').reduce((p, f) => p * term(f.replace(/^\*/, '')), 1);
  const sum = (s: string): number =>
    split(s, '+-').reduce((acc, part) => (part.startsWith('-') ? acc - product(part.slice(1)) : acc + product(part.replace(/^\+/, ''))), 0);
  return sum(expr);
};

/** Ops whose output is a view of their input in ORT (no new buffer). */
const ALIAS_OPS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Identity', 'Flatten', 'StopGradient']);
const MATMUL_OPS = new Set(['MatMul', 'Gemm', 'MatMulNBits', 'MatMulBnb4']);

export interface GraphCost {
  /** 2·M·N·K of every matmul, by the pass it belongs to. */
  readonly matmulFlops: { readonly forward: number; readonly backward: number; readonly recompute: number };
  /** Bytes read and written by the ops that are not matmuls or views (memory-bound work). */
  readonly otherBytes: number;
  /** Nodes ORT runs (views and constant-folded nodes left out). */
  readonly computeNodes: number;
  /** Peak bytes of intermediate tensors (and outputs) alive at once, in ORT's execution order. */
  readonly peakBytes: number;
  /** Of peakBytes, the tensors with a vocabulary-sized dim (the LM head's logits at loss positions and their gradient). */
  readonly peakLogitsBytes: number;
}

export interface GraphCostOptions {
  readonly dims: DimValues;
  /** Nodes [0, forwardNodes) are the forward pass; later ones belong to the backward (or, named `.recompute`, recompute). */
  readonly forwardNodes: number;
  readonly vocabSize: number;
}

/**
 * The order ORT's sequential CPU executor runs the nodes in: a reverse depth-first walk from the leaves (nodes whose
 * outputs nobody reads) that visits a node's producers lowest index first and emits each node after its inputs. ORT
 * drops an Identity that only names a graph output, so its producer is the leaf. Measured through ORT's profiler on
 * SmolLM2: the walk starts from the last leaf, so the main chain of the backward runs first and the weight-gradient
 * matmuls of every layer run at the very end, keeping their inputs alive until then.
 */
export const ortExecutionOrder = (graph: Graph): Node[] => {
  const nodes = graph.nodes;
  const producerIndex = new Map<number, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => producerIndex.set(o, i)));
  const consumerCount = new Array<number>(nodes.length).fill(0);
  const producersOf = nodes.map((n) => [...new Set(n.inputs.map((v) => producerIndex.get(v)).filter((p): p is number => p !== undefined))]);
  producersOf.forEach((ps) => ps.forEach((p) => consumerCount[p]!++));
  const graphOutputs = new Set(graph.outputs);
  const namesOutputOnly = (i: number): boolean => {
    const n = nodes[i]!;
    const p = producerIndex.get(n.inputs[0] ?? -1);
    return n.op === 'Identity' && n.outputs.every((o) => graphOutputs.has(o)) && p !== undefined && consumerCount[p] === 1 && !graphOutputs.has(n.inputs[0]!);
  };
  const dropped = new Set<number>();
  for (let i = 0; i < nodes.length; i++) {
    if (!namesOutputOnly(i)) continue;
    dropped.add(i);
    consumerCount[producerIndex.get(nodes[i]!.inputs[0]!)!]!--;
  }
  const visited = new Uint8Array(nodes.length);
  const order: number[] = [];
  const stack: (readonly [number, boolean])[] = [];
  for (let i = 0; i < nodes.length; i++) if (consumerCount[i] === 0 && !dropped.has(i)) stack.push([i, false]);
  while (stack.length > 0) {
    const [i, done] = stack.pop()!;
    if (done) {
      order.push(i);
      continue;
    }
    if (visited[i]) continue;
    visited[i] = 1;
    stack.push([i, true]);
    for (const p of [...producersOf[i]!].sort((a, b) => b - a)) if (!visited[p]) stack.push([p, false]);
  }
  // Dropped Identity nodes still hand their value out: run them last.
  for (const i of dropped) if (!visited[i]) order.push(i);
  return order.map((i) => nodes[i]!);
};

/** Walks the gradient graph once with concrete dims: FLOPs, other bytes, and the live-tensor peak in ORT's order. */
export const graphCost = (graph: Graph, o: GraphCostOptions): GraphCost => {
  const { dims, vocabSize } = o;
  const bytesCache = new Map<number, number>();
  const bytesOf = (id: number): number => {
    let b = bytesCache.get(id);
    if (b === undefined) {
      const t = graph.value(id).type;
      b = t.shape.reduce<number>((p, d) => p * evalDim(d, dims), 1) * dtypeByteSize(t.dtype);
      bytesCache.set(id, b);
    }
    return b;
  };
  const isLogits = (id: number): boolean => graph.value(id).type.shape.some((d) => d === vocabSize) && !graph.initializers.has(id);

  // ORT folds nodes that only depend on initializers (a bf16 weight's cast, a constant's reshape) once at load.
  const constant = new Set<number>(graph.initializers.keys());
  const fed = new Set(graph.inputs);
  for (const n of graph.nodes) {
    const folds = n.inputs.every((i) => constant.has(i)) && n.outputs.every((out) => isStatic(graph.value(out).type.shape));
    if (folds) n.outputs.forEach((out) => constant.add(out));
  }

  const flops = { forward: 0, backward: 0, recompute: 0 };
  let otherBytes = 0;
  let computeNodes = 0;
  const forwardIds = new Set(graph.nodes.slice(0, o.forwardNodes).map((n) => n.id));
  for (const n of graph.nodes) {
    if (n.outputs.every((out) => constant.has(out)) || ALIAS_OPS.has(n.op)) continue;
    computeNodes++;
    const f = MATMUL_OPS.has(n.op) ? matmulFlops(graph, n, bytesOf, dims) : undefined;
    if (f === undefined) {
      for (const v of [...n.inputs, ...n.outputs]) if (!constant.has(v)) otherBytes += bytesOf(v);
    } else if (forwardIds.has(n.id)) flops.forward += f;
    else if (n.name.includes('.recompute.')) flops.recompute += f;
    else flops.backward += f;
  }

  // Liveness in ORT's order: a buffer lives from its producer until its last reader; views share their input's.
  const order = ortExecutionOrder(graph);
  const lastUse = new Map<number, number>();
  order.forEach((n, step) => n.inputs.forEach((v) => lastUse.set(v, step)));
  for (const out of graph.outputs) lastUse.set(out, Infinity);
  const bufferOf = new Map<number, number>();
  const holders = new Map<number, number>();
  let live = 0;
  let liveLogits = 0;
  let peak = 0;
  let peakLogits = 0;
  order.forEach((n, step) => {
    if (n.outputs.every((out) => constant.has(out))) return;
    n.outputs.forEach((out, k) => {
      const source = n.inputs[0];
      if (ALIAS_OPS.has(n.op) && k === 0 && source !== undefined && bufferOf.has(source)) {
        const buffer = bufferOf.get(source)!;
        bufferOf.set(out, buffer);
        holders.set(buffer, holders.get(buffer)! + 1);
        return;
      }
      if (ALIAS_OPS.has(n.op) && (source === undefined || fed.has(source) || constant.has(source))) return;
      bufferOf.set(out, out);
      holders.set(out, 1);
      live += bytesOf(out);
      if (isLogits(out)) liveLogits += bytesOf(out);
    });
    if (live > peak) [peak, peakLogits] = [live, liveLogits];
    for (const v of new Set([...n.inputs, ...n.outputs])) {
      const buffer = bufferOf.get(v);
      if (buffer === undefined || (lastUse.get(v) ?? -1) > step) continue;
      bufferOf.delete(v);
      const left = holders.get(buffer)! - 1;
      holders.set(buffer, left);
      if (left > 0) continue;
      holders.delete(buffer);
      live -= bytesOf(buffer);
      if (isLogits(buffer)) liveLogits -= bytesOf(buffer);
    }
  });
  return { matmulFlops: flops, otherBytes, computeNodes, peakBytes: peak, peakLogitsBytes: peakLogits };
};

/** 2·M·N·K (times any batch dims) of a matmul node, from its output's element count and its inner dim. */
const matmulFlops = (graph: Graph, n: Node, bytesOf: (id: number) => number, dims: DimValues): number => {
  const out = graph.value(n.outputs[0]!).type;
  const outElements = bytesOf(n.outputs[0]!) / dtypeByteSize(out.dtype);
  const a = graph.value(n.inputs[0]!).type.shape;
  let inner: number;
  if (n.op === 'Gemm') inner = evalDim(n.attrs.transA ? a[0]! : a[1]!, dims);
  else if (n.op === 'MatMul') inner = evalDim(a[a.length - 1]!, dims);
  else inner = Number(n.attrs.K ?? n.attrs.k ?? evalDim(a[a.length - 1]!, dims));
  return 2 * outElements * inner;
};
