import { ModelLoadError } from '../errors.ts';

/** ggml tensor types by their on-disk number (ggml.h `enum ggml_type`; numbers 4, 5 and 31–33 were retired). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

const QK_K = 256;

/**
 * [elements per block, bytes per block] for every type we know the size of. Knowing the size of a type we
 * cannot dequantize still lets the reader check that each tensor fits in the file and hand out raw bytes.
 */
const BLOCK_LAYOUT: Readonly<Record<number, readonly [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.Q4_0]: [32, 2 + 16],
  [GgmlType.Q4_1]: [32, 2 + 2 + 16],
  [GgmlType.Q5_0]: [32, 2 + 4 + 16],
  [GgmlType.Q5_1]: [32, 2 + 2 + 4 + 16],
  [GgmlType.Q8_0]: [32, 2 + 32],
  [GgmlType.Q8_1]: [32, 4 + 4 + 32],
  [GgmlType.Q2_K]: [QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  [GgmlType.Q3_K]: [QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  [GgmlType.Q4_K]: [QK_K, 2 + 2 + 12 + QK_K / 2],
  [GgmlType.Q5_K]: [QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2],
  [GgmlType.Q6_K]: [QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2],
  [GgmlType.Q8_K]: [QK_K, 4 + QK_K + QK_K / 8],
  [GgmlType.IQ2_XXS]: [QK_K, 2 + QK_K / 4],
  [GgmlType.IQ2_XS]: [QK_K, 2 + QK_K / 4 + QK_K / 32],
  [GgmlType.IQ3_XXS]: [QK_K, 2 + QK_K / 4 + QK_K / 8],
  [GgmlType.IQ1_S]: [QK_K, 2 + QK_K / 8 + QK_K / 16],
  [GgmlType.IQ4_NL]: [32, 2 + 16],
  [GgmlType.IQ3_S]: [QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  [GgmlType.IQ2_S]: [QK_K, 2 + QK_K / 4 + QK_K / 16],
  [GgmlType.IQ4_XS]: [QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  [GgmlType.I8]: [1, 1],
  [GgmlType.I16]: [1, 2],
  [GgmlType.I32]: [1, 4],
  [GgmlType.I64]: [1, 8],
  [GgmlType.F64]: [1, 8],
  [GgmlType.IQ1_M]: [QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.TQ1_0]: [QK_K, 2 + 4 * 13],
  [GgmlType.TQ2_0]: [QK_K, 2 + 64],
  [GgmlType.MXFP4]: [32, 1 + 16],
};

const NAME_BY_NUMBER = new Map<number, GgmlTypeName>(Object.entries(GgmlType).map(([k, v]) => [v, k as GgmlTypeName]));

/** "Q4_K" for 12; "type 99" for a number this build does not know. */
export const ggmlTypeName = (type: number): string => NAME_BY_NUMBER.get(type) ?? `type ${type}`;

export const ggmlBlockLayout = (type: number): { readonly blockSize: number; readonly typeSize: number } | undefined => {
  const layout = BLOCK_LAYOUT[type];
  return layout ? { blockSize: layout[0], typeSize: layout[1] } : undefined;
};

/** GGUF metadata value types (gguf.md `gguf_metadata_value_type`). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

export type GgufErrorKind =
  | 'bad-magic'
  | 'unsupported-version'
  | 'big-endian'
  | 'truncated'
  | 'malformed'
  | 'unknown-type'
  | 'unsupported-type'
  | 'unsupported-architecture'
  | 'missing-key'
  | 'missing-tensor';

/**
 * Anything wrong with a GGUF file. A ModelLoadError, so the app reports it like any model that fails to open;
 * `kind` and `tensor` let callers and tests tell the cases apart without parsing the message.
 */
export class GgufError extends ModelLoadError {
  constructor(
    readonly kind: GgufErrorKind,
    file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${detail}`, file);
  }
}
