// The run estimate: its FLOP count equals a hand count of a tiny Llama's matmuls, its liveness walk follows ORT's
// execution order, and its peak-memory figure lands within ±30% of the peak RSS of real training runs (the product's
// trainRun, each in a fresh child process) on a tiny model at two batch × sequence settings, with and without
// recomputation and the low-memory session. Times are not asserted here (bench/estimate.bench.ts prints them).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, add, matmul, mul } from '../../main/engine/ir/index.ts';
import type { ModelConfig } from '../../main/models/config.ts';
import type { LoadedModel } from '../../main/models/hf-folder.ts';
import type { WeightSource } from '../../main/models/weights.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { estimateRun } from '../../main/service/estimate.ts';
import { parseRunConfig } from '../../main/service/run-config.ts';
import { EstimateError, estimateTraining } from '../../main/train/estimate.ts';
import { evalDim, graphCost, ortExecutionOrder } from '../../main/train/estimate-graph.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { writeFullRowDataset, type MeasuredRun } from '../helpers/measure-run.ts';

const CONFIG: ModelConfig = {
  architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2,
  headDim: 4, vocabSize: 50, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: { type: 'default' }, maxPositionEmbeddings: 64,
  tieWordEmbeddings: false, attentionBias: false, eosTokenIds: [],
};

/** A Llama with CONFIG's sizes and in-memory weights (their values do not matter to a count). */
const syntheticModel = (): LoadedModel => {
  const { hiddenSize: C, intermediateSize: I, numHeads: H, numKvHeads: Hkv, headDim: D, vocabSize: V } = CONFIG;
  const weights = new Map<string, WeightSource>();
  const put = (name: string, shape: number[]) =>
    weights.set(name, { dtype: 'float32', shape, data: { kind: 'inline', data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01) } });
  put('model.embed_tokens.weight', [V, C]);
  put('lm_head.weight', [V, C]);
  put('model.norm.weight', [C]);
  for (let l = 0; l < CONFIG.numLayers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [C]);
    put(`${p}.post_attention_layernorm.weight`, [C]);
    put(`${p}.self_attn.q_proj.weight`, [H * D, C]);
    put(`${p}.self_attn.k_proj.weight`, [Hkv * D, C]);
    put(`${p}.self_attn.v_proj.weight`, [Hkv * D, C]);
    put(`${p}.self_attn.o_proj.weight`, [C, H * D]);
    put(`${p}.mlp.gate_proj.weight`, [I, C]);
    put(`${p}.mlp.up_proj.weight`, [I, C]);
    put(`${p}.mlp.down_proj.weight`, [C, I]);
  }
  return { config: CONFIG, weights, source: 'synthetic' };
};

/** The matmul FLOPs of one LoRA (rank r, every linear) training step of CONFIG, counted by hand. */
const handCount = (B: number, T: number, N: number, r: number) => {
  const { hiddenSize: C, intermediateSize: I, numHeads: H, numKvHeads: Hkv, headDim: D, vocabSize: V, numLayers: L } = CONFIG;
  const rows = B * T;
  const linears = [[C, H * D], [C, Hkv * D], [C, Hkv * D], [H * D, C], [C, I], [C, I], [I, C]] as const; // q k v o gate up down: (in, out)
  const attention = 2 * (2 * B * H * T * T * D); // q·kᵀ and probs·v
  const lmHead = 2 * N * C * V;
  const ropeAngles = 2 * rows * 1 * (D / 2); // positions (rows, 1) · inverse frequencies (1, D/2), once for all layers
  const outsideBlocks = lmHead + ropeAngles;
  let backward = lmHead; // dx through the frozen head only
  let blockForward = 0;
  for (let l = 0; l < L; l++) {
    blockForward += attention;
    backward += 2 * attention; // each attention matmul: the gradients of both operands
    linears.forEach(([inF, outF], m) => {
      const base = 2 * rows * inF * outF;
      const down = 2 * rows * inF * r; // x·Aᵀ
      const up = 2 * rows * r * outF; // (x·Aᵀ)·Bᵀ
      blockForward += base + down + up;
      // dB, d(down) and dA always; dx (through W and through A) only where the input depends on a trainable tensor:
      // not for layer 0's q/k/v, whose input is the normed embedding.
      const inputVaries = !(l === 0 && m < 3);
      backward += up + up + down + (inputVaries ? base + down : 0);
    });
  }
  return { forward: outsideBlocks + blockForward, backward, recompute: blockForward };
};

describe('estimate: FLOPs and the liveness walk', () => {
  it('counts the matmul FLOPs of forward, backward and recomputation as a hand count of the tiny Llama does', () => {
    const model = syntheticModel();
    const { config } = parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: 'all-linear' }, 'test');
    const adapted = applyLora(buildTrainingGraph(model), config, { seed: 1 });
    for (const [B, T, recompute] of [[2, 8, false], [3, 5, true]] as const) {
      const e = estimateTraining({ model, graph: adapted.graph, trainable: adapted.params, microBatchSize: B, seqLength: T, recompute, gradientAccumulation: 2 });
      const hand = handCount(B, T, B * (T - 1), 2);
      expect(e.flops.forward).toBe(2 * hand.forward);
      expect(e.flops.backward).toBe(2 * hand.backward);
      expect(e.flops.recompute).toBe(recompute ? 2 * hand.recompute : 0);
      expect(e.flops.total).toBe(e.flops.forward + e.flops.backward + e.flops.recompute);
      expect(e.stepSeconds).toBeUndefined(); // no throughput given
    }
  });

  it('evaluates symbolic dims, and names a dim it has no value for', () => {
    expect(evalDim('2*batch*seq', { batch: 3, seq: 5 })).toBe(30);
    expect(evalDim('(seq-1)', { seq: 5 })).toBe(4);
    expect(evalDim('2*(seq-1)', { seq: 5 })).toBe(8);
    expect(evalDim('(past+seq)', { past: 7, seq: 5 })).toBe(12);
    expect(() => evalDim('virtual*batch', { batch: 1 })).toThrow(/'virtual'/);
    expect(() => estimateTraining({ model: syntheticModel(), graph: buildTrainingGraph(syntheticModel()), trainable: [{ name: 'nope', data: [] }], microBatchSize: 1, seqLength: 4 })).toThrow(EstimateError);
  });

  it("runs the last leaf's chain first, as ORT does, and counts what stays alive until its last reader", () => {
    // y1 = a·b (2×2), y2 = (y1 + a)·y1 as two leaves: the walk starts from the later leaf (y2) and keeps y1 alive.
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', ['n', 'n']);
    const b = g.input('b', 'float32', ['n', 'n']);
    const y1 = matmul(a, b, 'first');
    g.output(mul(y1, a, 'scaled'), 'out1');
    g.output(matmul(add(y1, a, 'shifted'), y1, 'second'), 'out2');
    const graph = g.build();
    expect(ortExecutionOrder(graph).map((n) => n.name)).toEqual(['first', 'shifted', 'second', 'scaled', 'out1', 'out2']);
    const cost = graphCost(graph, { dims: { n: 10 }, forwardNodes: graph.nodes.length, vocabSize: 1000 });
    expect(cost.matmulFlops.forward).toBe(2 * 2 * 10 * 10 * 10);
    expect(cost.otherBytes).toBe(2 * 3 * 400); // shifted and scaled: two reads and a write of 10×10 floats
    // While 'second' runs: y1, shifted and out2 (graph outputs stay alive until the run ends).
    expect(cost.peakBytes).toBe(3 * 400);
  });
});

const tiny = tinyModelDir('llama3');
const work = mkdtempSync(join(tmpdir(), 'peft-estimate-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A run config file for the tiny model. */
const writeConfig = (label: string, training: Record<string, unknown>): { raw: Record<string, unknown>; file: string } => {
  const dataset = join(work, 'moby.jsonl');
  writeFullRowDataset(dataset);
  const raw = {
    name: label,
    model: tiny!,
    dataset: { path: dataset, evalFraction: 0 },
    method: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' },
    training: { maxSteps: 3, lr: 1e-3, checkpointEvery: 1000, ...training },
    output: join(work, label),
  };
  const file = join(work, `${label}.json`);
  writeFileSync(file, JSON.stringify(raw));
  return { raw, file };
};

/** The config and the peak RSS of training it in a fresh process. */
const measure = (label: string, training: Record<string, unknown>): { config: ReturnType<typeof parseRunConfig>; measured: MeasuredRun } => {
  const { raw, file } = writeConfig(label, training);
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'tests/helpers/measure-run.ts', file, join(work, `${label}.db`)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (child.status !== 0) throw new Error(`measure-run ${label} exited ${child.status}: ${child.stderr}`);
  const measured = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as MeasuredRun;
  expect(measured.stepSeconds).toHaveLength(3);
  return { config: parseRunConfig(raw, file), measured };
};

describe.skipIf(!tiny && !oracleRequired())('estimate: peak memory against real training runs (tiny llama3, child processes)', () => {
  const cases = [
    { label: 'b2-t64', training: { microBatchSize: 2, maxLength: 64, session: { threads: 1 } } },
    { label: 'b4-t128', training: { microBatchSize: 4, maxLength: 128, session: { threads: 2 } } },
    { label: 'b4-t128-recompute-lowmem', training: { microBatchSize: 4, maxLength: 128, recompute: true, session: { threads: 2, lowMemory: true } } },
  ];
  for (const c of cases) {
    it(`${c.label}: estimated peak RSS within ±30% of the measured one`, { timeout: 300_000 }, async () => {
      const { config, measured } = measure(c.label, c.training);
      const estimate = await estimateRun(config, { probe: false });
      const ratio = estimate.peakRssBytes / measured.peakRssBytes;
      console.log(`${c.label}: estimated ${(estimate.peakRssBytes / 2 ** 20).toFixed(0)} MiB, measured ${(measured.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ratio ${ratio.toFixed(3)}`);
      expect(ratio).toBeGreaterThan(0.7);
      expect(ratio).toBeLessThan(1.3);
      // The logits at the loss positions are this model's largest tensors (vocab 128k, hidden 32).
      expect(estimate.memory.logits).toBeGreaterThan(estimate.memory.activations);
    });
  }
});

describe.skipIf(!tiny && !oracleRequired())('peft-studio estimate', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', 'estimate', ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });

  it('prints the service estimate as JSON (memory as estimateRun has it, a step time from the probe)', { timeout: 120_000 }, async () => {
    const { raw, file } = writeConfig('cli', { microBatchSize: 2, maxLength: 64, gradientAccumulation: 2, session: { threads: 1 } });
    const out = cli('--config', file, '--json');
    expect(out.status, out.stderr).toBe(0);
    const printed = JSON.parse(out.stdout) as Awaited<ReturnType<typeof estimateRun>>;
    const direct = await estimateRun(parseRunConfig(raw, file), { probe: false });
    expect(printed.peakRssBytes).toBe(direct.peakRssBytes);
    expect(printed.memory).toEqual(direct.memory);
    expect(printed.flops.total).toBe(direct.flops.total);
    expect(printed.tokensPerStep).toBe(2 * 64 * 2);
    expect(Number.isFinite(printed.stepSeconds) && printed.stepSeconds! > 0).toBe(true);
    expect(printed.totalSeconds).toBeCloseTo(3 * printed.stepSeconds!, 6);
    expect(printed.assumptions.join('\n')).toMatch(/2 micro-batch\(es\) per step, each 2 row\(s\) × 64 tokens/);
  });

  it('exits 2 on a missing --config and on an unusable config, naming the field', () => {
    const missing = cli();
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--config FILE is required/);
    const { file } = writeConfig('bad', { microBatchSize: 0 });
    const bad = cli('--config', file);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/training\.microBatchSize must be a positive integer/);
  });
});
