// BOTTLENECK's adapter_config.json (our peft_type: HF PEFT has no bottleneck adapters). Field names and meanings
// follow the AdapterHub `adapters` library's BnConfig: architecture 'houlsby' is its DoubleSeqBnConfig (adapters after
// the attention block and after the FFN), 'pfeiffer' its SeqBnConfig (after the FFN only); see bottleneck.ts.
import { type FieldFail, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { ParsedConfig } from './method.ts';

export type BottleneckArchitecture = 'houlsby' | 'pfeiffer';
/** transformers' get_activation names, as AdapterHub resolves non_linearity ('swish' and 'silu' are one function). */
export type NonLinearity = 'relu' | 'gelu' | 'silu' | 'swish' | 'tanh';
/**
 * AdapterHub's init_weights: 'mam_adapter' = down Kaiming-uniform (a=√5, nn.Linear's default), up and both biases 0,
 * so the adapter starts as the identity; 'bert' = both weights N(0, 0.02), biases 0; 'houlsby' = both weights
 * N(0, 0.01) truncated to ±0.02, biases 0. AdapterHub defaults to 'bert'; we default to 'mam_adapter' so that a new
 * adapter leaves the base model's outputs unchanged.
 */
export type BottleneckInit = 'mam_adapter' | 'bert' | 'houlsby';

export interface BottleneckConfig {
  readonly peft_type: 'BOTTLENECK';
  readonly architecture: BottleneckArchitecture;
  /** hidden_size / bottleneck size; a number, or per layer `{ "1": 8, "default": 16 }` (AdapterHub's mapping). */
  readonly reduction_factor: number | Readonly<Record<string, number>>;
  readonly non_linearity: NonLinearity;
  /** The adapter's output is multiplied by this before its residual (AdapterHub's float `scaling`). */
  readonly scaling: number;
  readonly init_weights: BottleneckInit;
  /** Decoder layers (0-based) that get no adapter (AdapterHub's leave_out). */
  readonly leave_out: readonly number[];
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

/** AdapterHub's presets: SeqBnConfig (pfeiffer) uses relu, DoubleSeqBnConfig (houlsby) swish; both reduction 16. */
const PRESET_ACTIVATION: Readonly<Record<BottleneckArchitecture, NonLinearity>> = { houlsby: 'swish', pfeiffer: 'relu' };

export const BOTTLENECK_DEFAULTS = {
  peft_type: 'BOTTLENECK',
  architecture: 'pfeiffer',
  reduction_factor: 16,
  scaling: 1,
  init_weights: 'mam_adapter',
  leave_out: [],
  task_type: 'CAUSAL_LM',
} as const;

const ARCHITECTURES: readonly string[] = ['houlsby', 'pfeiffer'];
const ACTIVATIONS: readonly string[] = ['relu', 'gelu', 'silu', 'swish', 'tanh'];
const INITS: readonly string[] = ['mam_adapter', 'bert', 'houlsby'];
const KNOWN = [...Object.keys(BOTTLENECK_DEFAULTS), 'non_linearity', 'base_model_name_or_path', 'inference_mode'];

const positive = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** Validates a BOTTLENECK config (adapter_config.json or the UI); `where` names its origin in errors. */
export const parseBottleneckConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<BottleneckConfig> => {
  const merged = { ...BOTTLENECK_DEFAULTS, ...raw } as Record<string, unknown>;
  const fail: FieldFail = fieldChecker(merged, where);
  if (merged.peft_type !== 'BOTTLENECK') fail('peft_type', "is not 'BOTTLENECK'");
  const architecture = String(merged.architecture).toLowerCase();
  if (!ARCHITECTURES.includes(architecture)) fail('architecture', "must be 'houlsby' or 'pfeiffer'");
  const rf = merged.reduction_factor;
  if (typeof rf === 'object' && rf !== null && !Array.isArray(rf)) {
    const entries = Object.entries(rf as Record<string, unknown>);
    if (!entries.every(([k, v]) => (k === 'default' || /^\d+$/.test(k)) && positive(v))) {
      fail('reduction_factor', 'must map layer ids ("0", "1", …) or "default" to positive numbers');
    }
  } else if (!positive(rf)) {
    fail('reduction_factor', 'must be a positive number or a per-layer mapping');
  }
  const nonLinearity = String(merged.non_linearity ?? PRESET_ACTIVATION[architecture as BottleneckArchitecture]).toLowerCase();
  if (!ACTIVATIONS.includes(nonLinearity)) fail('non_linearity', `must be one of ${ACTIVATIONS.join(', ')}`);
  if (!(typeof merged.scaling === 'number' && Number.isFinite(merged.scaling))) {
    fail('scaling', "must be a finite number (AdapterHub's 'learned' / 'channel' scalings are not available)");
  }
  if (!INITS.includes(merged.init_weights as string)) fail('init_weights', `must be one of ${INITS.join(', ')}`);
  const leaveOut = merged.leave_out;
  if (!(Array.isArray(leaveOut) && leaveOut.every((i) => Number.isInteger(i) && i >= 0))) fail('leave_out', 'must be a list of layer indices');
  const config: BottleneckConfig = {
    peft_type: 'BOTTLENECK',
    architecture: architecture as BottleneckArchitecture,
    reduction_factor: rf as BottleneckConfig['reduction_factor'],
    non_linearity: nonLinearity as NonLinearity,
    scaling: merged.scaling as number,
    init_weights: merged.init_weights as BottleneckInit,
    leave_out: leaveOut as number[],
    ...(merged.base_model_name_or_path !== undefined ? { base_model_name_or_path: merged.base_model_name_or_path as string | null } : {}),
    ...(merged.task_type !== undefined ? { task_type: merged.task_type as string | null } : {}),
  };
  return { config, warnings: unknownFieldWarnings(raw, KNOWN, where) };
};

/**
 * The bottleneck width at `layer`: AdapterHub's int(hidden_size // reduction_factor), at least 1. A mapping without
 * this layer's id nor "default" is an error, as in AdapterHub.
 */
export const bottleneckSize = (config: Pick<BottleneckConfig, 'reduction_factor'>, hidden: number, layer: number): number => {
  const rf = config.reduction_factor;
  let factor: number | undefined;
  if (typeof rf === 'number') factor = rf;
  else factor = rf[String(layer)] ?? rf['default'];
  if (factor === undefined) {
    throw new PeftError(`reduction_factor ${JSON.stringify(rf)} has neither layer "${layer}" nor "default"`);
  }
  return Math.max(1, Math.floor(hidden / factor));
};
