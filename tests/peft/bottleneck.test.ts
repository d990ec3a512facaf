import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { adapterFusionMethod, applyAdapterFusion, loadAdapterFusion, saveAdapterFusion } from '../../main/peft/adapter-fusion.ts';
import { applyBottleneck, bottleneckMethod, loadBottleneckAdapter, saveBottleneckAdapter } from '../../main/peft/bottleneck.ts';
import { bottleneckSize, parseBottleneckConfig } from '../../main/peft/bottleneck-config.ts';
import { parseAdapterFusionConfig } from '../../main/peft/bottleneck-fusion-config.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { EXAMPLES, logitsOf, maxAbs, maxDiff, nonZero, trainingBatch } from './bottleneck-fixtures.ts';

const llama = tinyModelDir('llama3');
const IDS = EXAMPLES.map((e) => e.inputIds.slice(0, 6));

describe('bottleneck and AdapterFusion configs', () => {
  it("takes AdapterHub's presets and fields, and names the bad field", () => {
    const { config, warnings } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'Houlsby', dropout: 0.1 }, 'cfg');
    expect(config).toMatchObject({ architecture: 'houlsby', non_linearity: 'swish', reduction_factor: 16, scaling: 1, init_weights: 'mam_adapter', leave_out: [] });
    expect(warnings).toEqual(["cfg: unknown field 'dropout' ignored (written by a newer PEFT?)"]);
    expect(parseBottleneckConfig({ peft_type: 'BOTTLENECK' }, 'cfg').config).toMatchObject({ architecture: 'pfeiffer', non_linearity: 'relu' });
    expect(() => parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'parallel' }, 'cfg')).toThrow(/cfg: architecture="parallel" must be 'houlsby' or 'pfeiffer'/);
    expect(() => parseBottleneckConfig({ peft_type: 'BOTTLENECK', non_linearity: 'softplus' }, 'cfg')).toThrow(/non_linearity/);
    expect(() => parseBottleneckConfig({ peft_type: 'BOTTLENECK', reduction_factor: 0 }, 'cfg')).toThrow(/reduction_factor=0/);
    expect(() => parseBottleneckConfig({ peft_type: 'BOTTLENECK', reduction_factor: { x: 2 } }, 'cfg')).toThrow(/reduction_factor/);
    expect(() => parseBottleneckConfig({ peft_type: 'BOTTLENECK', scaling: 'learned' }, 'cfg')).toThrow(/scaling="learned"/);
    expect(() => parseBottleneckConfig({ peft_type: 'LORA' }, 'cfg')).toThrow(PeftError);
    // AdapterHub: int(hidden // factor), at least 1; a per-layer mapping falls back to "default".
    expect(bottleneckSize({ reduction_factor: 16 }, 32, 0)).toBe(2);
    expect(bottleneckSize({ reduction_factor: 48 }, 32, 0)).toBe(1);
    expect(bottleneckSize({ reduction_factor: { '1': 4, default: 8 } }, 32, 1)).toBe(8);
    expect(bottleneckSize({ reduction_factor: { '1': 4, default: 8 } }, 32, 0)).toBe(4);
    expect(() => bottleneckSize({ reduction_factor: { '1': 4 } }, 32, 0)).toThrow(/neither layer "0" nor "default"/);
    expect([peftMethod('BOTTLENECK'), peftMethod('ADAPTER_FUSION')]).toEqual([bottleneckMethod, adapterFusionMethod]);
  });

  it('fusion: the dynamic preset by default, the fused adapters must sit at the same places', () => {
    const a = { peft_type: 'BOTTLENECK', architecture: 'pfeiffer' };
    const { config } = parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['a', 'b'], adapter_configs: { a, b: a } }, 'cfg');
    expect(config).toMatchObject({ query: true, key: true, value: true, value_initialized: true, regularization: true, value_before_softmax: true });
    expect(config.adapter_configs.b!.non_linearity).toBe('relu');
    const fusion = (extra: Record<string, unknown>) => parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['a', 'b'], adapter_configs: { a, b: a }, ...extra }, 'cfg');
    expect(() => fusion({ adapter_configs: { a, b: { ...a, architecture: 'houlsby' } } })).toThrow(/mixes architectures/);
    expect(() => fusion({ adapter_configs: { a, b: { ...a, leave_out: [1] } } })).toThrow(/mixes leave_out/);
    expect(() => fusion({ adapters: ['a', 'c'] })).toThrow(/names 'c', which has neither an adapter_configs entry nor an adapter_paths folder/);
    expect(() => fusion({ adapters: ['a.b'] })).toThrow(/adapters=\["a.b"\]/);
    expect(() => fusion({ residual_before: true })).toThrow(/residual_before=true is not available/);
    expect(() => fusion({ temperature: true })).toThrow(/temperature/);
    expect(() => fusion({ dropout_prob: 1 })).toThrow(/dropout_prob=1/);
    expect(() => fusion({ adapter_paths: { b: join(tmpdir(), 'no-such-adapter') }, adapter_configs: { a } })).toThrow(/no-such-adapter\/adapter_config.json: cannot read/);
  });
});

describe.skipIf(!llama && !oracleRequired())('bottleneck rewrite and files', () => {
  it('places houlsby adapters after attention and FFN, pfeiffer after the FFN; a new adapter is the identity', async () => {
    const model = openHfFolder(llama!);
    const graph = buildLogitsGraph(model);
    const houlsby = applyBottleneck(graph, parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 4 }, 'c').config);
    expect([...houlsby.modules.keys()]).toEqual(['model.layers.0.self_attn', 'model.layers.0.mlp', 'model.layers.1.self_attn', 'model.layers.1.mlp']);
    const down = houlsby.params.find((p) => p.name === 'base_model.model.model.layers.1.mlp.adapter.default.down.weight')!;
    expect([down.shape, houlsby.params.length]).toEqual([[8, 32], 16]);
    expect(houlsby.params.filter((p) => p.role === 'adapter.up.weight').every((p) => p.data.every((v) => v === 0))).toBe(true);
    expect(down.data.some((v) => v !== 0)).toBe(true);
    const pfeiffer = applyBottleneck(graph, parseBottleneckConfig({ peft_type: 'BOTTLENECK', leave_out: [0] }, 'c').config);
    expect([...pfeiffer.modules.keys()]).toEqual(['model.layers.1.mlp']);

    const plain = await logitsOf(graph, [], IDS);
    for (const adapted of [houlsby, pfeiffer]) {
      expect(maxDiff(await logitsOf(adapted.graph, adapted.params, IDS), plain)).toBeLessThanOrEqual(1e-6);
      expect(maxDiff(await logitsOf(adapted.graph, nonZero(adapted.params, 3), IDS), plain)).toBeGreaterThan(1e-2);
    }
  });

  it('saves clear keys, loads them back, and names the tensor an adapter for another config lacks', async () => {
    const model = openHfFolder(llama!);
    const graph = buildLogitsGraph(model);
    const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 8, non_linearity: 'gelu' }, 'c');
    const adapted = applyBottleneck(graph, config);
    const params = nonZero(adapted.params, 5);
    const dir = mkdtempSync(join(tmpdir(), 'bottleneck-files-'));
    saveBottleneckAdapter(dir, config, params);
    const header = readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
    expect(header.map((e) => e.name).sort().slice(0, 4)).toEqual([
      'base_model.model.model.layers.0.mlp.adapter.down.bias',
      'base_model.model.model.layers.0.mlp.adapter.down.weight',
      'base_model.model.model.layers.0.mlp.adapter.up.bias',
      'base_model.model.model.layers.0.mlp.adapter.up.weight',
    ]);
    const saved = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(saved).toMatchObject({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 8, non_linearity: 'gelu' });
    const loaded = loadBottleneckAdapter(dir, graph);
    expect(maxDiff(await logitsOf(loaded.adapted.graph, loaded.adapted.params, IDS), await logitsOf(adapted.graph, params, IDS))).toBe(0);

    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...saved, reduction_factor: 4 }));
    expect(() => loadBottleneckAdapter(dir, graph)).toThrow(/layers\.0\.self_attn\.adapter\.down\.weight' has shape \[4, 32\], this model and config need \[8, 32\]/);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...saved, architecture: 'pfeiffer' }));
    expect(() => loadBottleneckAdapter(dir, graph)).toThrow(/self_attn\.adapter\.down\.bias' has no place in this model/);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(saved));
    // Fusion reads the fused adapters from their folders, checking each against its config.
    const fusion = (extra: Record<string, unknown>) => parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['x', 'y'], ...extra }, 'c').config;
    const houlsby4 = { peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 4 };
    expect(() => applyAdapterFusion(graph, fusion({ adapter_paths: { x: dir, y: dir }, adapter_configs: { y: houlsby4 } }))).toThrow(
      /adapter 'y': tensor 'base_model.model.model.layers.0.self_attn.adapter.down.weight' has shape \[4, 32\], its config and this model need \[8, 32\]/,
    );
    expect(() => applyAdapterFusion(graph, fusion({ adapter_paths: { x: dir }, adapter_configs: { y: houlsby4 } }))).toThrow(/no tensors given for adapter 'y'/);
  });
});

const ready = llama !== undefined && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: bottleneck oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));

/** Our loss and gradients on the training graph vs the AdapterHub transcription's, tensor by tensor. */
const compareGradients = async (name: string, dir: string, loadedGraph: { graph: Parameters<typeof TrainStep.create>[0]['graph']; params: Parameters<typeof TrainStep.create>[0]['params'] }, savedKey: (k: string) => string) => {
  const { feeds, reference } = trainingBatch();
  const step = await TrainStep.create({ graph: loadedGraph.graph, params: loadedGraph.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
  const got = await step.computeGradients(feeds);
  await step.release();
  const ref = runOracle<{ loss: number; grads: string }>('bottleneck_ref.py', ['grads', llama!, dir, JSON.stringify(reference), join(dir, 'ref')]);
  expect(Math.abs(got.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));
  const want = readAll(ref.grads);
  expect(new Set([...got.grads.keys()].map(savedKey))).toEqual(new Set(want.keys()));
  let worst = 0;
  let smallest = Infinity;
  for (const [key, g] of got.grads) {
    const w = want.get(savedKey(key))!;
    expect(maxDiff(g, w), key).toBeLessThanOrEqual(1e-4 * maxAbs(w) + 1e-6);
    // q·b_key is the same for every fused adapter, so the softmax cancels it: that gradient is 0 on both sides.
    if (key.endsWith('.key.bias')) continue;
    smallest = Math.min(smallest, maxAbs(w));
    worst = Math.max(worst, maxDiff(g, w) / maxAbs(w));
  }
  console.log('NUM', name, 'loss', got.loss, ref.loss, 'tensors', want.size, 'worstRel', worst, 'smallestMax|g|', smallest);
  expect(smallest).toBeGreaterThan(1e-4);
};

describe.skipIf(!ready && !oracleRequired())('gradients equal the AdapterHub definitions run in PyTorch', () => {
  const CASES: Record<string, Record<string, unknown>> = {
    houlsby: { architecture: 'houlsby', reduction_factor: 4 },
    'pfeiffer-gelu-scaled-per-layer': { architecture: 'pfeiffer', non_linearity: 'gelu', scaling: 0.5, reduction_factor: { '0': 4, default: 8 } },
    'houlsby-tanh-leave-out': { architecture: 'houlsby', non_linearity: 'tanh', reduction_factor: 8, leave_out: [0] },
  };
  for (const [name, raw] of Object.entries(CASES)) {
    it(name, async () => {
      const model = openHfFolder(llama!);
      const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', ...raw }, name);
      const adapted = applyBottleneck(buildTrainingGraph(model), config, { seed: 2 });
      const params = nonZero(adapted.params, 7);
      const dir = mkdtempSync(join(tmpdir(), `bottleneck-${name}-`));
      saveBottleneckAdapter(dir, config, params);
      await compareGradients(name, dir, loadBottleneckAdapter(dir, buildTrainingGraph(model)).adapted, (k) => bottleneckMethod.savedKey(k, 'default'));
    });
  }

  const FUSIONS: Record<string, { adapter: Record<string, unknown>; fusion: Record<string, unknown> }> = {
    // AdapterHub's default 'dynamic' fusion (regularized) over two houlsby adapters.
    'fusion-houlsby-dynamic': { adapter: { architecture: 'houlsby', reduction_factor: 4 }, fusion: {} },
    // Over pfeiffer adapters, the query taken before the residual add, W_value after the weighted sum.
    'fusion-pfeiffer-query-before-ln': { adapter: { architecture: 'pfeiffer', reduction_factor: 8 }, fusion: { query_before_ln: true, value_before_softmax: false, regularization: false } },
  };
  for (const [name, c] of Object.entries(FUSIONS)) {
    it(name, async () => {
      const model = openHfFolder(llama!);
      const root = mkdtempSync(join(tmpdir(), `bottleneck-${name}-`));
      const paths: Record<string, string> = {};
      ['first', 'second'].forEach((adapterName, i) => {
        const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', ...c.adapter, non_linearity: i ? 'relu' : 'silu' }, adapterName);
        paths[adapterName] = join(root, adapterName);
        saveBottleneckAdapter(paths[adapterName], config, nonZero(applyBottleneck(buildLogitsGraph(model), config).params, 11 + i));
      });
      const { config } = parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['first', 'second'], adapter_paths: paths, ...c.fusion }, name);
      const adapted = applyAdapterFusion(buildTrainingGraph(model), config, { seed: 4 });
      expect(adapted.params.every((p) => p.name.includes('.adapter_fusion.default.'))).toBe(true);
      expect(adapted.frozen!.length).toBe(adapted.modules.size * 2 * 4);
      const dir = join(root, 'fusion');
      saveAdapterFusion(dir, config, { params: nonZero(adapted.params, 13), frozen: adapted.frozen ?? [] });
      await compareGradients(name, dir, loadAdapterFusion(dir, buildTrainingGraph(model)).adapted, (k) => adapterFusionMethod.savedKey(k, 'default'));
    });
  }
});
