// The training forward for a causal LM: packed rows (block-diagonal causal attention, positions restarting per
// example) and the LM head + loss computed only at the positions that carry a label. Pure graph; the method
// rewrite (LoRA, …) is applied to it afterwards by name.
import { GraphBuilder, div, gather, gatherElements, logSoftmax, neg, reduceSum, reshape, scatterElementsAdd, squeeze, unsqueeze, zeros, type Dim, type Graph } from '../engine/ir/index.ts';
import { blockDiagonalCausalMask } from '../engine/nn/masks.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { decoder, lmHead } from '../models/llama.ts';
import { WeightBinder } from '../models/weights.ts';
import { virtualTokenInput, type VirtualTokenSpec } from '../peft/virtual-tokens.ts';

/** Graph inputs of a training step. */
export const TRAIN = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  /** (B, T) int64: which packed example each position belongs to (attention stays inside it); padding: −1. */
  segmentIds: 'segment_ids',
  /** (N,) int64: flat indices b·T + t of the positions whose next token is a training target. */
  lossPositions: 'loss_positions',
  /** (N,) int64: the target token at each of those positions. */
  lossTargets: 'loss_targets',
  /** () float32: the number of target tokens in the whole (accumulated) batch, so gradients add up to its mean. */
  lossNormalizer: 'loss_normalizer',
  loss: 'loss',
  /** Fused sweeps: (N,) int64, the trial each target belongs to. */
  lossTrials: 'loss_trials',
  /** Fused sweeps: (K,) float32, each trial's share of the loss (they add up to `loss`). */
  trialLosses: 'trial_losses',
} as const;

export interface TrainingGraphOptions {
  /** The batch dim of the inputs; a fused sweep fixes it to K × micro-batch rows so each trial's rows split off. */
  readonly batch?: Dim;
  /** Fused sweeps: K trials, each with its own loss (`trial_losses`, from `loss_trials`). */
  readonly trials?: number;
  /** Prompt learning: the placeholder input the method's rewrite replaces (its virtualTokens(config)). */
  readonly virtualTokens?: VirtualTokenSpec;
}

/** Σ −log p(target) over the gathered positions / loss_normalizer. */
export const buildTrainingGraph = (model: LoadedModel, o: TrainingGraphOptions = {}): Graph => {
  const { config } = model;
  const g = new GraphBuilder();
  const batch = o.batch ?? 'batch';
  const inputIds = g.input(TRAIN.inputIds, 'int64', [batch, 'seq']);
  const positionIds = g.input(TRAIN.positionIds, 'int64', [batch, 'seq']);
  const segmentIds = g.input(TRAIN.segmentIds, 'int64', [batch, 'seq']);
  const positions = g.input(TRAIN.lossPositions, 'int64', ['targets']);
  const targets = g.input(TRAIN.lossTargets, 'int64', ['targets']);
  const normalizer = g.input(TRAIN.lossNormalizer, 'float32', []);
  const w = new WeightBinder(g, model.weights, model.source);
  const mask = blockDiagonalCausalMask(segmentIds); // (B, 1, T, T)
  const virtualTokens = o.virtualTokens && virtualTokenInput(g, config, o.virtualTokens);
  const { hidden } = decoder(g, config, w, { inputIds, positionIds, mask, ...(virtualTokens ? { virtualTokens } : {}) }); // (B, T, C)
  const rows = reshape(hidden, [-1, config.hiddenSize]); // (B·T, C)
  const picked = gather(rows, positions, 0, 'loss_rows'); // (N, C)
  const logp = logSoftmax(lmHead(config, w, picked), -1); // (N, V)
  const nll = neg(squeeze(gatherElements(logp, unsqueeze(targets, [-1]), -1), [-1])); // (N,)
  g.output(div(reduceSum(nll, [], { keepdims: false }), normalizer), TRAIN.loss);
  if (o.trials !== undefined) {
    const trialOf = g.input(TRAIN.lossTrials, 'int64', ['targets']);
    const perTrial = scatterElementsAdd(zeros({ g }, 'float32', [o.trials]), trialOf, nll, 0, 'trial_nll'); // (K,)
    g.output(div(perTrial, normalizer), TRAIN.trialLosses);
  }
  return g.build();
};
