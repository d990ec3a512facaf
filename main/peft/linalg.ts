// Small dense linear algebra in float64 for initialising adapters from a base weight (PiSSA's SVD, OLoRA's QR).
// Runs once per adapted layer at setup, never in a training step; correctness over speed.
import { normalArray } from '../engine/random.ts';

/** A row-major dense matrix. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export const matrix = (rows: number, cols: number, data: ArrayLike<number> = new Float64Array(rows * cols)): Matrix => {
  if (data.length !== rows * cols) throw new RangeError(`a ${rows}×${cols} matrix needs ${rows * cols} values, got ${data.length}`);
  return { rows, cols, data: Float64Array.from(data) };
};

export const transposed = (a: Matrix): Matrix => {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j]!;
  return { rows: a.cols, cols: a.rows, data: out };
};

export const matmul = (a: Matrix, b: Matrix): Matrix => {
  if (a.cols !== b.rows) throw new RangeError(`cannot multiply ${a.rows}×${a.cols} by ${b.rows}×${b.cols}`);
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    const row = i * b.cols;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k]!;
      if (aik === 0) continue;
      const bRow = k * b.cols;
      for (let j = 0; j < b.cols; j++) out[row + j]! += aik * b.data[bRow + j]!;
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
};

/** The first `count` columns of `a`. */
export const leadingColumns = (a: Matrix, count: number): Matrix => {
  const out = new Float64Array(a.rows * count);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < count; j++) out[i * count + j] = a.data[i * a.cols + j]!;
  return { rows: a.rows, cols: count, data: out };
};

/** The first `count` rows of `a`. */
export const leadingRows = (a: Matrix, count: number): Matrix => ({ rows: count, cols: a.cols, data: a.data.slice(0, count * a.cols) });

export interface QrResult {
  /** m × k with orthonormal columns, k = min(m, n). */
  readonly q: Matrix;
  /** k × n, upper trapezoidal. */
  readonly r: Matrix;
}

interface Reflectors {
  /** R on and above the diagonal, the Householder vectors below it (unit leading entry implied), row-major m × n. */
  readonly packed: Float64Array;
  readonly taus: Float64Array;
  /** Column j of A·P is column perm[j] of A. */
  readonly perm: Int32Array;
}

/**
 * Householder QR with LAPACK's sign convention (dlarfg: each diagonal entry of R has the opposite sign of the
 * column's leading entry), optionally with column pivoting (dgeqp3: largest remaining column first).
 */
const householder = (a: Matrix, pivot: boolean): Reflectors => {
  const { rows: m, cols: n } = a;
  const k = Math.min(m, n);
  const w = Float64Array.from(a.data);
  const taus = new Float64Array(k);
  const perm = Int32Array.from({ length: n }, (_, j) => j);
  const dots = new Float64Array(n);
  for (let j = 0; j < k; j++) {
    if (pivot) swapColumns(w, m, n, perm, j, widestColumn(w, m, n, j));
    const alpha = w[j * n + j]!;
    let tailSq = 0;
    for (let i = j + 1; i < m; i++) tailSq += w[i * n + j]! ** 2;
    if (tailSq === 0) continue; // H = I, as dlarfg does
    const beta = -(alpha >= 0 ? 1 : -1) * Math.sqrt(alpha * alpha + tailSq);
    const tau = (beta - alpha) / beta;
    taus[j] = tau;
    const inv = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) w[i * n + j]! *= inv;
    w[j * n + j] = beta;
    // Trailing columns ← H·columns, row by row so every pass reads memory in order.
    for (let c = j + 1; c < n; c++) dots[c] = w[j * n + c]!;
    for (let i = j + 1; i < m; i++) {
      const v = w[i * n + j]!;
      if (v !== 0) for (let c = j + 1; c < n; c++) dots[c]! += v * w[i * n + c]!;
    }
    for (let c = j + 1; c < n; c++) w[j * n + c]! -= tau * dots[c]!;
    for (let i = j + 1; i < m; i++) {
      const v = tau * w[i * n + j]!;
      if (v !== 0) for (let c = j + 1; c < n; c++) w[i * n + c]! -= v * dots[c]!;
    }
  }
  return { packed: w, taus, perm };
};

const widestColumn = (w: Float64Array, m: number, n: number, j: number): number => {
  let best = j;
  let bestNorm = -1;
  const norms = new Float64Array(n);
  for (let i = j; i < m; i++) for (let c = j; c < n; c++) norms[c]! += w[i * n + c]! ** 2;
  for (let c = j; c < n; c++) if (norms[c]! > bestNorm) [best, bestNorm] = [c, norms[c]!];
  return best;
};

const swapColumns = (w: Float64Array, m: number, n: number, perm: Int32Array, a: number, b: number): void => {
  if (a === b) return;
  for (let i = 0; i < m; i++) [w[i * n + a], w[i * n + b]] = [w[i * n + b]!, w[i * n + a]!];
  [perm[a], perm[b]] = [perm[b]!, perm[a]!];
};

/** The k × n factor R of packed reflectors. */
const upperFactor = ({ packed }: Reflectors, m: number, n: number): Matrix => {
  const k = Math.min(m, n);
  const r = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let j = i; j < n; j++) r[i * n + j] = packed[i * n + j]!;
  return { rows: k, cols: n, data: r };
};

/** Q = H₀·H₁·…·H_{k−1} (m × k), accumulated backwards as dorgqr does. */
const orthogonalFactor = ({ packed, taus }: Reflectors, m: number, n: number): Matrix => {
  const k = Math.min(m, n);
  const q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  const dots = new Float64Array(k);
  for (let j = k - 1; j >= 0; j--) {
    const tau = taus[j]!;
    if (tau === 0) continue;
    for (let c = j; c < k; c++) dots[c] = q[j * k + c]!;
    for (let i = j + 1; i < m; i++) {
      const v = packed[i * n + j]!;
      if (v !== 0) for (let c = j; c < k; c++) dots[c]! += v * q[i * k + c]!;
    }
    for (let c = j; c < k; c++) q[j * k + c]! -= tau * dots[c]!;
    for (let i = j + 1; i < m; i++) {
      const v = tau * packed[i * n + j]!;
      if (v !== 0) for (let c = j; c < k; c++) q[i * k + c]! -= v * dots[c]!;
    }
  }
  return { rows: m, cols: k, data: q };
};

/** Reduced QR without pivoting; Q and R equal torch.linalg.qr's (LAPACK's), signs included. */
export const qr = (a: Matrix): QrResult => {
  const f = householder(a, false);
  return { q: orthogonalFactor(f, a.rows, a.cols), r: upperFactor(f, a.rows, a.cols) };
};

export interface SvdResult {
  /** m × k, orthonormal columns. */
  readonly u: Matrix;
  /** k singular values, descending. */
  readonly s: Float64Array;
  /** k × n, orthonormal rows. */
  readonly vt: Matrix;
}

const MAX_SWEEPS = 60;

/**
 * Thin SVD (k = min(m, n)) by one-sided Jacobi rotations (Hestenes), accurate to float64 round-off. As in
 * LAPACK's dgejsv, A·P = Q·R (column-pivoted QR) first and the rotations work on Rᵀ: k × k instead of m × k,
 * and its graded columns need fewer sweeps.
 */
export const svd = (a: Matrix): SvdResult => {
  if (a.rows < a.cols) {
    const t = svd(transposed(a));
    return { u: transposed(t.vt), s: t.s, vt: transposed(t.u) };
  }
  const { rows: m, cols: n } = a;
  const f = householder(a, true);
  const r = upperFactor(f, m, n); // n × n
  // Rᵀ = X·Σ·Yᵀ ⇒ A·P = Q·Y·Σ·Xᵀ: U = Q·Y, V = P·X.
  const { x, s, y } = jacobi(r);
  const u = matmul(orthogonalFactor(f, m, n), y);
  const vt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vt[k * n + f.perm[i]!] = x.data[i * n + k]!;
  return { u, s, vt: { rows: n, cols: n, data: vt } };
};

/**
 * One-sided Jacobi on the columns of rᵀ (= the rows of r, contiguous): rᵀ = x·diag(s)·yᵀ with x's columns the
 * normalised rotated columns and y the accumulated rotations, ordered by descending s.
 */
const jacobi = (r: Matrix): { x: Matrix; s: Float64Array; y: Matrix } => {
  const n = r.rows;
  const len = r.cols;
  const cols = Array.from({ length: n }, (_, j) => r.data.slice(j * len, (j + 1) * len));
  const rotations = Array.from({ length: n }, (_, j) => {
    const v = new Float64Array(n);
    v[j] = 1;
    return v;
  });
  const normsSq = new Float64Array(n);
  // LAPACK's dgesvj threshold: below it a pair is orthogonal to working precision.
  const tolerance = Math.sqrt(len) * Number.EPSILON;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    // Squared norms are updated through each rotation and recomputed once a sweep to stop drift.
    for (let j = 0; j < n; j++) normsSq[j] = dot(cols[j]!, cols[j]!);
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const alpha = normsSq[p]!;
        const beta = normsSq[q]!;
        const gamma = dot(cols[p]!, cols[q]!);
        if (gamma === 0 || Math.abs(gamma) <= tolerance * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        rotate(cols[p]!, cols[q]!, c, c * t);
        rotate(rotations[p]!, rotations[q]!, c, c * t);
        normsSq[p] = alpha - t * gamma;
        normsSq[q] = beta + t * gamma;
      }
    }
    if (!rotated) break;
  }
  const norms = cols.map((col) => Math.sqrt(dot(col, col)));
  const order = [...norms.keys()].sort((i, j) => norms[j]! - norms[i]!);
  const x = new Float64Array(len * n);
  const y = new Float64Array(n * n);
  const s = new Float64Array(n);
  const tiny = (norms[order[0]!] ?? 0) * 1e-300;
  order.forEach((src, k) => {
    s[k] = norms[src]!;
    for (let i = 0; i < n; i++) y[i * n + k] = rotations[src]![i]!;
    if (norms[src]! > tiny) for (let i = 0; i < len; i++) x[i * n + k] = cols[src]![i]! / norms[src]!;
  });
  completeOrthonormalColumns(x, len, n, s, tiny);
  return { x: { rows: len, cols: n, data: x }, s, y: { rows: n, cols: n, data: y } };
};

const dot = (x: Float64Array, y: Float64Array): number => {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i]! * y[i]!;
  return acc;
};

const rotate = (x: Float64Array, y: Float64Array, c: number, s: number): void => {
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    x[i] = c * xi - s * yi;
    y[i] = s * xi + c * yi;
  }
};

/** Columns of U for zero singular values are not determined by A: fill them orthonormally (Gram–Schmidt on e_i). */
const completeOrthonormalColumns = (u: Float64Array, m: number, k: number, s: Float64Array, tiny: number): void => {
  let basis = 0;
  for (let col = 0; col < k; col++) {
    if (s[col]! > tiny) continue;
    for (; basis < m; basis++) {
      const v = new Float64Array(m);
      v[basis] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let other = 0; other < k; other++) {
          if (other === col) continue;
          let dot = 0;
          for (let i = 0; i < m; i++) dot += u[i * k + other]! * v[i]!;
          for (let i = 0; i < m; i++) v[i]! -= dot * u[i * k + other]!;
        }
      }
      const norm = Math.sqrt(v.reduce((acc, x) => acc + x * x, 0));
      if (norm < 1e-8) continue;
      for (let i = 0; i < m; i++) u[i * k + col] = v[i]! / norm;
      basis++;
      break;
    }
  }
};

/**
 * torch.svd_lowrank's randomized SVD (Halko et al. 2009, algorithm 5.1): a Gaussian sketch of rank q refined by
 * `niter` subspace iterations, then an exact SVD of the small projected matrix. Approximate: how close the
 * result is to the top-q triplets depends on the gap after σ_q and on niter.
 */
export const svdLowRank = (a: Matrix, q: number, niter: number, rng: () => number): SvdResult => {
  if (a.rows < a.cols) {
    const t = svdLowRank(transposed(a), q, niter, rng);
    return { u: transposed(t.vt), s: t.s, vt: transposed(t.u) };
  }
  const at = transposed(a);
  const orthonormalBasis = (x: Matrix): Matrix => qr(x).q;
  let basis = orthonormalBasis(matmul(a, matrix(a.cols, q, normalArray(a.cols * q, 1, rng))));
  for (let i = 0; i < niter; i++) {
    basis = orthonormalBasis(matmul(at, basis));
    basis = orthonormalBasis(matmul(a, basis));
  }
  const small = svd(matmul(transposed(basis), a)); // (q × n) = Ub·S·Vᵀ
  return { u: matmul(basis, small.u), s: small.s, vt: small.vt };
};
