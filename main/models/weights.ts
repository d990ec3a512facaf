import type { DType, GraphBuilder, InitializerData, Tensor } from '../engine/ir/index.ts';
import { cast, shapeStr, type Q4Weight } from '../engine/ir/index.ts';
import { ModelLoadError } from './errors.ts';
import type { SafetensorsEntry } from './safetensors.ts';

/** A frozen tensor of a checkpoint: where its bytes are, in which dtype. */
export interface WeightSource {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: InitializerData;
  /** Set when the weight is kept in 4-bit blocks (GGUF Q4 blocks, QLoRA): used instead of `data`. */
  readonly q4?: Q4Source;
}

/** A (N, K) weight in 4-bit blocks along K: w = (code − zeroPoint) · scale (+ min), per block. */
export interface Q4Source {
  readonly blockSize: number;
  /** MatMulNBits' layout: (N, K/blockSize, blockSize/2), two codes per byte, low nibble first. */
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  /** Packed 4-bit zero points (packQ4ZeroPoints); absent = 8. */
  readonly zeroPoints?: Uint8Array;
  /** Per-block offsets (N·K/blockSize), as GGUF Q4_1 stores them. */
  readonly mins?: Float32Array;
}

/** A linear layer's frozen weight as the graph sees it: float (N, K), or 4-bit blocks. */
export type LinearWeight = { readonly kind: 'float'; readonly weight: Tensor } | { readonly kind: 'q4'; readonly weight: Q4Weight };

/** The tensors of one checkpoint by Hugging Face name, wherever they came from (safetensors, GGUF). */
export type WeightStore = ReadonlyMap<string, WeightSource>;

export const weightsFromSafetensors = (entries: ReadonlyMap<string, SafetensorsEntry>): WeightStore =>
  new Map(
    [...entries].map(([name, e]) => [
      name,
      { dtype: e.dtype, shape: e.shape, data: { kind: 'external', file: e.file, offset: e.offset, length: e.length } },
    ]),
  );

/**
 * Hands a model builder its frozen weights as float32 graph tensors: float32 checkpoints stay in their file
 * (zero copy); bf16/f16 ones are cast in the graph (the CPU EP has no bf16 MatMul, and ORT folds the cast once).
 */
export class WeightBinder {
  private readonly bound = new Map<string, Tensor>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly store: WeightStore,
    private readonly origin: string,
  ) {}

  /** A linear layer's weight (N, K): 4-bit blocks when the store keeps them so, else float32. */
  linear(name: string, shape: readonly [number, number]): LinearWeight {
    const src = this.store.get(name);
    if (!src?.q4) return { kind: 'float', weight: this.get(name, shape) };
    const [n, k] = shape;
    const q = src.q4;
    if (src.shape[0] !== n || src.shape[1] !== k) {
      throw new ModelLoadError(`${this.origin}: tensor '${name}' has shape ${shapeStr(src.shape)}, the config implies ${shapeStr(shape)}`, this.origin);
    }
    const blocks = (n * k) / q.blockSize;
    const g = this.g;
    return {
      kind: 'q4',
      weight: {
        packed: g.initializer(name, 'uint8', [n, k / q.blockSize, q.blockSize / 2], { kind: 'inline', data: q.packed }),
        scales: g.initializer(`${name}.scales`, 'float32', [blocks], { kind: 'inline', data: q.scales }),
        ...(q.zeroPoints ? { zeroPoints: g.initializer(`${name}.zero_points`, 'uint8', [q.zeroPoints.length], { kind: 'inline', data: q.zeroPoints }) } : {}),
        ...(q.mins ? { mins: g.initializer(`${name}.mins`, 'float32', [n, k / q.blockSize], { kind: 'inline', data: q.mins }) } : {}),
        n,
        k,
        blockSize: q.blockSize,
      },
    };
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  get(name: string, shape: readonly number[]): Tensor {
    const hit = this.bound.get(name);
    if (hit) return hit;
    const src = this.store.get(name);
    if (!src) throw new ModelLoadError(`${this.origin}: tensor '${name}' is missing`, this.origin);
    if (src.shape.length !== shape.length || src.shape.some((d, i) => d !== shape[i])) {
      throw new ModelLoadError(`${this.origin}: tensor '${name}' has shape ${shapeStr(src.shape)}, the config implies ${shapeStr(shape)}`, this.origin);
    }
    const init = this.g.initializer(name, src.dtype, src.shape, src.data);
    const t = src.dtype === 'float32' ? init : this.g.scope(name, () => cast(init, 'float32', 'to_float32'));
    this.bound.set(name, t);
    return t;
  }
}
