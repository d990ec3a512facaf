import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const MODELS = ['llama3', 'llama-linear-tied', 'llama-bf16', 'mistral', 'qwen2', 'qwen3'];
const available = MODELS.filter((m) => tinyModelDir(m));
if (available.length < MODELS.length) {
  console.warn(`ORACLE MISSING: tiny reference models not generated (run tests/oracle/make_tiny_models.py); skipping ${MODELS.length - available.length} logits tests`);
}

describe('logits equal transformers’ on tiny random models (fp32, max abs diff ≤ 1e-4)', () => {
  for (const name of MODELS) {
    const dir = tinyModelDir(name);
    it.skipIf(!dir && !oracleRequired())(name, async () => {
      expect(dir, `tiny model ${name} missing: run tests/oracle/make_tiny_models.py`).toBeDefined();
      const ref = JSON.parse(readFileSync(join(dir!, 'reference.json'), 'utf8')) as { input_ids: number[][]; logits_shape: number[] };
      const want = new Float32Array(readFileSync(join(dir!, 'logits.f32')).buffer.slice(0));
      const model = openHfFolder(dir!);
      const session = await Session.create(buildLogitsGraph(model), { threads: 2 });
      const [b, t] = [ref.input_ids.length, ref.input_ids[0]!.length];
      const ids = BigInt64Array.from(ref.input_ids.flat(), (v) => BigInt(v));
      const pos = BigInt64Array.from({ length: b * t }, (_, i) => BigInt(i % t));
      const out = await session.run({
        input_ids: { dtype: 'int64', shape: [b, t], data: ids },
        position_ids: { dtype: 'int64', shape: [b, t], data: pos },
      });
      await session.release();
      expect(out.logits!.shape).toEqual(ref.logits_shape);
      const got = out.logits!.data as Float32Array;
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
      console.log(`${name}: max abs logit diff ${err.toExponential(2)} over ${want.length} logits`);
      expect(want.length).toBeGreaterThan(0);
      expect(err).toBeLessThanOrEqual(1e-4);
    });
  }
});
