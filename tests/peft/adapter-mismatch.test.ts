import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles, saveAdapter } from '../../main/peft/peft-io.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const llama = tinyModelDir('llama3');
const qwen3 = tinyModelDir('qwen3');

describe.skipIf((!llama || !qwen3) && !oracleRequired())('an adapter for another base model', () => {
  it('is refused with an error naming the tensor and both shapes', () => {
    const raw = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false };
    const { config } = parseLoraConfig(raw, 'test');
    const onLlama = applyLora(buildLogitsGraph(openHfFolder(llama!)), config);
    const dir = mkdtempSync(join(tmpdir(), 'peft-mismatch-'));
    saveAdapter(dir, raw, onLlama.params);
    // tiny qwen3 has head_dim 16: its q_proj is (64, 32), llama3's (32, 32).
    const onQwen = applyLora(buildLogitsGraph(openHfFolder(qwen3!)), config);
    expect(() => assignAdapterWeights(onQwen.params, loadAdapterFiles(dir))).toThrow(
      /tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[32, 4\], this model needs \[64, 4\]/,
    );
    // Targets the other model lacks are named too.
    const { config: wider } = parseLoraConfig({ ...raw, target_modules: ['q_proj'] }, 'test');
    const fewer = applyLora(buildLogitsGraph(openHfFolder(llama!)), wider);
    expect(() => assignAdapterWeights(fewer.params, loadAdapterFiles(dir))).toThrow(/tensor 'base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight' has no place in this model/);
  });
});
