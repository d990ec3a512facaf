// Importing the IR's index registers the whole op set, which any graph given here may use.
import {
  Graph,
  GraphBuilder,
  add,
  broadcastAxes,
  cast,
  dimEq,
  getOp,
  isFloat,
  mul,
  reduceSum,
  reshape,
  scalarLike,
  shapeStr,
  squeeze,
  zeros,
  type Node,
  type Shape,
  type Tensor,
  type VjpCtx,
} from '../ir/index.ts';

export interface GradientOptions {
  /** Name of a scalar value to differentiate. */
  readonly loss: string;
  /** Names of the tensors to differentiate with respect to (trainable inputs); nothing else gets a gradient. */
  readonly wrt: readonly string[];
  /** Name of a scalar graph input that seeds d loss (dynamic loss scaling); the seed is 1 without it. */
  readonly lossScale?: string;
  /** Gradient checkpointing: recompute each block's forward in the backward pass instead of keeping it. */
  readonly recompute?: boolean;
  /** Output name of each gradient; `<name>.grad` by default. */
  readonly gradName?: (name: string) => string;
}

export interface GradientGraph {
  readonly graph: Graph;
  /** wrt name → gradient output name. */
  readonly grads: ReadonlyMap<string, string>;
}

export class AutodiffError extends Error {
  override readonly name = 'AutodiffError';
}

/** Sums a gradient over the axes its input was broadcast along, back to the input's shape. */
const reduceTo = (grad: Tensor, shape: Shape): Tensor => {
  if (grad.rank === shape.length && grad.shape.every((d, i) => dimEq(d, shape[i]!))) return grad;
  const { axes, keepRank } = broadcastAxes(shape, grad.shape);
  let out = axes.length > 0 ? reduceSum(grad, axes) : grad;
  if (keepRank > 0) out = squeeze(out, [...Array(keepRank).keys()]);
  if (!out.shape.every((d, i) => dimEq(d, shape[i]!))) out = reshape(out, shape);
  return out;
};

const sumAll = (terms: readonly Tensor[]): Tensor => terms.slice(1).reduce((acc, t) => add(acc, t), terms[0]!);

/**
 * Reverse-mode differentiation of `loss` w.r.t. `wrt`: returns a new graph (the input graph is untouched)
 * whose outputs are the original outputs plus one gradient per `wrt` tensor. Nodes are visited in a
 * reverse topological order by iteration (no recursion), so depth is unbounded.
 */
export const gradients = (graph: Graph, o: GradientOptions): GradientGraph => {
  const b = GraphBuilder.from(graph);
  const lossId = graph.idOf(o.loss);
  const loss = graph.value(lossId);
  if (!loss.type.shape.every((d) => d === 1)) {
    throw new AutodiffError(`loss '${o.loss}' must be a scalar, got ${shapeStr(loss.type.shape)}`);
  }
  const wrtIds = o.wrt.map((n) => graph.idOf(n));
  for (const id of wrtIds) {
    const v = graph.value(id);
    if (!isFloat(v.type.dtype)) throw new AutodiffError(`cannot differentiate w.r.t. '${v.name}' of dtype ${v.type.dtype}`);
  }

  // Values that depend on a wrt tensor through differentiable ops.
  const varying = new Set(wrtIds);
  for (const n of graph.nodes) {
    if (getOp(n.op).vjp && n.inputs.some((i) => varying.has(i))) for (const out of n.outputs) varying.add(out);
  }
  // Values the loss depends on.
  const useful = new Set([lossId]);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (n.outputs.some((out) => useful.has(out))) for (const inp of n.inputs) useful.add(inp);
  }
  const active = graph.nodes.filter((n) => n.outputs.some((out) => varying.has(out) && useful.has(out)));

  const contributions = new Map<number, Tensor[]>();
  const contribute = (id: number, t: Tensor): void => {
    const list = contributions.get(id);
    if (list) list.push(t);
    else contributions.set(id, [t]);
  };
  const lossTensor = b.tensor(lossId);
  const seed = o.lossScale ? cast(b.tensorByName(o.lossScale), lossTensor.dtype) : scalarLike(lossTensor, 1);
  contribute(lossId, lossTensor.rank === 0 ? seed : reshape(seed, loss.type.shape));

  const recompute = o.recompute ? new Recomputer(graph, b) : undefined;
  for (let i = active.length - 1; i >= 0; i--) {
    const node = active[i]!;
    const gy = node.outputs.map((out) => {
      const terms = contributions.get(out);
      return terms ? sumAll(terms) : undefined;
    });
    if (gy.every((t) => t === undefined)) continue;
    const firstGy = gy.find((t) => t !== undefined)!;
    const view = (id: number): Tensor => recompute?.value(node, id, firstGy) ?? b.tensor(id);
    const needs = node.inputs.map((id) => varying.has(id));
    const ctx: VjpCtx = {
      node,
      attrs: node.attrs,
      g: b,
      x: node.inputs.map(view),
      y: node.outputs.map(view),
      gy,
      needs,
    };
    const grads = b.scope(`${node.name}.grad`, () => b.inBlock(undefined, () => getOp(node.op).vjp!(ctx)));
    node.inputs.forEach((id, k) => {
      const grad = grads[k];
      if (!needs[k] || !grad) return;
      const shape = graph.value(id).type.shape;
      contribute(id, b.scope(`${node.name}.grad`, () => reduceTo(grad, shape)));
    });
  }

  const gradName = o.gradName ?? ((n: string) => `${n}.grad`);
  const grads = new Map<string, string>();
  for (const id of wrtIds) {
    const v = graph.value(id);
    const terms = contributions.get(id);
    const total = terms ? sumAll(terms) : zeros(b.tensor(id), v.type.dtype, v.type.shape);
    grads.set(v.name, b.output(total, gradName(v.name)).name);
  }
  return { graph: b.build(), grads };
};

/**
 * Gradient checkpointing: the backward of a block reads a recomputed copy of the block's forward. The copy's
 * inputs are tied to a gradient that reaches the block, so the runtime cannot schedule it early and the
 * block's original activations die right after the forward.
 */
class Recomputer {
  private readonly copies = new Map<string, Map<number, Tensor>>();
  private readonly blockNodes = new Map<string, Node[]>();

  constructor(
    graph: Graph,
    private readonly b: GraphBuilder,
  ) {
    for (const n of graph.nodes) {
      if (n.block === undefined) continue;
      const list = this.blockNodes.get(n.block);
      if (list) list.push(n);
      else this.blockNodes.set(n.block, [n]);
    }
  }

  value(node: Node, id: number, gate: Tensor): Tensor | undefined {
    if (node.block === undefined) return undefined;
    let copy = this.copies.get(node.block);
    if (!copy) {
      copy = this.replay(node.block, gate);
      this.copies.set(node.block, copy);
    }
    return copy.get(id);
  }

  private replay(block: string, gate: Tensor): Map<number, Tensor> {
    const b = this.b;
    const nodes = this.blockNodes.get(block)!;
    const inside = new Set(nodes.flatMap((n) => n.outputs));
    const map = new Map<number, Tensor>();
    return b.scope(`${block}.recompute`, () => {
      // 0·Σgate: a scalar that exists only once the backward pass reached this block.
      const zero = mul(reduceSum(gate, [], { keepdims: false }), 0);
      const gated = (id: number): Tensor => {
        if (inside.has(id)) return map.get(id)!;
        const t = b.tensor(id);
        if (!isFloat(t.dtype) || !b.producesActivation(id)) return t;
        let g = map.get(id);
        if (!g) {
          g = add(t, cast(zero, t.dtype));
          map.set(id, g);
        }
        return g;
      };
      for (const n of nodes) {
        const outs = b.inBlock(undefined, () =>
          b.apply(n.op, n.inputs.map(gated), n.attrs, { name: n.name.slice(block.length + 1) || n.op }),
        );
        n.outputs.forEach((id, k) => map.set(id, outs[k]!));
      }
      return map;
    });
  }
}
