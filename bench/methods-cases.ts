// bench:methods' table of methods: each trains SmolLM2-135M-Instruct on the demo dataset (US capitals as one JSON
// object) from a run config, the way `peft-studio train` does. Learning rates are the usual ones for each method.
export interface MethodCase {
  readonly label: string;
  readonly method: Record<string, unknown>;
  readonly lr: number;
}

const ALL_LINEAR = 'all-linear';

export const METHOD_CASES: readonly MethodCase[] = [
  { label: 'LoRA r=16', method: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR }, lr: 2e-3 },
  { label: 'DoRA r=16', method: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR, use_dora: true }, lr: 2e-3 },
  { label: 'rsLoRA r=16', method: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR, use_rslora: true }, lr: 5e-4 },
  { label: 'LoRA+ r=16 (ratio 16)', method: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR, loraplus_lr_ratio: 16 }, lr: 5e-4 },
  { label: 'LoRA-FA r=16', method: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR, lora_fa: true }, lr: 2e-3 },
  { label: 'AdaLoRA r 12→8', method: { peft_type: 'ADALORA', init_r: 12, target_r: 8, lora_alpha: 32, target_modules: ALL_LINEAR, tinit: 2, tfinal: 2, deltaT: 2 }, lr: 2e-3 },
  { label: 'VeRA r=256', method: { peft_type: 'VERA', r: 256, target_modules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'] }, lr: 1e-2 },
  { label: 'Delta-LoRA r=16', method: { peft_type: 'DELTA_LORA', r: 16, lora_alpha: 32, target_modules: ALL_LINEAR, delta_lora_start_step: 2 }, lr: 2e-3 },
  { label: 'IA3', method: { peft_type: 'IA3', target_modules: null, feedforward_modules: null }, lr: 2e-2 },
  { label: 'Prompt tuning (20 tokens)', method: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 20 }, lr: 3e-1 },
  { label: 'P-tuning (MLP, 20 tokens)', method: { peft_type: 'P_TUNING', num_virtual_tokens: 20, encoder_hidden_size: 128 }, lr: 1e-2 },
  { label: 'Prefix tuning (projection)', method: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 20, prefix_projection: true, encoder_hidden_size: 128 }, lr: 3e-3 },
  { label: 'P-tuning v2 (prefix, 20)', method: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 20 }, lr: 3e-2 },
  // BitFit needs biases; SmolLM2's layers have none (the bench prints the method's own refusal for it).
  { label: 'BitFit', method: { peft_type: 'BITFIT' }, lr: 1e-3 },
  { label: 'Selective (norms)', method: { peft_type: 'SELECTIVE', parameters: ['norm'] }, lr: 1e-3 },
  { label: 'Selective (layers 28–29)', method: { peft_type: 'SELECTIVE', parameters: ['layers\\.(28|29)\\.'] }, lr: 1e-4 },
  { label: 'Bottleneck Houlsby rf=16', method: { peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 16 }, lr: 1e-3 },
  { label: 'Bottleneck Houlsby rf=32', method: { peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 32 }, lr: 1e-3 },
  { label: 'Bottleneck Pfeiffer rf=16', method: { peft_type: 'BOTTLENECK', architecture: 'pfeiffer', reduction_factor: 16 }, lr: 1e-3 },
  {
    label: 'AdapterFusion (2 Houlsby)',
    method: { peft_type: 'ADAPTER_FUSION', adapters: ['rf16', 'rf32'], adapter_paths: { rf16: 'Bottleneck Houlsby rf=16', rf32: 'Bottleneck Houlsby rf=32' } },
    // Stage 2 over the two Houlsby adapters trained just above (adapter_paths name their cases).
    lr: 5e-4,
  },
  { label: 'Full fine-tuning', method: { peft_type: 'FULL' }, lr: 5e-5 },
];

/** A case's output folder under the bench's work folder. */
export const caseFolder = (label: string): string => label.replace(/\W+/g, '-').replace(/^-|-$/g, '');

/** Gradient checkpointing's measurement: LoRA at micro-batch 4 × 512. */
export const RECOMPUTE_SEQ = 512;
export const RECOMPUTE_BATCH = 4;
