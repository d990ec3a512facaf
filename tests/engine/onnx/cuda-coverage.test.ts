// GPU readiness without a GPU: every graph the engine emits in its tests — each op's forward+backward, the
// training graphs, with recomputation and in mixed precision — uses only ops, opsets and dtypes that
// onnxruntime's CUDA execution provider implements (its documented kernel table).
import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import type { Graph } from '../../../main/engine/ir/index.ts';
import { checkCudaSupport, cudaOpsSource } from '../../../main/engine/onnx/cuda-support.ts';
import { emitOnnx } from '../../../main/engine/onnx/emit.ts';
import { toMixedPrecision } from '../../../main/engine/precision/mixed-precision.ts';
import { coreCases } from '../ops/cases-core.ts';
import { indexingCases } from '../ops/cases-indexing.ts';
import { buildLoss } from '../ops/gradcheck.ts';
import { mlpTask, transformerTask } from '../train/tiny-models.ts';

const issuesOf = (graph: Graph): string[] =>
  checkCudaSupport(emitOnnx(graph).proto).map((i) => JSON.stringify(i));

const training = (graph: Graph, params: readonly { name: string }[], recompute = false): Graph =>
  gradients(graph, { loss: 'loss', wrt: params.map((p) => p.name), recompute }).graph;

describe(`CUDA EP coverage (${cudaOpsSource})`, () => {
  for (const c of [...coreCases, ...indexingCases]) {
    it(`op case: ${c.name} (float32 forward + backward)`, () => {
      expect(issuesOf(buildLoss(c, 'float32', true).graph)).toEqual([]);
    });
  }

  it('MLP and transformer training graphs, with and without recomputation', () => {
    for (const task of [mlpTask(), transformerTask()]) {
      expect(issuesOf(training(task.graph, task.params))).toEqual([]);
      expect(issuesOf(training(task.graph, task.params, true))).toEqual([]);
    }
  });

  it('the mixed-precision (float16) transformer training graph', () => {
    const task = transformerTask();
    const mixed = toMixedPrecision(task.graph);
    expect(mixed.nodes.some((n) => n.op === 'MatMul' || n.op === 'Gemm')).toBe(true);
    expect(issuesOf(training(mixed, task.params))).toEqual([]);
  });
});
