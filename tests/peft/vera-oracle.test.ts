import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { PeftError } from '../../main/peft/errors.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import {
  applyVera, loadVeraAdapter, parseVeraConfig, saveVeraAdapter, torchMt19937, veraMethod, veraProjections,
} from '../../main/peft/vera.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const CASES: Record<string, { model: string; config: Record<string, unknown> }> = {
  // q (32→32), v (32→16), down (64→32): the shared projections are sliced along both axes.
  'vera-q-v-down-qwen2': { model: 'qwen2', config: { r: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], projection_prng_key: 1234 } },
  // Nothing saved but the lambdas: PEFT and we both rebuild vera_A / vera_B from the key.
  'vera-all-linear-no-projection': { model: 'llama3', config: { r: 16, target_modules: 'all-linear', save_projection: false } },
  // A key above 2³²: torch seeds mt19937 with its low 32 bits.
  'vera-layers-big-key': { model: 'mistral', config: { r: 4, target_modules: ['gate_proj', 'o_proj'], layers_to_transform: [0], projection_prng_key: 2 ** 40 + 5 } },
};

const ready = Object.values(CASES).every((c) => tinyModelDir(c.model)) && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: PEFT VeRA oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const readAll = (file: string) => new Map(readSafetensorsHeader(file).map((e) => [e.name, readTensorFloat32(e)]));
const f32File = (file: string) => new Float32Array(readFileSync(file).buffer.slice(0));
const i64 = (rows: number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
const tokenFeeds = (ids: number[][]) => ({ input_ids: i64(ids), position_ids: i64(ids.map((row) => row.map((_, i) => i))) });

const logitsOf = async (graph: Graph, params: readonly TrainableTensor[], ids: number[][]): Promise<Float32Array> => {
  const session = await Session.create(graph, { threads: 2 });
  const feeds: Record<string, HostTensor> = { ...tokenFeeds(ids) };
  for (const p of params) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
  const out = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return out;
};

describe('torch generator reproduction', () => {
  it('mt19937 seeded as torch (first outputs of std::mt19937 with seed 5489)', () => {
    const next = torchMt19937(5489);
    expect([next(), next(), next()]).toEqual([3499211612, 581869302, 3890346734]);
    const big = torchMt19937(2n ** 40n + 5n);
    const low = torchMt19937(5);
    expect([big(), big()]).toEqual([low(), low()]);
  });
});

describe.skipIf(!ready && !oracleRequired())('VeRA equals HF PEFT (projections, loss, every gradient, logits, adapters both ways)', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const modelDir = tinyModelDir(c.model)!;
      const out = mkdtempSync(join(tmpdir(), 'peft-vera-ref-'));
      runOracle('peft_vera_ref.py', ['make', modelDir, out, JSON.stringify({ [name]: c.config })]);
      const dir = join(out, name);
      const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[][]; labels: number[][]; loss: number };
      const model = openHfFolder(modelDir);

      const loaded = loadVeraAdapter(dir, buildLossGraph(model));
      expect(loaded.warnings).toEqual([]);
      expect(loaded.projectionsFrom).toBe(c.config.save_projection === false ? 'prng_key' : 'file');
      // Our generator gives PEFT's projections bit for bit.
      const refProj = readAll(join(dir, 'projections.safetensors'));
      const mine = veraProjections(loaded.config.r, refProj.get('vera_A')!.length / loaded.config.r, refProj.get('vera_B')!.length / loaded.config.r, loaded.config.projection_prng_key);
      expect(Buffer.from(mine.vera_A.data.buffer).equals(Buffer.from(refProj.get('vera_A')!.buffer))).toBe(true);
      expect(Buffer.from(mine.vera_B.data.buffer).equals(Buffer.from(refProj.get('vera_B')!.buffer))).toBe(true);
      const frozenA = loaded.adapted.frozen!.find((t) => t.name === 'base_model.vera_A.default')!;
      expect(maxDiff(frozenA.data, refProj.get('vera_A')!)).toBe(0);

      const batch = { ...tokenFeeds(ref.input_ids), labels: i64(ref.labels) };
      const trainer = await TrainStep.create({ graph: loaded.adapted.graph, params: loaded.adapted.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
      const ours = await trainer.computeGradients(batch);
      await trainer.release();
      expect(Math.abs(ours.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));
      const refGrads = readAll(join(dir, 'grads.safetensors'));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      for (const [key, want] of refGrads) {
        const got = ours.grads.get(key)!;
        expect(maxAbs(want), `${key} reference gradient is zero`).toBeGreaterThan(0);
        expect(maxDiff(got, want), key).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
      }

      // PEFT's adapter → our logits equal PEFT's and differ from the base model's.
      const forLogits = loadVeraAdapter(dir, buildLogitsGraph(model));
      const got = await logitsOf(forLogits.adapted.graph, forLogits.adapted.params, ref.input_ids);
      const want = f32File(join(dir, 'logits.f32'));
      expect(maxDiff(got, want)).toBeLessThanOrEqual(1e-4);
      const plain = await logitsOf(buildLogitsGraph(model), [], ref.input_ids);
      expect(maxDiff(plain, want)).toBeGreaterThan(1e-2);

      // Our fresh adapter (init_weights=false: λ_b = 1, λ_d ~ N(0, 1)) → PEFT loads it and computes our logits.
      const fresh = { ...loaded.config, init_weights: false };
      const adapted = applyVera(buildLogitsGraph(model), fresh, { seed: 11 });
      const mineDir = join(out, `${name}-ours`);
      saveVeraAdapter(mineDir, fresh, adapted);
      const oursLogits = await logitsOf(adapted.graph, adapted.params, ref.input_ids);
      const peft = runOracle<{ logits: string; projections_equal_file: boolean }>('peft_vera_ref.py', ['load', modelDir, mineDir, JSON.stringify(ref.input_ids)]);
      expect(peft.projections_equal_file).toBe(fresh.save_projection);
      expect(maxDiff(oursLogits, f32File(peft.logits))).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(oursLogits, plain)).toBeGreaterThan(1e-2);
    });
  }
});

describe('VeRA config and files', () => {
  it('reads PEFT field names and rejects what it cannot apply, naming the field', () => {
    const { config, warnings } = parseVeraConfig({ peft_type: 'VERA', target_modules: ['q_proj'], future_field: 1 }, 'cfg');
    expect(config.r).toBe(256);
    expect(config.save_projection).toBe(true);
    expect(config.d_initial).toBe(0.1);
    expect(warnings).toEqual(["cfg: unknown field 'future_field' ignored (written by a newer PEFT?)"]);
    expect(() => parseVeraConfig({ target_modules: ['q_proj'], r: 0 }, 'cfg')).toThrow(/cfg: r=0 must be a positive integer/);
    expect(() => parseVeraConfig({ target_modules: ['q_proj'], bias: 'vera_only' }, 'cfg')).toThrow(PeftError);
    expect(() => parseVeraConfig({ target_modules: ['q_proj'], vera_dropout: 1 }, 'cfg')).toThrow(/vera_dropout/);
    expect(() => parseVeraConfig({ target_modules: ['q_proj'], projection_prng_key: 0.5 }, 'cfg')).toThrow(/projection_prng_key/);
    expect(() => parseVeraConfig({ target_modules: ['q_proj'], layers_pattern: 'layers' }, 'cfg')).toThrow(/layers_pattern/);
    expect(() => parseVeraConfig({ r: 4 }, 'cfg')).toThrow(/target_modules/);
    expect(veraMethod.savedKey('base_model.model.m.q_proj.vera_lambda_b.default', 'default')).toBe('base_model.model.m.q_proj.vera_lambda_b');
    expect(veraMethod.savedKey('base_model.vera_A.default', 'default')).toBe('base_model.vera_A');
  });

  it.skipIf(!tinyModelDir('llama3'))('rejects projections of the wrong shape and adapters for another model, naming the tensor', () => {
    const model = openHfFolder(tinyModelDir('llama3')!);
    const { config } = parseVeraConfig({ r: 4, target_modules: ['q_proj', 'v_proj'] }, 'cfg');
    const graph = buildLogitsGraph(model);
    const good = applyVera(graph, config);
    expect(good.params.map((p) => p.role).slice(0, 2)).toEqual(['vera_lambda_b', 'vera_lambda_d']);
    expect(good.params[0]!.data.every((v) => v === 0) && good.params[1]!.data.every((v) => v === Math.fround(0.1))).toBe(true);
    const bad = { vera_A: { shape: [4, 16], data: new Float32Array(64) }, vera_B: { shape: [32, 4], data: new Float32Array(128) } };
    expect(() => applyVera(graph, config, { projections: bad })).toThrow(/base_model\.vera_A has shape \[4, 16\]/);
    const dir = mkdtempSync(join(tmpdir(), 'vera-bad-'));
    saveVeraAdapter(dir, config, applyVera(graph, { ...config, target_modules: ['q_proj', 'v_proj', 'o_proj'] }));
    expect(() => loadVeraAdapter(dir, buildLogitsGraph(model))).toThrow(/o_proj\.vera_lambda_b' has no place/);
    expect(() => applyVera(graph, { ...config, target_modules: ['nope'] })).toThrow(/matched no linear layer/);
    const noProj = mkdtempSync(join(tmpdir(), 'vera-noproj-'));
    saveVeraAdapter(noProj, { ...config, save_projection: false }, good);
    writeFileSync(join(noProj, 'adapter_config.json'), JSON.stringify({ ...config, save_projection: true }));
    expect(() => loadVeraAdapter(noProj, graph)).toThrow(/save_projection=true but adapter_model.safetensors lacks 'base_model.vera_A'/);
  });

  it.skipIf(!tinyModelDir('llama3'))('vera_dropout trains through a deterministic dropout mask', async () => {
    const model = openHfFolder(tinyModelDir('llama3')!);
    const { config } = parseVeraConfig({ r: 4, target_modules: ['q_proj'], vera_dropout: 0.25, init_weights: false }, 'cfg');
    const adapted = applyVera(buildLossGraph(model), config);
    const ids = [[791, 4062, 14198, 39935]];
    const trainer = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
    const a = await trainer.computeGradients({ ...tokenFeeds(ids), labels: i64(ids) });
    const b = await trainer.computeGradients({ ...tokenFeeds(ids), labels: i64(ids) });
    await trainer.release();
    expect(Number.isFinite(a.loss) && a.loss === b.loss).toBe(true);
    for (const g of a.grads.values()) expect(maxAbs(g)).toBeGreaterThan(0);
  });
});
