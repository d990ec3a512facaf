import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { quantizeBase } from '../../main/engine/quant/quantize-base.ts';
import { buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { applyQlora, type QuantizeBaseOptions } from '../../main/peft/qlora.ts';
import { tinyModelDir } from '../helpers/oracle-cache.ts';
import { describeOracle, runOracle } from '../helpers/oracle.ts';

const LORA = { r: 4, lora_alpha: 8, target_modules: 'all-linear' };
const CASES: Record<string, { quant: QuantizeBaseOptions; python: Record<string, unknown> }> = {
  nf4: { quant: { scheme: 'nf4' }, python: { scheme: 'nf4' } },
  'nf4-double-quant': { quant: { scheme: 'nf4', doubleQuant: true }, python: { scheme: 'nf4', double_quant: true } },
  int4: { quant: { scheme: 'int4' }, python: { scheme: 'int4' } },
  'int4-symmetric': { quant: { scheme: 'int4', symmetric: true }, python: { scheme: 'int4', symmetric: true } },
};

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describeOracle('QLoRA: LoRA gradients over a 4-bit base equal PEFT over the dequantized base (tiny llama3)', () => {
  const modelDir = tinyModelDir('llama3');
  const out = mkdtempSync(join(tmpdir(), 'qlora-ref-'));
  let dirs: Record<string, string> | undefined;
  const reference = (name: string): string => {
    dirs ??= runOracle<Record<string, string>>('qlora_lora_ref.py', [
      modelDir ?? 'tiny llama3 missing: run tests/oracle/make_tiny_models.py',
      out,
      JSON.stringify(Object.fromEntries(Object.entries(CASES).map(([k, c]) => [k, { quant: c.python, lora: LORA }]))),
    ]);
    return dirs[name]!;
  };

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: loss and every LoRA gradient (≤ 1e-4·max + 1e-6)`, async () => {
      const dir = reference(name);
      const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[][]; labels: number[][]; loss: number };
      const adapter = loadAdapterFiles(dir);
      const { config } = parseLoraConfig(adapter.config, join(dir, 'adapter_config.json'));
      const model = openHfFolder(modelDir!);
      const adapted = applyQlora(buildLossGraph(model), config, c.quant);
      expect(adapted.quantized.map((m) => m.name.split('.').pop())).toEqual([...Array(2)].flatMap(() => ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']));
      const quantOp = c.quant.scheme === 'nf4' ? 'MatMulBnb4' : 'MatMulNBits';
      expect(adapted.graph.nodes.filter((nd) => nd.op === quantOp)).toHaveLength(14);
      expect(adapted.graph.nodes.find((nd) => nd.name === 'lm_head')?.op).toBe('Gemm');

      const [b, t] = [ref.input_ids.length, ref.input_ids[0]!.length];
      const i64 = (rows: number[][]) => ({ dtype: 'int64' as const, shape: [b, t], data: BigInt64Array.from(rows.flat(), BigInt) });
      const batch = { input_ids: i64(ref.input_ids), position_ids: i64(ref.input_ids.map((row) => row.map((_, i) => i))), labels: i64(ref.labels) };
      const gradsOf = async (graph: typeof adapted) => {
        const trainer = await TrainStep.create({ graph: graph.graph, params: assignAdapterWeights(graph.params, adapter), optimizer: { kind: 'sgd' }, lr: 0, session: { threads: 2 } });
        const g = await trainer.computeGradients(batch);
        await trainer.release();
        return g;
      };
      const ours = await gradsOf(adapted);
      expect(Math.abs(ours.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss));
      // The 4-bit base matters at this tolerance: over the float base the loss is off by more than 10× the tolerance.
      const float = await gradsOf({ ...applyLora(buildLossGraph(model), config), quantized: [] });
      expect(Math.abs(float.loss - ref.loss)).toBeGreaterThan(1e-4 * Math.abs(ref.loss));
      const refGrads = new Map(readSafetensorsHeader(join(dir, 'grads.safetensors')).map((e) => [e.name, readTensorFloat32(e)]));
      expect(new Set(ours.grads.keys())).toEqual(new Set(refGrads.keys()));
      for (const [key, want] of refGrads) {
        expect(maxAbs(want), `${key} reference gradient is zero`).toBeGreaterThan(0);
        expect(maxDiff(ours.grads.get(key)!, want), key).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6);
      }

      if (c.quant.scheme === 'int4') {
        // Base quantized first: applyLora finds the MatMulNBits linears by name and gives the same gradients.
        const first = applyLora(quantizeBase(buildLossGraph(model), c.quant).graph, config);
        const theirs = await gradsOf({ ...first, quantized: [] });
        for (const [key, want] of ours.grads) expect(maxDiff(theirs.grads.get(key)!, want), key).toBeLessThanOrEqual(1e-6 * maxAbs(want));
      }
    });
  }
});
