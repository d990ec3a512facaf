import { GraphBuilder, type Graph } from '../engine/ir/index.ts';
import type { LoadedModel } from './hf-folder.ts';
import { decoder, lmHead } from './llama.ts';
import { WeightBinder } from './weights.ts';
import { causalLmLoss } from '../engine/nn/loss.ts';

/** Graph inputs of a causal LM forward. */
export const INPUT_IDS = 'input_ids';
export const POSITION_IDS = 'position_ids';

/** input_ids, position_ids (B, T) → logits (B, T, V), every weight frozen. */
export const buildLogitsGraph = (model: LoadedModel): Graph => {
  const g = new GraphBuilder();
  const inputIds = g.input(INPUT_IDS, 'int64', ['batch', 'seq']);
  const positionIds = g.input(POSITION_IDS, 'int64', ['batch', 'seq']);
  const w = new WeightBinder(g, model.weights, model.source);
  const { hidden } = decoder(g, model.config, w, { inputIds, positionIds }); // (B, T, C)
  g.output(lmHead(model.config, w, hidden), 'logits'); // (B, T, V)
  return g.build();
};

export const LABELS = 'labels';

/** input_ids, position_ids, labels (B, T) → scalar 'loss' (transformers' shifted cross-entropy). */
export const buildLossGraph = (model: LoadedModel): Graph => {
  const g = new GraphBuilder();
  const inputIds = g.input(INPUT_IDS, 'int64', ['batch', 'seq']);
  const positionIds = g.input(POSITION_IDS, 'int64', ['batch', 'seq']);
  const labels = g.input(LABELS, 'int64', ['batch', 'seq']);
  const w = new WeightBinder(g, model.weights, model.source);
  const { hidden } = decoder(g, model.config, w, { inputIds, positionIds }); // (B, T, C)
  g.output(causalLmLoss(lmHead(model.config, w, hidden), labels), 'loss');
  return g.build();
};
