// QLoRA's frozen 4-bit base as a pure Graph → Graph rewrite: every linear layer y = x·Wᵀ (+ b) — a Gemm(transB)
// named by its HF module and reading the checkpoint tensor `<module>.weight` — becomes a 4-bit matmul under the
// same node name, reading 4-bit initializers under the same weight name, so LoRA and its relatives still find
// it. Embeddings, norms and the LM head stay float, as in QLoRA. A rewrite rather than a WeightStore transform:
// it works on any model graph (models never learn about NF4), and a graph's weights are read one at a time.
import { Graph, add, matMulBnb4, matMulQ4, mul, packQ4Codes, packQ4ZeroPoints, reshape, slice, lookupBytes, type Node, type Tensor } from '../ir/index.ts';
import { rewriteGraph } from '../ir/rewrite.ts';
import type { RewriteContext } from '../ir/rewrite.ts';
import { readInitializer } from '../io/initializer.ts';
import { prune } from '../onnx/prune.ts';
import { ABSMAX_BLOCK, DYNAMIC_MAP, quantizeAbsmax } from './double-quant.ts';
import { quantizeInt4 } from './int4.ts';
import { quantizeNf4 } from './nf4.ts';

export type QuantScheme = 'nf4' | 'int4';

export interface QuantizeBaseOptions {
  /** nf4: bitsandbytes' NF4 through MatMulBnb4 (block 64); int4: linear 4-bit codes through MatMulNBits (block 32). */
  readonly scheme: QuantScheme;
  /** nf4: quantize the absmax scales too (8-bit, blocks of 256, minus their mean), as compress_statistics does. */
  readonly doubleQuant?: boolean;
  /** int4: symmetric codes (zero point 8, none stored) instead of asymmetric ones with 4-bit zero points. */
  readonly symmetric?: boolean;
  /** Default 64 (nf4) or 32 (int4). */
  readonly blockSize?: number;
  /** Modules kept in float: exact names or last names. Default ['lm_head']. */
  readonly exclude?: readonly string[];
}

export interface QuantizedModule {
  readonly name: string;
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** Bytes of its 4-bit weight and scales (everything stored for it). */
  readonly bytes: number;
  /** Bytes the same weight takes in float32. */
  readonly float32Bytes: number;
}

export interface QuantizedBase {
  readonly graph: Graph;
  readonly modules: readonly QuantizedModule[];
}

export class QuantizeError extends Error {
  override readonly name = 'QuantizeError';
  constructor(
    message: string,
    /** The checkpoint tensor the error is about. */
    readonly tensor: string,
  ) {
    super(message);
  }
}

interface Target {
  readonly node: Node;
  readonly weight: string;
  readonly n: number;
  readonly k: number;
}

const FLOAT_WEIGHTS = new Set(['float32', 'bfloat16', 'float16']);

/** The linear layers a base quantization replaces: frozen, float, read by that one Gemm only, not excluded. */
const findTargets = (graph: Graph, exclude: readonly string[]): Target[] => {
  const readers = new Map<number, number>();
  for (const node of graph.nodes) for (const id of node.inputs) readers.set(id, (readers.get(id) ?? 0) + 1);
  const targets: Target[] = [];
  for (const node of graph.nodes) {
    const a = node.attrs;
    if (node.op !== 'Gemm' || !a.transB || a.transA || (a.alpha ?? 1) !== 1 || (a.beta ?? 1) !== 1) continue;
    if (exclude.some((e) => node.name === e || node.name.endsWith(`.${e}`))) continue;
    let id = node.inputs[1]!;
    const binding = graph.producer.get(id);
    if (binding?.op === 'Cast' && graph.initializers.has(binding.inputs[0]!) && readers.get(id) === 1) id = binding.inputs[0]!;
    const v = graph.value(id);
    if (!graph.initializers.has(id) || v.name !== `${node.name}.weight` || readers.get(id) !== 1 || !FLOAT_WEIGHTS.has(v.type.dtype)) continue;
    const [n, k] = v.type.shape;
    if (typeof n !== 'number' || typeof k !== 'number' || v.type.shape.length !== 2) continue;
    targets.push({ node, weight: v.name, n, k });
  }
  return targets;
};

const byteLength = (...arrays: readonly ArrayBufferView[]): number => arrays.reduce((s, a) => s + a.byteLength, 0);

/** Replaces the frozen float linears of `graph` by 4-bit ones (see QuantizeBaseOptions); the rest is untouched. */
export const quantizeBase = (graph: Graph, o: QuantizeBaseOptions): QuantizedBase => {
  const bs = o.blockSize ?? (o.scheme === 'nf4' ? 64 : 32);
  const targets = new Map(findTargets(graph, o.exclude ?? ['lm_head']).map((t) => [t.node.id, t]));
  for (const t of targets.values()) {
    if (o.scheme === 'int4' && t.k % bs !== 0) throw new QuantizeError(`'${t.weight}' (${t.n}×${t.k}): int4 blocks of ${bs} must divide its ${t.k} inputs`, t.weight);
    if (o.scheme === 'nf4' && (t.n * t.k) % bs !== 0) throw new QuantizeError(`'${t.weight}' (${t.n}×${t.k}): NF4 blocks of ${bs} must divide its ${t.n * t.k} values`, t.weight);
  }
  const modules: QuantizedModule[] = [];
  const renames = new Map<string, string>();
  let dynamicMap: Tensor | undefined;

  const replace = (t: Target, ctx: RewriteContext): Tensor => {
    const g = ctx.b;
    const [x, , bias] = ctx.inputs;
    const values = readInitializer(graph, t.weight);
    // The float weight keeps its name until pruned; the 4-bit one takes it afterwards.
    const packedName = `${t.weight}.packed`;
    renames.set(packedName, t.weight);
    let y: Tensor;
    let bytes: number;
    if (o.scheme === 'int4') {
      const q = quantizeInt4(values, t.n, t.k, { blockSize: bs, symmetric: o.symmetric ?? false });
      const packed = packQ4Codes(q.codes, t.n, t.k);
      const zp = q.zeroPoints ? packQ4ZeroPoints(q.zeroPoints, t.n, t.k / bs) : undefined;
      const w = {
        packed: g.initializer(packedName, 'uint8', [t.n, t.k / bs, bs / 2], { kind: 'inline', data: packed }),
        scales: g.initializer(`${t.weight}.scales`, 'float32', [q.scales.length], { kind: 'inline', data: q.scales }),
        ...(zp ? { zeroPoints: g.initializer(`${t.weight}.zero_points`, 'uint8', [zp.length], { kind: 'inline', data: zp }) } : {}),
        n: t.n,
        k: t.k,
        blockSize: bs,
      };
      y = matMulQ4(x!, w, t.node.name); // (rows, out)
      bytes = byteLength(packed, q.scales, ...(zp ? [zp] : []));
    } else {
      const q = quantizeNf4(values, bs);
      const packed = g.initializer(packedName, 'uint8', [q.packed.length], { kind: 'inline', data: q.packed });
      let absmax: Tensor;
      if (o.doubleQuant) {
        const dq = quantizeAbsmax(q.absmax);
        const blocks = dq.absmax2.length;
        const codes = g.initializer(`${t.weight}.absmax.codes`, 'uint8', [dq.codes.length], { kind: 'inline', data: dq.codes });
        const scales = g.initializer(`${t.weight}.absmax.scales`, 'float32', [blocks, 1], { kind: 'inline', data: dq.absmax2 });
        const offset = g.initializer(`${t.weight}.absmax.offset`, 'float32', [], { kind: 'inline', data: new Float32Array([dq.offset]) });
        dynamicMap ??= g.constant(DYNAMIC_MAP, 'float32', [256]);
        const map = dynamicMap;
        absmax = g.scope(t.node.name, () => {
          const centred = reshape(mul(reshape(lookupBytes(map, codes, undefined, 'absmax_lookup'), [blocks, ABSMAX_BLOCK]), scales), [blocks * ABSMAX_BLOCK]); // (blocks·256)
          const used = dq.count === blocks * ABSMAX_BLOCK ? centred : slice(centred, { starts: [0], ends: [dq.count] }, 'absmax_used');
          return add(used, offset, 'absmax'); // (N·K/bs)
        });
        bytes = byteLength(q.packed, dq.codes, dq.absmax2) + 4;
      } else {
        absmax = g.initializer(`${t.weight}.absmax`, 'float32', [q.absmax.length], { kind: 'inline', data: q.absmax });
        bytes = byteLength(q.packed, q.absmax);
      }
      y = matMulBnb4(x!, { packed, absmax, n: t.n, k: t.k, blockSize: bs }, t.node.name); // (rows, out)
    }
    modules.push({ name: t.node.name, outFeatures: t.n, inFeatures: t.k, bytes, float32Bytes: 4 * t.n * t.k });
    return bias ? add(y, bias, `${t.node.name}.bias`) : y;
  };

  const rewritten = prune(rewriteGraph(graph, (node, ctx) => {
    const t = targets.get(node.id);
    return t ? [replace(t, ctx)] : undefined;
  }));
  const values = new Map([...rewritten.values].map(([id, v]) => [id, renames.has(v.name) ? { ...v, name: renames.get(v.name)! } : v]));
  return { graph: new Graph(values, rewritten.nodes, rewritten.inputs, rewritten.outputs, rewritten.initializers), modules };
};
