import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DType } from '../engine/ir/index.ts';
import { ModelLoadError } from './errors.ts';

/** One tensor's place in a .safetensors file: absolute byte range, dtype and shape. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly file: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

const DTYPES: Readonly<Record<string, DType>> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool',
};
const BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 };

/** Reads a .safetensors header (8-byte little-endian length, then JSON) and checks every range against the file. */
export const readSafetensorsHeader = (file: string): SafetensorsEntry[] => {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new ModelLoadError(`cannot open ${file}: ${(err as Error).message}`, file);
  }
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new ModelLoadError(`${file}: not a safetensors file (too short)`, file);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > 100_000_000 || 8 + headerLen > size) {
      throw new ModelLoadError(`${file}: header length ${headerLen} does not fit a ${size}-byte file (truncated or not safetensors)`, file);
    }
    const json = Buffer.alloc(headerLen);
    readSync(fd, json, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ModelLoadError(`${file}: malformed header JSON (${(err as Error).message})`, file);
    }
    const base = 8 + headerLen;
    const entries: SafetensorsEntry[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const dtype = DTYPES[t.dtype ?? ''];
      if (!dtype || !t.shape || !t.data_offsets) throw new ModelLoadError(`${file}: tensor '${name}' has dtype ${t.dtype}, which is not supported or malformed`, file);
      const [start, end] = t.data_offsets;
      const expected = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype!]!;
      if (end - start !== expected) throw new ModelLoadError(`${file}: tensor '${name}' spans ${end - start} bytes, its shape needs ${expected}`, file);
      if (base + end > size) {
        throw new ModelLoadError(`${file} is truncated: tensor '${name}' ends at byte ${base + end}, the file has ${size}`, file);
      }
      entries.push({ name, file, dtype, shape: t.shape, offset: base + start, length: end - start });
    }
    return entries;
  } finally {
    closeSync(fd);
  }
};

/** All tensors of a model folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export const readSafetensorsFolder = (dir: string): Map<string, SafetensorsEntry> => {
  const index = join(dir, 'model.safetensors.index.json');
  let files: string[];
  let wanted: Map<string, string> | undefined;
  try {
    const parsed = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (!parsed.weight_map) throw new ModelLoadError(`${index}: no weight_map`, index);
    wanted = new Map(Object.entries(parsed.weight_map));
    files = [...new Set(wanted.values())].map((f) => join(dirname(index), f));
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelLoadError(`${index}: ${(err as Error).message}`, index);
    files = [join(dir, 'model.safetensors')];
  }
  const out = new Map<string, SafetensorsEntry>();
  for (const f of files) {
    if (!existsSync(f)) {
      throw new ModelLoadError(wanted ? `${index} lists ${f}, which does not exist` : `no model.safetensors (or model.safetensors.index.json) in ${dir}`, f);
    }
    for (const e of readSafetensorsHeader(f)) out.set(e.name, e);
  }
  if (wanted) {
    for (const [name, f] of wanted) if (!out.has(name)) throw new ModelLoadError(`${index} maps '${name}' to ${f}, which lacks it`, index);
  }
  return out;
};
