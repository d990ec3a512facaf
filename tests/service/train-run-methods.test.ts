// Every registered PEFT method trains from a run config through trainRun (its param groups, optimizer, step hooks and
// feeds inside the Trainer), the loss falls, and the adapter folder it saves loads back with our loader and gives
// the run's own final eval loss.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openModel } from '../../main/models/open-model.ts';
import { applyAdalora, assignAdaloraWeights, parseAdaloraConfig } from '../../main/peft/adalora.ts';
import { readPromptLearningAdapter } from '../../main/generate/prompt-adapter.ts';
import { loadAdapterFusion } from '../../main/peft/adapter-fusion.ts';
import { applyPromptEmbeddings } from '../../main/peft/virtual-tokens.ts';
import { loadTensorAdapter } from '../../main/peft/base-tensor-io.ts';
import { applyBottleneck, loadBottleneckAdapter, saveBottleneckAdapter } from '../../main/peft/bottleneck.ts';
import { parseBottleneckConfig } from '../../main/peft/bottleneck-config.ts';
import { loadDeltaLoraCheckpoint } from '../../main/peft/delta-lora.ts';
import { applyFull } from '../../main/peft/full-finetune.ts';
import { loadIa3Adapter } from '../../main/peft/ia3.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { applyLoraDrop, assignLoraDropWeights, loadLoraDropAdapter } from '../../main/peft/lora-drop.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { peftMethods } from '../../main/peft/registry.ts';
import { loadVeraAdapter } from '../../main/peft/vera.ts';
import { parseRunConfig, type RunConfig } from '../../main/service/run-config.ts';
import { trainRun } from '../../main/service/train-run.ts';
import { IN_MEMORY, openStore } from '../../main/store/index.ts';
import type { Graph } from '../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { prepareDataset, splitTrainEval } from '../../main/train/dataset/index.ts';
import { TRAINABLE_METHODS } from '../../main/train/method-training.ts';
import type { Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer } from '../../main/train/trainer.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const model = tinyModelDir('qwen3');
/** Qwen2 has q/k/v biases, for BitFit (Qwen3's layers have none). */
const withBiases = tinyModelDir('qwen2');
const STEPS = 5;
const TARGETS = ['q_proj', 'v_proj'];
const LAYER_Q = (i: number) => `model.layers.${i}.self_attn.q_proj`;
/** peft_types of saved adapter_config.json files that PEFT itself loads. */
const PEFT_TYPES = new Set(['LORA', 'ADALORA', 'VERA', 'IA3']);
const IDS = [[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13], [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]];

type Loaded = { graph: Graph; params: readonly TrainableTensor[] };
type Check = (dir: string, saved: Record<string, unknown>) => void;

interface Case {
  readonly method: Record<string, unknown>;
  /** The tiny model's folder (default qwen3). */
  readonly model?: string | undefined;
  /** Our loader for the saved folder (FULL: the model folder) onto the training graph. */
  readonly load: (dir: string, graph: Graph) => Loaded;
  /** What this method's save must hold. */
  readonly check?: Check;
}

const asLora = (dir: string, graph: Graph): Loaded => {
  const loaded = loadAdapterFiles(dir);
  const { config, warnings } = parseLoraConfig(loaded.config, dir);
  expect(warnings).toEqual([]);
  const a = applyLora(graph, config);
  return { graph: a.graph, params: assignAdapterWeights(a.params, loaded) };
};

const LORA = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: TARGETS };

const PFEIFFER = { peft_type: 'BOTTLENECK', architecture: 'pfeiffer', reduction_factor: 4 };
/** AdapterFusion's stage 1, done once: two Pfeiffer adapters with non-zero tensors to fuse. */
const fusedAdapters = (() => {
  const root = mkdtempSync(join(tmpdir(), 'peft-train-fused-'));
  let made = false;
  const paths = { left: join(root, 'left'), right: join(root, 'right') };
  return () => {
    if (!made && model) {
      const { config } = parseBottleneckConfig(PFEIFFER, 'stage 1');
      Object.values(paths).forEach((dir, i) => {
        const a = applyBottleneck(buildTrainingGraph(openModel(model).model), config, { seed: i + 1 });
        saveBottleneckAdapter(dir, config, a.params.map((p, j) => ({ ...p, data: p.data.map((_, k) => Math.sin(k + 7 * j + i) * 0.05) })));
      });
      made = true;
    }
    return paths;
  };
})();

const CASES: Record<string, Case> = {
  'LoRA + DoRA': {
    method: { ...LORA, use_dora: true },
    load: asLora,
    check: (dir) => expect([...loadAdapterFiles(dir).tensors.keys()]).toContain(`base_model.model.${LAYER_Q(0)}.lora_magnitude_vector`),
  },
  'LoRA+': { method: { ...LORA, loraplus_lr_ratio: 16 }, load: asLora },
  'LoRA-FA': {
    method: { ...LORA, lora_fa: true },
    load: asLora,
    // A stays at its initial value: the run config's seed draws the same A again.
    check: (dir, saved) => {
      const initial = applyLora(buildTrainingGraph(openModel(model!).model), parseLoraConfig(saved, dir).config, { seed: 42 }).params;
      const file = loadAdapterFiles(dir).tensors;
      for (const a of initial.filter((p) => p.role === 'lora_A')) expect(file.get(a.name.replace('.default.', '.'))!.data, a.name).toEqual(a.data);
      expect(initial.filter((p) => p.role === 'lora_B').some((b) => file.get(b.name.replace('.default.', '.'))!.data.some((v) => v !== 0))).toBe(true);
    },
  },
  AdaLoRA: {
    method: { peft_type: 'ADALORA', init_r: 4, target_r: 2, tinit: 1, tfinal: 1, deltaT: 1, lora_alpha: 8, target_modules: TARGETS },
    // Without the orthogonal regularization (the run's eval loss includes it; see the reference below).
    load: (dir, graph) => {
      const loaded = loadAdapterFiles(dir);
      const { config } = parseAdaloraConfig(loaded.config, dir);
      const a = applyAdalora(graph, config, { lossOutput: 'no-orth-reg' });
      return { graph: a.graph, params: assignAdaloraWeights(a.params, loaded) };
    },
    check: (_dir, saved) => {
      expect(saved.total_step).toBe(STEPS);
      // The final allocation (step total_step − tfinal) keeps target_r × modules triplets.
      const kept = Object.values(saved.rank_pattern as Record<string, boolean[]>).flat().filter(Boolean).length;
      expect(kept).toBe(2 * 4);
    },
  },
  VeRA: {
    method: { peft_type: 'VERA', r: 8, target_modules: TARGETS },
    load: (dir, graph) => loadVeraAdapter(dir, graph).adapted,
    check: (dir) => expect(loadAdapterFiles(dir).tensors.has('base_model.vera_A')).toBe(true),
  },
  'Delta-LoRA': {
    method: { peft_type: 'DELTA_LORA', r: 4, lora_alpha: 8, delta_lora_lambda: 2, delta_lora_start_step: 1, target_modules: TARGETS },
    // A plain PEFT LoRA at rank 2r that holds W's movement; the sidecar resumes Delta-LoRA itself.
    load: asLora,
    check: (dir, saved) => {
      expect(saved).toMatchObject({ peft_type: 'LORA', r: 8 });
      expect(loadDeltaLoraCheckpoint(dir).state.step).toBe(STEPS);
    },
  },
  'LoRA-drop': {
    method: { peft_type: 'LORA_DROP', r: 4, lora_alpha: 8, target_modules: TARGETS, shared_modules: [LAYER_Q(0), LAYER_Q(1)] },
    load: (dir, graph) => {
      const { config, adapter } = loadLoraDropAdapter(dir);
      const a = applyLoraDrop(graph, config);
      return { graph: a.graph, params: assignLoraDropWeights(a.params, config, adapter) };
    },
    // The shared pair is saved under both modules, so PEFT (and applyLora) load it as plain LoRA.
    check: (dir) => {
      const file = loadAdapterFiles(dir).tensors;
      const key = (i: number) => `base_model.model.${LAYER_Q(i)}.lora_B.weight`;
      expect(file.get(key(0))!.data).toEqual(file.get(key(1))!.data);
    },
  },
  IA3: {
    // target_modules / feedforward_modules null: PEFT's defaults for the model type, resolved into the saved config.
    method: { peft_type: 'IA3', target_modules: null, feedforward_modules: null },
    load: (dir, graph) => loadIa3Adapter(dir, graph).adapted,
    check: (_dir, saved) => expect(saved).toMatchObject({ target_modules: ['q_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] }),
  },
  BitFit: {
    model: withBiases,
    method: { peft_type: 'BITFIT' },
    load: (dir, graph) => loadTensorAdapter(dir, graph).adapted,
    check: (dir) => expect([...loadAdapterFiles(dir).tensors.keys()].every((k) => k.endsWith('.bias'))).toBe(true),
  },
  Selective: {
    method: { peft_type: 'SELECTIVE', parameters: ['norm'] },
    load: (dir, graph) => loadTensorAdapter(dir, graph).adapted,
    check: (dir) => expect([...loadAdapterFiles(dir).tensors.keys()].every((k) => k.includes('norm'))).toBe(true),
  },
  Bottleneck: {
    method: { ...PFEIFFER, architecture: 'houlsby' },
    load: (dir, graph) => loadBottleneckAdapter(dir, graph).adapted,
    check: (dir) => expect([...loadAdapterFiles(dir).tensors.keys()]).toContain('base_model.model.model.layers.0.self_attn.adapter.up.weight'),
  },
  AdapterFusion: {
    get method() {
      return { peft_type: 'ADAPTER_FUSION', adapters: ['left', 'right'], adapter_paths: fusedAdapters() };
    },
    load: (dir, graph) => loadAdapterFusion(dir, graph).adapted,
    // The fused adapters stay frozen: their tensors are saved unchanged next to the trained fusion layers.
    check: (dir) => {
      const file = loadAdapterFiles(dir).tensors;
      const stage1 = loadAdapterFiles(fusedAdapters().left).tensors;
      const key = 'base_model.model.model.layers.0.mlp.adapter.up.weight';
      expect(file.get(key.replace('.adapter.', '.adapters.left.'))!.data).toEqual(stage1.get(key)!.data);
    },
  },
  ...Object.fromEntries(
    [
      ['Prompt tuning (text init)', { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Answer about capitals:', tokenizer_name_or_path: 'tiny' }],
      ['P-tuning (MLP)', { peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_hidden_size: 16 }],
      ['Prefix tuning', { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 16 }],
    ].map(([name, method]) => [
      name as string,
      {
        method: method as Record<string, unknown>,
        // Saved as PEFT saves (the virtual tokens' embeddings or key/values), loaded onto a graph with virtual tokens.
        load: (dir: string) => {
          const loaded = readPromptLearningAdapter(dir);
          return applyPromptEmbeddings(buildTrainingGraph(openModel(model!).model, { virtualTokens: loaded.spec }), loaded);
        },
        check: (_dir: string, saved: Record<string, unknown>) => expect(saved).toMatchObject({ num_virtual_tokens: 4, num_layers: 2 }),
      } satisfies Case,
    ]),
  ),
  'Full fine-tuning': {
    method: { peft_type: 'FULL' },
    // The saved folder is a model: open it, and its own tensors are the trained ones.
    load: (dir) => applyFull(buildTrainingGraph(openModel(dir).model)),
  },
};

describe.skipIf(!model && !oracleRequired())('trainRun trains every registered method from a run config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-train-methods-'));
  const dataset = join(dir, 'chat.jsonl');
  // One answer to ten phrasings: every step trains the same target, so a method that learns lowers its loss.
  const rows = Array.from({ length: 10 }, (_, i) => ({ messages: [{ role: 'user', content: `Question ${i}: which city is the capital of France?` }, { role: 'assistant', content: 'Paris is the capital of France.' }] }));
  writeFileSync(dataset, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const configOf = (name: string, c: Case): RunConfig =>
    parseRunConfig(
      {
        name, model: c.model ?? model, method: c.method, output: join(dir, name.replace(/\W+/g, '-')),
        dataset: { path: dataset, evalFraction: 0.2 },
        training: { microBatchSize: 2, maxSteps: STEPS, lr: 0.02, warmupSteps: 0, evalEvery: STEPS, checkpointEvery: 2, maxLength: 64, session: { threads: 1 } },
      },
      name,
    );
  /** Adapters the table saved that PEFT can load (qwen3 base), for the oracle check at the end. */
  const forPeft = new Map<string, string>();
  /** The run's eval split (trainRun's own preparation and seeded split). */
  const evalSetOf = async (config: RunConfig): Promise<readonly Example[]> => {
    const prepared = await prepareDataset(dataset, openModel(config.model).tokenizer, { tokenize: { maxLength: config.training.maxLength, trainOn: 'assistant' } });
    return splitTrainEval(prepared.tokenized.examples, { evalFraction: 0.2, seed: config.training.seed ?? 0 }).eval;
  };

  it('the table covers every method trainRun trains, and each of those is registered', () => {
    const registered = peftMethods().map((m) => m.peftType);
    for (const t of TRAINABLE_METHODS) expect(registered, t).toContain(t);
    expect([...new Set(Object.values(CASES).map((c) => c.method.peft_type))].sort()).toEqual([...TRAINABLE_METHODS].sort());
    const pending = registered.filter((t) => !TRAINABLE_METHODS.includes(t));
    if (pending.length > 0) console.warn(`registered but not trainable from a run config yet: ${pending.join(', ')}`);
  });

  for (const [name, c] of Object.entries(CASES)) {
    it.skipIf(c.model === undefined && 'model' in c && !oracleRequired())(`${name}: trains ${STEPS} steps, the loss falls, the saved folder loads back with the run's eval loss`, async () => {
      const store = openStore(IN_MEMORY);
      try {
        const config = configOf(name, c);
        let trainer: Trainer | undefined;
        const out = await trainRun(config, store, { control: (t) => (trainer = t) });
        expect(out.result.status).toBe('completed');
        expect(store.runs.get(out.runId)).toMatchObject({ status: 'completed', method: c.method.peft_type });
        const losses = store.metrics.series(out.runId, 'train/loss').map((p) => p.value);
        expect(losses).toHaveLength(STEPS);
        expect(losses.at(-1)!).toBeLessThan(losses[0]!);
        const runEval = store.metrics.series(out.runId, 'eval/loss').at(-1)!.value;

        const savedDir = out.adapterDir ?? out.modelDir!;
        if (out.modelDir) {
          expect(store.models.findByPath(out.modelDir)).toBeDefined();
        } else {
          const saved = JSON.parse(readFileSync(join(savedDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
          expect(saved.base_model_name_or_path).toBe(config.model);
          expect(Object.keys(saved)).not.toContain('lora_fa');
          expect(Object.keys(saved)).not.toContain('loraplus_lr_ratio');
          expect(store.adapters.list({ runId: out.runId })).toHaveLength(1);
          c.check?.(savedDir, saved);
          if (PEFT_TYPES.has(String(saved.peft_type)) && config.model === model) forPeft.set(name, savedDir);
        }

        const graph = buildTrainingGraph(openModel(config.model).model);
        const evalSet = await evalSetOf(config);
        const evaluate = async (loaded: Loaded) => {
          const t = await Trainer.create({ ...loaded, train: evalSet, eval: evalSet, hyper: config.training, outputDir: join(dir, 'eval') });
          try {
            return await t.evaluate();
          } finally {
            await t.release();
          }
        };
        // AdaLoRA's run eval includes its orthogonal regularization: compare with its trained (full-rank, masked) tensors.
        const reference = c.method.peft_type === 'ADALORA'
          ? await evaluate((() => {
            const saved = loadAdapterFiles(savedDir).config;
            const fullRank = applyAdalora(graph, parseAdaloraConfig({ ...saved, rank_pattern: null }, 'trained').config, { lossOutput: 'no-orth-reg' });
            const byName = new Map(trainer!.trainables.map((p) => [p.name, p.data]));
            return { graph: fullRank.graph, params: fullRank.params.map((p) => ({ ...p, data: byName.get(p.name)! })) };
          })())
          : runEval;
        const reloaded = await evaluate(c.load(savedDir, graph));
        console.log(`${name}: loss ${losses[0]!.toFixed(4)} → ${losses.at(-1)!.toFixed(4)}; eval ${runEval.toFixed(6)}, reference ${reference.toFixed(6)}, reloaded ${reloaded.toFixed(6)}`);
        expect(Math.abs(reloaded - reference)).toBeLessThanOrEqual(1e-5 * reference);
        expect(store.integrity().ok).toBe(true);
      } finally {
        store.close();
      }
    }, 300_000);
  }

  it.skipIf(!oraclePython() && !oracleRequired())("PEFT 0.17 loads every adapter folder saved above (those of its methods) to our logits", async () => {
    expect(forPeft.size).toBeGreaterThanOrEqual(7);
    const jobs = [...forPeft].map(([name, d]) => ({ name, dir: d, out: join(d, 'peft_logits.f32') }));
    const loaded = runOracle<{ dir: string; peft_type: string }[]>('peft_load_adapters.py', [model!, JSON.stringify(IDS), JSON.stringify(jobs)]);
    expect(loaded.map((l) => l.dir)).toEqual(jobs.map((j) => j.dir));
    const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
    const logitsOf = async ({ graph, params }: Loaded): Promise<Float32Array> => {
      const session = await Session.create(graph, { threads: 1 });
      const feeds: Record<string, HostTensor> = { input_ids: i64(IDS), position_ids: i64(IDS.map((r) => r.map((_, i) => i))) };
      for (const p of params) feeds[p.name] = { dtype: 'float32', shape: [...p.shape], data: p.data };
      try {
        return (await session.run(feeds, ['logits'])).logits!.data as Float32Array;
      } finally {
        await session.release();
      }
    };
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    const base = await logitsOf({ graph: buildLogitsGraph(openModel(model!).model), params: [] });
    for (const job of jobs) {
      const ours = await logitsOf(CASES[job.name]!.load(job.dir, buildLogitsGraph(openModel(model!).model)));
      const peft = new Float32Array(readFileSync(job.out).buffer.slice(0));
      expect(peft.length).toBe(ours.length);
      const d = { peft: maxDiff(ours, peft), base: maxDiff(ours, base) };
      console.log(`${job.name}: PEFT loads it as ${loaded.find((l) => l.dir === job.dir)!.peft_type}; max |logit diff| ${d.peft.toExponential(2)} (vs the base model ${d.base.toFixed(4)})`);
      expect(d.peft, job.name).toBeLessThanOrEqual(1e-4);
      expect(d.base, `${job.name}: the trained adapter changes the logits`).toBeGreaterThan(1e-2);
    }
  }, 300_000);
});

describe.skipIf(!model && !oracleRequired())('trainRun pauses and resumes methods with state of their own exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-resume-methods-'));
  const dataset = join(dir, 'chat.jsonl');
  const rows = Array.from({ length: 12 }, (_, i) => ({ messages: [{ role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `The answer is ${2 * i}.` }] }));
  writeFileSync(dataset, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const configOf = (name: string, method: Record<string, unknown>): RunConfig =>
    parseRunConfig(
      {
        name, model, method, output: join(dir, name),
        dataset: { path: dataset, evalFraction: 0.1 },
        training: { microBatchSize: 2, maxSteps: 10, lr: 0.02, evalEvery: 0, checkpointEvery: 0, maxLength: 64, session: { threads: 1 } },
      },
      name,
    );

  // AdaLoRA paused after its final allocation (step total_step − tfinal): the resumed run must re-apply the rank
  // pattern its checkpoint carries. Delta-LoRA's start factors and ratio; LoRA-FA's optimizer state.
  const RESUMABLE: Record<string, { method: Record<string, unknown>; pauseAt: number }> = {
    AdaLoRA: { method: { ...CASES.AdaLoRA!.method, tfinal: 3 }, pauseAt: 8 },
    'Delta-LoRA': { method: CASES['Delta-LoRA']!.method, pauseAt: 3 },
    'LoRA-FA': { method: CASES['LoRA-FA']!.method, pauseAt: 3 },
  };
  for (const [name, { method, pauseAt }] of Object.entries(RESUMABLE)) {
    it(`${name}: paused after step ${pauseAt} and resumed, the losses and adapter equal an uninterrupted run's bit for bit`, async () => {
      const store = openStore(IN_MEMORY);
      try {
        const straight = await trainRun(configOf(`${name}-straight`.replace(/\W+/g, '-'), method), store);
        const config = configOf(`${name}-paused`.replace(/\W+/g, '-'), method);
        let trainer: Trainer | undefined;
        const paused = await trainRun(config, store, { control: (t) => (trainer = t), onEvent: (e) => e.type === 'step' && e.step === pauseAt && trainer!.pause() });
        expect(paused.result.status).toBe('paused');
        expect(store.runs.get(paused.runId).status).toBe('paused');
        const resumed = await trainRun(config, store, { resume: true });
        expect(resumed).toMatchObject({ runId: paused.runId, resumedFrom: pauseAt, result: { status: 'completed' } });
        const losses = (id: number) => store.metrics.series(id, 'train/loss').map((p) => [p.step, p.value]);
        expect(losses(paused.runId)).toEqual(losses(straight.runId));
        const weights = (d: string) => readFileSync(join(d, 'adapter_model.safetensors'));
        expect(weights(resumed.adapterDir!).equals(weights(straight.adapterDir!))).toBe(true);
      } finally {
        store.close();
      }
    }, 300_000);
  }
});
