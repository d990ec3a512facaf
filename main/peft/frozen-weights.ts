// A rewrite's access to the model's frozen weights: which checkpoint tensor a value comes from, and replacing a
// tensor's bytes (PiSSA/OLoRA residuals) in a new graph without renaming anything.
import { Graph, type DType, type InitializerData, type Node } from '../engine/ir/index.ts';

/** A Cast that binds a bf16/f16 checkpoint tensor as float32 (models/weights.ts); not part of any module's compute. */
export const isWeightBinding = (graph: Graph, node: Node): boolean => node.op === 'Cast' && graph.initializers.has(node.inputs[0]!);

/** The initializer a value comes from: itself, or the one its weight-binding Cast reads; undefined for activations. */
export const frozenSource = (graph: Graph, id: number): number | undefined => {
  if (graph.initializers.has(id)) return id;
  const producer = graph.producer.get(id);
  return producer && isWeightBinding(graph, producer) ? producer.inputs[0] : undefined;
};

/** `graph` with some initializers' bytes replaced; names, dtypes, shapes and nodes stay as they are. */
export const withInitializers = (graph: Graph, replaced: ReadonlyMap<number, InitializerData>): Graph => {
  if (replaced.size === 0) return graph;
  const initializers = new Map([...graph.initializers].map(([id, data]) => [id, replaced.get(id) ?? data]));
  return new Graph(graph.values, graph.nodes, graph.inputs, graph.outputs, initializers);
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const roundedBits = (bits: number, dropped: number): number => {
  const rest = bits & ((1 << dropped) - 1);
  const half = 1 << (dropped - 1);
  const kept = bits >>> dropped;
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
};

/** float32 → bfloat16 bits, round to nearest even (torch's `.to(torch.bfloat16)`). */
const toBfloat16 = (v: number): number => {
  f32[0] = v;
  const bits = u32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40; // NaN stays NaN
  return roundedBits(bits, 16) & 0xffff;
};

/** float32 → IEEE half bits, round to nearest even, overflow to ±inf. */
const toFloat16 = (v: number): number => {
  f32[0] = v;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (((bits >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    return sign | roundedBits(mantissa | 0x800000, 14 - exponent);
  }
  // A carry out of the mantissa correctly bumps the exponent (and reaches inf at the top).
  return sign | roundedBits((exponent << 23) | mantissa, 13);
};

/** Values stored inline in the initializer's own dtype (float32, or rounded to bf16/f16 as torch's `.to(dtype)`). */
export const inlineData = (values: ArrayLike<number>, dtype: DType): InitializerData => {
  switch (dtype) {
    case 'float32':
      return { kind: 'inline', data: Float32Array.from(values) };
    case 'bfloat16':
      return { kind: 'inline', data: Uint16Array.from(values, toBfloat16) };
    case 'float16':
      return { kind: 'inline', data: Uint16Array.from(values, toFloat16) };
    default:
      throw new Error(`cannot store float values as ${dtype}`);
  }
};
