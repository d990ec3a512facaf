// BitFit (Ben Zaken et al., 2022): only the model's bias terms train. PEFT has no BitFit, so peft_type 'BITFIT' is
// our own name; the adapter holds the trained biases under their HF names (`model.layers.0.self_attn.q_proj.bias`).
// The biases are made trainable exactly as LoRA's bias='all' makes them (base-trainables.ts), then narrowed by the
// optional include / exclude patterns (tensor-patterns.ts).
import type { Graph } from '../engine/ir/index.ts';
import { baseTrainables } from './base-trainables.ts';
import { checkpointTensors, hfNameOfKey, modelLabel, withTrainableTensors } from './base-tensors.ts';
import { fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, PeftMethod } from './method.ts';
import { checkPatternList, selectTensors } from './tensor-patterns.ts';

export interface BitfitConfig {
  readonly peft_type: 'BITFIT';
  /** Biases to train (regexes or globs over HF tensor names); null = every bias. */
  readonly include: readonly string[] | null;
  /** Biases to leave frozen. */
  readonly exclude: readonly string[] | null;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

const DEFAULTS: BitfitConfig = { peft_type: 'BITFIT', include: null, exclude: null, task_type: 'CAUSAL_LM' };

export const parseBitfitConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<BitfitConfig> => {
  const c = { ...DEFAULTS, ...raw } as BitfitConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'BITFIT') fail('peft_type', "is not 'BITFIT'");
  checkPatternList(c.include, 'include', where, { required: false });
  checkPatternList(c.exclude, 'exclude', where, { required: false });
  return { config: c, warnings: unknownFieldWarnings(raw, Object.keys(DEFAULTS), where) };
};

export const applyBitfit = (graph: Graph, config: BitfitConfig, o: ApplyOptions = {}): AdaptedGraph => {
  const all = baseTrainables(graph, { bias: 'all', modulesToSave: [], adapted: new Set(), adapter: o.adapterName ?? 'default' });
  if (all.params.length === 0) {
    throw new PeftError(
      `BITFIT: ${modelLabel(graph)} has no bias tensors (its layers are bias-free, as Llama, Mistral and Qwen3 are), so BitFit has nothing to train; ` +
        "use LORA, or SELECTIVE with parameters such as ['norm'] to train its norms",
    );
  }
  const biases = checkpointTensors(graph).filter((t) => t.name.endsWith('.bias'));
  const chosen = new Set(
    selectTensors(biases, { include: config.include, exclude: config.exclude, includeField: 'include', excludeField: 'exclude', method: 'BITFIT' }).map((t) => t.name),
  );
  const keep = (key: string): boolean => chosen.has(hfNameOfKey(key));
  const substitutions = new Map(
    [...all.substitutions]
      .map(([node, byInput]) => [node, new Map([...byInput].filter(([, key]) => keep(key)))] as const)
      .filter(([, byInput]) => byInput.size > 0),
  );
  return withTrainableTensors(graph, { params: all.params.filter((p) => keep(p.name)), substitutions });
};

export const bitfitMethod: PeftMethod<BitfitConfig> = {
  peftType: 'BITFIT',
  label: 'BitFit (biases only)',
  parseConfig: parseBitfitConfig,
  apply: applyBitfit,
  savedKey: (key) => hfNameOfKey(key),
};
