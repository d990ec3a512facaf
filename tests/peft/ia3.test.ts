import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { openAdapterGenerator } from '../../main/generate/method-adapter.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyIa3, ia3Method, loadIa3Adapter, saveIa3Adapter } from '../../main/peft/ia3.ts';
import { isFeedforward, parseIa3Config, withIa3Defaults } from '../../main/peft/ia3-config.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import type { Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainerEvent } from '../../main/train/trainer.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const llama = tinyModelDir('llama3');
const qwen3 = tinyModelDir('qwen3');

describe('IA3 config', () => {
  it("reads PEFT's field names, fills PEFT's per-architecture defaults, and names the bad field", () => {
    const { config, warnings } = parseIa3Config({ peft_type: 'IA3', future_field: 1, layers_to_transform: [0], fan_in_fan_out: true }, 'cfg');
    expect([config.target_modules, config.feedforward_modules, config.init_ia3_weights, config.fan_in_fan_out]).toEqual([null, null, true, false]);
    expect(warnings).toEqual([
      "cfg: unknown field 'future_field' ignored (written by a newer PEFT?)",
      "cfg: layers_to_transform is not a field of PEFT's IA3Config; ignored (every layer is adapted)",
      'cfg: fan_in_fan_out=true is for Conv1D layers; these are nn.Linear, so it is set to false (as PEFT does)',
    ]);
    expect('layers_to_transform' in config).toBe(false);
    const llamaDefaults = withIa3Defaults(config, 'llama');
    expect([llamaDefaults.target_modules, llamaDefaults.feedforward_modules]).toEqual([['k_proj', 'v_proj', 'down_proj'], ['down_proj']]);
    expect(withIa3Defaults(config, 'qwen3').target_modules).toEqual(['q_proj', 'v_proj', 'down_proj']);
    // A given list is kept; only the null one takes the default.
    expect(withIa3Defaults({ ...config, target_modules: ['q_proj'] }, 'mistral')).toMatchObject({ target_modules: ['q_proj'], feedforward_modules: ['down_proj'] });
    expect(() => withIa3Defaults(config, 'gpt2')).toThrow(/target_modules is null and model type 'gpt2' has no default/);
    expect(() => withIa3Defaults(config, undefined)).toThrow(/the model type is not known/);

    expect(() => parseIa3Config({ peft_type: 'LORA' }, 'cfg')).toThrow(/cfg: peft_type="LORA" is not 'IA3'/);
    expect(() => parseIa3Config({ init_ia3_weights: 'yes' }, 'cfg')).toThrow(/init_ia3_weights/);
    expect(() => parseIa3Config({ target_modules: [''] }, 'cfg')).toThrow(/target_modules/);
    expect(() => parseIa3Config({ modules_to_save: 'lm_head' }, 'cfg')).toThrow(/modules_to_save/);
    expect(() => parseIa3Config({ target_modules: ['k_proj'], feedforward_modules: ['down_proj'] }, 'cfg')).toThrow(PeftError);
    expect(() => parseIa3Config({ target_modules: ['k_proj'], feedforward_modules: ['down_proj'] }, 'cfg')).toThrow(/subset of target_modules \(\["down_proj"\]/);
    // What PEFT saves for target_modules='all-linear' (full names) loads here, with a warning PEFT itself would refuse it.
    const allLinear = parseIa3Config({ target_modules: ['model.layers.0.mlp.down_proj', 'model.layers.0.self_attn.q_proj'], feedforward_modules: ['down_proj'] }, 'cfg');
    expect(allLinear.warnings).toEqual(['cfg: feedforward_modules ["down_proj"] are not listed in target_modules, only end some of them; PEFT 0.17 refuses such a config, PEFT Studio applies it']);
  });

  it("matches feedforward modules as PEFT does: a regex in full, names as plain suffixes", () => {
    expect(isFeedforward({ feedforward_modules: ['wn_proj'] }, 'model.layers.0.mlp.down_proj')).toBe(true);
    expect(isFeedforward({ feedforward_modules: ['up_proj'] }, 'model.layers.0.mlp.down_proj')).toBe(false);
    expect(isFeedforward({ feedforward_modules: '.*mlp\\.down_proj' }, 'model.layers.0.mlp.down_proj')).toBe(true);
    expect(isFeedforward({ feedforward_modules: 'mlp\\.down_proj' }, 'model.layers.0.mlp.down_proj')).toBe(false);
    expect(ia3Method.savedKey('base_model.model.model.layers.0.mlp.down_proj.ia3_l.default', 'default')).toBe('base_model.model.model.layers.0.mlp.down_proj.ia3_l');
    expect(ia3Method.savedKey('base_model.model.lm_head.modules_to_save.default.weight', 'default')).toBe('base_model.model.lm_head.weight');
    expect(peftMethod('IA3')).toBe(ia3Method);
  });
});

describe.skipIf(!llama && !oracleRequired())('IA3 rewrite and files', () => {
  it('adds (out, 1) vectors for output targets and (1, in) for feedforward ones, starting at 1 (the base model)', async () => {
    const model = openHfFolder(llama!);
    const { config } = parseIa3Config({}, 'cfg');
    const adapted = applyIa3(buildLogitsGraph(model), config, { modelType: model.config.modelType });
    const k = adapted.params.find((p) => p.module === 'model.layers.1.self_attn.k_proj')!;
    const down = adapted.params.find((p) => p.module === 'model.layers.1.mlp.down_proj')!;
    expect([k.name, k.shape, down.shape]).toEqual(['base_model.model.model.layers.1.self_attn.k_proj.ia3_l.default', [16, 1], [1, 64]]);
    expect(adapted.params).toHaveLength(6);
    expect(adapted.params.every((p) => p.data.every((v) => v === 1))).toBe(true);
    const ids = [[791, 4062, 14198, 39935]];
    const feeds: Record<string, HostTensor> = {
      input_ids: { dtype: 'int64', shape: [1, 4], data: BigInt64Array.from(ids[0]!, BigInt) },
      position_ids: { dtype: 'int64', shape: [1, 4], data: BigInt64Array.from([0n, 1n, 2n, 3n]) },
    };
    const run = async (graph: typeof adapted.graph, extra: Record<string, HostTensor>) => {
      const s = await Session.create(graph, { threads: 1 });
      const out = (await s.run({ ...feeds, ...extra })).logits!.data as Float32Array;
      await s.release();
      return out;
    };
    const ones = Object.fromEntries(adapted.params.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }]));
    const plain = await run(buildLogitsGraph(model), {});
    const same = await run(adapted.graph, ones);
    expect(same.every((v, i) => Math.abs(v - plain[i]!) <= 1e-5)).toBe(true);
    const doubled = { ...ones, [down.name]: { dtype: 'float32' as const, shape: down.shape, data: new Float32Array(64).fill(2) } };
    expect((await run(adapted.graph, doubled)).some((v, i) => Math.abs(v - plain[i]!) > 1e-3)).toBe(true);
  });

  it('saves PEFT keys and shapes, and rejects adapters for another config or model, naming the tensor', async () => {
    const model = openHfFolder(llama!);
    const graph = buildLogitsGraph(model);
    const { config } = parseIa3Config({ target_modules: ['k_proj', 'down_proj'], feedforward_modules: ['down_proj'] }, 'cfg');
    const dir = mkdtempSync(join(tmpdir(), 'ia3-files-'));
    const adapted = applyIa3(graph, config);
    saveIa3Adapter(dir, config, adapted.params);
    const header = readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
    expect(header.find((e) => e.name === 'base_model.model.model.layers.0.mlp.down_proj.ia3_l')!.shape).toEqual([1, 64]);
    expect(header.find((e) => e.name === 'base_model.model.model.layers.0.self_attn.k_proj.ia3_l')!.shape).toEqual([16, 1]);
    const saved = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(saved).toMatchObject({ peft_type: 'IA3', target_modules: ['k_proj', 'down_proj'], feedforward_modules: ['down_proj'], init_ia3_weights: true });
    expect(loadIa3Adapter(dir, graph).adapted.params.map((p) => p.name)).toEqual(adapted.params.map((p) => p.name));

    // The same file read with down_proj as an output target: its saved (1, in) vector does not fit (out, 1).
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...saved, feedforward_modules: [] }));
    expect(() => loadIa3Adapter(dir, graph)).toThrow(/down_proj\.ia3_l' has shape \[1, 64\], this model and config need \[32, 1\]/);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...saved, target_modules: ['k_proj'], feedforward_modules: [] }));
    expect(() => loadIa3Adapter(dir, graph)).toThrow(/down_proj\.ia3_l' has no place in this model/);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...saved, target_modules: ['k_proj', 'v_proj', 'down_proj'] }));
    expect(() => loadIa3Adapter(dir, graph)).toThrow(/v_proj\.ia3_l' is missing from adapter_model\.safetensors/);
    expect(() => applyIa3(graph, { ...config, target_modules: ['nope'] })).toThrow(/matched no linear layer/);
    await expect(openAdapterGenerator(model, join(tmpdir(), 'no-such-adapter'))).rejects.toThrow(/is not a PEFT adapter folder/);
  });
});

describe.skipIf(!qwen3 && !oracleRequired())('IA3 training', () => {
  it('trains a tiny model with the Trainer: the eval loss falls', async () => {
    const model = openHfFolder(qwen3!);
    const tokenizer = loadTokenizerFromFolder(qwen3!);
    // A short phrase repeated from every offset: a pattern a random tiny model can learn through scaling vectors alone
    // (on ordinary prose its near-uniform 151k-way output barely moves in a few steps). Eval rows are shorter.
    const cycle = tokenizer.encode('the whale, the sea, the ship;', { addSpecialTokens: false });
    const rows = (n: number, length: number): Example[] =>
      Array.from({ length: n }, (_, i) => {
        const ids = Array.from({ length }, (_, t) => cycle[(t + i) % cycle.length]!);
        return { inputIds: ids, labels: ids };
      });
    const { config } = parseIa3Config({ target_modules: 'all-linear', feedforward_modules: ['down_proj'] }, 'test');
    const adapted = ia3Method.apply(buildTrainingGraph(model), config, { seed: 1 });
    const events: TrainerEvent[] = [];
    const trainer = await Trainer.create({
      graph: adapted.graph,
      params: adapted.params,
      train: rows(40, 40),
      eval: rows(4, 24),
      hyper: { microBatchSize: 4, gradientAccumulation: 1, lr: 0.1, schedule: 'constant', maxLength: 96, packing: true, seed: 3, maxSteps: 10, evalEvery: 10, session: { threads: 1 } },
      outputDir: mkdtempSync(join(tmpdir(), 'ia3-train-')),
      onEvent: (e) => events.push(e),
    });
    const before = await trainer.evaluate();
    const result = await trainer.run();
    await trainer.release();
    expect(result.status).toBe('completed');
    const after = events.filter((e) => e.type === 'eval').at(-1)!;
    expect(after.type === 'eval' && after.loss).toBeLessThan(before - 0.5);
    // Every vector moved away from 1.
    expect(trainer.trainables.every((p) => p.data.some((v) => v !== 1))).toBe(true);
  });
});
