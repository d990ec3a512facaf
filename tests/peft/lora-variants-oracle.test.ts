// LoRA's options against HF PEFT 0.17 on tiny models: DoRA, PiSSA (exact and randomized), OLoRA, trainable biases
// and modules_to_save. Per case: the initial state equals PEFT's, the loss and every gradient at a trained state
// equal PEFT's, PEFT's saved adapter loads here with PEFT's logits, and an adapter saved here loads in PEFT with
// ours (tests/oracle/peft_lora_variants_ref.py makes the references).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readInitializer } from '../../main/engine/io/initializer.ts';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { doraMagnitude } from '../../main/peft/dora.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { assignAdapterWeights, loadAdapterFiles, saveAdapter } from '../../main/peft/peft-io.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

interface Case {
  readonly model: 'llama3' | 'qwen2';
  readonly config: Record<string, unknown>;
  /** Modules whose weights get well-separated top singular values (so a randomized SVD converges). */
  readonly spike?: readonly string[];
}

const CASES: Record<string, Case> = {
  'dora-llama3': { model: 'llama3', config: { r: 4, lora_alpha: 8, use_dora: true, target_modules: ['q_proj', 'v_proj', 'down_proj'] } },
  'dora-qwen2-bias': { model: 'qwen2', config: { r: 3, lora_alpha: 6, use_dora: true, use_rslora: true, target_modules: ['q_proj', 'k_proj', 'o_proj'] } },
  'pissa-llama3': { model: 'llama3', config: { r: 4, lora_alpha: 8, init_lora_weights: 'pissa', target_modules: ['q_proj', 'v_proj', 'up_proj'] } },
  'pissa-dora-qwen2': { model: 'qwen2', config: { r: 2, lora_alpha: 4, init_lora_weights: 'pissa', use_dora: true, target_modules: ['q_proj', 'down_proj'] } },
  'pissa-niter-llama3': {
    model: 'llama3',
    config: { r: 4, lora_alpha: 8, init_lora_weights: 'pissa_niter_6', target_modules: ['q_proj', 'v_proj'] },
    spike: ['q_proj', 'v_proj'],
  },
  'olora-llama3': { model: 'llama3', config: { r: 4, lora_alpha: 16, init_lora_weights: 'olora', target_modules: ['k_proj', 'gate_proj', 'down_proj'] } },
  'olora-qwen2': { model: 'qwen2', config: { r: 2, lora_alpha: 2, init_lora_weights: 'olora', target_modules: ['v_proj', 'o_proj'] } },
  'bias-all-qwen2': { model: 'qwen2', config: { r: 2, lora_alpha: 4, bias: 'all', target_modules: ['q_proj', 'up_proj'] } },
  'bias-lora-only-qwen2': { model: 'qwen2', config: { r: 2, lora_alpha: 4, bias: 'lora_only', target_modules: ['q_proj', 'v_proj', 'o_proj'] } },
  'modules-to-save-lm-head-qwen2': { model: 'qwen2', config: { r: 2, lora_alpha: 4, target_modules: ['q_proj'], modules_to_save: ['lm_head'] } },
  'modules-to-save-embed-norm-llama3': { model: 'llama3', config: { r: 2, lora_alpha: 4, target_modules: ['v_proj'], modules_to_save: ['embed_tokens', 'norm'] } },
};

const ready = (['llama3', 'qwen2'] as const).every((m) => tinyModelDir(m)) && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: PEFT LoRA-variant oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const SCRIPT = 'peft_lora_variants_ref.py';
const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
/** The per-tensor tolerance of the oracle suites: max|x − x̂| ≤ 1e-4·max|x̂| + 1e-6. */
const expectClose = (got: ArrayLike<number>, want: ArrayLike<number>, what: string): number => {
  const err = maxDiff(got, want);
  expect(err, what).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
  return err;
};
const readTensors = (file: string): Map<string, Float32Array> => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));
const readLogits = (file: string): Float32Array => new Float32Array(readFileSync(file).buffer.slice(0));
/** s·B·A (out, in): what PiSSA's A and B determine regardless of the signs of the singular vectors. */
const scaledProduct = (a: Float32Array, b: Float32Array, r: number, scale: number): Float64Array => {
  const out = b.length / r;
  const inF = a.length / r;
  const p = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) p[o * inF + i]! += scale * b[o * r + k]! * a[k * inF + i]!;
  return p;
};

const refs = new Map<string, { dir: string; model: string }>();

interface Reference { input_ids: number[][]; labels: number[][]; loss: number }

const batchOf = (r: Reference) => {
  const [b, t] = [r.input_ids.length, r.input_ids[0]!.length];
  const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [b, t], data: BigInt64Array.from(rows.flat(), BigInt) });
  const positions = r.input_ids.map((row) => row.map((_, i) => i));
  return { input_ids: i64(r.input_ids), position_ids: i64(positions), labels: i64(r.labels) };
};

const logitsOf = async (model: LoadedModel, config: LoraConfig, params: readonly TrainableTensor[] | undefined, batch: ReturnType<typeof batchOf>): Promise<Float32Array> => {
  const graph = params ? applyLora(buildLogitsGraph(model), config).graph : buildLogitsGraph(model);
  const session = await Session.create(graph, { threads: 2 });
  const feeds: Record<string, HostTensor> = { input_ids: batch.input_ids, position_ids: batch.position_ids };
  for (const p of params ?? []) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
  const logits = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return logits;
};

/** The fresh adapter's initial state equals PEFT's where it is determined (everything but random A and B). */
const checkInitialState = (name: string, c: LoraConfig, fresh: ReturnType<typeof applyLora>, init: Map<string, Float32Array>): void => {
  expect(new Set(fresh.params.map((p) => p.name)), 'trainable tensors and their PEFT names').toEqual(new Set([...init.keys()].filter((k) => !k.startsWith('residual.'))));
  const fromBase = c.init_lora_weights !== true && c.init_lora_weights !== false && c.init_lora_weights !== 'gaussian';
  for (const [module, details] of fresh.modules) {
    const key = (part: string) => `base_model.model.${module}.${part}.default.weight`;
    const residual = init.get(`residual.${module}`)!;
    if (fromBase) expectClose(readInitializer(fresh.graph, `${module}.weight`), residual, `${name}: residual of ${module}`);
    const ours = (part: string) => fresh.params.find((p) => p.name === key(part))!.data;
    const { r, scale } = details as { r: number; scale: number };
    const inFeatures = ours('lora_A').length / r;
    if (c.init_lora_weights === 'olora') {
      expectClose(ours('lora_A'), init.get(key('lora_A'))!, `${name}: OLoRA A of ${module}`);
      expectClose(ours('lora_B'), init.get(key('lora_B'))!, `${name}: OLoRA B of ${module}`);
    } else if (fromBase) {
      const want = scaledProduct(init.get(key('lora_A'))!, init.get(key('lora_B'))!, r, scale);
      expectClose(scaledProduct(ours('lora_A'), ours('lora_B'), r, scale), want, `${name}: PiSSA s·B·A of ${module}`);
    }
    if (c.use_dora) {
      const magnitude = doraMagnitude(residual, init.get(key('lora_A'))!, init.get(key('lora_B'))!, residual.length / inFeatures, inFeatures, r, scale);
      expectClose(magnitude, init.get(key('lora_magnitude_vector'))!, `${name}: DoRA magnitude init of ${module}`);
    }
  }
  for (const p of fresh.params) {
    if (p.role === 'bias' || p.role === 'modules_to_save') expect(maxDiff(p.data, init.get(p.name)!), `${name}: ${p.name} starts as the base tensor`).toBe(0);
  }
};

describe.skipIf(!ready && !oracleRequired())('LoRA variants equal HF PEFT (init, loss, every gradient, save/load both ways)', () => {
  beforeAll(() => {
    const out = mkdtempSync(join(tmpdir(), 'peft-lora-variants-'));
    for (const model of ['llama3', 'qwen2'] as const) {
      const cases = Object.fromEntries(Object.entries(CASES).filter(([, c]) => c.model === model).map(([n, c]) => [n, { config: c.config, ...(c.spike ? { spike: c.spike } : {}) }]));
      const made = runOracle<Record<string, { dir: string; model: string }>>(SCRIPT, ['ref', tinyModelDir(model)!, out, JSON.stringify(cases)]);
      for (const [n, r] of Object.entries(made)) refs.set(n, r);
    }
  }, 600_000);

  for (const name of Object.keys(CASES)) {
    it(name, async () => {
      const { dir, model: modelDir } = refs.get(name)!;
      const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
      const adapter = loadAdapterFiles(dir);
      const { config, warnings } = parseLoraConfig(adapter.config, join(dir, 'adapter_config.json'));
      expect(warnings).toEqual([]);
      const model = openHfFolder(modelDir);
      const batch = batchOf(reference);

      const fresh = applyLora(buildLossGraph(model), config);
      checkInitialState(name, config, fresh, readTensors(join(dir, 'init.safetensors')));

      // Loss and every gradient at PEFT's trained state.
      const state = readTensors(join(dir, 'state.safetensors'));
      const params = fresh.params.map((p) => ({ ...p, data: Float32Array.from(state.get(p.name)!) }));
      const trainer = await TrainStep.create({ graph: fresh.graph, params, optimizer: { kind: 'sgd' }, lr: 0.05, session: { threads: 2 } });
      const ours = await trainer.computeGradients(batch);
      expect(Math.abs(ours.loss - reference.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(reference.loss));
      const refGrads = readTensors(join(dir, 'grads.safetensors'));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      const errors: Record<string, number> = {};
      for (const [key, want] of refGrads) {
        expect(maxAbs(want), `${key} reference gradient is zero`).toBeGreaterThan(0);
        errors[key] = expectClose(ours.grads.get(key)!, want, key) / maxAbs(want);
      }
      const worst = Object.entries(errors).sort((a, b) => b[1] - a[1])[0]!;
      console.log(`${name}: loss ${ours.loss} (PEFT ${reference.loss}); worst relative gradient error ${worst[1].toExponential(2)} (${worst[0]})`);

      // PEFT's saved adapter, loaded here, gives the logits PEFT gives when it reloads it; they are not the base's.
      const peftLogits = readLogits(join(dir, 'reload_logits.f32'));
      const loaded = await logitsOf(model, config, assignAdapterWeights(fresh.params, adapter), batch);
      expect(maxDiff(loaded, peftLogits)).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(await logitsOf(model, config, undefined, batch), peftLogits)).toBeGreaterThan(1e-2);

      // One more step here, saved with saveAdapter, loads in PEFT with our logits.
      await trainer.step(batch);
      await trainer.release();
      const saved = mkdtempSync(join(tmpdir(), 'peft-lora-variants-ours-'));
      saveAdapter(saved, config as unknown as Record<string, unknown>, params);
      const mine = await logitsOf(model, config, params, batch);
      expect(maxDiff(mine, readLogits(join(dir, 'logits.f32'))), 'our step moved the adapter').toBeGreaterThan(1e-4);
      runOracle(SCRIPT, ['load', modelDir, saved, join(saved, 'logits.f32')]);
      expect(maxDiff(readLogits(join(saved, 'logits.f32')), mine)).toBeLessThanOrEqual(1e-4);
    });
  }
});
