import { Graph, GraphBuilder, type Node, type Tensor } from './graph.ts';

export interface RewriteContext {
  readonly b: GraphBuilder;
  /** The node's inputs in the new graph. */
  readonly inputs: readonly Tensor[];
  /** Copies the node unchanged into the new graph and returns its outputs. */
  copy(): Tensor[];
}

/**
 * Graph → Graph: rebuilds `graph` node by node. `visit` may return replacement outputs for a node (usually built
 * from `ctx.copy()` plus new nodes); consumers of the old outputs then read the replacements. The input graph is
 * not touched. Node and value names are kept, so HF names survive every rewrite.
 */
export const rewriteGraph = (graph: Graph, visit: (node: Node, ctx: RewriteContext) => Tensor[] | undefined): Graph => {
  const boundary = new Set([...graph.inputs, ...graph.initializers.keys()]);
  const values = new Map([...graph.values].filter(([id]) => boundary.has(id)));
  const b = GraphBuilder.from(new Graph(values, [], graph.inputs, [], graph.initializers));
  const map = new Map<number, Tensor>([...boundary].map((id) => [id, b.tensor(id)]));
  for (const node of graph.nodes) {
    const inputs = node.inputs.map((id) => map.get(id)!);
    const copy = () => b.inBlock(node.block, () => b.apply(node.op, inputs, node.attrs, { name: node.name }));
    const outs = b.inBlock(node.block, () => visit(node, { b, inputs, copy })) ?? copy();
    node.outputs.forEach((id, k) => map.set(id, outs[k]!));
  }
  for (const id of graph.outputs) b.output(map.get(id)!, graph.value(id).name);
  return b.build();
};
