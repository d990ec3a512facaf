// Where bottleneck adapters (and AdapterFusion) enter a decoder graph, and the adapter's own computation.
// A site is the residual Add that closes a sub-block: h + o_proj(…) after attention, h1 + down_proj(…) after the FFN.
// It is found from the projection's HF node name (`model.layers.N.self_attn.o_proj`, `model.layers.N.mlp.down_proj`)
// by following its output through shape-only steps (Reshape; a 4-bit base's mins Gemm and bias Add) to that Add.
import { type Graph, type Node, type Tensor, add, erf, mul, relu, sigmoid, tanh } from '../engine/ir/index.ts';
import { linear } from '../engine/nn/linear.ts';
import type { BottleneckArchitecture, NonLinearity } from './bottleneck-config.ts';
import { PeftError } from './errors.ts';
import { linearModules } from './targets.ts';

export type SitePosition = 'attention' | 'output';

export interface AdapterSite {
  readonly layer: number;
  /** AdapterHub's location: mh_adapter (after attention) or output_adapter (after the FFN). */
  readonly position: SitePosition;
  /** The HF module the adapter follows: `model.layers.N.self_attn` or `model.layers.N.mlp`; keys hang under it. */
  readonly module: string;
  /** The residual Add closing the sub-block; the rewrite replaces its output. */
  readonly add: Node;
  /** Which of the Add's inputs is the sub-block's output (the other is the residual stream). */
  readonly subInput: number;
  /** hidden_size. */
  readonly hidden: number;
}

const PROJECTION = /^(.*\.)?layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)$/;

/** The residual Add a projection's output flows into, through the steps a linear layer may add after its matmul. */
const residualAdd = (graph: Graph, consumers: ReadonlyMap<number, Node[]>, projection: Node): { add: Node; subInput: number } => {
  let value = projection.outputs[0]!;
  for (;;) {
    const next = consumers.get(value) ?? [];
    if (next.length !== 1) break;
    const n = next[0]!;
    const other = n.inputs.find((id) => id !== value);
    const isBias = n.op === 'Add' && other !== undefined && graph.initializers.has(other);
    const isMins = n.op === 'Gemm' && n.inputs[2] === value;
    if (n.op === 'Reshape' || isBias || isMins) {
      value = n.outputs[0]!;
      continue;
    }
    if (n.op === 'Add') return { add: n, subInput: n.inputs.indexOf(value) };
    break;
  }
  throw new PeftError(`'${projection.name}': its output does not reach a residual Add (not a Llama-family decoder layer?)`);
};

/**
 * The adapter sites of `graph`, in graph order: houlsby has two per decoder layer (after attention, after the FFN),
 * pfeiffer one (after the FFN); layers in `leaveOut` have none.
 */
export const adapterSites = (graph: Graph, architecture: BottleneckArchitecture, leaveOut: readonly number[] = []): AdapterSite[] => {
  const consumers = new Map<number, Node[]>();
  for (const n of graph.nodes) for (const id of n.inputs) consumers.set(id, [...(consumers.get(id) ?? []), n]);
  const sites: AdapterSite[] = [];
  for (const m of linearModules(graph)) {
    const match = PROJECTION.exec(m.name);
    if (!match) continue;
    const layer = Number(match[2]);
    const position: SitePosition = match[3] === 'self_attn.o_proj' ? 'attention' : 'output';
    if (leaveOut.includes(layer) || (architecture === 'pfeiffer' && position === 'attention')) continue;
    const module = m.name.slice(0, m.name.lastIndexOf('.'));
    sites.push({ layer, position, module, ...residualAdd(graph, consumers, m.node), hidden: m.outFeatures });
  }
  if (sites.length === 0) throw new PeftError('the model graph has no self_attn.o_proj / mlp.down_proj projections to place adapters after');
  return sites;
};

/** transformers' activations as AdapterHub picks them: gelu is the exact (erf) GELU, swish = silu. */
export const activation = (x: Tensor, f: NonLinearity): Tensor => {
  switch (f) {
    case 'relu':
      return relu(x);
    case 'tanh':
      return tanh(x);
    case 'gelu':
      return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1), 'gelu');
    case 'silu':
    case 'swish':
      return mul(x, sigmoid(x), 'silu');
  }
};

export interface BottleneckWeights {
  readonly down: Tensor; // (r, C)
  readonly downBias: Tensor; // (r,)
  readonly up: Tensor; // (C, r)
  readonly upBias: Tensor; // (C,)
}

/** AdapterHub's Adapter up-projection output: scaling · (up(act(down(x)))), before any residual. */
export const bottleneckUp = (x: Tensor, w: BottleneckWeights, f: NonLinearity, scaling: number): Tensor => {
  const down = activation(linear(x, w.down, w.downBias, 'down'), f); // (B, T, r)
  const up = linear(down, w.up, w.upBias, 'up'); // (B, T, C)
  return scaling === 1 ? up : mul(up, scaling, 'scaling');
};

/** The four tensors of one adapter at one site, by AdapterHub's names (adapter_down.0 / adapter_up → down / up). */
export const BOTTLENECK_PARTS = ['down.weight', 'down.bias', 'up.weight', 'up.bias'] as const;
export type BottleneckPart = (typeof BOTTLENECK_PARTS)[number];

export const bottleneckShape = (part: BottleneckPart, hidden: number, r: number): number[] =>
  ({ 'down.weight': [r, hidden], 'down.bias': [r], 'up.weight': [hidden, r], 'up.bias': [hidden] })[part];
