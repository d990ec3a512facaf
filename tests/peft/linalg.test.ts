import { describe, expect, it } from 'vitest';
import { createRng } from '../../main/engine/random.ts';
import { matmul, matrix, qr, svd, svdLowRank, transposed, type Matrix } from '../../main/peft/linalg.ts';
import { uniform } from '../helpers/random.ts';

const randomMatrix = (rows: number, cols: number, seed: number): Matrix => matrix(rows, cols, uniform(rows * cols, -1, 1, seed));
const maxDiff = (a: Matrix, b: Matrix): number => {
  expect([a.rows, a.cols]).toEqual([b.rows, b.cols]);
  return a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
};
const identity = (n: number): Matrix => matrix(n, n, Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)));
const scaleColumns = (a: Matrix, s: ArrayLike<number>): Matrix => matrix(a.rows, a.cols, a.data.map((v, i) => v * s[i % a.cols]!));
/** Columns with orthonormal entries: QᵀQ = I. */
const expectOrthonormalColumns = (q: Matrix, tol = 1e-12): void => {
  expect(maxDiff(matmul(transposed(q), q), identity(q.cols))).toBeLessThan(tol);
};
const reconstruct = (u: Matrix, s: Float64Array, vt: Matrix): Matrix => matmul(scaleColumns(u, s), vt);

describe('Householder QR', () => {
  for (const [m, n] of [[7, 4], [4, 7], [6, 6], [1, 3], [3, 1]] as const) {
    it(`${m}×${n}: Q has orthonormal columns, R is upper trapezoidal, Q·R = A`, () => {
      const a = randomMatrix(m, n, 10 * m + n);
      const { q, r } = qr(a);
      const k = Math.min(m, n);
      expect([q.rows, q.cols, r.rows, r.cols]).toEqual([m, k, k, n]);
      expectOrthonormalColumns(q);
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(r.data[i * n + j]).toBe(0);
      expect(maxDiff(matmul(q, r), a)).toBeLessThan(1e-14);
    });
  }

  it("follows LAPACK's signs (as torch.linalg.qr): R's diagonal opposes the column's leading entry", () => {
    const { q, r } = qr(matrix(2, 1, [3, 4]));
    expect(Array.from(r.data)).toEqual([-5]);
    expect(Array.from(q.data).map((v) => +v.toFixed(12))).toEqual([-0.6, -0.8]);
    // A column that is already reduced is left alone (H = I), so its diagonal keeps its sign.
    expect(Array.from(qr(matrix(2, 2, [2, 1, 0, -3])).r.data)).toEqual([2, 1, 0, -3]);
  });

  it('handles a rank-deficient matrix', () => {
    const a = matmul(randomMatrix(6, 2, 1), randomMatrix(2, 5, 2)); // rank 2
    const { q, r } = qr(a);
    expectOrthonormalColumns(q);
    expect(maxDiff(matmul(q, r), a)).toBeLessThan(1e-14);
  });
});

describe('one-sided Jacobi SVD', () => {
  for (const [m, n] of [[9, 5], [5, 9], [8, 8], [1, 4], [32, 32]] as const) {
    it(`${m}×${n}: U·S·Vᵀ = A with orthonormal U, V and descending S`, () => {
      const a = randomMatrix(m, n, 100 * m + n);
      const { u, s, vt } = svd(a);
      const k = Math.min(m, n);
      expect([u.rows, u.cols, s.length, vt.rows, vt.cols]).toEqual([m, k, k, k, n]);
      expectOrthonormalColumns(u);
      expectOrthonormalColumns(transposed(vt));
      for (let i = 1; i < k; i++) expect(s[i]!).toBeLessThanOrEqual(s[i - 1]!);
      expect(maxDiff(reconstruct(u, s, vt), a)).toBeLessThan(1e-13);
    });
  }

  it('recovers known singular values, including zeros (rank-deficient input keeps an orthonormal U)', () => {
    const left = qr(randomMatrix(7, 4, 3)).q;
    const right = qr(randomMatrix(5, 4, 4)).q;
    const sigma = [9, 4, 0.5, 0];
    const a = matmul(scaleColumns(left, sigma), transposed(right));
    const { u, s, vt } = svd(a);
    sigma.forEach((want, i) => expect(Math.abs(s[i]! - want)).toBeLessThan(1e-13));
    expectOrthonormalColumns(u);
    expect(maxDiff(reconstruct(u, s, vt), a)).toBeLessThan(1e-13);
  });

  it('gives the best rank-r approximation: the residual after r triplets has spectral norm σ_{r+1}', () => {
    const a = randomMatrix(12, 10, 5);
    const { u, s, vt } = svd(a);
    const r = 3;
    const top = reconstruct(matrix(12, r, Array.from({ length: 12 * r }, (_, i) => u.data[Math.floor(i / r) * 10 + (i % r)]!)), s.slice(0, r), matrix(r, 10, vt.data.slice(0, r * 10)));
    const residual = matrix(12, 10, a.data.map((v, i) => v - top.data[i]!));
    expect(Math.abs(svd(residual).s[0]! - s[r]!)).toBeLessThan(1e-13);
  });
});

describe('randomized low-rank SVD (torch.svd_lowrank)', () => {
  it('is exact on a matrix of rank q', () => {
    const a = matmul(randomMatrix(20, 3, 6), randomMatrix(3, 15, 7));
    const exact = svd(a);
    const approx = svdLowRank(a, 3, 0, createRng(1));
    for (let i = 0; i < 3; i++) expect(Math.abs(approx.s[i]! - exact.s[i]!)).toBeLessThan(1e-12);
    expect(maxDiff(reconstruct(approx.u, approx.s, approx.vt), a)).toBeLessThan(1e-12);
  });

  it('converges to the top-q triplets when the spectrum has a gap, for tall and wide matrices', () => {
    for (const [m, n] of [[30, 18], [18, 30]] as const) {
      const k = Math.min(m, n);
      const sigma = Array.from({ length: k }, (_, i) => (i < 4 ? 50 - 5 * i : 1 / (i + 1)));
      const a = matmul(scaleColumns(qr(randomMatrix(m, k, m)).q, sigma), transposed(qr(randomMatrix(n, k, n)).q));
      const approx = svdLowRank(a, 4, 6, createRng(2));
      const exact = svd(a);
      const topOf = (f: typeof exact) => reconstruct(
        matrix(m, 4, Array.from({ length: m * 4 }, (_, i) => f.u.data[Math.floor(i / 4) * f.u.cols + (i % 4)]!)),
        f.s.slice(0, 4),
        matrix(4, n, f.vt.data.slice(0, 4 * n)),
      );
      expect(maxDiff(topOf(approx), topOf(exact))).toBeLessThan(1e-9);
    }
  });
});
