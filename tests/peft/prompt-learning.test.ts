// Prompt tuning, P-tuning and prefix tuning against HF PEFT 0.17.1 on tiny models, with non-zero adapter states:
// loss and every trainable gradient (one example per row and packed rows), the tensors we save against PEFT's,
// PEFT's adapters giving PEFT's logits here, ours giving our logits in PEFT, and greedy generation with each method
// equal to PEFT's generate.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Graph } from '../../main/engine/ir/index.ts';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { createRng } from '../../main/engine/random.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { openPromptAdapterGenerator, readPromptLearningAdapter } from '../../main/generate/prompt-adapter.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { decoder, lmHead } from '../../main/models/llama.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { WeightBinder } from '../../main/models/weights.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { pTuningMethod } from '../../main/peft/p-tuning.ts';
import { prefixTuningMethod } from '../../main/peft/prefix-tuning.ts';
import { promptTuningMethod, type PromptTuningOptions } from '../../main/peft/prompt-tuning.ts';
import { applyPromptEmbeddings, virtualTokenInput, type PromptLearningMethod, type VirtualTokenSpec } from '../../main/peft/virtual-tokens.ts';
import { packMicroBatch, withNormalizer, type Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const METHODS: Record<string, PromptLearningMethod<never, PromptTuningOptions>> = {
  PROMPT_TUNING: promptTuningMethod as never,
  P_TUNING: pTuningMethod as never,
  PREFIX_TUNING: prefixTuningMethod as never,
};

const CASES: Record<string, { model: string; config: Record<string, unknown> }> = {
  'prompt-tuning-random-llama3': { model: 'llama3', config: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4 } },
  // Init from the word embeddings of a text of fewer tokens than V: PEFT repeats the ids (BOS included) to fill V.
  'prompt-tuning-text-qwen2': {
    model: 'qwen2',
    config: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 7, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Answer in one word' },
  },
  'p-tuning-mlp-qwen2': { model: 'qwen2', config: { peft_type: 'P_TUNING', num_virtual_tokens: 5, encoder_hidden_size: 24 } },
  // A 2-layer bidirectional LSTM (hidden 8) and its MLP head.
  'p-tuning-lstm-llama3': { model: 'llama3', config: { peft_type: 'P_TUNING', num_virtual_tokens: 4, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 8 } },
  // The reparameterisation MLP; GQA: prefixes of Hkv = 2 heads.
  'prefix-projection-llama3': { model: 'llama3', config: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 16 } },
  // P-tuning v2: a prefix on every layer, no projection; q/k/v biases.
  'prefix-v2-qwen2': { model: 'qwen2', config: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3 } },
  // head_dim 16 ≠ hidden/heads: PEFT's default sizes would be wrong, so the case passes them; our saved config has them.
  'prefix-qwen3-head-dim': { model: 'qwen3', config: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3, token_dim: 32, num_attention_heads: 2 } },
};

const ready = Object.values(CASES).every((c) => tinyModelDir(c.model)) && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: PEFT prompt-learning oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
};
const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, { shape: e.shape, data: readTensorFloat32(e) }]));
const f32File = (file: string) => new Float32Array(readFileSync(file).buffer.slice(0));
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });

/** input_ids, position_ids → logits (B, T, vocab) of the real tokens, with the spec's placeholder. */
const logitsGraph = (model: LoadedModel, spec: VirtualTokenSpec): Graph => {
  const g = new GraphBuilder();
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const w = new WeightBinder(g, model.weights, model.source);
  const { hidden } = decoder(g, model.config, w, { inputIds, positionIds, virtualTokens: virtualTokenInput(g, model.config, spec) });
  g.output(lmHead(model.config, w, hidden), 'logits');
  return g.build();
};

const logitsOf = async (graph: Graph, params: readonly TrainableTensor[], ids: number[][]): Promise<Float32Array> => {
  const session = await Session.create(graph, { threads: 2 });
  const feeds: Record<string, HostTensor> = { input_ids: i64(ids), position_ids: i64(ids.map((r) => r.map((_, i) => i))) };
  for (const p of params) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
  const out = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return out;
};

const configOf = (name: string): Record<string, unknown> => {
  const c = CASES[name]!;
  const modelDir = tinyModelDir(c.model)!;
  return { ...c.config, ...(c.config.prompt_tuning_init === 'TEXT' ? { tokenizer_name_or_path: modelDir } : {}) };
};

describe.skipIf(!ready && !oracleRequired())('prompt learning equals HF PEFT', () => {
  const out = mkdtempSync(join(tmpdir(), 'peft-prompt-ref-'));
  let made: Record<string, string> = {};
  /** Adapters PEFT Studio saved, with the logits we compute for them, for one batched PEFT load at the end. */
  const ours: { model_dir: string; adapter_dir: string; ids: number[][]; logits: Float32Array; base: Float32Array }[] = [];

  beforeAll(() => {
    const cases = Object.fromEntries(Object.keys(CASES).map((name) => [name, { ...configOf(name), model_dir: tinyModelDir(CASES[name]!.model)! }]));
    made = runOracle<Record<string, string>>('prompt_learning_ref.py', ['make', out, JSON.stringify(cases)]);
  }, 600_000);

  for (const name of Object.keys(CASES)) {
    it(name, async () => {
      const modelDir = tinyModelDir(CASES[name]!.model)!;
      const dir = made[name]!;
      const ref = readJson(join(dir, 'reference.json')) as { input_ids: number[][]; labels: number[][]; loss: number };
      const model = openHfFolder(modelDir);
      const raw = configOf(name);
      const method = METHODS[String(raw.peft_type)]!;
      const parsed = method.parseConfig(raw, name);
      expect(parsed.warnings).toEqual([]);
      const config = parsed.config as never;
      const spec = method.virtualTokens(config);
      const text = raw.prompt_tuning_init_text as string | undefined;
      const options = text ? { initTokenIds: loadTokenizerFromFolder(modelDir).encode(text) } : {};
      const adapted = method.apply(buildTrainingGraph(model, { virtualTokens: spec }), config, options);

      // PEFT's trainable tensors, by name and shape; a TEXT init equals PEFT's.
      const init = readAll(join(dir, 'init.safetensors'));
      expect(adapted.params.map((p) => p.name).sort()).toEqual([...init.keys()].sort());
      for (const p of adapted.params) expect(p.shape, p.name).toEqual(init.get(p.name)!.shape);
      if (text) expect(maxDiff(adapted.params[0]!.data, init.get(adapted.params[0]!.name)!.data)).toBe(0);

      // Loss and every gradient with PEFT's random tensors: one example per row, then both packed in one row.
      const pefts = readAll(join(dir, 'params.safetensors'));
      const params = adapted.params.map((p) => ({ ...p, data: Float32Array.from(pefts.get(p.name)!.data) }));
      const examples: Example[] = ref.input_ids.map((ids, b) => ({ inputIds: ids, labels: ref.labels[b]! }));
      const refGrads = readAll(join(dir, 'grads.safetensors'));
      const step = await TrainStep.create({ graph: adapted.graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
      for (const rows of [examples.map((e) => [e]), [examples]]) {
        const batch = packMicroBatch(rows);
        const got = await step.computeGradients(withNormalizer(batch, batch.targets));
        expect(Math.abs(got.loss - ref.loss), `loss, ${rows.length} rows`).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));
        for (const [key, want] of refGrads) {
          expect(maxAbs(want.data), `${key}: PEFT's gradient is zero`).toBeGreaterThan(0);
          expect(maxDiff(got.grads.get(key)!, want.data), `${key}, ${rows.length} rows`).toBeLessThanOrEqual(1e-4 * maxAbs(want.data) + 1e-6);
        }
      }
      await step.release();

      // Saving PEFT's tensors writes what PEFT's save_pretrained wrote: the config and prompt_embeddings.
      const resaved = join(out, `${name}-resaved`);
      method.saveAdapter(resaved, { ...(config as object), base_model_name_or_path: modelDir } as never, params, model.config);
      expect(readJson(join(resaved, 'adapter_config.json'))).toEqual(readJson(join(dir, 'adapter_config.json')));
      const peftSaved = readAll(join(dir, 'adapter_model.safetensors')).get('prompt_embeddings')!;
      const oursSaved = readAll(join(resaved, 'adapter_model.safetensors')).get('prompt_embeddings')!;
      expect(oursSaved.shape).toEqual(peftSaved.shape);
      expect(maxDiff(oursSaved.data, peftSaved.data)).toBeLessThanOrEqual(1e-5 * maxAbs(peftSaved.data) + 1e-6);

      // PEFT's adapter folder → our logits equal PEFT's, and differ from the base model's.
      const loaded = readPromptLearningAdapter(dir);
      expect(loaded.warnings).toEqual([]);
      const fromPeft = applyPromptEmbeddings(logitsGraph(model, loaded.spec), loaded);
      const want = f32File(join(dir, 'logits.f32'));
      expect(maxDiff(await logitsOf(fromPeft.graph, fromPeft.params, ref.input_ids), want)).toBeLessThanOrEqual(1e-4);
      const base = await logitsOf(buildLogitsGraph(model), [], ref.input_ids);
      expect(maxDiff(base, want)).toBeGreaterThan(1e-2);

      // Our own tensors (other random values), through the training-time encoder → saved → PEFT must give our logits.
      const rng = createRng(11);
      const mine = adapted.params.map((p) => ({ ...p, data: p.data.map((v) => 0.7 * v + 0.3 * (rng() - 0.5)) }));
      const encoderGraph = method.apply(logitsGraph(model, spec), config, options);
      const mineDir = join(out, `${name}-ours`);
      method.saveAdapter(mineDir, { ...(config as object), base_model_name_or_path: modelDir } as never, mine, model.config);
      ours.push({ model_dir: modelDir, adapter_dir: mineDir, ids: ref.input_ids, logits: await logitsOf(encoderGraph.graph, mine, ref.input_ids), base: want });
    });
  }

  it('PEFT loads the adapters PEFT Studio saved and computes our logits', () => {
    expect(ours.length).toBe(Object.keys(CASES).length);
    const files = runOracle<string[]>('prompt_learning_ref.py', ['load', JSON.stringify(ours.map(({ model_dir, adapter_dir, ids }) => ({ model_dir, adapter_dir, ids })))]);
    ours.forEach((o, i) => {
      const peft = f32File(files[i]!);
      expect(maxDiff(o.logits, peft), o.adapter_dir).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(o.logits, o.base), `${o.adapter_dir} differs from PEFT's own adapter`).toBeGreaterThan(1e-2);
    });
  }, 600_000);

  it('greedy generation with each method equals PEFT generate() (prompts and prefixes in the KV cache)', async () => {
    const names = ['prompt-tuning-random-llama3', 'p-tuning-lstm-llama3', 'prefix-projection-llama3', 'prefix-v2-qwen2', 'prompt-tuning-text-qwen2'];
    const N = 10;
    const prompts: Record<string, number[]> = { llama3: [128000, 791, 4062, 14198, 39935], qwen2: [9707, 11, 1246, 525, 498] };
    const specs = names.map((name) => ({ model_dir: tinyModelDir(CASES[name]!.model)!, adapter_dir: made[name]!, n: N, prompt: prompts[CASES[name]!.model]! }));
    const refs = runOracle<{ tokens: number[]; margins: number[] }[]>('prompt_learning_ref.py', ['generate', JSON.stringify(specs)]);
    for (const [i, spec] of specs.entries()) {
      const model = openHfFolder(spec.model_dir);
      const { generator, peftType, warnings } = await openPromptAdapterGenerator(model, spec.adapter_dir, { threads: 2 });
      expect(warnings).toEqual([]);
      expect(peftType).toBe(CASES[names[i]!]!.config.peft_type);
      const tokens: number[] = [];
      for await (const t of generator.generate(spec.prompt, { maxNewTokens: N })) tokens.push(t.id);
      await generator.release();
      // Identical up to the first step whose top-2 margin is too small to call (logits agree to ~1e-5).
      const ref = refs[i]!;
      const close = ref.margins.findIndex((m) => m < 1e-4);
      const upTo = close < 0 ? N : close + 1;
      expect(upTo, names[i]).toBeGreaterThan(3);
      expect(tokens.slice(0, upTo), names[i]).toEqual(ref.tokens.slice(0, upTo));
    }
  }, 600_000);
});
