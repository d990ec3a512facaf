// LoRA+ (Hayou et al., 2024): LoRA with a larger learning rate for the B matrices. HF PEFT has it as an optimizer
// factory (peft/optimizers/loraplus.py, create_loraplus_optimizer); here it is the same four parameter groups as
// ParamGroupSpec[], which any of our optimizers takes through toParamGroups. The adapter itself is plain LoRA.
import type { Param, ParamGroup } from '../engine/optim/index.ts';
import { PeftError } from './errors.ts';
import { loraMethod } from './lora.ts';
import type { LoraConfig } from './lora-config.ts';
import type { ParamGroupSpec, PeftMethod } from './method.ts';

/** create_loraplus_optimizer's keyword arguments, with its names and defaults. */
export interface LoraPlusOptions {
  /** The base learning rate (ηA). */
  readonly lr: number;
  /** ηB / ηA; the paper suggests ≥ 1 (e.g. 16). */
  readonly loraplus_lr_ratio: number;
  /** Default 1e-6. PEFT 0.17 never fills the embedding group (see loraPlusParamGroups). */
  readonly loraplus_lr_embedding?: number;
  /** Default 0.0; every group but groupB_no_decay. */
  readonly loraplus_weight_decay?: number;
}

export const LORAPLUS_GROUPS = ['groupA', 'embedding', 'groupB', 'groupB_no_decay'] as const;
export type LoraPlusGroup = (typeof LORAPLUS_GROUPS)[number];

const checkOptions = (o: LoraPlusOptions): Required<LoraPlusOptions> => {
  const full = { loraplus_lr_embedding: 1e-6, loraplus_weight_decay: 0, ...o };
  const positive = (field: keyof LoraPlusOptions, orZero = false) => {
    const v = full[field];
    if (!(typeof v === 'number' && Number.isFinite(v) && (v > 0 || (orZero && v === 0)))) {
      throw new PeftError(`LoRA+: ${field}=${JSON.stringify(v)} must be a ${orZero ? 'non-negative' : 'positive'} number`);
    }
  };
  positive('lr');
  positive('loraplus_lr_ratio');
  positive('loraplus_lr_embedding', true);
  positive('loraplus_weight_decay', true);
  return full;
};

/**
 * Which LoRA+ group a trainable tensor joins, exactly as PEFT 0.17.1 decides by its name and rank:
 * `lora_B` in the name or a 1-D tensor (DoRA magnitudes, biases) → groupB, or groupB_no_decay when `bias` is in
 * the name (transformers' decay list drops biases; it also drops nn.LayerNorm weights, which Llama-family models
 * do not have); anything else → groupA. PEFT means to put LoRA embedding layers in 'embedding', but it tests
 * `attrgetter(param_name)(model)` — the parameter, never the layer — so that group stays empty and
 * lora_embedding_A/B land in groupA; we reproduce that.
 */
export const loraPlusGroupOf = (name: string, shape: readonly number[]): LoraPlusGroup => {
  if (name.includes('lora_B') || shape.length === 1) return name.includes('bias') ? 'groupB_no_decay' : 'groupB';
  return 'groupA';
};

/** create_loraplus_optimizer's param_groups, in its order; lrs as multiples of `lr` (so schedules scale them). */
export const loraPlusParamGroups = (
  params: readonly { readonly name: string; readonly shape: readonly number[] }[],
  options: LoraPlusOptions,
): ParamGroupSpec[] => {
  const o = checkOptions(options);
  const members = new Map<LoraPlusGroup, string[]>(LORAPLUS_GROUPS.map((g) => [g, []]));
  for (const p of params) members.get(loraPlusGroupOf(p.name, p.shape))!.push(p.name);
  const scale: Record<LoraPlusGroup, number> = {
    groupA: 1,
    embedding: o.loraplus_lr_embedding / o.lr,
    groupB: o.loraplus_lr_ratio,
    groupB_no_decay: o.loraplus_lr_ratio,
  };
  return LORAPLUS_GROUPS.map((name) => ({
    name,
    params: members.get(name)!,
    lrScale: scale[name],
    weightDecay: name === 'groupB_no_decay' ? 0 : o.loraplus_weight_decay,
  }));
};

/**
 * Group specs → the optimizer's ParamGroups over the live tensors (those the trainer updates). Every param must be
 * in exactly one group, and every name in a group must be a param: errors name the tensor.
 */
export const toParamGroups = (specs: readonly ParamGroupSpec[], params: readonly Param[]): ParamGroup[] => {
  const byName = new Map(params.map((p) => [p.name, p]));
  const placed = new Set<string>();
  const groups = specs.map((s) => ({
    name: s.name,
    params: s.params.map((n) => {
      const p = byName.get(n);
      if (!p) throw new PeftError(`param group '${s.name}' names '${n}', which is not a trainable tensor`);
      if (placed.has(n)) throw new PeftError(`'${n}' is in more than one param group`);
      placed.add(n);
      return p;
    }),
    ...(s.lrScale !== undefined ? { lrScale: s.lrScale } : {}),
    ...(s.weightDecay !== undefined ? { weightDecay: s.weightDecay } : {}),
  }));
  const missing = params.find((p) => !placed.has(p.name));
  if (missing) throw new PeftError(`trainable tensor '${missing.name}' is in no param group`);
  return groups;
};

/** LoRA whose paramGroups are LoRA+'s. Its adapters are LoRA adapters (peft_type LORA), so it is not registered. */
export const loraPlusMethod = (options: LoraPlusOptions): PeftMethod<LoraConfig> => {
  checkOptions(options);
  return { ...loraMethod, label: 'LoRA+', paramGroups: (params) => loraPlusParamGroups(params, options) };
};
