// Gradient checkpointing for every method: recomputing each decoder block in the backward pass gives the same
// gradients as keeping the activations, for each registered method (one table of cases; a method without a case fails).
import { describe, expect, it } from 'vitest';
import { TrainStep } from '../../main/engine/train-step.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyBottleneck, saveBottleneckAdapter } from '../../main/peft/bottleneck.ts';
import { parseBottleneckConfig } from '../../main/peft/bottleneck-config.ts';
import { peftMethods } from '../../main/peft/registry.ts';
import { TRAINABLE_METHODS, prepareMethod } from '../../main/train/method-training.ts';
import { packMicroBatch, withNormalizer } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

interface Case {
  readonly model: string;
  readonly config: Record<string, unknown>;
  /** Rows of exactly this many tokens, unpacked (LongLoRA's S²-Attn splits a fixed length into groups). */
  readonly fixedRows?: number;
}

const HOULSBY = { peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 8 };
/** Two Houlsby adapters with non-zero tensors for AdapterFusion to fuse. */
const fused = (() => {
  let paths: Record<string, string> | undefined;
  return () => {
    if (paths) return paths;
    const root = mkdtempSync(join(tmpdir(), 'peft-recompute-'));
    paths = { one: join(root, 'one'), two: join(root, 'two') };
    const { config } = parseBottleneckConfig(HOULSBY, 'stage 1');
    Object.values(paths).forEach((dir, i) => {
      const a = applyBottleneck(buildTrainingGraph(openHfFolder(tinyModelDir('llama3')!)), config, { seed: i });
      saveBottleneckAdapter(dir, config, a.params.map((p) => ({ ...p, data: p.data.map((_, k) => Math.cos(k + i) * 0.1) })));
    });
    return paths;
  };
})();

/** Non-zero adapters where the method allows (LoRA's B random), so that every gradient carries signal. */
const CASES: Readonly<Record<string, Case>> = {
  LORA: { model: 'llama3', config: { r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false } },
  ADALORA: { model: 'llama3', config: { init_r: 4, target_r: 2, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], total_step: 10 } },
  VERA: { model: 'llama3', config: { r: 8, target_modules: ['q_proj', 'v_proj'] } },
  DELTA_LORA: { model: 'llama3', config: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } },
  LORA_DROP: { model: 'llama3', config: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } },
  IA3: { model: 'llama3', config: { target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] } },
  BITFIT: { model: 'qwen2', config: {} },
  SELECTIVE: { model: 'llama3', config: { parameters: ['norm', 'layers\\.1\\.'] } },
  FULL: { model: 'llama3', config: {} },
  BOTTLENECK: { model: 'llama3', config: { architecture: 'houlsby', reduction_factor: 8, init_weights: 'bert' } },
  LONGLORA: { model: 'llama3', config: { r: 4, lora_alpha: 8, model_max_length: 16, init_lora_weights: false, rope_scaling: { type: 'linear', factor: 2 } }, fixedRows: 16 },
  PROMPT_TUNING: { model: 'llama3', config: { num_virtual_tokens: 4 } },
  P_TUNING: { model: 'llama3', config: { num_virtual_tokens: 4, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 16 } },
  PREFIX_TUNING: { model: 'llama3', config: { num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 16 } },
  ADAPTER_FUSION: {
    model: 'llama3',
    get config() {
      return { adapters: ['one', 'two'], adapter_paths: fused() };
    },
  },
};

const batch = (fixedRows?: number) => {
  const row = (seed: number, n: number) => Array.from({ length: n }, (_, i) => ((i + 1) * 7919 * seed) % 200 + 3);
  const ex = (seed: number, n: number) => ({ inputIds: row(seed, n), labels: row(seed, n) });
  const m = packMicroBatch(fixedRows ? [[ex(1, fixedRows)], [ex(2, fixedRows)]] : [[ex(1, 12), ex(2, 9)], [ex(3, 17)]]);
  return withNormalizer(m, m.targets);
};

const gradientsOf = async (c: Case, peftType: string, recompute: boolean) => {
  const method = peftMethods().find((m) => m.peftType === peftType)!;
  const dir = tinyModelDir(c.model)!;
  const { config } = method.parseConfig({ peft_type: peftType, ...c.config }, 'test');
  // The method as a run trains it: its graph, tensors and run-time inputs (Delta-LoRA's update ratio, …); a method
  // runs cannot train yet (LongLoRA, which needs fixed-length rows) through its own rewrite.
  const model = openHfFolder(dir);
  const prepared = TRAINABLE_METHODS.includes(peftType)
    ? prepareMethod({ peftType, config, model, seed: 3, lr: 1e-3, baseModel: dir })
    : { ...method.apply(buildTrainingGraph(model), config as never, { seed: 3 }), bind: () => ({ feeds: undefined }) };
  const run = prepared.bind(prepared.params);
  const step = await TrainStep.create({ graph: prepared.graph, params: prepared.params, optimizer: { kind: 'sgd' }, lr: 0, recompute, seed: 3, session: { threads: 1 } });
  const out = await step.computeGradients({ ...batch(c.fixedRows), ...run.feeds?.() });
  await step.release();
  return out;
};

describe.skipIf(!tinyModelDir('llama3') && !oracleRequired())('gradient checkpointing for every method', () => {
  it('has a case for every registered method', () => {
    expect(Object.keys(CASES).sort()).toEqual(peftMethods().map((m) => m.peftType).sort());
  });

  it.each(Object.keys(CASES))('%s: recomputed blocks give the same loss and gradients', async (peftType) => {
    const c = CASES[peftType]!;
    const kept = await gradientsOf(c, peftType, false);
    const recomputed = await gradientsOf(c, peftType, true);
    expect(recomputed.loss).toBeCloseTo(kept.loss, 6);
    expect([...recomputed.grads.keys()]).toEqual([...kept.grads.keys()]);
    let signal = 0;
    for (const [name, g] of kept.grads) {
      const r = recomputed.grads.get(name)!;
      const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      signal = Math.max(signal, scale);
      let worst = 0;
      for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(r[i]! - g[i]!));
      expect(worst, name).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
    }
    expect(signal).toBeGreaterThan(0);
  });
});
