import { type FieldFail, checkRankAndAlpha, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { ParsedConfig } from './method.ts';
import type { TargetConfig } from './targets.ts';

export type LoraInit = boolean | 'gaussian' | 'pissa' | `pissa_niter_${number}` | 'olora';

/** LoRA's adapter_config.json, with HF PEFT's field names. */
export interface LoraConfig extends TargetConfig {
  readonly peft_type: 'LORA';
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  readonly use_rslora: boolean;
  readonly use_dora: boolean;
  /**
   * true = PEFT's default (A Kaiming-uniform, B zero); false = both random (tests); 'gaussian'; or an init from the
   * base weight that also replaces it by a residual: 'pissa' (SVD), 'pissa_niter_<n>' (randomized SVD), 'olora' (QR).
   */
  readonly init_lora_weights: LoraInit;
  readonly bias: 'none' | 'all' | 'lora_only';
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  readonly fan_in_fan_out: boolean;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const LORA_DEFAULTS: Omit<LoraConfig, 'target_modules'> = {
  peft_type: 'LORA',
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  use_rslora: false,
  use_dora: false,
  init_lora_weights: true,
  bias: 'none',
  rank_pattern: {},
  alpha_pattern: {},
  fan_in_fan_out: false,
  modules_to_save: null,
  task_type: 'CAUSAL_LM',
};

/** Fields PEFT writes that do not change what LoRA computes here. */
const KNOWN_INERT = new Set([
  'auto_mapping', 'revision', 'inference_mode', 'megatron_config', 'megatron_core', 'loftq_config', 'eva_config',
  'corda_config', 'layer_replication', 'runtime_config', 'lora_bias', 'target_parameters', 'trainable_token_indices',
  'use_qalora', 'qalora_group_size', 'exclude_modules', 'layers_pattern', 'layers_to_transform',
  'target_modules', 'base_model_name_or_path', 'task_type', 'peft_version',
]);


const PISSA_NITER = /^pissa_niter_(\d+)$/;

/** Subspace iterations of a 'pissa_niter_<n>' init; undefined for the other inits. */
export const pissaIterations = (init: LoraInit): number | undefined => {
  const m = typeof init === 'string' ? PISSA_NITER.exec(init) : null;
  return m ? Number(m[1]) : undefined;
};

/** Validates a LoRA config (from adapter_config.json or the UI); `where` names its origin in errors. */
export const parseLoraConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<LoraConfig> => {
  const c = { ...LORA_DEFAULTS, ...raw } as LoraConfig & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(c, where);
  if (c.peft_type !== 'LORA') fail('peft_type', "is not 'LORA'");
  checkRankAndAlpha(c, fail);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) fail('lora_dropout', 'must be in [0, 1)');
  if (!['none', 'all', 'lora_only'].includes(c.bias)) fail('bias', "must be 'none', 'all' or 'lora_only'");
  if (![true, false, 'gaussian', 'pissa', 'olora'].includes(c.init_lora_weights as never) && !PISSA_NITER.test(String(c.init_lora_weights))) {
    fail('init_lora_weights', "must be true, false, 'gaussian', 'pissa', 'pissa_niter_<n>' or 'olora'");
  }
  if (typeof c.use_dora !== 'boolean') fail('use_dora', 'must be true or false');
  const toSave = c.modules_to_save;
  if (toSave !== null && toSave !== undefined && !(Array.isArray(toSave) && toSave.every((m) => typeof m === 'string' && m.length > 0))) {
    fail('modules_to_save', 'must be a list of module names or null');
  }
  if (c.lora_bias === true) fail('lora_bias', 'asks for a bias on lora_B, which this version cannot apply yet');
  if (c.fan_in_fan_out) fail('fan_in_fan_out', 'is for GPT-2 style Conv1D layers, which these models do not have');
  if (c.target_modules === undefined || c.target_modules === null) fail('target_modules', 'must name the modules to adapt');
  for (const [k, v] of Object.entries(c.rank_pattern)) if (!(Number.isInteger(v) && v > 0)) throw new PeftError(`${where}: rank_pattern['${k}']=${v} must be a positive integer`);
  return { config: c, warnings: unknownFieldWarnings(raw, [...Object.keys(LORA_DEFAULTS), ...KNOWN_INERT], where) };
};
