// IA3's adapter_config.json with HF PEFT's (0.17) field names and rules, and PEFT's per-architecture defaults for
// target_modules / feedforward_modules (which the model type decides, so they are filled in where the model is known).
import { type FieldFail, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { ParsedConfig } from './method.ts';

/** IA3Config (PEFT 0.17.1). PEFT's IA3Config has no layers_to_transform / layers_pattern: it adapts every layer. */
export interface Ia3Config {
  readonly peft_type: 'IA3';
  /** Names (exact or `.`-suffix), a regex (full match) or 'all-linear'; null: PEFT's default for the model type. */
  readonly target_modules: readonly string[] | string | null;
  readonly exclude_modules: readonly string[] | string | null;
  /**
   * Targets whose INPUT is scaled ((x·l)·Wᵀ) instead of their output: a regex (full match), or names matched as
   * plain suffixes (PEFT's `key.endswith(name)`, no `.` boundary); null: PEFT's default for the model type.
   */
  readonly feedforward_modules: readonly string[] | string | null;
  /** For GPT-2's Conv1D; PEFT turns it off (with a warning) on nn.Linear, the only layers these models have. */
  readonly fan_in_fan_out: boolean;
  /** true: every ia3_l starts at 1 (the identity); false: N(0, 1) (PEFT's torch.randn; tests only). */
  readonly init_ia3_weights: boolean;
  readonly modules_to_save: readonly string[] | null;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const IA3_DEFAULTS: Ia3Config = {
  peft_type: 'IA3',
  target_modules: null,
  exclude_modules: null,
  feedforward_modules: null,
  fan_in_fan_out: false,
  init_ia3_weights: true,
  modules_to_save: null,
  task_type: 'CAUSAL_LM',
};

/** PEFT's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, for the architectures this engine runs. */
export const IA3_DEFAULT_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ['k_proj', 'v_proj', 'down_proj'],
  mistral: ['k_proj', 'v_proj', 'down_proj'],
  qwen2: ['q_proj', 'v_proj', 'down_proj'],
  qwen3: ['q_proj', 'v_proj', 'down_proj'],
};

/** PEFT's TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING, same architectures. */
export const IA3_DEFAULT_FEEDFORWARD: Readonly<Record<string, readonly string[]>> = {
  llama: ['down_proj'],
  mistral: ['down_proj'],
  qwen2: ['down_proj'],
  qwen3: ['down_proj'],
};

const KNOWN = [...Object.keys(IA3_DEFAULTS), 'base_model_name_or_path', 'inference_mode', 'revision', 'auto_mapping', 'peft_version'];
/** Fields other methods have that IA3Config lacks: PEFT drops them with a warning, so they change nothing. */
const NOT_IN_IA3 = ['layers_to_transform', 'layers_pattern'];

const isNameList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);

/** Validates an IA3 config (adapter_config.json or the UI); `where` names its origin in errors. */
export const parseIa3Config = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<Ia3Config> => {
  const merged = { ...IA3_DEFAULTS, ...raw } as Ia3Config & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(merged, where);
  if (merged.peft_type !== 'IA3') fail('peft_type', "is not 'IA3'");
  for (const field of ['target_modules', 'exclude_modules', 'feedforward_modules'] as const) {
    const v = merged[field];
    if (!(v === null || (typeof v === 'string' && v.length > 0) || isNameList(v))) fail(field, 'must be a list of module names, a regex or null');
  }
  if (merged.modules_to_save !== null && !isNameList(merged.modules_to_save)) fail('modules_to_save', 'must be a list of module names or null');
  if (typeof merged.init_ia3_weights !== 'boolean') fail('init_ia3_weights', 'must be true or false');
  if (typeof merged.fan_in_fan_out !== 'boolean') fail('fan_in_fan_out', 'must be true or false');
  const warnings = unknownFieldWarnings(raw, KNOWN, where);
  // IA3Config.__post_init__ requires a subset when both are lists. PEFT's own save of target_modules='all-linear'
  // lists full module names, which its plain feedforward names are not among, so PEFT refuses to load that file;
  // a feedforward name that still ends a target (PEFT's feedforward match) is accepted here, with a warning.
  const { target_modules: targets, feedforward_modules: feedforward } = merged;
  if (Array.isArray(targets) && Array.isArray(feedforward)) {
    const notListed = feedforward.filter((f) => !targets.includes(f));
    const missing = notListed.filter((f) => !targets.some((t) => t.endsWith(f)));
    if (missing.length) fail('feedforward_modules', `must be a subset of target_modules (${JSON.stringify(missing)} are not targets)`);
    if (notListed.length) {
      warnings.push(`${where}: feedforward_modules ${JSON.stringify(notListed)} are not listed in target_modules, only end some of them; PEFT 0.17 refuses such a config, PEFT Studio applies it`);
    }
  }
  for (const f of NOT_IN_IA3) {
    if (raw[f] !== undefined && raw[f] !== null) warnings.push(`${where}: ${f} is not a field of PEFT's IA3Config; ignored (every layer is adapted)`);
  }
  if (merged.fan_in_fan_out) warnings.push(`${where}: fan_in_fan_out=true is for Conv1D layers; these are nn.Linear, so it is set to false (as PEFT does)`);
  const config: Ia3Config = {
    peft_type: 'IA3',
    target_modules: merged.target_modules,
    exclude_modules: merged.exclude_modules,
    feedforward_modules: merged.feedforward_modules,
    fan_in_fan_out: false,
    init_ia3_weights: merged.init_ia3_weights,
    modules_to_save: merged.modules_to_save,
    ...(merged.base_model_name_or_path !== undefined ? { base_model_name_or_path: merged.base_model_name_or_path } : {}),
    ...(merged.task_type !== undefined ? { task_type: merged.task_type } : {}),
  };
  return { config, warnings };
};

/**
 * PEFT's IA3Model._prepare_adapter_config: a null target_modules / feedforward_modules takes the model type's
 * default; an architecture without one is an error, as in PEFT.
 */
export const withIa3Defaults = (config: Ia3Config, modelType: string | undefined): Ia3Config => {
  if (config.target_modules !== null && config.feedforward_modules !== null) return config;
  const pick = (table: Readonly<Record<string, readonly string[]>>, field: string): readonly string[] => {
    const found = modelType === undefined ? undefined : table[modelType];
    if (!found) {
      const known = Object.keys(table).join(', ');
      throw new PeftError(`IA3: ${field} is null and ${modelType === undefined ? 'the model type is not known' : `model type '${modelType}' has no default`}; name the modules (defaults exist for ${known})`);
    }
    return [...found];
  };
  return {
    ...config,
    target_modules: config.target_modules ?? pick(IA3_DEFAULT_TARGETS, 'target_modules'),
    feedforward_modules: config.feedforward_modules ?? pick(IA3_DEFAULT_FEEDFORWARD, 'feedforward_modules'),
  };
};

const fullMatch = (pattern: string, key: string): boolean => new RegExp(`^(?:${pattern})$`).test(key);

/** PEFT's _check_target_module_feedforward: a regex fully matching the module name, or a plain name suffix. */
export const isFeedforward = (config: Pick<Ia3Config, 'feedforward_modules'>, module: string): boolean => {
  const ff = config.feedforward_modules;
  if (ff === null) return false;
  return typeof ff === 'string' ? fullMatch(ff, module) : ff.some((name) => module.endsWith(name));
};
