import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { loraAdapterWeights, mergeWeights, unmergeWeights } from '../../main/peft/merge.ts';
import { assignAdapterWeights, loadAdapterFiles, type LoadedAdapter } from '../../main/peft/peft-io.ts';
import { exportMergedHf } from '../../main/train/export.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';

/**
 * Merging equals PEFT's merge_and_unload (LoRA with rsLoRA and rank/alpha patterns, DoRA, trained biases and
 * modules_to_save); unmerging restores the base; the exported HF folder loads in transformers with the logits of
 * our adapted (unmerged) model.
 */
const CASES: Record<string, { model: string; config: Record<string, unknown>; peftMergeIsExact?: boolean; maxShardBytes?: number }> = {
  'rslora-all-linear-patterns': {
    model: 'llama3',
    config: { r: 4, lora_alpha: 16, use_rslora: true, target_modules: 'all-linear', rank_pattern: { o_proj: 2 }, alpha_pattern: { down_proj: 4 } },
  },
  // Also written in 5 MB shards with model.safetensors.index.json, as save_pretrained shards big models.
  dora: { model: 'llama3', config: { r: 4, lora_alpha: 8, use_dora: true, target_modules: ['q_proj', 'v_proj'] }, maxShardBytes: 5_000_000 },
  'qwen2-bias-modules-to-save': { model: 'qwen2', config: { r: 2, lora_alpha: 4, target_modules: ['k_proj', 'up_proj'], bias: 'all', modules_to_save: ['lm_head'] } },
  // PEFT merges a LoRA on a tied LM head into the shared tensor (its embedding changes too: merge_and_unload then
  // differs from the adapted model); we untie instead, so the export keeps the adapted model's logits.
  'tied-lm-head-lora': { model: 'llama-linear-tied', config: { r: 2, lora_alpha: 2, target_modules: ['q_proj', 'lm_head'] }, peftMergeIsExact: false },
};
const TEXTS = ['Hello world, merged adapters!', '  tabs\tand 12345 digits'];

const ready = Object.values(CASES).every((c) => tinyModelDir(c.model)) && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: PEFT merge oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));

const adaptedLogits = async (model: LoadedModel, adapter: LoadedAdapter, ids: number[][]): Promise<Float32Array> => {
  const { config } = parseLoraConfig(adapter.config, adapter.dir);
  const lora = applyLora(buildLogitsGraph(model), config);
  const weights = assignAdapterWeights(lora.params, adapter);
  const [b, t] = [ids.length, ids[0]!.length];
  const s = await Session.create(lora.graph, { threads: 2 });
  const out = await s.run({
    input_ids: { dtype: 'int64', shape: [b, t], data: BigInt64Array.from(ids.flat(), BigInt) },
    position_ids: { dtype: 'int64', shape: [b, t], data: BigInt64Array.from(ids.flatMap((row) => row.map((_, i) => BigInt(i)))) },
    ...Object.fromEntries(weights.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }])),
  });
  await s.release();
  return out.logits!.data as Float32Array;
};

describe.skipIf(!ready && !oracleRequired())('merge / unmerge / HF export equal PEFT and transformers', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const modelDir = tinyModelDir(c.model)!;
      const work = mkdtempSync(join(tmpdir(), 'peft-merge-'));
      const dirs = runOracle<Record<string, string>>('peft_merge_ref.py', [modelDir, work, JSON.stringify({ [name]: c.config })]);
      const dir = dirs[name]!;
      const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[][]; changed: string[] };
      const loaded = loadAdapterFiles(dir);
      const adapter = loraAdapterWeights(loaded);

      // Merge on Float32Arrays, compared with PEFT's merged tensors; unmerge restores the base.
      const base = readAll(join(modelDir, 'model.safetensors'));
      if (!base.has('lm_head.weight')) base.set('lm_head.weight', base.get('model.embed_tokens.weight')!);
      const { weights: merged, record } = mergeWeights(base, adapter);
      const peftMerged = readAll(join(dir, 'merged.safetensors'));
      if (c.peftMergeIsExact !== false) {
        const ours = [...merged].filter(([k, v]) => v !== base.get(k)).map(([k]) => k).sort();
        expect(ours).toEqual(ref.changed);
        for (const [k, want] of peftMerged) expect(maxDiff(merged.get(k)!, want), k).toBeLessThanOrEqual(2e-6 * Math.max(1, maxAbs(want)));
      }
      const restored = unmergeWeights(merged, adapter, record);
      for (const [k, v] of base) expect(maxDiff(restored.get(k)!, v), `unmerged ${k}`).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(v)));

      // Our adapted model equals PEFT's; the exported merged folder equals our adapted model in transformers.
      const model = openHfFolder(modelDir);
      const ours = await adaptedLogits(model, loaded, ref.input_ids);
      expect(maxDiff(ours, new Float32Array(readFileSync(join(dir, 'logits.f32')).buffer.slice(0)))).toBeLessThanOrEqual(1e-4);
      const out = join(work, 'merged-model');
      const result = exportMergedHf({ base: modelDir, adapter: dir, out, dtype: 'float32', ...(c.maxShardBytes ? { maxShardBytes: c.maxShardBytes } : {}) });
      if (c.maxShardBytes) expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(true);
      expect([...result.changed].sort()).toEqual([...adapter.modules.map((m) => `${m.module}.weight`), ...adapter.replaced.map((t) => t.name)].sort());
      const logitsFile = join(work, 'transformers.f32');
      const tf = runOracle<{ shape: number[]; tokens: number[][]; tied: boolean }>('peft_merge_load.py', [out, logitsFile, JSON.stringify(ref.input_ids), JSON.stringify(TEXTS)]);
      const theirs = new Float32Array(readFileSync(logitsFile).buffer.slice(0));
      expect(theirs.length).toBe(ours.length);
      expect(maxDiff(theirs, ours)).toBeLessThanOrEqual(1e-4);
      const tokenizer = loadTokenizerFromFolder(out);
      expect(tf.tokens).toEqual(TEXTS.map((t) => tokenizer.encode(t)));
      if (c.model === 'llama-linear-tied' || name.includes('modules-to-save')) expect(tf.tied).toBe(false);
    }, 120_000);
  }

  it('a bf16 base exports bf16 by default: untouched tensors byte-identical, transformers equal to our engine on the export', async () => {
    const modelDir = tinyModelDir('llama-bf16')!;
    const work = mkdtempSync(join(tmpdir(), 'peft-merge-bf16-'));
    const dirs = runOracle<Record<string, string>>('peft_merge_ref.py', [modelDir, work, JSON.stringify({ bf16: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'down_proj'] } })]);
    const out = join(work, 'merged-model');
    exportMergedHf({ base: modelDir, adapter: dirs.bf16!, out });
    const before = new Map(readSafetensorsHeader(join(modelDir, 'model.safetensors')).map((e) => [e.name, e]));
    const after = readSafetensorsHeader(join(out, 'model.safetensors'));
    const bytes = (e: { file: string; offset: number; length: number }) => readFileSync(e.file).subarray(e.offset, e.offset + e.length);
    for (const e of after) {
      expect(e.dtype, e.name).toBe('bfloat16');
      const changed = /(q_proj|down_proj)\.weight$/.test(e.name);
      expect(bytes(e).equals(bytes(before.get(e.name)!)), e.name).toBe(!changed);
    }
    const ids = [[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13]];
    const logitsFile = join(work, 'transformers.f32');
    const tf = runOracle<{ dtype: string }>('peft_merge_load.py', [out, logitsFile, JSON.stringify(ids), '[]']);
    expect(tf.dtype).toBe('torch.bfloat16');
    const s = await Session.create(buildLogitsGraph(openHfFolder(out)), { threads: 2 });
    const feeds = {
      input_ids: { dtype: 'int64' as const, shape: [1, 10], data: BigInt64Array.from(ids[0]!, BigInt) },
      position_ids: { dtype: 'int64' as const, shape: [1, 10], data: BigInt64Array.from({ length: 10 }, (_, i) => BigInt(i)) },
    };
    const ours = (await s.run(feeds)).logits!.data as Float32Array;
    await s.release();
    expect(maxDiff(new Float32Array(readFileSync(logitsFile).buffer.slice(0)), ours)).toBeLessThanOrEqual(1e-4);
  }, 120_000);
});
