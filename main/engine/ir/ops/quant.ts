import type { Tensor } from '../graph.ts';
import { dimEq, divDim, normAxis } from '../shape.ts';
import { isFloat } from '../types.ts';
import { describe, expectCount } from './helpers.ts';
import { mul, sub } from './elementwise.ts';
import { cast, reshape, unsqueeze } from './shape-ops.ts';
import { registerOp } from './registry.ts';

/**
 * Packs signed 4-bit values (−8..7) two per byte, low nibble first, as ONNX stores int4 tensors.
 * (uint4 values 0..15 pack the same way.)
 */
export const packInt4 = (values: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) {
    const nibble = values[i]! & 0x0f;
    out[i >> 1]! |= i & 1 ? nibble << 4 : nibble;
  }
  return out;
};

export interface DequantizeOptions {
  readonly axis?: number;
  /** Blocked quantization: one scale per `blockSize` elements along `axis` (0 = per-axis). */
  readonly blockSize?: number;
  readonly zeroPoint?: Tensor;
  readonly name?: string;
}

/** (x − zero_point) · scale for int4/uint4/uint8 x (frozen quantized weights; no gradient flows to x). */
export const dequantizeLinear = (x: Tensor, scale: Tensor, o: DequantizeOptions = {}): Tensor =>
  x.g.apply1('DequantizeLinear', o.zeroPoint ? [x, scale, o.zeroPoint] : [x, scale], { axis: o.axis ?? 1, block_size: o.blockSize ?? 0 }, { name: o.name });

registerOp({
  type: 'DequantizeLinear',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 3, ctx);
    const [x, scale, zero] = inputs;
    if (!['int4', 'uint4', 'uint8', 'int32'].includes(x!.dtype)) ctx.fail(`cannot dequantize ${describe(x!)}`);
    if (!isFloat(scale!.dtype)) ctx.fail(`scale must be floating-point, got ${describe(scale!)}`);
    if (zero && zero.dtype !== x!.dtype) ctx.fail(`zero point ${describe(zero)} does not match ${describe(x!)}`);
    const block = Number(attrs.block_size ?? 0);
    if (block > 0 && scale!.shape.length === x!.shape.length) {
      const axis = normAxis(Number(attrs.axis ?? 1), x!.shape.length, ctx.op, ctx.node);
      const blocks = divDim(x!.shape[axis]!, block);
      const ok = blocks !== undefined && scale!.shape.every((d, i) => dimEq(d, i === axis ? blocks : x!.shape[i]!));
      if (!ok) ctx.fail(`scale ${describe(scale!)} does not fit ${describe(x!)} in blocks of ${block} along axis ${axis}`);
    }
    return [{ dtype: scale!.dtype, shape: x!.shape }];
  },
});

// --- 4-bit matmul (com.microsoft.MatMulNBits) for frozen quantized weights ---

export interface Q4Weight {
  /** uint8 (N, K/blockSize, blockSize/2): two 4-bit codes per byte, low nibble first (MatMulNBits' layout). */
  readonly packed: Tensor;
  /** float32 (N·K/blockSize): one scale per block. */
  readonly scales: Tensor;
  /**
   * uint8 (N·⌈(K/blockSize)/2⌉): 4-bit zero points, two per byte; absent = 8. w = (code − zero point) · scale.
   * (MatMulNBits also takes float zero points, but runs ~13× slower with them, so offsets go in `mins`.)
   */
  readonly zeroPoints?: Tensor;
  /** float32 (N, K/blockSize): a per-block offset added to every weight of the block (GGUF Q4_1's min). */
  readonly mins?: Tensor;
  readonly n: number;
  readonly k: number;
  readonly blockSize: number;
}

/** Packs one 4-bit code per element (rows of `rowLength`, even) two per byte, low nibble first. */
export const packQ4Codes = (codes: Uint8Array, n: number, k: number): Uint8Array => {
  if (codes.length !== n * k || k % 2 !== 0) throw new Error(`packQ4Codes: ${codes.length} codes do not fill ${n}×${k}`);
  const out = new Uint8Array((n * k) / 2);
  for (let i = 0; i < out.length; i++) out[i] = (codes[2 * i]! & 0x0f) | ((codes[2 * i + 1]! & 0x0f) << 4);
  return out;
};

/** Packs per-block 4-bit zero points (N rows of `blocks`) as MatMulNBits wants: each row padded to whole bytes. */
export const packQ4ZeroPoints = (zeroPoints: ArrayLike<number>, n: number, blocks: number): Uint8Array => {
  const perRow = Math.ceil(blocks / 2);
  const out = new Uint8Array(n * perRow);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) out[r * perRow + (b >> 1)]! |= (zeroPoints[r * blocks + b]! & 0x0f) << (b & 1 ? 4 : 0);
  }
  return out;
};

/** x (rows, K) · dequant(W)ᵀ → (rows, N), W frozen in 4-bit blocks (without `mins`: see linearQ4). */
export const matMulQ4 = (x: Tensor, w: Q4Weight, name?: string): Tensor =>
  x.g.apply1('MatMulNBits', w.zeroPoints ? [x, w.packed, w.scales, w.zeroPoints] : [x, w.packed, w.scales], { K: w.k, N: w.n, bits: 4, block_size: w.blockSize }, { name });

registerOp({
  type: 'MatMulNBits',
  domain: 'com.microsoft',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 3, 4, ctx);
    if (inputs[3] && inputs[3].dtype !== 'uint8') ctx.fail(`zero points must be packed uint8, got ${describe(inputs[3])}`);
    const [a, b, scales] = inputs;
    const k = Number(attrs.K);
    const n = Number(attrs.N);
    const bs = Number(attrs.block_size);
    const bits = Number(attrs.bits);
    if (bits !== 4 && bits !== 8) ctx.fail(`bits=${bits}: only 4- and 8-bit weights are supported`);
    if (!dimEq(a!.shape[a!.shape.length - 1]!, k)) ctx.fail(`input ${describe(a!)} does not end in K=${k}`);
    const blob = (bs * bits) / 8;
    if (b!.dtype !== 'uint8' || !(b!.shape.length === 3 && b!.shape[0] === n && b!.shape[1] === k / bs && b!.shape[2] === blob)) {
      ctx.fail(`packed weight ${describe(b!)} is not uint8[${n}, ${k / bs}, ${blob}]`);
    }
    if (scales!.dtype !== a!.dtype) ctx.fail(`scales ${describe(scales!)} must have the input's dtype`);
    return [{ dtype: a!.dtype, shape: [...a!.shape.slice(0, -1), n] }];
  },
  emit: (e) =>
    e.add('MatMulNBits', e.inputs, e.outputs, { K: e.node.attrs.K, N: e.node.attrs.N, bits: e.node.attrs.bits, block_size: e.node.attrs.block_size }, { domain: 'com.microsoft' }),
  vjp: ({ x: [, packed, scales, zeroPoints], gy: [gy], needs, attrs }) => {
    if (!needs[0]) return [undefined];
    if (Number(attrs.bits) !== 4) throw new Error('gradients through 8-bit MatMulNBits weights are not supported; dequantize them');
    // Dequantized inside the backward, after the incoming gradient exists, so ORT neither folds it into a
    // float32 copy of W at load nor runs every layer's dequantization at the start of the step.
    return [q4InputGrad(gy!, packed!, scales!, zeroPoints, Number(attrs.N), Number(attrs.K), Number(attrs.block_size))]; // (rows, K)
  },
});

// --- NF4 4-bit matmul (com.microsoft.MatMulBnb4, bitsandbytes' layout) for frozen quantized weights ---

/** bitsandbytes' NF4 code (QLoRA, Dettmers et al. 2023): the 16 values a 4-bit code stands for, times the block's absmax. */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** MatMulBnb4's quant_type for NF4 (0 is FP4). */
export const BNB4_NF4 = 1;

export interface Bnb4Weight {
  /** uint8 (N·K/2): the row-major (N, K) weight's codes, two per byte, high nibble first (bitsandbytes' layout). */
  readonly packed: Tensor;
  /** float32 (N·K/blockSize): each block's absmax, stored or (double quantization) computed in the graph. */
  readonly absmax: Tensor;
  readonly n: number;
  readonly k: number;
  readonly blockSize: number;
}

/** x (…, K) · dequant(W)ᵀ → (…, N), W frozen in NF4 blocks along the flattened (N, K) weight. */
export const matMulBnb4 = (x: Tensor, w: Bnb4Weight, name?: string): Tensor =>
  x.g.apply1('MatMulBnb4', [x, w.packed, w.absmax], { K: w.k, N: w.n, block_size: w.blockSize, quant_type: BNB4_NF4 }, { name });

/**
 * uint8 → float32 byte values through a DequantizeLinear: ORT constant-folds any other op whose inputs are all
 * initializers (a frozen weight's dequantization would sit in memory as float32), but leaves DequantizeLinear be.
 * `one` (a scalar 1, default constant) may be computed from an activation to make ORT run this when that exists.
 */
export const unfoldedBytes = (bytes: Tensor, one?: Tensor, name?: string): Tensor =>
  dequantizeLinear(bytes, one ?? bytes.g.constant(new Float32Array([1]), 'float32'), { axis: 0, ...(name ? { name } : {}) });

/** table[code] for uint8 codes (flattened), table float32 (256,): a GatherElements (ORT's Gather is ~10× slower here). */
export const lookupBytes = (table: Tensor, bytes: Tensor, one?: Tensor, name?: string): Tensor => {
  const values = unfoldedBytes(bytes, one); // reshaping only after it, or ORT folds a reshaped copy of the bytes
  return table.g.apply1('GatherElements', [table, cast(values.rank === 1 ? values : reshape(values, [-1]), 'int64')], { axis: 0 }, { name });
};

const nibbleTables = new WeakMap<Tensor['g'], readonly [Tensor, Tensor]>();
/** NF4 value of each byte's high nibble and of its low nibble, (256,) each; one pair per graph. */
const nf4NibbleTables = (g: Tensor['g']): readonly [Tensor, Tensor] => {
  let t = nibbleTables.get(g);
  if (!t) {
    const high = Float32Array.from({ length: 256 }, (_, b) => NF4_CODE[b >> 4]!);
    const low = Float32Array.from({ length: 256 }, (_, b) => NF4_CODE[b & 0x0f]!);
    nibbleTables.set(g, (t = [g.constant(high, 'float32', [256]), g.constant(low, 'float32', [256])]));
  }
  return t;
};

/**
 * The NF4 weight's even and odd columns, (2, N, K/2): element 2i of the flattened (N, K) weight is byte i's high
 * nibble, 2i+1 its low one, so each half is one table lookup of the bytes × the absmax of their block.
 */
const nf4Halves = (packed: Tensor, absmax: Tensor, n: number, k: number, blockSize: number, one?: Tensor): Tensor => {
  const g = packed.g;
  const blocks = (n * k) / blockSize;
  const scale = reshape(absmax, [blocks, 1]);
  const half = (table: Tensor) => reshape(mul(reshape(lookupBytes(table, packed, one), [blocks, blockSize / 2]), scale), [1, n, k / 2]); // (1, N, K/2)
  const [high, low] = nf4NibbleTables(g);
  return g.apply1('Concat', [half(high), half(low)], { axis: 0 }); // (2, N, K/2)
};

const transposeTo = (x: Tensor, perm: readonly number[]): Tensor => x.g.apply1('Transpose', [x], { perm });

/** The float weight (N, K) of NF4 blocks by table lookup × absmax, in the graph. */
export const dequantizeBnb4 = (packed: Tensor, absmax: Tensor, n: number, k: number, blockSize: number): Tensor =>
  reshape(transposeTo(nf4Halves(packed, absmax, n, k, blockSize), [1, 2, 0]), [n, k]); // (N, K)

/**
 * A scalar 1 computed from gy: without it ORT runs every layer's weight dequantization at the start of the step
 * and holds them all (as much memory as a float32 base); with it, each runs just before its layer's backward.
 * (A non-finite gy[0] makes all of dx NaN instead of one row: that step's gradients are non-finite either way.)
 */
const oneAfter = (gy: Tensor): Tensor => {
  const g = gy.g;
  const first = g.apply1('Gather', [reshape(gy, [-1]), g.constant(new BigInt64Array([0n]), 'int64')], { axis: 0 }); // ()
  return g.apply1('Add', [mul(first, g.constant(new Float32Array([0]), 'float32')), g.constant(new Float32Array([1]), 'float32')]);
};

/**
 * gy (…, N) · W → (…, K) from W's even and odd columns, (2, N, K/2): two matmuls, interleaved after, which is
 * cheaper than interleaving the weight (as large as the activation gradient or larger).
 */
const interleavedInputGrad = (gy: Tensor, halves: (one: Tensor) => Tensor, n: number, k: number): Tensor => {
  const rows = reshape(gy, [-1, n]); // (rows, N)
  const products = gy.g.apply1('MatMul', [rows, halves(oneAfter(gy))]); // (2, rows, K/2)
  return reshape(transposeTo(products, [1, 2, 0]), [...gy.shape.slice(0, -1), k]); // (…, K)
};

const bnb4InputGrad = (gy: Tensor, packed: Tensor, absmax: Tensor, n: number, k: number, blockSize: number): Tensor =>
  interleavedInputGrad(gy, (one) => nf4Halves(packed, absmax, n, k, blockSize, one), n, k);

const nibbleValueTables = new WeakMap<Tensor['g'], readonly [Tensor, Tensor]>();
/** Each byte's low and high nibble as float32, (256,) each; one pair per graph. */
const nibbleValues = (g: Tensor['g']): readonly [Tensor, Tensor] => {
  let t = nibbleValueTables.get(g);
  if (!t) {
    const low = Float32Array.from({ length: 256 }, (_, b) => b & 0x0f);
    const high = Float32Array.from({ length: 256 }, (_, b) => b >> 4);
    nibbleValueTables.set(g, (t = [g.constant(low, 'float32', [256]), g.constant(high, 'float32', [256])]));
  }
  return t;
};

/**
 * dx = gy · dequant(W) for MatMulNBits' 4-bit blocks: dequantized through unfoldedBytes (ORT would fold a plain
 * Cast chain into a float32 copy of every weight at load) and only once the layer's incoming gradient exists.
 */
export const q4InputGrad = (gy: Tensor, packed: Tensor, scales: Tensor, zeroPoints: Tensor | undefined, n: number, k: number, blockSize: number): Tensor => {
  const g = gy.g;
  const blocks = (n * k) / blockSize;
  const nb = k / blockSize;
  const [lowTable, highTable] = nibbleValues(g);
  return interleavedInputGrad(
    gy,
    (one) => {
      let zp: Tensor = g.constant(new Float32Array([8]), 'float32');
      if (zeroPoints) {
        const perRow = Math.ceil(nb / 2);
        const nibble = (table: Tensor) => unsqueeze(reshape(lookupBytes(table, zeroPoints, one), [n, perRow]), [-1]); // (N, ⌈nb/2⌉, 1)
        const pairs = reshape(g.apply1('Concat', [nibble(lowTable), nibble(highTable)], { axis: -1 }), [n, 2 * perRow]); // (N, nb rounded up)
        const used = nb % 2 === 0 ? pairs : g.apply1('Slice', [pairs], { starts: [0], ends: [nb], axes: [1], steps: [1] });
        zp = reshape(used, [blocks, 1]);
      }
      const scale = reshape(scales, [blocks, 1]);
      // MatMulNBits packs low nibble first: even columns are the low nibbles.
      const half = (table: Tensor) => reshape(mul(sub(reshape(lookupBytes(table, packed, one), [blocks, blockSize / 2]), zp), scale), [1, n, k / 2]);
      return g.apply1('Concat', [half(lowTable), half(highTable)], { axis: 0 }); // (2, N, K/2)
    },
    n,
    k,
  );
};

registerOp({
  type: 'MatMulBnb4',
  domain: 'com.microsoft',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 3, 3, ctx);
    const [a, b, absmax] = inputs;
    const k = Number(attrs.K);
    const n = Number(attrs.N);
    const bs = Number(attrs.block_size);
    if (Number(attrs.quant_type) !== BNB4_NF4) ctx.fail('only NF4 (quant_type 1) is supported');
    if (!(bs >= 16 && (bs & (bs - 1)) === 0) || (n * k) % bs !== 0) ctx.fail(`block_size ${bs} must be a power of two ≥ 16 that divides N·K = ${n * k}`);
    if (!dimEq(a!.shape[a!.shape.length - 1]!, k)) ctx.fail(`input ${describe(a!)} does not end in K=${k}`);
    if (b!.dtype !== 'uint8' || b!.shape.length !== 1 || b!.shape[0] !== (n * k) / 2) ctx.fail(`packed weight ${describe(b!)} is not uint8[${(n * k) / 2}]`);
    if (absmax!.dtype !== a!.dtype || absmax!.shape.length !== 1 || absmax!.shape[0] !== (n * k) / bs) {
      ctx.fail(`absmax ${describe(absmax!)} is not ${a!.dtype}[${(n * k) / bs}]`);
    }
    return [{ dtype: a!.dtype, shape: [...a!.shape.slice(0, -1), n] }];
  },
  emit: (e) =>
    e.add('MatMulBnb4', e.inputs, e.outputs, { K: e.node.attrs.K, N: e.node.attrs.N, block_size: e.node.attrs.block_size, quant_type: BNB4_NF4 }, { domain: 'com.microsoft' }),
  vjp: ({ x: [, packed, absmax], gy: [gy], needs, attrs }) => {
    if (!needs[0]) return [undefined];
    return [bnb4InputGrad(gy!, packed!, absmax!, Number(attrs.N), Number(attrs.K), Number(attrs.block_size))]; // (…, K)
  },
});
