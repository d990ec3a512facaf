import { estimateRun, type RunEstimate } from '../service/estimate.ts';
import { readRunConfig } from '../service/run-config.ts';
import { EstimateError } from '../train/estimate.ts';

export interface EstimateArgs {
  readonly config?: string | undefined;
  readonly json?: boolean | undefined;
}

const MiB = 2 ** 20;
const size = (bytes: number): string => (bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(0)} MiB`);
const seconds = (s: number): string => (s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(s < 10 ? 2 : 1)} s`);

const MEMORY_LINES: readonly [keyof RunEstimate['memory'], string][] = [
  ['runtime', 'runtime (node, onnxruntime)'],
  ['tokenizer', 'tokenizer'],
  ['session', 'graph and ORT session'],
  ['frozenWeights', 'frozen weights'],
  ['trainableState', 'trainable tensors, grads, optimizer'],
  ['activations', 'activations'],
  ['logits', 'logits at loss positions'],
  ['arenaOverhead', 'ORT arena overhead'],
];

const report = (e: RunEstimate): string[] => {
  const lines = [
    `${e.name}: ${e.model}, ${e.method}, ${(e.trainableParameters / 1e6).toFixed(2)}M trainable of ${(e.frozenParameters / 1e6).toFixed(1)}M frozen parameters`,
    `peak memory (RSS)  ${size(e.peakRssBytes)}`,
    ...MEMORY_LINES.map(([k, label]) => `  ${label.padEnd(38)}${size(e.memory[k]).padStart(10)}`),
    `forward+backward   ${(e.flops.total / 1e9).toFixed(1)} GFLOP per step (${e.tokensPerStep} tokens)`,
  ];
  if (e.stepSeconds !== undefined && e.time) {
    lines.push(
      `step time          ${seconds(e.stepSeconds)} on ${e.threads} thread(s): matmul ${seconds(e.time.matmul)}, other ops ${seconds(e.time.memoryBound)}, ` +
        `per-node ${seconds(e.time.perNode)}, optimizer ${seconds(e.time.optimizer)}`,
    );
    if (e.totalSeconds !== undefined) lines.push(`run (${e.steps} steps)    ${seconds(e.totalSeconds)}, evaluation and checkpoints not counted`);
  }
  lines.push('assumptions:', ...e.assumptions.map((a) => `  - ${a}`));
  return lines;
};

/** `estimate --config FILE`: the run's peak memory and step time before it starts, with the breakdown and assumptions. */
export const runEstimateCommand = async (a: EstimateArgs): Promise<number> => {
  if (!a.config) {
    console.error('peft-studio estimate: --config FILE is required (the run config that train takes)');
    return 2;
  }
  let estimate: RunEstimate;
  try {
    estimate = await estimateRun(readRunConfig(a.config));
  } catch (err) {
    if (!(err instanceof EstimateError)) throw err;
    console.error(`peft-studio estimate: ${a.config}: ${err.message}`);
    return 2;
  }
  if (a.json) console.log(JSON.stringify(estimate));
  else console.log(report(estimate).join('\n'));
  return 0;
};
