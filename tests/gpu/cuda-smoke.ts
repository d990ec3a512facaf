// CUDA smoke test for machines with an NVIDIA GPU (run by the release workflow; never part of `npm test`):
// onnxruntime-node must be installed with ONNXRUNTIME_NODE_INSTALL=cuda12 on a host with CUDA 12 + cuDNN 9.
// It trains the one-block transformer on the CUDA EP, in float32 and in mixed precision, and checks the first
// step's gradients against the CPU's.
import { TrainStep } from '../../main/engine/train-step.ts';
import { transformerTask } from '../engine/train/tiny-models.ts';

const fail = (msg: string): never => {
  console.error(`cuda-smoke: FAILED: ${msg}`);
  process.exit(1);
};

for (const mixedPrecision of [false, true]) {
  const task = transformerTask();
  const make = (provider: 'cpu' | 'cuda') =>
    TrainStep.create({
      graph: task.graph,
      params: task.params.map((p) => ({ name: p.name, data: Float32Array.from(p.data) })),
      optimizer: { kind: 'adamw', weightDecay: 0 },
      lr: 1e-2,
      mixedPrecision: mixedPrecision ? { initScale: 256 } : false,
      session: { provider },
    });
  const gpu = await make('cuda').catch((e: Error) => fail(`no CUDA session: ${e.message}`));
  const cpu = await make('cpu');
  console.log(`cuda-smoke: ${gpu.provider.reason}; mixed precision ${mixedPrecision}`);
  if (gpu.provider.provider !== 'cuda') fail(`session fell back to ${gpu.provider.provider}`);
  const a = await cpu.computeGradients(task.batch);
  const b = await gpu.computeGradients(task.batch);
  for (const [name, g] of a.grads) {
    const h = b.grads.get(name)!;
    const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const err = g.reduce((m, v, i) => Math.max(m, Math.abs(v - h[i]!)), 0);
    if (!(err <= (mixedPrecision ? 3e-2 : 1e-3) * scale + 1e-5)) fail(`${name}: cuda vs cpu gradient error ${err} (scale ${scale})`);
  }
  const losses: number[] = [];
  for (let i = 0; i < 100; i++) losses.push((await gpu.step(task.batch)).loss);
  console.log(`cuda-smoke: loss ${losses[0]!.toFixed(4)} → ${losses.at(-1)!.toFixed(4)}`);
  if (!(losses.at(-1)! < 0.2 * losses[0]!)) fail('loss did not fall on the GPU');
  await Promise.all([gpu.release(), cpu.release()]);
}
console.log('cuda-smoke: passed');
