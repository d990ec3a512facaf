// DoRA (PEFT's tuners/lora/dora.py, DoraLinearLayer): a LoRA module whose output is rescaled per output feature
// by m / ‖W + s·B·A‖ (row norms), with the magnitude m (out,) trained and the norm detached from the gradient:
//   y = (x·Wᵀ + s·(x·Aᵀ)·Bᵀ)·m/‖W + s·B·A‖ + b
// PEFT computes (m/‖·‖ − 1)·(x·Wᵀ) + (m/‖·‖)·s·lora added to x·Wᵀ + b, the same up to rounding. With dropout
// PEFT feeds the dropped x to both the LoRA branch and the rescaled base term; so does this.
import { add, div, gemm, mul, reduceSum, sqrt, sub, type GraphBuilder, type Tensor } from '../engine/ir/index.ts';
import { stopGradient } from '../engine/ir/ops/stop-gradient.ts';

/** PEFT's in-memory key of a DoRA magnitude; saved as `<module>.lora_magnitude_vector` (no `.weight`). */
export const doraMagnitudeKey = (module: string, adapter: string): string =>
  `base_model.model.${module}.lora_magnitude_vector.${adapter}.weight`;

/** PEFT's initial magnitude: the row norms of W + s·B·A, with W (out, in), A (r, in), B (out, r). */
export const doraMagnitude = (w: ArrayLike<number>, a: Float32Array, b: Float32Array, out: number, inFeatures: number, r: number, scale: number): Float32Array => {
  const norms = new Float32Array(out);
  const row = new Float64Array(inFeatures);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inFeatures; i++) row[i] = w[o * inFeatures + i]!;
    for (let k = 0; k < r; k++) {
      const bk = scale * b[o * r + k]!;
      for (let i = 0; i < inFeatures; i++) row[i]! += bk * a[k * inFeatures + i]!;
    }
    norms[o] = Math.sqrt(row.reduce((acc, v) => acc + v * v, 0));
  }
  return norms;
};

export interface DoraModule {
  /** The module's input rows (rows, in) and the same after LoRA dropout (the same tensor without dropout). */
  readonly x: Tensor;
  readonly xDropped: Tensor;
  /** The frozen weight W (out, in) as float32, and the module's bias (out,) if it has one. */
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;
  readonly loraA: Tensor;
  readonly loraB: Tensor;
  readonly magnitude: Tensor;
  readonly scale: number;
  /** The HF module name: the base Gemm keeps it, DoRA's nodes are scoped under it. */
  readonly module: string;
}

/** The DoRA module's output (rows, out). */
export const doraLinear = (g: GraphBuilder, d: DoraModule): Tensor => {
  const base = gemm(d.x, d.weight, undefined, { transB: true, name: d.module }); // x·Wᵀ (rows, out)
  return g.scope(d.module, () => {
    const adapted = gemm(d.loraB, d.loraA, d.weight, { alpha: d.scale, name: 'lora_magnitude_vector.adapted_weight' }); // W + s·B·A (out, in)
    const norm = sqrt(reduceSum(mul(adapted, adapted), [1], { keepdims: false, name: 'lora_magnitude_vector.sum_sq' })); // (out,)
    const factor = div(d.magnitude, stopGradient(norm, 'lora_magnitude_vector.detached_norm'), 'lora_magnitude_vector.factor'); // (out,)
    const down = gemm(d.xDropped, d.loraA, undefined, { transB: true, name: 'lora_A' }); // (rows, r)
    const droppedBase = d.xDropped === d.x ? base : gemm(d.xDropped, d.weight, undefined, { transB: true, name: 'dropped_base' });
    const inner = gemm(down, d.loraB, droppedBase, { transB: true, alpha: d.scale, name: 'lora_B' }); // x_d·Wᵀ + s·lora (rows, out)
    let y = mul(inner, factor, 'lora_magnitude_vector.rescale'); // (rows, out)
    if (droppedBase !== base) y = add(sub(base, droppedBase), y);
    return d.bias ? add(y, d.bias, 'add_bias') : y;
  });
};
