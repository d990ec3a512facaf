// `methods.list`: every method the engine has, with the fields the Train form shows, each with its default as the
// method's own parser fills it in (and the training block's as parseRunConfig does), so the form starts from exactly
// what a run with those fields left out would use.
import { peftMethods } from '../peft/registry.ts';
import { TRAINABLE_METHODS } from '../train/method-training.ts';
import { DATASET_SPECS, METHOD_SPECS, TRAINING_SPECS, type FieldSpec } from './method-catalog-specs.ts';
import { parseRunConfig } from './run-config.ts';

export type ConfigFieldKind = 'number' | 'integer' | 'boolean' | 'choice' | 'string' | 'list';
/** A field's value as JSON: null = left out (the parser's own default applies, or, where `required`, not given yet). */
export type ConfigValue = number | boolean | string | readonly string[] | readonly number[] | null;

/** A form field: its spec (name, kind, label, explanation, bounds) with the default its parser yields. */
export interface ConfigField extends Omit<FieldSpec, 'start'> {
  readonly default: ConfigValue;
  /** The parser has no default: the field is always sent, starting from `default` (null: the user must fill it). */
  readonly required?: boolean;
}

export interface MethodInfo {
  /** The method block's peft_type. */
  readonly peftType: string;
  readonly label: string;
  readonly summary: string;
  /** Whether a run config can train it (train.start); the others are listed so the user sees they exist. */
  readonly trainable: boolean;
  readonly fields: readonly ConfigField[];
}

export interface MethodCatalog {
  readonly methods: readonly MethodInfo[];
  /** The run's `training` block. */
  readonly training: readonly ConfigField[];
  /** The run's `dataset` block besides its path. */
  readonly dataset: readonly ConfigField[];
}

export class MethodCatalogError extends Error {
  override readonly name = 'MethodCatalogError';
}

/** undefined (the parser left the field out) reads as null; everything else as the parser gave it. */
const asValue = (v: unknown): ConfigValue => (v === undefined ? null : (v as ConfigValue));

const field = (spec: FieldSpec, value: ConfigValue): ConfigField => {
  const { start, ...rest } = spec;
  return { ...rest, default: value, ...(start !== undefined ? { required: true } : {}) };
};

const methodInfo = (peftType: string, label: string, parse: (raw: Record<string, unknown>, where: string) => { config: object }): MethodInfo => {
  const spec = METHOD_SPECS[peftType];
  if (!spec) throw new MethodCatalogError(`method ${peftType} has no entry in METHOD_SPECS (main/service/method-catalog-specs.ts): add its form fields there`);
  const starting = Object.fromEntries(spec.fields.filter((f) => f.start !== undefined && f.start !== null).map((f) => [f.name, f.start]));
  const parsed = parse({ ...spec.parseWith, ...starting, peft_type: peftType }, `${peftType} defaults`).config as Record<string, unknown>;
  const fields = spec.fields.map((f) => field(f, f.start !== undefined ? f.start : f.name in (spec.parseWith ?? {}) ? null : asValue(parsed[f.name])));
  return { peftType, label, summary: spec.summary, trainable: TRAINABLE_METHODS.includes(peftType), fields };
};

/** parseRunConfig's defaults: what a config that leaves the training block (and evalFraction, trainOn) out gets. */
const runDefaults = () => parseRunConfig({ model: '-', dataset: { path: '-' }, method: {}, output: '-' }, 'defaults');

export const methodCatalog = (): MethodCatalog => {
  const defaults = runDefaults();
  const training = defaults.training as unknown as Record<string, unknown>;
  const dataset = defaults.dataset as Record<string, unknown>;
  return {
    methods: peftMethods().map((m) => methodInfo(m.peftType, m.label, (raw, where) => m.parseConfig(raw as never, where))),
    // A flag the block leaves out is off in the trainer (recompute ?? false): the form shows it unchecked.
    training: TRAINING_SPECS.map((f) => field(f, asValue(training[f.name]) ?? (f.kind === 'boolean' ? false : null))),
    dataset: DATASET_SPECS.map((f) => field(f, asValue(dataset[f.name]))),
  };
};
