import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openGgufModel } from '../../main/models/gguf/load.ts';
import { openGgufModelQ4 } from '../../main/models/gguf/quantized.ts';
import { oracleCacheDir, oracleRequired } from '../helpers/oracle-cache.ts';

const gguf = join(oracleCacheDir(), '..', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
if (!existsSync(gguf)) console.warn('SmolLM2 GGUF missing (tests/oracle/fetch-smollm2.sh): 4-bit GGUF test skipped');

describe.skipIf(!existsSync(gguf) && !oracleRequired())('GGUF 4-bit blocks kept for MatMulNBits', () => {
  it('SmolLM2 with its Q4_1 blocks kept gives the dequantized model’s logits (≤ 1e-4·max|logit|)', async () => {
    const ids = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30];
    const feeds = {
      input_ids: { dtype: 'int64' as const, shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
      position_ids: { dtype: 'int64' as const, shape: [1, ids.length], data: BigInt64Array.from(ids.keys(), BigInt) },
    };
    const logits = async (model: ReturnType<typeof openGgufModel>) => {
      const s = await Session.create(buildLogitsGraph(model));
      const out = (await s.run(feeds)).logits!.data as Float32Array;
      await s.release();
      return out;
    };
    const q4Model = openGgufModelQ4(gguf);
    const kept = [...q4Model.weights.values()].filter((w) => w.q4).length;
    expect(kept).toBe(210); // every Q4_1 linear weight of the 30 layers
    const a = await logits(openGgufModel(gguf));
    const b = await logits(q4Model);
    let err = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      err = Math.max(err, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(a[i]!));
    }
    expect(err).toBeLessThanOrEqual(1e-5 * scale * 10);
  });
});
