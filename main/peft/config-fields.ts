// Checks every method's config shares: unknown fields become warnings (a newer PEFT may write fields we do not
// know; they are ignored, not fatal), and the rank and alpha of the low-rank methods.
import { PeftError } from './errors.ts';

/** Fields PEFT writes into every adapter_config.json that do not change what a method computes here. */
export const COMMON_INERT_FIELDS: readonly string[] = [
  'target_modules', 'exclude_modules', 'layers_to_transform', 'layers_pattern', 'base_model_name_or_path',
  'task_type', 'inference_mode', 'revision', 'peft_version', 'auto_mapping',
];

export const unknownFieldWarnings = (raw: Readonly<Record<string, unknown>>, known: Iterable<string>, where: string): string[] => {
  const all = new Set([...known, ...COMMON_INERT_FIELDS]);
  return Object.keys(raw)
    .filter((k) => !all.has(k))
    .map((k) => `${where}: unknown field '${k}' ignored (written by a newer PEFT?)`);
};

export type FieldFail = (field: string, rule: string) => never;

/** A field check that throws a PeftError naming the origin, the field and its value. */
export const fieldChecker =
  (c: Readonly<Record<string, unknown>>, where: string): FieldFail =>
  (field, rule) => {
    throw new PeftError(`${where}: ${field}=${JSON.stringify(c[field])} ${rule}`);
  };

export const checkRankAndAlpha = (c: { readonly r: unknown; readonly lora_alpha: unknown }, fail: FieldFail): void => {
  if (!(Number.isInteger(c.r) && (c.r as number) > 0)) fail('r', 'must be a positive integer');
  if (!(typeof c.lora_alpha === 'number' && c.lora_alpha > 0)) fail('lora_alpha', 'must be a positive number');
};
