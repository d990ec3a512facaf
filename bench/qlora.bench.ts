// bench:qlora — LoRA r=16 on every linear layer of SmolLM2-135M, one training step (micro-batch 4 × 256 synthetic
// tokens, the product's training graph), over a 4-bit base (NF4, NF4 + double quantization, int4, the GGUF's own
// Q4_1 blocks) vs the float32 base. Each configuration runs in its own child process so that its peak RSS is its
// own. Goal: 4-bit linear weights ≤ 0.2× their float32 bytes at ≤ 1.3× the float32 step time.
// Rows marked "q4InputGrad" run MatMulNBits with the proposed VJP (bench-local op record), to show its effect.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph, getOp, q4InputGrad } from '../main/engine/ir/index.ts';
import { registerOp } from '../main/engine/ir/ops/registry.ts';
import { writeSafetensors } from '../main/engine/io/safetensors.ts';
import { quantizeBase, type QuantizeBaseOptions } from '../main/engine/quant/quantize-base.ts';
import { TrainStep } from '../main/engine/train-step.ts';
import { openGgufModel } from '../main/models/gguf/load.ts';
import { openGgufModelQ4 } from '../main/models/gguf/quantized.ts';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLora } from '../main/peft/lora.ts';
import { parseLoraConfig } from '../main/peft/lora-config.ts';
import { packMicroBatch, withNormalizer } from '../main/train/batch.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { median, lcgTokens } from './stats.ts';

const GGUF = process.env.BENCH_GGUF ?? join(process.env.PEFT_STUDIO_CACHE ?? join(process.env.HOME ?? '', '.cache', 'peft-studio'), 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const FP32_DIR = join(tmpdir(), 'peft-studio-bench-smollm2-f32');
const [ROWS, SEQ, RANK] = [4, 256, 16];
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const lowMemory = process.env.BENCH_LOW_MEMORY !== '0';

interface Config {
  readonly label: string;
  /** Where the base comes from: the float32 HF folder made from the GGUF, or the GGUF's Q4 blocks. */
  readonly source: 'f32' | 'gguf-q4';
  readonly quant?: QuantizeBaseOptions;
  readonly unfoldedQ4Vjp?: boolean;
}
const CONFIGS: readonly Config[] = [
  { label: 'fp32 base', source: 'f32' },
  { label: 'nf4 (MatMulBnb4)', source: 'f32', quant: { scheme: 'nf4' } },
  { label: 'nf4 + double quant', source: 'f32', quant: { scheme: 'nf4', doubleQuant: true } },
  { label: 'int4 (MatMulNBits)', source: 'f32', quant: { scheme: 'int4' } },
  { label: 'int4, q4InputGrad', source: 'f32', quant: { scheme: 'int4' }, unfoldedQ4Vjp: true },
  { label: 'GGUF Q4_1 blocks', source: 'gguf-q4' },
  { label: 'GGUF Q4_1, q4InputGrad', source: 'gguf-q4', unfoldedQ4Vjp: true },
];

interface Result {
  readonly label: string;
  readonly linearBytes: number;
  readonly linearF32Bytes: number;
  readonly embeddingBytes: number;
  readonly stepMs: number;
  /** RSS once the session exists, before the first step: weights and graph, no activations yet. */
  readonly readyRssBytes: number;
  readonly peakRssBytes: number;
  readonly losses: readonly number[];
  readonly provider: string;
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** Synthetic rows: token ids from a fixed LCG, every position a target. */
const batch = (vocab: number) => {
  const next = lcgTokens(vocab);
  const rows = Array.from({ length: ROWS }, () => {
    const ids = Array.from({ length: SEQ }, next);
    return [{ inputIds: ids, labels: ids }];
  });
  const micro = packMicroBatch(rows);
  return withNormalizer(micro, micro.targets);
};

const UNFOLDED = 'MatMulNBits.q4InputGrad';
/** MatMulNBits with the proposed VJP: the same ONNX node, dx through q4InputGrad. */
const registerUnfoldedQ4 = (): void => {
  const base = getOp('MatMulNBits');
  registerOp({
    type: UNFOLDED,
    domain: 'com.microsoft',
    infer: base.infer,
    emit: base.emit!,
    vjp: ({ x: [, packed, scales, zp], gy: [gy], needs, attrs }) => [
      needs[0] ? q4InputGrad(gy!, packed!, scales!, zp, Number(attrs.N), Number(attrs.K), Number(attrs.block_size)) : undefined,
    ],
  });
};

const child = async (c: Config): Promise<Result> => {
  const model = c.source === 'gguf-q4' ? openGgufModelQ4(GGUF) : openHfFolder(FP32_DIR);
  const { config } = parseLoraConfig({ peft_type: 'LORA', r: RANK, lora_alpha: 2 * RANK, target_modules: 'all-linear' }, 'bench');
  const adapted = applyLora(buildTrainingGraph(model), config);
  let graph = c.quant ? quantizeBase(adapted.graph, c.quant).graph : adapted.graph;
  if (c.unfoldedQ4Vjp) {
    registerUnfoldedQ4();
    graph = new Graph(graph.values, graph.nodes.map((n) => (n.op === 'MatMulNBits' ? { ...n, op: UNFOLDED } : n)), graph.inputs, graph.outputs, graph.initializers);
  }
  const bytesOf = (id: number) => {
    const v = graph.value(id);
    return v.type.shape.reduce<number>((a, d) => a * Number(d), 1) * (v.type.dtype === 'uint8' ? 1 : 4);
  };
  const modules = [...adapted.modules.keys()];
  let linearBytes = 0;
  let embeddingBytes = 0;
  for (const id of graph.initializers.keys()) {
    const name = graph.value(id).name;
    if (name === 'model.embed_tokens.weight') embeddingBytes += bytesOf(id);
    else if (modules.some((m) => name.startsWith(`${m}.weight`))) linearBytes += bytesOf(id);
  }
  const { hiddenSize: C, intermediateSize: I, numHeads: H, numKvHeads: Hkv, headDim: D, numLayers: L, vocabSize } = model.config;
  const linearF32Bytes = 4 * L * (2 * C * H * D + 2 * C * Hkv * D + 3 * C * I);
  const params = adapted.params.map((p) => ({ name: p.name, data: Float32Array.from(p.data) }));
  const trainer = await TrainStep.create({ graph, params, optimizer: { kind: 'adamw' }, lr: 1e-4, session: { threads, lowMemory } });
  const readyRssBytes = process.memoryUsage().rss;
  const feeds = batch(vocabSize);
  const losses: number[] = [];
  const ms: number[] = [];
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t = performance.now();
    losses.push((await trainer.step(feeds)).loss);
    if (i >= WARMUP) ms.push(performance.now() - t);
  }
  const provider = trainer.provider.provider;
  await trainer.release();
  return { label: c.label, linearBytes, linearF32Bytes, embeddingBytes, stepMs: median(ms), readyRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, losses, provider };
};

/** The float32 base as an HF folder (zero-copy external data), dequantized once from the GGUF. */
const ensureF32Folder = (): void => {
  if (existsSync(join(FP32_DIR, 'model.safetensors'))) return;
  const model = openGgufModel(GGUF);
  mkdirSync(FP32_DIR, { recursive: true });
  writeFileSync(join(FP32_DIR, 'config.json'), JSON.stringify(model.hfConfig));
  const tensors = Object.fromEntries(
    [...model.weights].map(([name, w]) => {
      if (w.data.kind !== 'inline' || !(w.data.data instanceof Float32Array)) throw new Error(`${name}: expected an inline float32 tensor`);
      return [name, { shape: w.shape, data: w.data.data }];
    }),
  );
  writeSafetensors(join(FP32_DIR, 'model.safetensors'), tensors);
};

const parent = (): void => {
  if (!existsSync(GGUF)) {
    console.error(`bench:qlora needs ${GGUF} (tests/oracle/fetch-smollm2.sh, or set BENCH_GGUF)`);
    process.exit(1);
  }
  ensureF32Folder();
  console.log(`bench:qlora — SmolLM2-135M, LoRA r=${RANK} on all linears, micro-batch ${ROWS}×${SEQ}, ${threads} threads, lowMemory ${lowMemory}, median of ${STEPS} steps after ${WARMUP}`);
  const results: Result[] = [];
  for (const [i, c] of CONFIGS.entries()) {
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', String(i)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    const line = run.stdout.trim().split('\n').pop() ?? '';
    if (run.status !== 0 || !line.startsWith('{')) {
      console.log(`${c.label}: failed (exit ${run.status})`);
      continue;
    }
    results.push(JSON.parse(line) as Result);
    console.error(`  done: ${c.label}`);
  }
  const f32 = results.find((r) => r.label === CONFIGS[0]!.label);
  const rows = results.map((r) => [
    r.label,
    mb(r.linearBytes),
    (r.linearBytes / r.linearF32Bytes).toFixed(3),
    mb(r.embeddingBytes),
    (r.stepMs / 1000).toFixed(2),
    f32 ? (r.stepMs / f32.stepMs).toFixed(2) : '—',
    mb(r.readyRssBytes),
    mb(r.peakRssBytes),
    `${r.losses[0]!.toFixed(3)}→${r.losses.at(-1)!.toFixed(3)}`,
  ]);
  const head = ['base', 'linear MB', '× f32', 'embed MB', 'step s', '× f32', 'RSS ready MB', 'peak RSS MB', 'loss'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
  console.log(`provider: ${results[0]?.provider ?? '?'}; float32 linear weights: ${mb(results[0]?.linearF32Bytes ?? 0)} MB; goal ≤ 0.2× bytes at ≤ 1.3× step time`);
};

const at = process.argv.indexOf('--child');
if (at >= 0) console.log(JSON.stringify(await child(CONFIGS[Number(process.argv[at + 1])]!)));
else parent();
