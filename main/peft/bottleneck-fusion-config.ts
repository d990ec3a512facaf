// ADAPTER_FUSION's adapter_config.json (our peft_type). The fusion fields are AdapterHub's AdapterFusionConfig, with its
// default 'dynamic' preset (query, key and value projections; value initialised near the identity; regularised).
// The fused BOTTLENECK adapters are named in `adapters`; their configs travel in `adapter_configs` so a saved fusion
// folder (which also holds their frozen tensors) stands alone. For stage 2, `adapter_paths` names the trained
// adapter folders to read them from.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BottleneckConfig, parseBottleneckConfig } from './bottleneck-config.ts';
import { type FieldFail, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { ParsedConfig } from './method.ts';
import { ADAPTER_CONFIG } from './peft-io.ts';

export interface AdapterFusionConfig {
  readonly peft_type: 'ADAPTER_FUSION';
  /** The fused adapters' names, in fusion order; each name is a key segment, so letters, digits, '_' and '-'. */
  readonly adapters: readonly string[];
  readonly adapter_configs: Readonly<Record<string, BottleneckConfig>>;
  /** Folders the adapters were trained into (stage 2 reads their tensors from there); null in a standalone file. */
  readonly adapter_paths: Readonly<Record<string, string>> | null;
  readonly query: boolean;
  readonly key: boolean;
  readonly value: boolean;
  /** Pfeiffer adapters only: the query is the FFN output before the residual add, not the sum. */
  readonly query_before_ln: boolean;
  /** Adds 0.01·Σ‖I − W_value‖²_F over the fusion layers to the training loss. */
  readonly regularization: boolean;
  /** Only false: AdapterHub's residual_before=true adds the residual to keys and values in place. */
  readonly residual_before: boolean;
  /** Only false: AdapterHub's temperature anneals T from 50 by one step per forward call (state outside the model). */
  readonly temperature: boolean;
  /** W_value on each adapter output before the weighted sum (true), or once on the sum (false). */
  readonly value_before_softmax: boolean;
  /** W_value starts at I (off-diagonal 1e-6) instead of N(0, 0.02). */
  readonly value_initialized: boolean;
  /** Dropout on the attention scores (before the softmax, as AdapterHub has it); null = 0 for these models. */
  readonly dropout_prob: number | null;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

/** AdapterHub's DynamicAdapterFusionConfig, its DEFAULT_ADAPTERFUSION_CONFIG. */
export const FUSION_DEFAULTS = {
  peft_type: 'ADAPTER_FUSION',
  adapter_paths: null,
  query: true,
  key: true,
  value: true,
  query_before_ln: false,
  regularization: true,
  residual_before: false,
  temperature: false,
  value_before_softmax: true,
  value_initialized: true,
  dropout_prob: null,
  task_type: 'CAUSAL_LM',
} as const;

const FLAGS = ['query', 'key', 'value', 'query_before_ln', 'regularization', 'residual_before', 'temperature', 'value_before_softmax', 'value_initialized'] as const;
const KNOWN = [...Object.keys(FUSION_DEFAULTS), 'adapters', 'adapter_configs', 'base_model_name_or_path', 'inference_mode'];
const NAME = /^[A-Za-z0-9_-]+$/;

const readAdapterConfig = (dir: string): Record<string, unknown> => {
  const file = join(dir, ADAPTER_CONFIG);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PeftError(`${file}: cannot read the fused adapter's config (${(err as Error).message})`);
  }
};

/** Validates an ADAPTER_FUSION config; adapters given only by path get their configs read from there. */
export const parseAdapterFusionConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<AdapterFusionConfig> => {
  const merged = { ...FUSION_DEFAULTS, ...raw } as Record<string, unknown>;
  const fail: FieldFail = fieldChecker(merged, where);
  if (merged.peft_type !== 'ADAPTER_FUSION') fail('peft_type', "is not 'ADAPTER_FUSION'");
  const names = merged.adapters;
  if (!(Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === 'string' && NAME.test(n)))) {
    fail('adapters', "must list the fused adapters' names (letters, digits, '_' and '-')");
  }
  if (new Set(names as string[]).size !== (names as string[]).length) fail('adapters', 'names an adapter twice');
  const paths = merged.adapter_paths;
  if (paths !== null && !(typeof paths === 'object' && Object.values(paths as object).every((p) => typeof p === 'string'))) {
    fail('adapter_paths', 'must map adapter names to adapter folders, or be null');
  }
  const given = merged.adapter_configs ?? {};
  if (typeof given !== 'object' || Array.isArray(given)) fail('adapter_configs', "must map adapter names to their BOTTLENECK configs");
  const warnings = unknownFieldWarnings(raw, KNOWN, where);
  const configs: Record<string, BottleneckConfig> = {};
  for (const name of names as string[]) {
    const inline = (given as Record<string, Record<string, unknown> | undefined>)[name];
    const path = (paths as Record<string, string> | null)?.[name];
    if (!inline && !path) fail('adapters', `names '${name}', which has neither an adapter_configs entry nor an adapter_paths folder`);
    const origin = inline ? `${where}: adapter_configs.${name}` : join(path!, ADAPTER_CONFIG);
    const parsed = parseBottleneckConfig(inline ?? readAdapterConfig(path!), origin);
    warnings.push(...parsed.warnings);
    configs[name] = parsed.config;
  }
  const first = configs[(names as string[])[0]!]!;
  for (const [name, c] of Object.entries(configs)) {
    if (c.architecture !== first.architecture) fail('adapters', `mixes architectures ('${name}' is ${c.architecture}, the first is ${first.architecture}); fused adapters must sit at the same places`);
    if (c.leave_out.join() !== first.leave_out.join()) fail('adapters', `mixes leave_out lists ('${name}': [${c.leave_out.join(', ')}]); fused adapters must sit in the same layers`);
  }
  for (const flag of FLAGS) if (typeof merged[flag] !== 'boolean') fail(flag, 'must be true or false');
  if (merged.residual_before) fail('residual_before', 'is not available (AdapterHub adds the residual to the keys as well as the values in place); use false');
  if (merged.temperature) fail('temperature', 'is not available (its annealing lives outside the model); use false');
  const p = merged.dropout_prob;
  if (!(p === null || (typeof p === 'number' && p >= 0 && p < 1))) fail('dropout_prob', 'must be in [0, 1) or null');
  if (merged.query_before_ln && first.architecture !== 'pfeiffer') {
    warnings.push(`${where}: query_before_ln changes nothing for houlsby adapters (their query is the sub-block output either way)`);
  }
  const config = {
    ...Object.fromEntries(Object.entries(merged).filter(([k]) => KNOWN.includes(k))),
    adapters: [...(names as string[])],
    adapter_configs: configs,
  } as unknown as AdapterFusionConfig;
  return { config, warnings };
};
