// Llama 3's rope scaling travels in GGUF files as per-frequency factors (rope_freqs.weight), not as metadata:
// a tiny llama3-scaled model exported to GGUF and read back gives transformers' logits.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openGgufModel } from '../../main/models/gguf/load.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { saveAdapter } from '../../main/peft/peft-io.ts';
import { exportMergedGguf } from '../../main/train/export.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const dir = tinyModelDir('llama3');

describe.skipIf(!dir && !oracleRequired())('GGUF with llama3 rope factors', () => {
  it('reads rope_freqs.weight and equals transformers on the HF original', async () => {
    const work = mkdtempSync(join(tmpdir(), 'peft-rope-'));
    // An adapter at PEFT's default init (B = 0) merges to the base itself.
    const raw = { peft_type: 'LORA', r: 2, lora_alpha: 2, target_modules: ['q_proj'] };
    saveAdapter(join(work, 'adapter'), raw, applyLora(buildLogitsGraph(openHfFolder(dir!)), parseLoraConfig(raw, 'test').config).params);
    const out = join(work, 'llama3.gguf');
    exportMergedGguf({ base: dir!, adapter: join(work, 'adapter'), out, type: 'F32' });
    const model = openGgufModel(out);
    expect(model.config.ropeScaling.type).toBe('freq_factors');
    const ref = JSON.parse(readFileSync(join(dir!, 'reference.json'), 'utf8')) as { input_ids: number[][] };
    const want = new Float32Array(readFileSync(join(dir!, 'logits.f32')).buffer.slice(0));
    const [b, t] = [ref.input_ids.length, ref.input_ids[0]!.length];
    const s = await Session.create(buildLogitsGraph(model), { threads: 2 });
    const got = (await s.run({
      input_ids: { dtype: 'int64', shape: [b, t], data: BigInt64Array.from(ref.input_ids.flat(), BigInt) },
      position_ids: { dtype: 'int64', shape: [b, t], data: BigInt64Array.from({ length: b * t }, (_, i) => BigInt(i % t)) },
    })).logits!.data as Float32Array;
    await s.release();
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
    expect(err).toBeLessThanOrEqual(1e-4);
  });
});
