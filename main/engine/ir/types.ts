/** Element types the IR knows. `int4`/`uint4` are packed two per byte (quantized weights). */
export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  /** Storage only (checkpoints): cast to float32 before compute, since the CPU EP has no bf16 MatMul. */
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'bool'
  | 'uint8'
  | 'int4'
  | 'uint4';

/** A dimension: a number, or a symbol (`batch`, `seq`) or a product of symbols and a factor (`2*batch*seq`). */
export type Dim = number | string;
export type Shape = readonly Dim[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float64', 'float16']);
export const isFloat = (dtype: DType): boolean => FLOAT_DTYPES.has(dtype);

export type AttrValue = number | string | boolean | readonly number[] | readonly string[];
export type Attrs = Readonly<Record<string, AttrValue | undefined>>;

export type TypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Uint8Array;

/** Where an initializer's bytes live: in memory, or inside an existing file (e.g. a .safetensors shard). */
export type InitializerData =
  | { readonly kind: 'inline'; readonly data: TypedArray }
  | { readonly kind: 'external'; readonly file: string; readonly offset: number; readonly length: number };

export const dtypeByteSize = (dtype: DType): number => {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'bool':
    case 'uint8':
      return 1;
    case 'int4':
    case 'uint4':
      return 0.5;
  }
};
