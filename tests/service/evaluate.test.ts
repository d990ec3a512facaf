import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import type { HostTensor } from '../../main/engine/onnx/runtime.ts';
import { openModel } from '../../main/models/open-model.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { prefixTuningMethod } from '../../main/peft/prefix-tuning.ts';
import { promptTuningMethod } from '../../main/peft/prompt-tuning.ts';
import type { PromptLearningMethod } from '../../main/peft/virtual-tokens.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { evaluate } from '../../main/service/evaluate.ts';
import { openStore, type Store } from '../../main/store/index.ts';
import type { Example } from '../../main/train/batch.ts';
import { DatasetError, prepareDataset } from '../../main/train/dataset/index.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer } from '../../main/train/trainer.ts';
import { METHOD_CASES, perturbed } from '../generate/method-adapter-fixtures.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter, trainTinyRun, writeChatDataset } from './adapter-fixtures.ts';

const llama = tinyModelDir('llama3');
const qwen = tinyModelDir('qwen3');
const SESSION = { threads: 1 };

/**
 * The engine's own number for an adapter: Trainer.evaluate() through the training session (forward + backward graph),
 * over the same dataset tokenized as training tokenizes it, in other micro-batches (3 rows, not 4). `adapter` undefined:
 * a fresh LoRA (B = 0), i.e. the base model.
 */
const trainerEvalLoss = async (modelDir: string, dataset: string, adapter?: string): Promise<number> => {
  const opened = openModel(modelDir);
  const examples = (await prepareDataset(dataset, opened.tokenizer, { tokenize: { maxLength: 512, trainOn: 'assistant' } })).tokenized.examples;
  const loaded = adapter ? loadAdapterFiles(adapter) : undefined;
  // Evaluation is PEFT's eval mode: LoRA dropout off.
  const { config } = parseLoraConfig({ ...(loaded?.config ?? { r: 2, lora_alpha: 4, target_modules: ['q_proj'] }), lora_dropout: 0 }, 'oracle');
  const adapted = applyLora(buildTrainingGraph(opened.model), config);
  const params = loaded ? assignAdapterWeights(adapted.params, loaded) : adapted.params;
  const trainer = await Trainer.create({
    graph: adapted.graph, params, train: examples, eval: examples, outputDir: mkdtempSync(join(tmpdir(), 'peft-eval-oracle-')),
    hyper: { microBatchSize: 3, gradientAccumulation: 1, lr: 1e-3, maxLength: 512, session: SESSION },
  });
  try {
    return await trainer.evaluate();
  } finally {
    await trainer.release();
  }
};

/** Trainer.evaluate() over a method's own adapted training graph and tensors (and any inputs the method feeds). */
const trainerEvalOf = async (examples: readonly Example[], adapter: { graph: Graph; params: readonly TrainableTensor[]; feeds: Readonly<Record<string, HostTensor>> }): Promise<number> => {
  const own = new Set(adapter.params.map((p) => p.name));
  const extra = Object.fromEntries(Object.entries(adapter.feeds).filter(([name]) => !own.has(name)));
  const trainer = await Trainer.create({
    graph: adapter.graph, params: adapter.params, train: examples, eval: examples, outputDir: mkdtempSync(join(tmpdir(), 'peft-eval-oracle-')),
    hyper: { microBatchSize: 3, gradientAccumulation: 1, lr: 1e-3, maxLength: 512, session: SESSION },
    method: () => ({ feeds: () => extra }),
  });
  try {
    return await trainer.evaluate();
  } finally {
    await trainer.release();
  }
};

describe.skipIf((!llama || !qwen) && !oracleRequired())('evaluate (service)', () => {
  let work: string;
  let dataset: string;
  let store: Store;
  let trained: string;
  let runId: number;
  let dora: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'peft-eval-'));
    dataset = writeChatDataset(work);
    store = openStore(join(work, 'history.db'));
    const run = await trainTinyRun(store, { model: llama!, dataset, output: join(work, 'run'), name: 'sums', r: 4, lr: 0.05, steps: 3 });
    [trained, runId] = [run.adapterDir!, run.runId];
    dora = randomAdapter(llama!, join(work, 'dora'), { use_dora: true, use_rslora: true, lora_dropout: 0.2 }, 5);
  });

  it('gives each column the loss the trainer computes for it; base and adapters differ', async () => {
    const events: string[] = [];
    const r = await evaluate({ model: llama!, adapters: [trained, dora], dataset, session: SESSION, onEvent: (e) => events.push(e.type) });
    expect(r.columns.map((c) => c.label)).toEqual(['base', trained, dora]);
    expect(r.examples).toBe(24);
    const [base, a, b] = r.columns as [typeof r.columns[0], typeof r.columns[0], typeof r.columns[0]];
    expect(base.tokens).toBeGreaterThan(24);
    expect(new Set(r.columns.map((c) => c.tokens)).size).toBe(1);
    expect(Math.abs(a.loss - base.loss)).toBeGreaterThan(1e-3);
    expect(Math.abs(b.loss - base.loss)).toBeGreaterThan(1e-3);
    for (const c of r.columns) expect(c.perplexity).toBeCloseTo(Math.exp(c.loss), 6);
    const oracle = [await trainerEvalLoss(llama!, dataset), await trainerEvalLoss(llama!, dataset, trained), await trainerEvalLoss(llama!, dataset, dora)];
    console.log(`eval loss base ${base.loss.toFixed(6)} / trainer ${oracle[0]!.toFixed(6)}; trained ${a.loss.toFixed(6)} / ${oracle[1]!.toFixed(6)}; DoRA ${b.loss.toFixed(6)} / ${oracle[2]!.toFixed(6)}`);
    r.columns.forEach((c, i) => expect(Math.abs(c.loss - oracle[i]!)).toBeLessThan(1e-5 * Math.max(1, c.loss)));
    expect(events.filter((e) => e === 'column')).toHaveLength(3);
    expect(events).toContain('progress');
  });

  it('records adapter columns on the run that trained them, and nothing for others', async () => {
    const other = writeChatDataset(work, 6, 'held-out.jsonl');
    const r = await evaluate({ model: llama!, adapters: [trained, dora], base: false, dataset: other, session: SESSION, store });
    expect(r.columns.map((c) => c.label)).toEqual([trained, dora]);
    const lastStep = store.metrics.latest(runId).get('train/loss')!.step;
    expect(r.recorded).toEqual([{ runId, adapter: trained, step: lastStep, metrics: ['eval/held-out.jsonl/loss', 'eval/held-out.jsonl/perplexity'] }]);
    expect(store.metrics.series(runId, 'eval/held-out.jsonl/loss')).toMatchObject([{ step: lastStep, value: r.columns[0]!.loss }]);
  });

  // One of each way a method opens (its own rewrite, a plain LoRA folder with W moved, the model's own tensors, a model
  // folder). AdaLoRA is left out: the trainer's loss carries its orthogonal regularization, a training term eval omits.
  const OTHER_METHODS = ['VERA', 'DELTA_LORA (W moved)', 'IA3', 'BOTTLENECK (Houlsby)', 'SELECTIVE (norms)', 'FULL (a model folder)'];

  it('evaluates adapters of the other methods: each column equals Trainer.evaluate() with the same tensors', async () => {
    const opened = openModel(llama!);
    const { model } = opened;
    const examples = (await prepareDataset(dataset, opened.tokenizer, { tokenize: { maxLength: 512, trainOn: 'assistant' } })).tokenized.examples;
    const made = OTHER_METHODS.map((name) =>
      METHOD_CASES.find((c) => c.name === name)!.make({ model, modelDir: llama!, graph: buildTrainingGraph(model), dir: join(work, name.replace(/\W+/g, '-')) }),
    );
    const r = await evaluate({ model: llama!, adapters: made.map((m) => m.dir), dataset, session: SESSION });
    expect(r.columns.map((c) => c.peftType)).toEqual([null, ...made.map((m) => m.opensAs)]);
    const base = r.columns[0]!;
    for (const [i, m] of made.entries()) {
      const column = r.columns[i + 1]!;
      const oracle = await trainerEvalOf(examples, m);
      console.log(`NUM eval ${OTHER_METHODS[i]}: ${column.loss.toFixed(6)} / trainer ${oracle.toFixed(6)} (base ${base.loss.toFixed(6)})`);
      expect(column.tokens).toBe(base.tokens);
      expect(Math.abs(column.loss - base.loss)).toBeGreaterThan(1e-3);
      expect(Math.abs(column.loss - oracle)).toBeLessThan(1e-5 * Math.max(1, oracle));
    }
  });

  it('evaluates prompt-learning adapters through their placeholder rewrite, as Trainer.evaluate() does', async () => {
    const opened = openModel(llama!);
    const { model } = opened;
    const examples = (await prepareDataset(dataset, opened.tokenizer, { tokenize: { maxLength: 512, trainOn: 'assistant' } })).tokenized.examples;
    const methods = [
      { method: promptTuningMethod as PromptLearningMethod<never>, raw: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4 } },
      { method: prefixTuningMethod as PromptLearningMethod<never>, raw: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3 } },
    ];
    const made = methods.map(({ method, raw }, i) => {
      const { config } = method.parseConfig(raw, raw.peft_type);
      const adapted = method.apply(buildTrainingGraph(model, { virtualTokens: method.virtualTokens(config) }), config);
      const params = perturbed(adapted.params, 30 + i, 0.5);
      const dir = join(work, raw.peft_type.toLowerCase());
      method.saveAdapter(dir, config, params, model.config);
      return { dir, graph: adapted.graph, params, feeds: {} };
    });
    const r = await evaluate({ model: llama!, adapters: made.map((m) => m.dir), dataset, session: SESSION });
    expect(r.columns.map((c) => c.peftType)).toEqual([null, 'PROMPT_TUNING', 'PREFIX_TUNING']);
    for (const [i, m] of made.entries()) {
      const column = r.columns[i + 1]!;
      const oracle = await trainerEvalOf(examples, m);
      console.log(`NUM eval ${column.peftType}: ${column.loss.toFixed(6)} / trainer ${oracle.toFixed(6)} (base ${r.columns[0]!.loss.toFixed(6)})`);
      expect(Math.abs(column.loss - r.columns[0]!.loss)).toBeGreaterThan(1e-3);
      expect(Math.abs(column.loss - oracle)).toBeLessThan(1e-5 * Math.max(1, oracle));
    }
  });

  it('names the adapter tensor that does not fit the model, and the dataset line that is broken', async () => {
    const foreign = randomAdapter(qwen!, join(work, 'qwen-adapter'));
    const mismatch = evaluate({ model: llama!, adapters: [foreign], dataset, session: SESSION });
    await expect(mismatch).rejects.toThrow(PeftError);
    await expect(mismatch).rejects.toThrow(/qwen-adapter: tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has shape \[64, 4\]/);
    const broken = join(work, 'broken.jsonl');
    writeFileSync(broken, '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [\n');
    const bad = evaluate({ model: llama!, dataset: broken, session: SESSION });
    await expect(bad).rejects.toThrow(DatasetError);
    await expect(bad).rejects.toThrow(`${broken}:2:`);
  });
});
