import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';

const python = process.env.PEFT_ORACLE_PYTHON ?? join(process.env.PEFT_STUDIO_CACHE ?? join(homedir(), '.cache', 'peft-studio'), 'oracle-venv', 'bin', 'python');

const CASES: Record<string, { model: string; config: Record<string, unknown> }> = {
  'lora-q-v': { model: 'llama3', config: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] } },
  'rslora-all-linear-patterns': {
    model: 'llama3',
    config: { r: 4, lora_alpha: 16, use_rslora: true, target_modules: 'all-linear', rank_pattern: { o_proj: 2 }, alpha_pattern: { down_proj: 4 } },
  },
  'regex-qwen2-bias': { model: 'qwen2', config: { r: 3, lora_alpha: 6, target_modules: '.*\\.(k_proj|up_proj)' } },
  'layers-to-transform': { model: 'qwen3', config: { r: 2, lora_alpha: 2, target_modules: ['gate_proj', 'q_proj'], layers_to_transform: [1] } },
};

const ready = Object.values(CASES).every((c) => tinyModelDir(c.model)) && existsSync(python);
if (!ready) console.warn('ORACLE MISSING: PEFT LoRA oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe.skipIf(!ready && !oracleRequired())('LoRA equals HF PEFT (loss, every gradient, logits)', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const modelDir = tinyModelDir(c.model)!;
      const out = mkdtempSync(join(tmpdir(), 'peft-lora-ref-'));
      execFileSync(python, ['tests/oracle/peft_lora_ref.py', modelDir, out, JSON.stringify({ [name]: c.config })], { stdio: ['ignore', 'pipe', 'pipe'] });
      const dir = join(out, name);
      const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[][]; labels: number[][]; loss: number; logits_shape: number[] };

      const adapter = loadAdapterFiles(dir);
      const { config, warnings } = parseLoraConfig(adapter.config, join(dir, 'adapter_config.json'));
      expect(warnings).toEqual([]);
      const model = openHfFolder(modelDir);
      const lossGraph = applyLora(buildLossGraph(model), config);
      const params = assignAdapterWeights(lossGraph.params, adapter);
      const [b, t] = [ref.input_ids.length, ref.input_ids[0]!.length];
      const i64 = (rows: number[][]) => ({ dtype: 'int64' as const, shape: [b, t], data: BigInt64Array.from(rows.flat(), BigInt) });
      const positions = ref.input_ids.map((row) => row.map((_, i) => i));
      const batch = { input_ids: i64(ref.input_ids), position_ids: i64(positions), labels: i64(ref.labels) };

      const trainer = await TrainStep.create({ graph: lossGraph.graph, params, optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
      const ours = await trainer.computeGradients(batch);
      await trainer.release();
      expect(Math.abs(ours.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));

      const refGrads = new Map(readSafetensorsHeader(join(dir, 'grads.safetensors')).map((e) => [e.name, readTensorFloat32(e)]));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      for (const [key, want] of refGrads) {
        const got = ours.grads.get(key)!;
        expect(maxAbs(want), `${key} reference gradient is zero`).toBeGreaterThan(0);
        expect(maxDiff(got, want), key).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
      }

      // The adapted forward: logits equal PEFT's and differ from the base model's by > 1e-2.
      const logitsGraph = applyLora(buildLogitsGraph(model), config);
      const feeds = { input_ids: batch.input_ids, position_ids: batch.position_ids };
      const adapted = await Session.create(logitsGraph.graph, { threads: 2 });
      const weights = assignAdapterWeights(logitsGraph.params, adapter);
      const got = (await adapted.run({ ...feeds, ...Object.fromEntries(weights.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }])) })).logits!.data as Float32Array;
      await adapted.release();
      const want = new Float32Array(readFileSync(join(dir, 'logits.f32')).buffer.slice(0));
      expect(maxDiff(got, want)).toBeLessThanOrEqual(1e-4);
      const base = await Session.create(buildLogitsGraph(model), { threads: 2 });
      const plain = (await base.run(feeds)).logits!.data as Float32Array;
      await base.release();
      expect(maxDiff(plain, want)).toBeGreaterThan(1e-2);
    });
  }
});
