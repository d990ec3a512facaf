// Full fine-tuning, the baseline the PEFT methods are measured against: every tensor of the checkpoint trains
// (float32 masters, AdamW state for each). The result is a whole model, saved as a Hugging Face folder
// (train/full-model.ts) rather than an adapter; peft_type 'FULL' is our own name.
import type { Graph } from '../engine/ir/index.ts';
import { checkpointTensors, hfNameOfKey, modelLabel, trainableTensors, withTrainableTensors } from './base-tensors.ts';
import { fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ParsedConfig, PeftMethod } from './method.ts';

export const FULL_SAVE_DTYPES = ['auto', 'float32', 'bfloat16', 'float16'] as const;
export type FullSaveDtype = (typeof FULL_SAVE_DTYPES)[number];

export interface FullConfig {
  readonly peft_type: 'FULL';
  /** dtype of the saved model's tensors; 'auto' = the base checkpoint's (float32 for a GGUF base). */
  readonly save_dtype: FullSaveDtype;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

const DEFAULTS: FullConfig = { peft_type: 'FULL', save_dtype: 'auto', task_type: 'CAUSAL_LM' };

export const parseFullConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<FullConfig> => {
  const c = { ...DEFAULTS, ...raw } as FullConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'FULL') fail('peft_type', "is not 'FULL'");
  if (!FULL_SAVE_DTYPES.includes(c.save_dtype)) fail('save_dtype', `must be one of ${FULL_SAVE_DTYPES.join(', ')}`);
  return { config: c, warnings: unknownFieldWarnings(raw, Object.keys(DEFAULTS), where) };
};

export const applyFull = (graph: Graph): AdaptedGraph => {
  const tensors = checkpointTensors(graph);
  const quantized = tensors.filter((t) => t.quantized);
  if (quantized.length > 0) {
    throw new PeftError(
      `FULL: ${modelLabel(graph)} keeps ${quantized.length} tensors quantized in 4-bit blocks ('${quantized[0]!.name}', ...), which cannot be trained; ` +
        'open it with float weights for full fine-tuning, or train LoRA (QLoRA) on the quantized base',
    );
  }
  return withTrainableTensors(graph, trainableTensors(graph, tensors, 'FULL'));
};

export const fullFinetuneMethod: PeftMethod<FullConfig> = {
  peftType: 'FULL',
  label: 'Full fine-tuning (every weight)',
  parseConfig: parseFullConfig,
  apply: (graph) => applyFull(graph),
  savedKey: (key) => hfNameOfKey(key),
};
