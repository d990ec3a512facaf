// bench:engine — GFLOP/s of one forward+backward LoRA linear step through our emitted graph vs a bare ORT MatMul
// of the same shapes, measured in the same process. Goal: ≥ 0.8× the bare MatMul.
import { availableParallelism } from 'node:os';
import { GraphBuilder, add, matmul, mul, reduceSum } from '../main/engine/ir/index.ts';
import { linear } from '../main/engine/nn/linear.ts';
import { Session, type HostTensor } from '../main/engine/onnx/runtime.ts';
import { TrainStep } from '../main/engine/train-step.ts';
import { median } from './stats.ts';

const [TOKENS, IN, OUT, RANK] = [512, 2048, 2048, 16];
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const WARMUP = 3;
const ITERS = Number(process.env.BENCH_ITERS ?? 10);

const random = (n: number, scale: number): Float32Array => {
  let s = 12345;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * scale;
  });
};


const time = async (fn: () => Promise<unknown>): Promise<number> => {
  for (let i = 0; i < WARMUP; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return median(ms);
};

const weight = random(OUT * IN, 0.02);
const x: HostTensor = { dtype: 'float32', shape: [TOKENS, IN], data: random(TOKENS * IN, 1) };
const upstream: HostTensor = { dtype: 'float32', shape: [TOKENS, OUT], data: random(TOKENS * OUT, 1e-3) };

// Bare products of the same shapes: MatMul x (T, in) · W (in, out), and Gemm x · Wᵀ with W (out, in) as HF
// stores it. The faster of the two is the reference.
const bareGraph = (kind: 'MatMul' | 'Gemm') => {
  const b = new GraphBuilder();
  const xb = b.input('x', 'float32', [TOKENS, IN]);
  const wb = b.initializer('w', 'float32', kind === 'MatMul' ? [IN, OUT] : [OUT, IN], { kind: 'inline', data: weight });
  b.output(kind === 'MatMul' ? matmul(xb, wb) : linear(xb, wb), 'y');
  return b.build();
};
const bareMsOf = async (kind: 'MatMul' | 'Gemm') => {
  const session = await Session.create(bareGraph(kind), { threads });
  const ms = await time(() => session.run({ x }));
  await session.release();
  return ms;
};
const bareMatMulMs = await bareMsOf('MatMul');
const bareGemmMs = await bareMsOf('Gemm');
const bareMs = Math.min(bareMatMulMs, bareGemmMs);
const bareFlops = 2 * TOKENS * IN * OUT;

// LoRA linear: y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ; the loss ⟨y, upstream⟩ stands for the rest of the network, whose
// gradient reaches y; the step computes d x (for earlier layers), d A and d B, and AdamW updates A and B.
const g = new GraphBuilder();
const xIn = g.input('x', 'float32', [TOKENS, IN]);
const up = g.input('upstream', 'float32', [TOKENS, OUT]);
const w = g.initializer('base.weight', 'float32', [OUT, IN], { kind: 'inline', data: weight });
const loraA = g.input('lora_A.weight', 'float32', [RANK, IN]);
const loraB = g.input('lora_B.weight', 'float32', [OUT, RANK]);
// A trainable gain in front of the layer stands for earlier layers: its gradient needs d x, as in a real network.
const xs = mul(xIn, g.input('gain', 'float32', [1])); // (T, in)
const y = add(linear(xs, w), mul(linear(linear(xs, loraA), loraB), 2)); // (T, out)
g.output(reduceSum(mul(y, up), [], { keepdims: false }), 'loss');
const params = [
  { name: 'lora_A.weight', data: random(RANK * IN, 0.02) },
  { name: 'lora_B.weight', data: random(OUT * RANK, 0.02) },
  { name: 'gain', data: new Float32Array([1]) },
];
const trainer = await TrainStep.create({
  graph: g.build(),
  params,
  optimizer: { kind: 'adamw', weightDecay: 0 },
  lr: 1e-4,
  session: { threads },
});
const loraMs = await time(() => trainer.step({ x, upstream }));
const loraFlops =
  2 * 2 * TOKENS * IN * OUT + // x·Wᵀ and dx += dy·W
  6 * 2 * TOKENS * RANK * (IN + OUT) / 2; // x·Aᵀ, (xA)·Bᵀ, dB, d(xA), dA, dx += d(xA)·A

const gflops = (flops: number, ms: number) => flops / ms / 1e6;
const ours = gflops(loraFlops, loraMs);
const ref = gflops(bareFlops, bareMs);
console.log(`bench:engine  (${threads} threads, median of ${ITERS}, provider ${trainer.provider.provider})`);
console.log(`  bare ORT MatMul ${TOKENS}×${IN}·${IN}×${OUT}:       ${bareMatMulMs.toFixed(1)} ms  ${gflops(bareFlops, bareMatMulMs).toFixed(1)} GFLOP/s`);
console.log(`  bare ORT Gemm(transB) same shapes:          ${bareGemmMs.toFixed(1)} ms  ${gflops(bareFlops, bareGemmMs).toFixed(1)} GFLOP/s`);
console.log(`  LoRA linear fwd+bwd+AdamW step (r=${RANK}):  ${loraMs.toFixed(1)} ms  ${ours.toFixed(1)} GFLOP/s  (${(loraFlops / 1e9).toFixed(2)} GFLOP)`);
console.log(`  ratio ours / best bare product: ${(ours / ref).toFixed(2)}× (goal ≥ 0.80×)`);
await trainer.release();
