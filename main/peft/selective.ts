// Selective fine-tuning: a named subset of the checkpoint's own tensors trains — the norms, the last layers, the
// LM head — chosen by regexes or globs over HF tensor names (`parameters`, less `exclude`). peft_type 'SELECTIVE'
// is our own name (PEFT has no such method); the adapter holds the trained tensors under their HF names.
import type { Graph } from '../engine/ir/index.ts';
import { checkpointTensors, hfNameOfKey, trainableTensors, withTrainableTensors } from './base-tensors.ts';
import { fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import type { AdaptedGraph, ParsedConfig, PeftMethod } from './method.ts';
import { checkPatternList, selectTensors } from './tensor-patterns.ts';

export interface SelectiveConfig {
  readonly peft_type: 'SELECTIVE';
  /** Tensors to train: regexes (searched) or globs (full match) over HF names, e.g. ['norm', 'layers\\.11\\.', 'lm_head']. */
  readonly parameters: readonly string[];
  /** Tensors to leave frozen although `parameters` names them. */
  readonly exclude: readonly string[] | null;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

const DEFAULTS: Omit<SelectiveConfig, 'parameters'> = { peft_type: 'SELECTIVE', exclude: null, task_type: 'CAUSAL_LM' };

export const parseSelectiveConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<SelectiveConfig> => {
  const c = { ...DEFAULTS, ...raw } as SelectiveConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'SELECTIVE') fail('peft_type', "is not 'SELECTIVE'");
  checkPatternList(c.parameters, 'parameters', where, { required: true });
  checkPatternList(c.exclude, 'exclude', where, { required: false });
  return { config: c, warnings: unknownFieldWarnings(raw, [...Object.keys(DEFAULTS), 'parameters'], where) };
};

/** Tied embeddings: naming either `lm_head.weight` or `model.embed_tokens.weight` trains the one shared tensor. */
export const applySelective = (graph: Graph, config: SelectiveConfig): AdaptedGraph => {
  const chosen = selectTensors(checkpointTensors(graph), {
    include: config.parameters,
    exclude: config.exclude,
    includeField: 'parameters',
    excludeField: 'exclude',
    method: 'SELECTIVE',
  });
  return withTrainableTensors(graph, trainableTensors(graph, chosen, 'SELECTIVE'));
};

export const selectiveMethod: PeftMethod<SelectiveConfig> = {
  peftType: 'SELECTIVE',
  label: 'Selective fine-tuning (named tensors)',
  parseConfig: parseSelectiveConfig,
  apply: applySelective,
  savedKey: (key) => hfNameOfKey(key),
};
