import { OptimizerError } from './errors.ts';

export type GradTensors = ReadonlyMap<string, Float32Array> | readonly Float32Array[];

export interface ClipResult {
  /** Global L2 norm before clipping (may be NaN or ±Infinity). */
  readonly norm: number;
  /** Factor the gradients were multiplied by; 1 when not clipped or when the norm is not finite. */
  readonly scale: number;
}

/** L2 norm over all tensors together, accumulated in float64 (fp32 squares cannot overflow it). */
export function globalGradNorm(grads: GradTensors): number {
  let sumSquares = 0;
  for (const grad of grads.values()) {
    for (let i = 0; i < grad.length; i++) {
      const g = grad[i] as number;
      sumSquares += g * g;
    }
  }
  return Math.sqrt(sumSquares);
}

/**
 * torch.nn.utils.clip_grad_norm_ (norm_type 2), scaling in place. Unlike torch, a non-finite norm
 * leaves the gradients untouched: the caller's NaN guard decides whether to skip the step.
 */
export function clipGradNorm(grads: GradTensors, maxNorm: number): ClipResult {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new OptimizerError('invalid-config', `maxNorm must be a positive finite number, got ${String(maxNorm)}`);
  }
  const norm = globalGradNorm(grads);
  if (!Number.isFinite(norm)) return { norm, scale: 1 };
  const scale = Math.min(maxNorm / (norm + 1e-6), 1);
  if (scale < 1) {
    for (const grad of grads.values()) {
      for (let i = 0; i < grad.length; i++) grad[i] = (grad[i] as number) * scale;
    }
  }
  return { norm, scale };
}
