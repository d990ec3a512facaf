// A training run's peak memory (RSS) and step time before it starts, from the model, the adapted training graph, the
// micro-batch and the sequence length. Memory: the runtime, the tokenizer, ORT's session, the frozen weights as ORT
// holds them, the trainable state in JS, and the activations found by walking the real gradient graph in ORT's
// execution order (estimate-graph.ts). Time: the graph's FLOPs and bytes over this machine's measured throughput
// (throughput-probe.ts). Pure: no ORT import; the constants below were measured (bench/estimate.bench.ts).
import { gradients } from '../engine/autodiff/gradients.ts';
import { GraphBuilder, type Graph } from '../engine/ir/index.ts';
import { dtypeByteSize, type DType } from '../engine/ir/types.ts';
import type { OptimizerConfig } from '../engine/optim/index.ts';
import { toMixedPrecision } from '../engine/precision/mixed-precision.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { EstimateError, graphCost, type GraphCost } from './estimate-graph.ts';
import { TRAIN } from './train-graph.ts';

export { EstimateError } from './estimate-graph.ts';

const MiB = 2 ** 20;

/** Measured on this project's machines (Linux x64, Node 20, onnxruntime-node 1.30, CPU EP). */
export const ESTIMATE_CONSTANTS = {
  /** Node, tsx, onnxruntime's library and this code, before a model is opened. */
  runtimeBytes: 100 * MiB,
  /** The JS tokenizer (vocab, merges, added tokens) per vocabulary entry: 140 MiB for 128k entries, 58 MiB for 49k. */
  tokenizerBytesPerToken: 1150,
  /** The gradient graph in JS, its ONNX bytes and ORT's session (graph, optimized copy, kernels), per IR node. */
  sessionBytes: 12 * MiB,
  sessionBytesPerNode: 14_000,
  /** ORT holds this much more than the graph's own tensors (kernel temporaries, extra outputs of fused nodes). */
  activationFactor: 1.1,
  /** Each run's peak, ORT's memory pattern block on top of the arena of the first run (enableMemPattern). */
  memoryPatternFactor: 2,
  /** Fraction of the probe's Gemm rate that a training step's matmuls reach (smaller, batched, transposed shapes). */
  matmulEfficiency: 0.9,
  /**
   * The probe's elementwise bandwidth over the bytes the other ops read and write, as fitted to measured steps: above
   * 1 because broadcast operands, in-place results and the small reductions' inputs stay in cache.
   */
  memoryEfficiency: 1.4,
} as const;

/** What throughput-probe.ts measured on this machine. */
export interface MachineThroughput {
  readonly threads: number;
  readonly matmulFlopsPerSecond: number;
  readonly memoryBytesPerSecond: number;
  readonly secondsPerNode: number;
  readonly optimizerSecondsPerParam: number;
}

export interface TrainingEstimateInput {
  readonly model: LoadedModel;
  /** The adapted training graph (buildTrainingGraph + the method's rewrite) … */
  readonly graph: Graph;
  /** … and its trainable tensors (graph inputs). */
  readonly trainable: readonly { readonly name: string; readonly data: { readonly length: number } }[];
  readonly microBatchSize: number;
  /** Tokens per (packed) row: the run's maxLength. */
  readonly seqLength: number;
  /** Positions per row whose next token is a target; default seqLength − 1 (every position, the worst case). */
  readonly targetsPerRow?: number;
  readonly gradientAccumulation?: number;
  readonly recompute?: boolean;
  readonly precision?: 'float32' | 'mixed';
  /** SessionOptions.lowMemory: no memory pattern, no weight prepacking (TrainStep's default: true). */
  readonly lowMemory?: boolean;
  readonly optimizer?: OptimizerConfig;
  /** The run's intra-op threads: the throughput must have been measured with as many. */
  readonly threads?: number;
  /** Without it, only memory and FLOPs are estimated. */
  readonly throughput?: MachineThroughput;
  /** Tokenizer vocabulary entries; default the model's vocab size. 0 when no tokenizer is loaded. */
  readonly tokenizerEntries?: number;
}

export interface MemoryBreakdown {
  readonly runtime: number;
  readonly tokenizer: number;
  readonly session: number;
  /** Frozen weights: ORT's view of them (mapped pages, prepacked copies, folded casts) plus JS copies of in-memory ones. */
  readonly frozenWeights: number;
  /** Trainable tensors, their gradients and optimizer state, in JS. */
  readonly trainableState: number;
  /** Tensors kept for the backward pass and the backward's own, at the peak. */
  readonly activations: number;
  /** Logits and their gradient at the loss positions, at the peak. */
  readonly logits: number;
  /** ORT's arena beyond the graph's tensors: kernel temporaries and, with the memory pattern, its second block. */
  readonly arenaOverhead: number;
}

export interface TrainingEstimate {
  readonly peakRssBytes: number;
  readonly memory: MemoryBreakdown;
  /** Per optimizer step (all micro-batches). */
  readonly flops: { readonly forward: number; readonly backward: number; readonly recompute: number; readonly total: number };
  readonly stepSeconds?: number;
  readonly time?: { readonly matmul: number; readonly memoryBound: number; readonly perNode: number; readonly optimizer: number };
  readonly trainableParameters: number;
  readonly frozenParameters: number;
  readonly tokensPerStep: number;
  readonly computeNodes: number;
  readonly assumptions: readonly string[];
}

const LOSS_SCALE_INPUT = 'loss_scale';

/** The graph TrainStep hands to ORT: mixed precision applied, then forward + backward. */
const gradientGraph = (input: TrainingEstimateInput): { graph: Graph; forwardNodes: number } => {
  let forward = input.graph;
  const mixed = input.precision === 'mixed';
  if (mixed) {
    const b = GraphBuilder.from(toMixedPrecision(forward));
    if (!forward.has(LOSS_SCALE_INPUT)) b.input(LOSS_SCALE_INPUT, 'float32', []);
    forward = b.build();
  }
  for (const p of input.trainable) {
    if (!forward.has(p.name)) throw new EstimateError(`trainable tensor '${p.name}' is not an input of the training graph`);
  }
  const grad = gradients(forward, {
    loss: TRAIN.loss,
    wrt: input.trainable.map((p) => p.name),
    recompute: input.recompute ?? false,
    ...(mixed ? { lossScale: LOSS_SCALE_INPUT } : {}),
  });
  return { graph: grad.graph, forwardNodes: forward.nodes.length };
};

const elementsOf = (graph: Graph, id: number): number => graph.value(id).type.shape.reduce<number>((p, d) => p * Number(d), 1);

/**
 * The frozen weights' resident bytes. ORT maps external data (a .safetensors range) and reads it in place; in-memory
 * weights (a dequantized GGUF) stay in JS and ORT maps a spilled copy. With prepacking (lowMemory off) a matmul's
 * constant B input is repacked once per matmul that reads it (the forward and the input gradient) and the original
 * is released when nothing else reads it. An embedding read only by Gather touches the rows it looks up.
 */
const frozenWeightBytes = (graph: Graph, o: { readonly lowMemory: boolean; readonly rowsLooked: number; readonly modelWeights: ReadonlySet<string> }): { bytes: number; parameters: number } => {
  const readers = new Map<number, { op: string; slot: number }[]>();
  const foldedFrom = new Map<number, number>(); // a folded Cast/Reshape's output → the initializer it came from
  // The dtype ORT keeps a weight in: a bf16/f16 checkpoint's float32 cast, a float32 weight's float16 cast (mixed
  // precision), each folded once at load.
  const keptAs = new Map<number, DType>();
  for (const n of graph.nodes) {
    n.inputs.forEach((v, slot) => {
      const source = graph.initializers.has(v) ? v : foldedFrom.get(v);
      if (source === undefined) return;
      if ((n.op === 'Cast' || n.op === 'Reshape') && slot === 0) {
        n.outputs.forEach((out) => foldedFrom.set(out, source));
        if (n.op === 'Cast') keptAs.set(source, graph.value(n.outputs[0]!).type.dtype);
        return;
      }
      readers.set(source, [...(readers.get(source) ?? []), { op: n.op, slot }]);
    });
  }
  let bytes = 0;
  let parameters = 0;
  for (const [id, init] of graph.initializers) {
    const uses = readers.get(id) ?? [];
    if (uses.length === 0) continue;
    const { dtype, shape } = graph.value(id).type;
    const elements = elementsOf(graph, id);
    if (o.modelWeights.has(graph.value(id).name)) parameters += elements;
    const resident = elements * dtypeByteSize(keptAs.get(id) ?? dtype);
    const matmulB = uses.filter((u) => u.slot === 1 && (u.op === 'Gemm' || u.op === 'MatMul' || u.op === 'MatMulNBits')).length;
    const lookups = uses.some((u) => u.op === 'Gather' && u.slot === 0);
    const other = uses.length - matmulB - uses.filter((u) => u.op === 'Gather' && u.slot === 0).length;
    const packed = o.lowMemory ? 0 : Math.min(2, matmulB);
    // Rows of a lookup table touch at least a page each.
    const looked = lookups ? Math.min(resident, o.rowsLooked * Math.max(resident / Number(shape[0] ?? 1), 4096)) : 0;
    const readWhole = other > 0 || (matmulB > 0 && packed === 0);
    bytes += packed * resident + (readWhole ? resident : looked);
    if (init.kind === 'inline') bytes += init.data.byteLength; // the JS copy, beside ORT's
  }
  return { bytes, parameters };
};

const optimizerSlots = (o: OptimizerConfig | undefined): number => {
  if (!o || o.kind === 'adamw') return 2;
  return (o.momentum ?? 0) > 0 ? 1 : 0;
};

export const estimateTraining = (input: TrainingEstimateInput): TrainingEstimate => {
  const B = input.microBatchSize;
  const T = input.seqLength;
  const accumulation = input.gradientAccumulation ?? 1;
  for (const [field, v] of [['microBatchSize', B], ['seqLength', T], ['gradientAccumulation', accumulation]] as const) {
    if (!(Number.isInteger(v) && v > 0)) throw new EstimateError(`${field} must be a positive integer, got ${v}`);
  }
  const N = B * Math.min(input.targetsPerRow ?? T - 1, T);
  const lowMemory = input.lowMemory ?? true; // TrainStep's default
  const C = ESTIMATE_CONSTANTS;
  const { graph, forwardNodes } = gradientGraph(input);
  const cost: GraphCost = graphCost(graph, { dims: { batch: B, seq: T, targets: N }, forwardNodes, vocabSize: input.model.config.vocabSize });

  const trainableParameters = input.trainable.reduce((n, p) => n + p.data.length, 0);
  // The initial values (kept by the method), the trainer's live copy, this step's gradients and the last step's
  // (until collected), and the optimizer's slots.
  const trainableState = trainableParameters * 4 * (4 + optimizerSlots(input.optimizer));
  const weights = frozenWeightBytes(graph, { lowMemory, rowsLooked: B * T, modelWeights: new Set(input.model.weights.keys()) });
  const graphTensors = cost.peakBytes;
  const arenaPeak = graphTensors * C.activationFactor;
  const memory: MemoryBreakdown = {
    runtime: C.runtimeBytes,
    tokenizer: (input.tokenizerEntries ?? input.model.config.vocabSize) * C.tokenizerBytesPerToken,
    session: C.sessionBytes + graph.nodes.length * C.sessionBytesPerNode,
    frozenWeights: weights.bytes,
    trainableState,
    activations: graphTensors - cost.peakLogitsBytes,
    logits: cost.peakLogitsBytes,
    arenaOverhead: arenaPeak * (lowMemory ? 1 : C.memoryPatternFactor) - graphTensors,
  };
  const peakRssBytes = Object.values(memory).reduce((a, b) => a + b, 0);

  const perMicro = cost.matmulFlops;
  const flops = {
    forward: perMicro.forward * accumulation,
    backward: perMicro.backward * accumulation,
    recompute: perMicro.recompute * accumulation,
    total: (perMicro.forward + perMicro.backward + perMicro.recompute) * accumulation,
  };
  const assumptions = [
    `${accumulation} micro-batch(es) per step, each ${B} row(s) × ${T} tokens with ${N} loss position(s) (${input.targetsPerRow === undefined ? 'every position: the worst case' : `${input.targetsPerRow} per row`})`,
    `${input.precision === 'mixed' ? 'float16 compute with float32 master weights' : 'float32'}, ${input.recompute ? 'blocks recomputed in the backward pass' : 'no recomputation'}`,
    lowMemory ? 'lowMemory session: no ORT memory pattern, no weight prepacking' : 'default session: ORT memory pattern (about 2× the activations) and prepacked matmul weights',
    `${optimizerSlots(input.optimizer)} optimizer state tensor(s) per trainable tensor, in JS`,
    'the CPU execution provider (a GPU keeps activations and weights in device memory instead)',
  ];
  const t = input.throughput;
  if (t && input.threads !== undefined && t.threads !== input.threads) {
    throw new EstimateError(`the throughput was measured with ${t.threads} thread(s), the run uses ${input.threads}`);
  }
  if (!t) return { peakRssBytes, memory, flops, trainableParameters, frozenParameters: weights.parameters, tokensPerStep: B * T * accumulation, computeNodes: cost.computeNodes, assumptions };
  const time = {
    matmul: flops.total / (t.matmulFlopsPerSecond * C.matmulEfficiency),
    memoryBound: (cost.otherBytes * accumulation) / (t.memoryBytesPerSecond * C.memoryEfficiency),
    perNode: cost.computeNodes * accumulation * t.secondsPerNode,
    optimizer: trainableParameters * t.optimizerSecondsPerParam,
  };
  assumptions.push(
    `${t.threads} thread(s): measured ${(t.matmulFlopsPerSecond / 1e9).toFixed(1)} GFLOP/s (Gemm), ${(t.memoryBytesPerSecond / 1e9).toFixed(1)} GB/s (elementwise), ${(t.secondsPerNode * 1e6).toFixed(1)} µs per node`,
  );
  return {
    peakRssBytes,
    memory,
    flops,
    stepSeconds: time.matmul + time.memoryBound + time.perNode + time.optimizer,
    time,
    trainableParameters,
    frozenParameters: weights.parameters,
    tokensPerStep: B * T * accumulation,
    computeNodes: cost.computeNodes,
    assumptions,
  };
};
