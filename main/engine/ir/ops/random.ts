// Dropout whose mask is a pure function of (seed, step, salt, element index), computed inside the graph with
// integer ops. ONNX's random ops keep their generator state inside the session, so a resumed run, a
// recomputed block (gradient checkpointing) or a second session could not reproduce their masks; this can.
//
// Hash (all values in [0, P) with P = 2^31 − 1 prime, so every int64 intermediate stays below 2^63):
//   lin(x; a, c) = (a·x + c) mod P        quad(y; b) = y·(y + b) mod P        mix = quad ∘ lin
//   k = mix₁((mix₀((seed mod P + salt) mod P) + step mod P) mod P)
//   h = lin_f(mix₃(mix₂((i mod P + k) mod P)))            keep element i ⇔ h ≥ round(p·P)
// `mod` is the floor modulo (ONNX Mod with fmod = 0: the sign of the divisor).
import type { GraphBuilder, Tensor } from '../graph.ts';
import type { DType } from '../types.ts';
import { mul } from './elementwise.ts';
import { describe, expectCount, expectFloat } from './helpers.ts';
import { registerOp } from './registry.ts';

export const HASH_PRIME = 2147483647;
const P = HASH_PRIME;
type Round = readonly [a: number, c: number, b: number];
const KEY: readonly Round[] = [
  [1664525, 1013904223, 374761393],
  [1103515245, 12345, 668265263],
];
const ELEM: readonly Round[] = [
  [1812433253, 1442695041, 1566083941],
  [1597334677, 747796405, 1181783497],
];
const FINAL = [2027808484, 1376312589] as const;

/** FNV-1a (32-bit) of a name's UTF-8 bytes, mod 2^31: the per-site salt of a dropout mask. */
export const dropoutSalt = (name: string): number => {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h % 2 ** 31;
};
/** Integer threshold: element kept when its hash h ≥ round(p·P), i.e. u = h/P ≥ p. */
export const dropoutThreshold = (p: number): number => Math.round(p * P);
export const dropoutScale = (p: number): number => 1 / (1 - p);

// --- exact JS reference (Number math: every product below 2^48) ---
const mulmod = (a: number, b: number): number => (((a * Math.floor(b / 65536)) % P) * 65536 + a * (b % 65536)) % P;
const mix = ([a, c, b]: Round, x: number): number => {
  const y = (mulmod(a, x) + c) % P;
  return mulmod(y, (y + b) % P);
};
const floorModP = (v: number | bigint): number => {
  const big = BigInt(v) % BigInt(P);
  return Number(big < 0n ? big + BigInt(P) : big);
};

export interface DropoutMaskParams {
  readonly p: number;
  readonly salt: number;
  readonly seed: number | bigint;
  readonly step: number | bigint;
}

/** The keep bits (1 = kept) the `DropoutMask` op computes for elements 0..numel−1, bit for bit. */
export const dropoutKeepRef = (numel: number, o: DropoutMaskParams): Uint8Array => {
  let k = mix(KEY[0]!, (floorModP(o.seed) + o.salt) % P);
  k = mix(KEY[1]!, (k + floorModP(o.step)) % P);
  const t = dropoutThreshold(o.p);
  const out = new Uint8Array(numel);
  for (let i = 0; i < numel; i++) {
    let h = ((i % P) + k) % P;
    for (const r of ELEM) h = mix(r, h);
    h = (mulmod(FINAL[0], h) + FINAL[1]) % P;
    out[i] = h >= t ? 1 : 0;
  }
  return out;
};

/** The float32 mask (0 or 1/(1−p)) the op computes for a float32 tensor of `numel` elements. */
export const dropoutMaskRef = (numel: number, o: DropoutMaskParams): Float32Array => {
  const scale = Math.fround(dropoutScale(o.p));
  return Float32Array.from(dropoutKeepRef(numel, o), (b) => b * scale);
};

// --- graph-building helpers ---
export interface DropoutOptions {
  /** int64 scalar graph inputs (train-step feeds `rng.seed` and `rng.step`). */
  readonly seed: Tensor;
  readonly step: Tensor;
  /** Node name relative to the current scope; also part of the salt. */
  readonly name?: string;
  /** Overrides the salt derived from the site name. */
  readonly salt?: number;
}

const sites = new WeakMap<GraphBuilder, Set<string>>();
/**
 * A name unique in the builder for a dropout on `x`: x's value name (unique in the graph and carrying its scope)
 * plus the local name. The salt is fixed as an attribute, so a recomputed copy of the node draws the same mask.
 */
const siteName = (x: Tensor, local: string): string => {
  let used = sites.get(x.g);
  if (!used) sites.set(x.g, (used = new Set()));
  const base = `${x.name}/${local}`;
  let name = base;
  for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
  used.add(name);
  return name;
};

/** A mask of `like`'s shape and dtype with entries 0 or 1/(1−p). */
export const dropoutMask = (like: Tensor, p: number, o: DropoutOptions): Tensor => {
  const name = o.name ?? 'dropout_mask';
  const salt = o.salt ?? dropoutSalt(siteName(like, name));
  return like.g.apply1('DropoutMask', [like, o.seed, o.step], { p, salt }, { name });
};

/** x · mask (inverted dropout); the gradient flows through the Mul, the mask has none. p = 0 returns x. */
export const dropout = (x: Tensor, p: number, o: DropoutOptions): Tensor =>
  p === 0 ? x : mul(x, dropoutMask(x, p, { ...o, name: `${o.name ?? 'dropout'}.mask` }), o.name ?? 'dropout');

registerOp({
  type: 'DropoutMask',
  irOnlyAttrs: ['p', 'salt'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 3, 3, ctx);
    const [like, seed, step] = [inputs[0]!, inputs[1]!, inputs[2]!];
    expectFloat(like, ctx);
    for (const [what, t] of [['seed', seed], ['step', step]] as const) {
      if (t.dtype !== 'int64' || !t.shape.every((d) => d === 1)) ctx.fail(`${what} must be an int64 scalar, got ${describe(t)}`);
    }
    const p = Number(attrs.p);
    if (!(p >= 0 && p < 1)) ctx.fail(`p must be in [0, 1), got ${String(attrs.p)}`);
    const salt = Number(attrs.salt);
    if (!Number.isInteger(salt) || salt < 0 || salt >= 2 ** 31) ctx.fail(`salt must be an integer in [0, 2^31), got ${String(attrs.salt)}`);
    return [like];
  },
  emit: (e) => {
    const [like, seed, step] = [e.inputs[0]!, e.inputs[1]!, e.inputs[2]!];
    const i64 = (v: number): string => e.scalar(v, 'int64');
    const op = (type: string, ins: string[], hint = type.toLowerCase()): string => {
      const out = e.tmp(hint);
      e.add(type, ins, [out]);
      return out;
    };
    const mod = (x: string): string => op('Mod', [x, i64(P)]);
    const addMod = (a: string, b: string): string => mod(op('Add', [a, b]));
    const lin = (x: string, a: number, c: number): string => mod(op('Add', [op('Mul', [x, i64(a)]), i64(c)]));
    const mixE = ([a, c, b]: Round, x: string): string => {
      const y = lin(x, a, c);
      return mod(op('Mul', [y, op('Add', [y, i64(b)])]));
    };
    let k = mixE(KEY[0]!, addMod(mod(seed), i64(Number(e.node.attrs.salt))));
    k = mixE(KEY[1]!, addMod(k, mod(step)));
    const index = op('Range', [i64(0), op('Size', [like]), i64(1)], 'index');
    let h = addMod(mod(index), k);
    for (const r of ELEM) h = mixE(r, h);
    h = lin(h, FINAL[0], FINAL[1]);
    const p = Number(e.node.attrs.p);
    const dtype: DType = e.outputTypes[0]!.dtype;
    const keep = op('GreaterOrEqual', [h, i64(dropoutThreshold(p))], 'keep');
    const flat = op('Where', [keep, e.scalar(dropoutScale(p), dtype), e.scalar(0, dtype)], 'mask');
    e.add('Reshape', [flat, op('Shape', [like])], e.outputs);
  },
});
