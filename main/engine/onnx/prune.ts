import { Graph } from '../ir/graph.ts';

/** Drops nodes and initializers no output depends on. Graph inputs stay: callers feed them by name. */
export const prune = (graph: Graph): Graph => {
  const live = new Set(graph.outputs);
  const kept = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    kept.push(n);
    for (const inp of n.inputs) live.add(inp);
  }
  kept.reverse();
  for (const id of graph.inputs) live.add(id);
  const produced = new Set(kept.flatMap((n) => n.outputs));
  const values = new Map([...graph.values].filter(([id]) => live.has(id) || produced.has(id)));
  const initializers = new Map([...graph.initializers].filter(([id]) => live.has(id)));
  return new Graph(values, kept, graph.inputs, graph.outputs, initializers);
};
