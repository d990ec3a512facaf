import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { dequantizeTensor } from '../../../main/models/gguf/dequant.ts';
import { hfShape } from '../../../main/models/gguf/names.ts';
import type { GgufFile, GgufValue } from '../../../main/models/gguf/reader.ts';

/** Where tests/oracle/fetch-smollm2.sh puts the real test model. */
export const SMOLLM2_PATH = join(
  process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio'),
  'models',
  'SmolLM2-135M-Instruct.Q4_1.gguf',
);

export const smollm2Available = (): boolean => existsSync(SMOLLM2_PATH);

/**
 * describe for suites that need the real SmolLM2 GGUF: skipped with one loud line when it has not been fetched,
 * except in CI (PEFT_REQUIRE_ORACLE=1) where the suite runs and fails on the missing file. The line is printed
 * when such a suite is declared, so files that merely import these helpers stay quiet.
 */
let warnedSmolLM2 = false;
export const describeSmolLM2 = (name: string, fn: () => void): void => {
  if (smollm2Available() || process.env.PEFT_REQUIRE_ORACLE === '1') {
    describe(name, fn);
    return;
  }
  if (!warnedSmolLM2) {
    warnedSmolLM2 = true;
    console.warn(`SmolLM2 GGUF missing (${SMOLLM2_PATH}): run tests/oracle/fetch-smollm2.sh — real-model GGUF tests skipped`);
  }
  describe.skip(name, fn);
};

/** Reads a raw little-endian float32 file the oracle wrote. */
export const readF32 = (file: string): Float32Array => {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
};

/**
 * Asserts two float32 arrays hold the same bit patterns (any NaN equals any NaN: payloads are not a format
 * property). On failure it reports how many differ and the first few, not a 30-million-entry diff.
 */
export const expectBitExact = (ours: Float32Array, reference: Float32Array, label: string): void => {
  expect(ours.length, `${label}: element count`).toBe(reference.length);
  const a = new Uint32Array(ours.buffer, ours.byteOffset, ours.length);
  const b = new Uint32Array(reference.buffer, reference.byteOffset, reference.length);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i] || (Number.isNaN(ours[i]) && Number.isNaN(reference[i]))) continue;
    count++;
    if (bad.length < 5) bad.push(`[${i}] ours ${ours[i]} (0x${a[i]!.toString(16)}) vs ${reference[i]} (0x${b[i]!.toString(16)})`);
  }
  expect(count === 0 ? 'bit-exact' : `${count} of ${a.length} values differ: ${bad.join('; ')}`, label).toBe('bit-exact');
};

/** What tests/oracle/gguf_dequant.py prints. */
export interface OracleDump {
  version?: number;
  alignment: number;
  data_offset: number;
  metadata?: Record<string, { type: number; item_type?: number; value: unknown }>;
  tensors: { name: string; type: number; type_name: string; ne: number[]; shape: number[]; offset: number; n_bytes: number; file: string | null }[];
}

/** Our metadata value in the oracle's JSON form (bigints as {bigint}; gguf-py flattens nested arrays). */
const asOracleJson = (v: GgufValue): unknown => {
  if (typeof v === 'bigint') return Math.abs(Number(v)) <= Number.MAX_SAFE_INTEGER ? Number(v) : { bigint: v.toString() };
  if (Array.isArray(v)) return (v as GgufValue[]).flatMap((x) => (Array.isArray(x) ? (asOracleJson(x) as unknown[]) : [asOracleJson(x)]));
  return v;
};

/** Every tensor of the dump: same ggml dims, file offset, byte size, HF shape, and (when dumped) bit-identical values. */
export const expectTensorsMatch = (g: GgufFile, dump: OracleDump): void => {
  for (const ref of dump.tensors) {
    const t = g.requireTensor(ref.name);
    expect([t.dims, t.type, t.fileOffset, t.byteLength, hfShape(t)], ref.name).toEqual([ref.ne, ref.type, ref.offset, ref.n_bytes, ref.shape]);
    if (ref.file) expectBitExact(dequantizeTensor(g, t), readF32(ref.file), `${ref.name} (${ref.type_name})`);
  }
};

/** All metadata of an opened file in gguf_dequant.py's JSON form. */
export const metadataAsOracleJson = (g: GgufFile): Record<string, unknown> =>
  Object.fromEntries(
    [...g.metadata].map(([k, e]) => [k, { type: e.type, ...(e.itemType !== undefined ? { item_type: e.itemType } : {}), value: asOracleJson(e.value) }]),
  );
