// LoRA inits that start from the base weight W (out, in) and leave a residual in its place, so that at step 0
// residual + s·B·A = W (PEFT's pissa_init and olora_init, tuners/lora/layer.py).
//   PiSSA: W = U·S·Vᵀ, A = √(S_r/s)·V_rᵀ, B = U_r·√(S_r/s): the adapter holds the top-r singular directions.
//   OLoRA: W = Q·R, A = R[:r], B = Q[:, :r].
import { PeftError } from './errors.ts';
import { leadingColumns, leadingRows, matrix, qr, svd, svdLowRank, type Matrix } from './linalg.ts';

export interface BaseWeightInit {
  /** lora_A (r, in) */
  readonly a: Float32Array;
  /** lora_B (out, r) */
  readonly b: Float32Array;
  /** W − s·B·A (out, in), from the float32 A and B the adapter starts with. */
  readonly residual: Float64Array;
}

export interface BaseWeight {
  /** The module, for messages. */
  readonly module: string;
  readonly values: Float32Array;
  readonly outFeatures: number;
  readonly inFeatures: number;
}

const checkRank = (w: BaseWeight, r: number, init: string): void => {
  const k = Math.min(w.outFeatures, w.inFeatures);
  if (r > k) throw new PeftError(`init_lora_weights='${init}': r=${r} exceeds min(out, in)=${k} of '${w.module}'`);
};

const residualOf = (w: BaseWeight, a: Float32Array, b: Float32Array, r: number, scale: number): Float64Array => {
  const { outFeatures: out, inFeatures: inF } = w;
  const residual = Float64Array.from(w.values);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < r; k++) {
      const bk = scale * b[o * r + k]!;
      if (bk === 0) continue;
      for (let i = 0; i < inF; i++) residual[o * inF + i]! -= bk * a[k * inF + i]!;
    }
  }
  return residual;
};

/** A = diag(√σ)·Vᵀ (r rows), B = U·diag(√σ) (r columns), σ = S_r / s. */
const factorsFromSvd = (u: Matrix, s: Float64Array, vt: Matrix, r: number, scale: number): { a: Float32Array; b: Float32Array } => {
  const root = Array.from({ length: r }, (_, k) => Math.sqrt(s[k]! / scale));
  const a = Float32Array.from(leadingRows(vt, r).data, (v, idx) => v * root[Math.floor(idx / vt.cols)]!);
  const b = Float32Array.from(leadingColumns(u, r).data, (v, idx) => v * root[idx % r]!);
  return { a, b };
};

/**
 * PiSSA: exact SVD ('pissa'), or torch.svd_lowrank's randomized one with `niter` subspace iterations
 * ('pissa_niter_<n>'), which is approximate and draws its sketch from `rng`.
 */
export const pissaInit = (w: BaseWeight, r: number, scale: number, niter: number | undefined, rng: () => number): BaseWeightInit => {
  checkRank(w, r, niter === undefined ? 'pissa' : `pissa_niter_${niter}`);
  const weight = matrix(w.outFeatures, w.inFeatures, w.values);
  const { u, s, vt } = niter === undefined ? svd(weight) : svdLowRank(weight, r, niter, rng);
  const { a, b } = factorsFromSvd(u, s, vt, r, scale);
  return { a, b, residual: residualOf(w, a, b, r, scale) };
};

/** OLoRA: the first r columns of Q and rows of R of W's QR (signs as LAPACK's, so as PEFT's). */
export const oloraInit = (w: BaseWeight, r: number, scale: number): BaseWeightInit => {
  checkRank(w, r, 'olora');
  const f = qr(matrix(w.outFeatures, w.inFeatures, w.values));
  const a = Float32Array.from(leadingRows(f.r, r).data);
  const b = Float32Array.from(leadingColumns(f.q, r).data);
  return { a, b, residual: residualOf(w, a, b, r, scale) };
};
