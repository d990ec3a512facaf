import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { dequantizeTensor, q4Blocks } from '../../../main/models/gguf/dequant.ts';
import { openGguf, type GgufFile } from '../../../main/models/gguf/reader.ts';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { expectBitExact, expectTensorsMatch, metadataAsOracleJson, type OracleDump } from './helpers.ts';

const LEGACY_TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1'];
const K_TYPES = ['Q4_K', 'Q5_K', 'Q6_K'];

describeOracle('dequantization is bit-exact with gguf-py (synthetic files from gguf.GGUFWriter)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-gguf-oracle-'));
  let legacy: { file: GgufFile; dump: OracleDump };
  let kquants: { file: GgufFile; dump: OracleDump };

  beforeAll(() => {
    const made = runOracle<{ files: { legacy: string; kquants: string } }>('gguf_make.py', [join(dir, 'files')]);
    const load = (path: string, out: string) => ({ file: openGguf(path), dump: runOracle<OracleDump>('gguf_dequant.py', [path, join(dir, out)]) });
    legacy = load(made.files.legacy, 'legacy');
    kquants = load(made.files.kquants, 'kquants');
  });

  it.each(LEGACY_TYPES)('%s (quantized by gguf.quants.quantize; 2-D and 3-D tensors)', (type) => {
    const dump = { ...legacy.dump, tensors: legacy.dump.tensors.filter((t) => t.name === `t.${type}` || t.name === `t3.${type}`) };
    expect(dump.tensors).toHaveLength(2);
    expectTensorsMatch(legacy.file, dump);
  });

  it.each(K_TYPES)('%s (random raw blocks; gguf-py cannot quantize K-quants)', (type) => {
    const dump = { ...kquants.dump, tensors: kquants.dump.tensors.filter((t) => t.name === `k.${type}`) };
    expect(dump.tensors).toHaveLength(1);
    expectTensorsMatch(kquants.file, dump);
  });

  it('header layout agrees: every tensor, alignment (32 and custom 64), data section start', () => {
    for (const { file, dump } of [legacy, kquants]) {
      expect([file.alignment, file.dataOffset, file.version]).toEqual([dump.alignment, dump.data_offset, dump.version]);
      expect(file.tensors.map((t) => t.name)).toEqual(dump.tensors.map((t) => t.name));
      expectTensorsMatch(file, { ...dump, tensors: dump.tensors.filter((t) => t.name === 't.F32_vector') });
    }
  });

  it('metadata of every value type agrees with GGUFReader (nested arrays compared flattened, as it reads them)', () => {
    expect(metadataAsOracleJson(legacy.file)).toEqual(legacy.dump.metadata);
    // The structure gguf-py's reader loses, checked against what gguf_make.py wrote.
    expect(legacy.file.array('test.nested')).toEqual([[1, 2, 3], [4], [5, 6]]);
    expect(legacy.file.array('test.nested_strings')).toEqual([['x', 'y'], ['z']]);
    expect(legacy.file.value('test.u64')).toBe(2n ** 53n + 12345n);
  });

  it('Q4_0/Q4_1 raw blocks rebuild exactly the dequantized values', () => {
    for (const name of ['t.Q4_0', 't.Q4_1', 't3.Q4_0', 't3.Q4_1']) {
      const t = legacy.file.requireTensor(name);
      const b = q4Blocks(legacy.file, t);
      const rebuilt = new Float32Array(t.nElements);
      for (let i = 0; i < rebuilt.length; i++) {
        const blk = i >>> 5;
        rebuilt[i] = b.mins ? b.scales[blk]! * b.codes[i]! + b.mins[blk]! : b.scales[blk]! * (b.codes[i]! - 8);
      }
      expect(Math.max(...b.codes)).toBeLessThanOrEqual(15);
      expectBitExact(rebuilt, dequantizeTensor(legacy.file, t), name);
    }
  });
});
