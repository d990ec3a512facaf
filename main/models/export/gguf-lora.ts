// A LoRA adapter as llama.cpp's GGUF LoRA file, the format convert_lora_to_gguf.py writes and llama-adapter.cpp
// reads: general.type = 'adapter', adapter.type = 'lora', adapter.lora.alpha (f32), and per adapted weight
// `<gguf weight name>.lora_a` (ggml dims [in, r]: A as PEFT stores it) and `.lora_b` (dims [r, out]: B). For `llama`
// GGUFs the B rows of q_proj / k_proj go through the converter's Q/K permutation, as the base weights did.
// llama.cpp scales each pair by alpha / rank (rank = lora_b's ne[0]) times the user's scale.
import { ExportError } from './errors.ts';
import { guardDestination } from './atomic.ts';
import { hfToGgufName, permuteQkRows, qkPermutationHeads } from '../gguf/names.ts';
import { GgmlType } from '../gguf/types.ts';
import type { GgufMetadataEntry } from '../gguf/reader.ts';
import { encodeGgufTensor, ggufValue, writeGguf, type GgufTensorSpec } from '../gguf/writer.ts';

/** One adapted linear module in HF layout: A (r, in), B (out, r). */
export interface GgufLoraModule {
  readonly module: string;
  readonly r: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly a: Float32Array;
  readonly b: Float32Array;
}

export interface GgufLoraSpec {
  /** llama.cpp's architecture name (general.architecture of the base GGUF): 'llama', 'qwen2', 'qwen3'. */
  readonly architecture: string;
  readonly alpha: number;
  readonly heads: { readonly numHeads: number; readonly numKvHeads: number };
  readonly modules: readonly GgufLoraModule[];
  /** Tensor type of A and B: F32 (the converter's default) or F16. */
  readonly type?: 'F32' | 'F16';
  /** Base GGUF tensor names, to reject modules the base lacks (a tied LM head has no output.weight). */
  readonly baseTensors?: ReadonlySet<string>;
  readonly name?: string;
  /** Inputs the file must never overwrite (the base model, the adapter folder). */
  readonly inputs?: readonly string[];
  readonly overwrite?: boolean;
}

/** Writes the adapter; returns the tensor names written. */
export const writeGgufLora = (path: string, spec: GgufLoraSpec): string[] => {
  guardDestination(path, spec.inputs ?? [], { overwrite: spec.overwrite });
  const type = spec.type === 'F16' ? GgmlType.F16 : GgmlType.F32;
  const tensors: GgufTensorSpec[] = [];
  for (const m of spec.modules) {
    const weight = `${m.module}.weight`;
    const name = hfToGgufName(weight);
    if (!name) throw new ExportError(`${path}: LoRA on '${m.module}' has no llama.cpp tensor to attach to`, path, weight);
    if (spec.baseTensors && !spec.baseTensors.has(name)) {
      throw new ExportError(`${path}: LoRA on '${m.module}' targets '${name}', which the base GGUF does not have (tied LM head?)`, path, weight);
    }
    if (m.a.length !== m.r * m.inFeatures || m.b.length !== m.outFeatures * m.r) {
      throw new ExportError(`${path}: '${m.module}': A/B sizes do not match r=${m.r}, ${m.outFeatures}×${m.inFeatures}`, path, weight);
    }
    const nHead = qkPermutationHeads(spec.architecture, weight, spec.heads);
    const b = nHead === undefined ? m.b : permuteQkRows(m.b, nHead, m.r);
    tensors.push({ name: `${name}.lora_a`, dims: [m.inFeatures, m.r], type, data: () => encodeGgufTensor(m.a, type, `${name}.lora_a`) });
    tensors.push({ name: `${name}.lora_b`, dims: [m.r, m.outFeatures], type, data: () => encodeGgufTensor(b, type, `${name}.lora_b`) });
  }
  if (tensors.length === 0) throw new ExportError(`${path}: the adapter has no LoRA modules to export`, path);
  const metadata = new Map<string, GgufMetadataEntry>([
    ['general.architecture', ggufValue.string(spec.architecture)],
    ['general.type', ggufValue.string('adapter')],
    ...(spec.name ? [['general.name', ggufValue.string(spec.name)] as const] : []),
    ['general.file_type', ggufValue.u32(type === GgmlType.F16 ? 1 : 0)],
    ['adapter.type', ggufValue.string('lora')],
    ['adapter.lora.alpha', ggufValue.f32(spec.alpha)],
  ]);
  writeGguf(path, { metadata, tensors });
  return tensors.map((t) => t.name);
};
