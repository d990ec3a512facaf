import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExportError } from '../../main/models/export/errors.ts';
import { openGguf } from '../../main/models/gguf/reader.ts';
import { openModel } from '../../main/models/open-model.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { exportAdapter, mergeAdapters } from '../../main/service/adapters.ts';
import { evaluate } from '../../main/service/evaluate.ts';
import { openStore } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter, writeChatDataset } from './adapter-fixtures.ts';

const qwen = tinyModelDir('qwen3');
const llama = tinyModelDir('llama3');
const SESSION = { threads: 1 };

describe.skipIf((!qwen || !llama) && !oracleRequired())('merge and export (service)', () => {
  let work: string;
  let dataset: string;
  let adapter: string;
  /** The adapter's eval loss on the original base: what every merged form must reproduce. */
  let adapterLoss: number;
  let baseLoss: number;
  const lossOf = async (model: string, adapters: string[] = []) =>
    (await evaluate({ model, adapters, base: adapters.length === 0, dataset, session: SESSION })).columns.map((c) => c.loss);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'peft-adapters-'));
    dataset = writeChatDataset(work, 8);
    adapter = randomAdapter(qwen!, join(work, 'adapter'), { target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] }, 7);
    [baseLoss, adapterLoss] = (await evaluate({ model: qwen!, adapters: [adapter], dataset, session: SESSION })).columns.map((c) => c.loss) as [number, number];
  });

  it('merges adapters into one (cat: 0.5·A + 0.5·A is A) and registers it in the store', async () => {
    const store = openStore(join(work, 'history.db'));
    const out = join(work, 'merged-adapter');
    const r = mergeAdapters({ model: qwen!, adapters: [adapter, adapter], weights: [0.5, 0.5], combination: 'cat', out, store });
    expect(r).toMatchObject({ rank: 8, modules: 2 * 5, combination: 'cat' });
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 8, base_model_name_or_path: qwen });
    expect(store.adapters.list()).toMatchObject([{ path: out, peftType: 'LORA', baseModel: qwen, runId: null }]);
    store.close();
    const [merged] = await lossOf(qwen!, [out]);
    console.log(`merged adapter eval loss ${merged!.toFixed(6)} vs the adapter ${adapterLoss.toFixed(6)} (base ${baseLoss.toFixed(6)})`);
    expect(Math.abs(merged! - adapterLoss)).toBeLessThan(1e-5 * adapterLoss);
    expect(Math.abs(baseLoss - adapterLoss)).toBeGreaterThan(1e-3);
  });

  it('exports a merged HF folder and a merged F32 GGUF that load through openModel with the adapter eval loss', async () => {
    const hf = join(work, 'merged-hf');
    const r = exportAdapter({ model: qwen!, adapter, format: 'hf', out: hf });
    expect(r).toMatchObject({ format: 'hf', paths: [hf], changed: 2 * 5 });
    expect(openModel(hf).format).toBe('hf');
    const gguf = join(work, 'merged.gguf');
    exportAdapter({ model: qwen!, adapter, format: 'gguf', ggufType: 'f32', out: gguf });
    expect(openModel(gguf).format).toBe('gguf');
    const [fromHf] = await lossOf(hf);
    const [fromGguf] = await lossOf(gguf);
    console.log(`eval loss: adapter ${adapterLoss.toFixed(6)}, merged HF ${fromHf!.toFixed(6)}, merged GGUF F32 ${fromGguf!.toFixed(6)}`);
    expect(Math.abs(fromHf! - adapterLoss)).toBeLessThan(1e-4);
    expect(Math.abs(fromGguf! - adapterLoss)).toBeLessThan(1e-4);
  });

  it('exports an Ollama folder (Q8_0 GGUF + Modelfile) and a llama.cpp GGUF LoRA', async () => {
    const ollama = join(work, 'ollama');
    const r = exportAdapter({ model: qwen!, adapter, format: 'ollama', ggufType: 'q8_0', out: ollama });
    expect(r.paths).toEqual([join(ollama, 'model.gguf'), join(ollama, 'Modelfile')]);
    expect(readFileSync(join(ollama, 'Modelfile'), 'utf8')).toMatch(/^FROM \.\/model\.gguf$/m);
    const [q8] = await lossOf(join(ollama, 'model.gguf'));
    console.log(`merged GGUF Q8_0 eval loss ${q8!.toFixed(6)} vs the adapter ${adapterLoss.toFixed(6)}`);
    expect(Math.abs(q8! - adapterLoss)).toBeLessThan(Math.abs(baseLoss - adapterLoss));

    const lora = join(work, 'adapter.gguf');
    exportAdapter({ model: qwen!, adapter, format: 'gguf-lora', out: lora });
    const file = openGguf(lora);
    expect(file.string('general.type')).toBe('adapter');
    expect(file.tensors).toHaveLength(2 * 2 * 5);
  });

  it('refuses an adapter of another model naming its tensor, existing outputs, and a q8_0 GGUF LoRA', () => {
    const foreign = randomAdapter(llama!, join(work, 'llama-adapter'));
    expect(() => exportAdapter({ model: qwen!, adapter: foreign, format: 'hf', out: join(work, 'x') })).toThrow(PeftError);
    expect(() => mergeAdapters({ model: qwen!, adapters: [adapter, foreign], out: join(work, 'y') })).toThrow(
      /llama-adapter: tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[32, 4\]/,
    );
    expect(existsSync(join(work, 'x')) || existsSync(join(work, 'y'))).toBe(false);
    expect(() => exportAdapter({ model: qwen!, adapter, format: 'hf', out: join(work, 'merged-hf') })).toThrow(ExportError);
    expect(() => exportAdapter({ model: qwen!, adapter, format: 'gguf-lora', ggufType: 'q8_0', out: join(work, 'z.gguf') })).toThrow(/f32 or f16/);
  });
});
