// A (merged) model as a llama.cpp GGUF: HF tensors renamed to llama.cpp's names, q/k rows permuted for `llama`,
// 2-D weights in F16 / Q8_0 / F32 (norms and other vectors F32, as convert_hf_to_gguf.py does; a Q8_0 tensor whose
// rows are not whole blocks falls back to F16), metadata from the base GGUF or built from config.json.
import type { GgufMetadataEntry } from '../gguf/reader.ts';
import { hfToGgufName, permuteQkRows, qkPermutationHeads } from '../gguf/names.ts';
import { GgmlType, GgufValueType } from '../gguf/types.ts';
import { encodeGgufTensor, ggufValue, writeGguf, type GgufTensorSpec } from '../gguf/writer.ts';
import { guardDestination } from './atomic.ts';
import { ExportError } from './errors.ts';

export type GgufOutType = 'F32' | 'F16' | 'Q8_0';

/** llama.cpp's general.file_type (llama_ftype) for each output type. */
const FILE_TYPE: Readonly<Record<GgufOutType, number>> = { F32: 0, F16: 1, Q8_0: 7 };

/** HF architecture → llama.cpp architecture (convert_hf_to_gguf.py converts Mistral as `llama`). */
export const LLAMA_CPP_ARCHITECTURES: Readonly<Record<string, string>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

export interface GgufModelTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly read: () => Float32Array;
}

export interface GgufModelSpec {
  readonly architecture: string;
  readonly heads: { readonly numHeads: number; readonly numKvHeads: number };
  /** Everything but general.file_type and general.quantization_version, which follow `type`. */
  readonly metadata: ReadonlyMap<string, GgufMetadataEntry>;
  readonly tensors: readonly GgufModelTensor[];
  /** Tensors already in GGUF form (e.g. rope_freqs.weight), written as they are. */
  readonly extra?: readonly GgufTensorSpec[];
  readonly type: GgufOutType;
  readonly inputs?: readonly string[];
  readonly overwrite?: boolean;
}

/** The type a tensor gets: vectors (norms, biases) stay F32. */
const tensorType = (dims: readonly number[], type: GgufOutType): number => {
  if (dims.length < 2 || type === 'F32') return GgmlType.F32;
  if (type === 'Q8_0' && dims[0]! % 32 === 0) return GgmlType.Q8_0;
  return GgmlType.F16;
};

export interface GgufModelResult {
  readonly path: string;
  readonly tensors: readonly { readonly name: string; readonly type: number }[];
}

export const writeGgufModel = (path: string, spec: GgufModelSpec): GgufModelResult => {
  guardDestination(path, spec.inputs ?? [], { overwrite: spec.overwrite });
  const tensors: GgufTensorSpec[] = spec.tensors.map((t) => {
    const name = hfToGgufName(t.name);
    if (!name) throw new ExportError(`${path}: tensor '${t.name}' has no llama.cpp name`, path, t.name);
    const dims = [...t.shape].reverse();
    const type = tensorType(dims, spec.type);
    return {
      name,
      dims,
      type,
      data: () => {
        let values = t.read();
        if (values.length !== dims.reduce((a, b) => a * b, 1)) throw new ExportError(`${path}: tensor '${t.name}' has ${values.length} values for shape [${t.shape.join(', ')}]`, path, t.name);
        const nHead = qkPermutationHeads(spec.architecture, t.name, spec.heads);
        if (nHead !== undefined) values = permuteQkRows(values, nHead, dims.length > 1 ? dims[0]! : 1);
        return encodeGgufTensor(values, type, name);
      },
    };
  });
  tensors.push(...(spec.extra ?? []));
  const metadata = new Map(spec.metadata);
  metadata.set('general.file_type', ggufValue.u32(FILE_TYPE[spec.type]));
  if (tensors.some((t) => t.type === GgmlType.Q8_0)) metadata.set('general.quantization_version', ggufValue.u32(2));
  else metadata.delete('general.quantization_version');
  writeGguf(path, { metadata, tensors });
  return { path, tensors: tensors.map((t) => ({ name: t.name, type: t.type })) };
};

const num = (c: Readonly<Record<string, unknown>>, key: string, fallback?: number): number => {
  const v = c[key];
  if (typeof v === 'number') return v;
  if (fallback !== undefined) return fallback;
  throw new ExportError(`config.json: '${key}' is missing or not a number`);
};

/**
 * llama.cpp's model metadata for an HF config.json (the keys convert_hf_to_gguf.py writes for llama, qwen2, qwen3),
 * without the tokenizer. llama3 rope scaling is carried by the rope_freqs.weight tensor (llama3RopeFactors).
 */
export const ggufModelMetadata = (c: Readonly<Record<string, unknown>>, name: string): Map<string, GgufMetadataEntry> => {
  const hfArch = (c.architectures as string[] | undefined)?.[0] ?? '';
  const arch = LLAMA_CPP_ARCHITECTURES[hfArch];
  if (!arch) throw new ExportError(`config.json: architecture '${hfArch}' cannot be exported to GGUF (supported: ${Object.keys(LLAMA_CPP_ARCHITECTURES).join(', ')})`);
  const heads = num(c, 'num_attention_heads');
  const hidden = num(c, 'hidden_size');
  const headDim = num(c, 'head_dim', hidden / heads);
  const k = (key: string) => `${arch}.${key}`;
  const m = new Map<string, GgufMetadataEntry>([
    ['general.architecture', ggufValue.string(arch)],
    ['general.type', ggufValue.string('model')],
    ['general.name', ggufValue.string(name)],
    [k('block_count'), ggufValue.u32(num(c, 'num_hidden_layers'))],
    [k('context_length'), ggufValue.u32(num(c, 'max_position_embeddings', 2048))],
    [k('embedding_length'), ggufValue.u32(hidden)],
    [k('feed_forward_length'), ggufValue.u32(num(c, 'intermediate_size'))],
    [k('attention.head_count'), ggufValue.u32(heads)],
    [k('attention.head_count_kv'), ggufValue.u32(num(c, 'num_key_value_heads', heads))],
    [k('rope.freq_base'), ggufValue.f32(num(c, 'rope_theta', 10000))],
    [k('attention.layer_norm_rms_epsilon'), ggufValue.f32(num(c, 'rms_norm_eps', 1e-6))],
  ]);
  if (arch === 'llama') {
    m.set(k('vocab_size'), ggufValue.u32(num(c, 'vocab_size')));
    m.set(k('rope.dimension_count'), ggufValue.u32(headDim));
  }
  if (headDim !== hidden / heads || arch === 'qwen3') {
    m.set(k('attention.key_length'), ggufValue.u32(headDim));
    m.set(k('attention.value_length'), ggufValue.u32(headDim));
  }
  const scaling = c.rope_scaling as Record<string, unknown> | null | undefined;
  const ropeType = scaling ? String(scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (ropeType === 'linear') {
    m.set(k('rope.scaling.type'), ggufValue.string('linear'));
    m.set(k('rope.scaling.factor'), ggufValue.f32(num(scaling!, 'factor')));
  } else if (ropeType !== 'default' && ropeType !== 'llama3') {
    throw new ExportError(`config.json: rope scaling '${ropeType}' cannot be exported to GGUF here (default, linear, llama3)`);
  }
  return m;
};

/** llama.cpp's llama3 rope factors tensor (convert_hf_to_gguf.py's generate_extra_tensors), or undefined. */
export const llama3RopeFactors = (c: Readonly<Record<string, unknown>>): GgufTensorSpec | undefined => {
  const s = c.rope_scaling as Record<string, unknown> | null | undefined;
  if (!s || String(s.rope_type ?? s.type) !== 'llama3') return undefined;
  const heads = num(c, 'num_attention_heads');
  const dim = num(c, 'head_dim', num(c, 'hidden_size') / heads);
  const base = num(c, 'rope_theta', 10000);
  const factor = num(s, 'factor', 8);
  const low = num(s, 'low_freq_factor', 1);
  const high = num(s, 'high_freq_factor', 4);
  const old = num(s, 'original_max_position_embeddings', 8192);
  const factors = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(base ** Math.fround((2 * i) / dim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < old / high) factors[i] = 1;
    else if (wavelen > old / low) factors[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      factors[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return { name: 'rope_freqs.weight', dims: [dim / 2], type: GgmlType.F32, data: () => new Uint8Array(factors.buffer) };
};

/** Copies metadata, leaving out keys a new file must set itself. */
export const carriedMetadata = (source: ReadonlyMap<string, GgufMetadataEntry>, drop: readonly string[] = []): Map<string, GgufMetadataEntry> =>
  new Map([...source].filter(([key, e]) => !drop.includes(key) && !(e.type === GgufValueType.ARRAY && e.itemType === GgufValueType.ARRAY)));
