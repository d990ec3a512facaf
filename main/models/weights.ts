import type { DType, GraphBuilder, InitializerData, Tensor } from '../engine/ir/index.ts';
import { cast, shapeStr } from '../engine/ir/index.ts';
import { ModelLoadError } from './errors.ts';
import type { SafetensorsEntry } from './safetensors.ts';

/** A frozen tensor of a checkpoint: where its bytes are, in which dtype. */
export interface WeightSource {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: InitializerData;
}

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
