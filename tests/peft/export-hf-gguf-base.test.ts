import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openGgufModel } from '../../main/models/gguf/load.ts';
import { openGguf } from '../../main/models/gguf/reader.ts';
import { loadTokenizerFromFolder, tokenizerFromGgufMetadata } from '../../main/models/tokenizer/index.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { saveAdapter } from '../../main/peft/peft-io.ts';
import { exportMergedHf } from '../../main/train/export.ts';
import { describeOracle, runOracle } from '../helpers/oracle.ts';
import { describeSmolLM2, SMOLLM2_PATH } from '../models/gguf/helpers.ts';

/**
 * A GGUF base: SmolLM2 (Q4_1, dequantized) with a LoRA whose A and B are both random, merged and exported as an HF
 * folder — config.json from the GGUF metadata, tokenizer.json from its vocabulary. transformers loads it and gives
 * the logits of our adapted model; its tokenizer gives the ids ours (llama.cpp's) gives.
 */
const TEXTS = ['The capital of France is', 'Hello,   world!\n\nDigits 1234567 and ümlauts', '<|im_start|>user\nHi<|im_end|>\n'];

describeSmolLM2('merged HF folder from a GGUF base', () => {
  describeOracle('(transformers)', () => {
    it('transformers loads it with our adapted logits (≤ 1e-4 of the largest) and our tokenizer ids', async () => {
      const work = mkdtempSync(join(tmpdir(), 'peft-export-hf-gguf-'));
      const model = openGgufModel(SMOLLM2_PATH);
      const config = parseLoraConfig({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'], init_lora_weights: false }, 'test').config;
      const lora = applyLora(buildLogitsGraph(model), config, { seed: 9 });
      const adapterDir = join(work, 'adapter');
      saveAdapter(adapterDir, { ...config, init_lora_weights: true }, lora.params);

      const tokenizer = tokenizerFromGgufMetadata(openGguf(SMOLLM2_PATH).metadata, { source: SMOLLM2_PATH });
      const ids = [tokenizer.encode('The secret password is blueberry pancakes, said the old sailor.')];
      const T = ids[0]!.length;
      const s = await Session.create(lora.graph, { threads: 2 });
      const ours = (await s.run({
        input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ids[0]!, BigInt) },
        position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
        ...Object.fromEntries(lora.params.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }])),
      })).logits!.data as Float32Array;
      await s.release();

      const out = join(work, 'merged');
      const result = exportMergedHf({ base: SMOLLM2_PATH, adapter: adapterDir, out, dtype: 'float32' });
      expect(result.changed).toHaveLength(30 * 4);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) expect(existsSync(join(out, f)), f).toBe(true);
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg).toMatchObject({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 30, tie_word_embeddings: true, torch_dtype: 'float32' });

      const logitsFile = join(work, 'transformers.f32');
      const tf = runOracle<{ shape: number[]; tokens: number[][] }>('peft_merge_load.py', [out, logitsFile, JSON.stringify(ids), JSON.stringify(TEXTS)]);
      const theirs = new Float32Array(readFileSync(logitsFile).buffer.slice(0));
      let err = 0;
      let scale = 0;
      theirs.forEach((v, i) => ((err = Math.max(err, Math.abs(v - ours[i]!))), (scale = Math.max(scale, Math.abs(ours[i]!)))));
      console.log(`GGUF base → merged HF folder: transformers vs our adapted model, max |Δlogit| ${err.toExponential(2)} (max |logit| ${scale.toFixed(1)})`);
      expect(err).toBeLessThanOrEqual(1e-4 * scale);
      expect(tf.tokens).toEqual(TEXTS.map((t) => tokenizer.encode(t)));
      expect(TEXTS.map((t) => loadTokenizerFromFolder(out).encode(t))).toEqual(tf.tokens);
    }, 300_000);
  });
});
