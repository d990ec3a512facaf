// LongLoRA's config: a LoRA config (LoRA's own parser checks those fields) plus what LongLoRA adds to extend a
// model's context — the S²-Attn group size as a fraction of the training length, the checkpoint tensors trained
// alongside LoRA (LongLoRA's "LoRA+": embeddings and norms) and the linear RoPE position interpolation to train with.
// peft_type 'LONGLORA' is our own name: PEFT has no LongLoRA.
import { fieldChecker } from './config-fields.ts';
import { parseLoraConfig, type LoraConfig } from './lora-config.ts';
import type { ParsedConfig } from './method.ts';
import { checkPatternList } from './tensor-patterns.ts';

export interface LinearRopeScaling {
  readonly type: 'linear';
  /** Positions are divided by it: a model trained on N tokens reads factor·N with the angles it knows. */
  readonly factor: number;
}

export interface LongLoraConfig extends Omit<LoraConfig, 'peft_type'> {
  readonly peft_type: 'LONGLORA';
  /** S²-Attn group size G = model_max_length · group_size_ratio (LongLoRA's default 1/4: four groups). */
  readonly group_size_ratio: number;
  /**
   * The training row length T: rows are single unpacked sequences of exactly T tokens (S²-Attn's groups are cut from
   * fixed positions), T a multiple of 2/group_size_ratio so each group splits into two halves for the shift.
   */
  readonly model_max_length: number;
  /** Checkpoint tensors trained with the LoRA (regexes or globs over HF names; LongLoRA's `--trainable_params embed,norm`); null: LoRA only. */
  readonly trainable_params: readonly string[] | null;
  /** Position interpolation to train (and then infer) with; null keeps the model's RoPE. */
  readonly rope_scaling: LinearRopeScaling | null;
}

/** The LongLoRA repository's defaults (r 8, alpha 16, dropout 0.05 on q/k/v/o; embeddings and norms trained). */
export const LONGLORA_DEFAULTS = {
  group_size_ratio: 0.25,
  trainable_params: ['embed', 'norm'] as readonly string[],
  rope_scaling: null,
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0.05,
  target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as readonly string[],
} as const;

const OWN_FIELDS = ['peft_type', 'group_size_ratio', 'model_max_length', 'trainable_params', 'rope_scaling'] as const;

/** The number of S²-Attn groups a ratio means (1/ratio, an integer). */
export const groupCount = (ratio: number): number => Math.round(1 / ratio);

/** The S²-Attn group size for the config's training length. */
export const groupSize = (c: Pick<LongLoraConfig, 'group_size_ratio' | 'model_max_length'>): number =>
  c.model_max_length / groupCount(c.group_size_ratio);

const parseRopeScaling = (raw: unknown, fail: (field: string, rule: string) => never): LinearRopeScaling | null => {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) return fail('rope_scaling', "must be {type: 'linear', factor} or null");
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type !== 'linear') fail('rope_scaling', "must have type 'linear' (LongLoRA trains with linear position interpolation)");
  if (!(typeof r.factor === 'number' && Number.isFinite(r.factor) && r.factor > 0)) fail('rope_scaling', 'needs a positive factor');
  return { type: 'linear', factor: r.factor as number };
};

/** Validates a LongLoRA config; `where` names its origin in errors. */
export const parseLongLoraConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<LongLoraConfig> => {
  const c = { ...LONGLORA_DEFAULTS, ...raw } as Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'LONGLORA') fail('peft_type', "is not 'LONGLORA'");
  const ratio = c.group_size_ratio;
  if (!(typeof ratio === 'number' && ratio > 0 && ratio <= 1 && Math.abs(1 / ratio - groupCount(ratio)) < 1e-9)) {
    fail('group_size_ratio', 'must be 1/n for a whole number of groups n (LongLoRA: 1/4)');
  }
  const groups = groupCount(ratio as number);
  const length = c.model_max_length;
  if (!(Number.isInteger(length) && (length as number) > 0 && (length as number) % (2 * groups) === 0)) {
    fail(
      'model_max_length',
      `must be the training row length, a multiple of ${2 * groups} (${groups} S²-Attn groups, each split in half for the shift); ` +
        'LongLoRA trains unpacked rows of exactly this many tokens',
    );
  }
  checkPatternList(c.trainable_params, 'trainable_params', where, { required: false });
  const ropeScaling = parseRopeScaling(c.rope_scaling, fail);
  if (c.modules_to_save !== null && c.modules_to_save !== undefined) {
    fail('modules_to_save', 'is not used by LONGLORA: list the checkpoint tensors to train in trainable_params');
  }
  const loraRaw = Object.fromEntries(Object.entries(c).filter(([k]) => !(OWN_FIELDS as readonly string[]).includes(k)));
  const lora = parseLoraConfig({ ...loraRaw, peft_type: 'LORA' }, where);
  const config: LongLoraConfig = {
    ...lora.config,
    peft_type: 'LONGLORA',
    group_size_ratio: ratio as number,
    model_max_length: length as number,
    trainable_params: (c.trainable_params as readonly string[] | null | undefined) ?? null,
    rope_scaling: ropeScaling,
  };
  // LoRA's parser saw every other field, so its warnings name the unknown ones.
  return { config, warnings: lora.warnings };
};

/** The LoRA part of a LongLoRA config, as LoRA's rewrite takes it. */
export const loraPart = (c: LongLoraConfig): LoraConfig => {
  const lora: Record<string, unknown> = { ...c, peft_type: 'LORA' };
  for (const k of OWN_FIELDS) if (k !== 'peft_type') delete lora[k];
  return lora as unknown as LoraConfig;
};
