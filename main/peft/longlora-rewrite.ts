// LongLoRA's two changes to a model graph besides its trainable tensors:
//   S²-Attn in the training graph: each layer's attention core (the nodes a decoder builds in the scope
//   `model.layers.N.self_attn.sdpa`, see ATTENTION_SCOPE) is replaced by shiftedSparseAttention over the same q, k, v.
//   Its groups are cut at fixed positions, so the graph's symbolic sequence length is first fixed to the training
//   row length (shapes and shape attributes alike).
//   Linear RoPE position interpolation: the rotary frequencies (`model.rotary_emb`) divided by the factor.
import { Graph, normDim, type AttrValue, type Attrs, type Dim, type Node, type Tensor } from '../engine/ir/index.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { ATTENTION_SCOPE } from '../engine/nn/attention.ts';
import { shiftedSparseAttention } from '../engine/nn/s2-attention.ts';
import { PeftError } from './errors.ts';

/** One layer's attention core: its nodes, the q, k, v it reads and the value it hands on. */
export interface AttentionSite {
  readonly layer: string;
  readonly nodes: ReadonlySet<number>;
  readonly query: number;
  readonly key: number;
  readonly value: number;
  readonly output: number;
  readonly exitNode: number;
}

const SCOPE = new RegExp(`^(.+)\\.${ATTENTION_SCOPE.replace(/\./g, '\\.')}\\.`);

/** Tells q, k, v apart by how the attention core reads them: k through Transpose (kᵀ), v as the right factor of p·v. */
const roleOf = (graph: Graph, nodes: readonly Node[], id: number): 'query' | 'key' | 'value' | 'mask' => {
  const uses = nodes.flatMap((n) => n.inputs.flatMap((input, index) => (input === id ? [{ op: n.op, index }] : [])));
  if (uses.some((u) => u.op === 'Transpose')) return 'key';
  if (uses.some((u) => u.op === 'MatMul' && u.index === 1)) return 'value';
  if (uses.some((u) => (u.op === 'MatMul' && u.index === 0) || u.op === 'Reshape') && graph.value(id).type.shape.length === 4) return 'query';
  return 'mask';
};

/** Every layer's attention core, in graph order; an error naming the layer when one cannot be read. */
export const attentionSites = (graph: Graph): AttentionSite[] => {
  const byLayer = new Map<string, Node[]>();
  for (const n of graph.nodes) {
    const layer = SCOPE.exec(n.name)?.[1];
    if (layer !== undefined) byLayer.set(layer, [...(byLayer.get(layer) ?? []), n]);
  }
  const consumers = new Map<number, Node[]>();
  for (const n of graph.nodes) for (const id of n.inputs) consumers.set(id, [...(consumers.get(id) ?? []), n]);
  const outputs = new Set(graph.outputs);
  return [...byLayer].map(([layer, nodes]) => {
    const ids = new Set(nodes.map((n) => n.id));
    const produced = new Set(nodes.flatMap((n) => n.outputs));
    const external = [...new Set(nodes.flatMap((n) => n.inputs))].filter((id) => !produced.has(id) && !graph.initializers.has(id));
    const roles = new Map<string, number[]>();
    for (const id of external) {
      const role = roleOf(graph, nodes, id);
      roles.set(role, [...(roles.get(role) ?? []), id]);
    }
    const leaving = [...produced].filter((id) => outputs.has(id) || (consumers.get(id) ?? []).some((c) => !ids.has(c.id)));
    const one = (role: string): number => {
      const found = roles.get(role) ?? [];
      if (found.length !== 1) {
        throw new PeftError(`the attention of ${layer} (nodes ${layer}.${ATTENTION_SCOPE}.*) reads ${found.length} ${role} tensors where S²-Attn expects one`);
      }
      return found[0]!;
    };
    if (leaving.length !== 1) throw new PeftError(`the attention of ${layer} hands on ${leaving.length} values where S²-Attn expects one`);
    const output = leaving[0]!;
    return { layer, nodes: ids, query: one('query'), key: one('key'), value: one('value'), output, exitNode: graph.producer.get(output)!.id };
  });
};

// --- fixing the sequence length ---

/** Evaluates an integer expression of + − * and parentheses (a symbolic dim whose symbols were all replaced). */
const evaluate = (expr: string): number => {
  let at = 0;
  const peek = (): string => expr[at] ?? '';
  const factor = (): number => {
    if (peek() === '(') {
      at++;
      const v = sum();
      at++; // ')'
      return v;
    }
    const digits = /^\d+/.exec(expr.slice(at))![0];
    at += digits.length;
    return Number(digits);
  };
  const product = (): number => {
    let v = factor();
    while (peek() === '*') {
      at++;
      v *= factor();
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (peek() === '+' || peek() === '-') v = expr[at++] === '+' ? v + product() : v - product();
    return v;
  };
  return sum();
};

/** Where a symbol stands as a whole token of a dim spelling (`seq` in `batch*seq` or `(seq-1)`, not in `seq2`). */
const symbolPattern = (symbol: string): RegExp => new RegExp(`(?<![\\w.])${symbol.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w.])`, 'g');

const substituteDim = (d: Dim, symbol: RegExp, length: number): Dim => {
  if (typeof d === 'number') return d;
  const replaced = d.replace(symbol, String(length)).replace(/\s+/g, '');
  if (replaced === d) return d;
  if (/^[\d+\-*()]+$/.test(replaced)) return evaluate(replaced);
  return normDim(replaced);
};

const substituteAttr = (v: AttrValue | undefined, symbol: RegExp, length: number): AttrValue | undefined => {
  if (typeof v === 'string') return substituteDim(v, symbol, length);
  if (Array.isArray(v)) return (v as readonly (number | string)[]).map((d) => substituteDim(d, symbol, length)) as AttrValue;
  return v;
};

/**
 * `graph` with the symbolic dim `symbol` fixed to `length` everywhere: in the inputs' shapes and in the shape
 * attributes (Reshape, Expand, Range, ...) of every node; every other shape follows by inference.
 */
export const fixSequenceLength = (graph: Graph, symbol: string, length: number): Graph => {
  const pattern = symbolPattern(symbol);
  const inputs = new Set(graph.inputs);
  const values = new Map(
    [...graph.values].map(([id, v]) => [id, inputs.has(id) ? { ...v, type: { ...v.type, shape: v.type.shape.map((d) => substituteDim(d, pattern, length)) } } : v]),
  );
  const fixed = new Graph(values, graph.nodes, graph.inputs, graph.outputs, graph.initializers);
  return rewriteGraph(fixed, (node, ctx) => {
    const attrs: Attrs = Object.fromEntries(Object.entries(node.attrs).map(([k, v]) => [k, substituteAttr(v, pattern, length)]));
    return ctx.b.apply(node.op, ctx.inputs, attrs, { name: node.name });
  });
};

// --- S²-Attn ---

export interface S2RewriteOptions {
  /** The training row length T the graph is fixed to. */
  readonly sequenceLength: number;
  /** S²-Attn's group size G (T a multiple of it, G even). */
  readonly groupSize: number;
}

/** The training graph with S²-Attn in every layer, at a fixed sequence length. */
export const withShiftedSparseAttention = (graph: Graph, o: S2RewriteOptions): Graph => {
  const found = attentionSites(graph);
  if (found.length === 0) {
    throw new PeftError(`LONGLORA: the model graph has no attention scopes (model.layers.N.${ATTENTION_SCOPE}) for S²-Attn to replace`);
  }
  const seq = graph.value(found[0]!.query).type.shape[2]!;
  if (typeof seq === 'number' && seq !== o.sequenceLength) {
    throw new PeftError(`LONGLORA: the graph's sequence length is ${seq}, model_max_length says ${o.sequenceLength}`);
  }
  const fixedGraph = typeof seq === 'string' ? fixSequenceLength(graph, seq, o.sequenceLength) : graph;
  const sites = attentionSites(fixedGraph);
  const siteOf = new Map(sites.flatMap((s) => [...s.nodes].map((id) => [id, s] as const)));
  const read = new Map<number, Tensor>();
  return rewriteGraph(fixedGraph, (node, ctx) => {
    const site = siteOf.get(node.id);
    if (!site) return undefined;
    node.inputs.forEach((id, i) => {
      if (id === site.query || id === site.key || id === site.value) read.set(id, ctx.inputs[i]!);
    });
    // The core's inner values are read only by the core, which is replaced as a whole: they need no new nodes.
    if (node.id !== site.exitNode) return node.inputs.length > 0 ? node.outputs.map(() => ctx.inputs[0]!) : ctx.copy();
    const [q, k, v] = [read.get(site.query)!, read.get(site.key)!, read.get(site.value)!];
    return [ctx.b.scope(`${site.layer}.self_attn.s2_attn`, () => shiftedSparseAttention(q, k, v, { groupSize: o.groupSize }))];
  });
};

// --- RoPE position interpolation ---

const ROTARY = 'model.rotary_emb.';

/** The rotary angle products positions·inv_freq: MatMul nodes of `model.rotary_emb` with inline float32 frequencies. */
const rotaryFrequencyNodes = (graph: Graph): Node[] =>
  graph.nodes.filter((n) => {
    if (!n.name.startsWith(ROTARY) || n.op !== 'MatMul') return false;
    const init = graph.initializers.get(n.inputs[1]!);
    return init?.kind === 'inline' && init.data instanceof Float32Array;
  });

/**
 * Linear position interpolation (Chen et al. 2023): every rotary frequency of the model (with whatever scaling it
 * already has) divided by `factor`, which on a plain-RoPE model is transformers' rope_scaling {type: linear, factor}.
 */
export const withLinearRopeScaling = (graph: Graph, factor: number): Graph => {
  const nodes = new Set(rotaryFrequencyNodes(graph).map((n) => n.id));
  if (nodes.size === 0) throw new PeftError('LONGLORA: rope_scaling needs the rotary frequencies (model.rotary_emb), which this graph lacks');
  return rewriteGraph(graph, (node, ctx) => {
    if (!nodes.has(node.id)) return undefined;
    const id = node.inputs[1]!;
    const init = graph.initializers.get(id)!;
    const scaled = (init as { data: Float32Array }).data.map((f) => f / factor);
    const freqs = ctx.b.scope('model.rotary_emb', () => ctx.b.constant(scaled, 'float32', graph.value(id).type.shape));
    return ctx.b.apply(node.op, [ctx.inputs[0]!, freqs], node.attrs, { name: node.name });
  });
};
