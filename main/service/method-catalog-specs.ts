// What the Train form shows for each method and for the run's training block: each field's kind, range and a
// one-line explanation. Defaults are NOT written here: method-catalog.ts takes them from each method's own config
// parser (and from parseRunConfig for the training block), so they cannot drift from what a run really uses. Only
// a field the parser has no default for carries `start`: the form's starting value (null: the user must give it).
import type { ConfigFieldKind, ConfigValue } from './method-catalog.ts';

export interface FieldSpec {
  readonly name: string;
  readonly kind: ConfigFieldKind;
  readonly label: string;
  readonly explain: string;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly (string | number | boolean)[];
  /** What a list holds (default strings). */
  readonly items?: 'string' | 'integer';
  /** A single entry may stand alone as a string ('all-linear', one regex). */
  readonly pattern?: boolean;
  /** The parser requires this field and has no default for it: the form starts from this value. */
  readonly start?: ConfigValue;
}

export interface MethodSpec {
  readonly summary: string;
  readonly fields: readonly FieldSpec[];
  /**
   * Values the parser needs to run at all that are not form defaults (AdaLoRA's total_step, which the run fills in
   * with its step count; AdapterFusion's adapters, which the user picks): used only to read the other defaults.
   */
  readonly parseWith?: Readonly<Record<string, unknown>>;
}

const targets = (start?: ConfigValue): FieldSpec => ({
  name: 'target_modules',
  kind: 'list',
  pattern: true,
  label: 'Target modules',
  explain: "Layers to adapt: 'all-linear', or names such as q_proj, v_proj (comma-separated), or one regex",
  ...(start !== undefined ? { start } : {}),
});
const rank = (explain = 'Rank of the low-rank update: more capacity, more memory'): FieldSpec => ({ name: 'r', kind: 'integer', label: 'Rank (r)', explain, min: 1 });
const alpha: FieldSpec = { name: 'lora_alpha', kind: 'number', label: 'Alpha', explain: 'Scale of the update (alpha / r); often 2 × r', min: 0 };
const dropout = (name = 'lora_dropout'): FieldSpec => ({ name, kind: 'number', label: 'Dropout', explain: 'Dropout on the adapter branch while training, in [0, 1)', min: 0, max: 1 });
const rslora: FieldSpec = { name: 'use_rslora', kind: 'boolean', label: 'rsLoRA scaling', explain: 'Scale by alpha / √r instead of alpha / r (steadier at large ranks)' };
const virtualTokens: FieldSpec = { name: 'num_virtual_tokens', kind: 'integer', label: 'Virtual tokens', explain: 'How many trained tokens are put before every row', min: 1, start: 20 };
const encoderHidden: FieldSpec = { name: 'encoder_hidden_size', kind: 'integer', label: 'Encoder hidden size', explain: "Width of the prompt encoder; empty: the model's hidden size", min: 1 };

export const METHOD_SPECS: Readonly<Record<string, MethodSpec>> = {
  LORA: {
    summary: 'Low-rank update matrices beside the chosen layers: the usual choice, small and fast',
    fields: [
      targets('all-linear'),
      rank(),
      alpha,
      dropout(),
      rslora,
      { name: 'use_dora', kind: 'boolean', label: 'DoRA', explain: 'Train a per-column magnitude as well (weight-decomposed LoRA): closer to full fine-tuning, slower' },
      { name: 'init_lora_weights', kind: 'choice', label: 'Init', explain: "true: PEFT's default (B = 0); pissa / olora start from the base weight's SVD / QR", choices: [true, 'gaussian', 'pissa', 'olora', false] },
      { name: 'bias', kind: 'choice', label: 'Bias', explain: "Also train biases: 'all' or only those of adapted layers", choices: ['none', 'all', 'lora_only'] },
      { name: 'modules_to_save', kind: 'list', label: 'Modules to save', explain: 'Whole modules trained and saved beside the adapter (e.g. lm_head); empty: none' },
      { name: 'loraplus_lr_ratio', kind: 'number', label: 'LoRA+ lr ratio', explain: 'LoRA+: B matrices learn this many times faster than A; empty: off', min: 1 },
      { name: 'lora_fa', kind: 'boolean', label: 'LoRA-FA', explain: 'Freeze A and train B only (LoRA-FA optimizer): less optimizer memory' },
    ],
  },
  ADALORA: {
    summary: 'LoRA whose rank budget moves during training to the layers that matter most',
    parseWith: { total_step: 1000 },
    fields: [
      targets('all-linear'),
      { name: 'init_r', kind: 'integer', label: 'Initial rank', explain: 'Rank every layer starts with', min: 1 },
      { name: 'target_r', kind: 'integer', label: 'Target rank', explain: 'Average rank left at the end of the budget schedule', min: 0 },
      { name: 'tinit', kind: 'integer', label: 'Warm-up steps', explain: 'Steps at the full budget before ranks are pruned', min: 0 },
      { name: 'tfinal', kind: 'integer', label: 'Final steps', explain: 'Last steps trained at the target budget', min: 0 },
      { name: 'deltaT', kind: 'integer', label: 'Allocation interval', explain: 'Steps between two budget reallocations', min: 1 },
      { name: 'total_step', kind: 'integer', label: 'Total steps', explain: "Steps the budget is scheduled over; empty: the run's steps", min: 1 },
      { name: 'beta1', kind: 'number', label: 'β1 (sensitivity EMA)', explain: 'Smoothing of the importance scores, in (0, 1)', min: 0, max: 1 },
      { name: 'beta2', kind: 'number', label: 'β2 (uncertainty EMA)', explain: 'Smoothing of their uncertainty, in (0, 1)', min: 0, max: 1 },
      { name: 'orth_reg_weight', kind: 'number', label: 'Orthogonality weight', explain: 'Keeps the singular vectors orthogonal' },
      alpha,
      dropout(),
    ],
  },
  VERA: {
    summary: 'Shared frozen random projections with tiny trained scaling vectors: far fewer parameters than LoRA',
    fields: [
      targets('all-linear'),
      rank('Rank of the shared random projections (VeRA uses large ranks cheaply)'),
      { name: 'd_initial', kind: 'number', label: 'd initial', explain: 'Starting value of the trained scaling vector d' },
      dropout('vera_dropout'),
      { name: 'projection_prng_key', kind: 'integer', label: 'Projection seed', explain: 'Seed of the frozen projections (saved with the adapter)' },
      { name: 'save_projection', kind: 'boolean', label: 'Save projections', explain: 'Store the frozen projections in the adapter file (larger, but self-contained)' },
    ],
  },
  DELTA_LORA: {
    summary: 'LoRA that also moves the frozen weight by the change of its low-rank product',
    fields: [
      targets('all-linear'),
      rank(),
      alpha,
      { name: 'delta_lora_lambda', kind: 'number', label: 'Update ratio λ', explain: 'How strongly the base weight follows the low-rank update', min: 0 },
      { name: 'delta_lora_start_step', kind: 'integer', label: 'Start step K', explain: 'The base weight starts moving after this step (-1: from the first)', min: -1 },
      rslora,
      { name: 'init_lora_weights', kind: 'choice', label: 'Init', explain: "true: PEFT's default (B = 0)", choices: [true, 'gaussian', false] },
    ],
  },
  LORA_DROP: {
    summary: 'LoRA that keeps separate adapters only for the most important layers and shares one for the rest',
    fields: [
      targets('all-linear'),
      rank(),
      alpha,
      dropout(),
      { name: 'lora_drop_threshold', kind: 'number', label: 'Importance threshold', explain: 'Keep layers until their share of the importance reaches this, in (0, 1]', min: 0, max: 1 },
      { name: 'lora_drop_scope', kind: 'choice', label: 'Scope', explain: 'Rank layers within each module type, or all together', choices: ['module_type', 'all'] },
      { name: 'shared_modules', kind: 'list', label: 'Shared modules', explain: 'Modules that share their type’s one adapter (empty: plain LoRA, the warm-up run)' },
      rslora,
    ],
  },
  IA3: {
    summary: 'Learned per-channel scales on keys, values and the feed-forward: the fewest trained parameters',
    fields: [
      { name: 'target_modules', kind: 'list', pattern: true, label: 'Target modules', explain: "Layers to scale; empty: PEFT's choice for this model type" },
      { name: 'feedforward_modules', kind: 'list', pattern: true, label: 'Feed-forward modules', explain: "Targets whose input is scaled instead of their output; empty: PEFT's choice" },
    ],
  },
  BITFIT: {
    summary: "Trains only the model's bias terms (needs a model with biases, e.g. Qwen2)",
    fields: [
      { name: 'include', kind: 'list', label: 'Include', explain: 'Biases to train (regexes or globs over tensor names); empty: every bias' },
      { name: 'exclude', kind: 'list', label: 'Exclude', explain: 'Biases to keep frozen' },
    ],
  },
  SELECTIVE: {
    summary: "Trains a chosen set of the model's own tensors: the norms, the last layers, the LM head",
    fields: [
      { name: 'parameters', kind: 'list', label: 'Tensors', explain: 'Tensors to train: regexes or globs over HF names (norm, layers\\.11\\., lm_head)', start: ['norm'] },
      { name: 'exclude', kind: 'list', label: 'Exclude', explain: 'Tensors to keep frozen although named above' },
    ],
  },
  FULL: {
    summary: 'Every weight trains and a whole model is saved: the baseline, and the most memory',
    fields: [{ name: 'save_dtype', kind: 'choice', label: 'Save as', explain: "Precision of the saved model; auto: the base checkpoint's", choices: ['auto', 'float32', 'bfloat16', 'float16'] }],
  },
  BOTTLENECK: {
    summary: 'Small bottleneck layers inserted after attention and/or the feed-forward (Houlsby / Pfeiffer)',
    fields: [
      { name: 'architecture', kind: 'choice', label: 'Architecture', explain: 'pfeiffer: after the feed-forward only; houlsby: after attention too', choices: ['pfeiffer', 'houlsby'] },
      { name: 'reduction_factor', kind: 'number', label: 'Reduction factor', explain: 'Hidden size ÷ bottleneck width: smaller is larger', min: 1 },
      { name: 'non_linearity', kind: 'choice', label: 'Activation', explain: 'Inside the bottleneck (the architecture picks one when left alone)', choices: ['relu', 'gelu', 'silu', 'swish', 'tanh'] },
      { name: 'scaling', kind: 'number', label: 'Scaling', explain: "Multiplies the adapter's output before the residual" },
      { name: 'init_weights', kind: 'choice', label: 'Init', explain: 'mam_adapter starts as the identity (the base model unchanged)', choices: ['mam_adapter', 'bert', 'houlsby'] },
      { name: 'leave_out', kind: 'list', items: 'integer', label: 'Leave out layers', explain: 'Layer indices (0-based) without an adapter' },
    ],
  },
  ADAPTER_FUSION: {
    summary: 'Learns to mix several trained bottleneck adapters with attention over their outputs',
    parseWith: { adapters: ['a'], adapter_configs: { a: { peft_type: 'BOTTLENECK' } } },
    fields: [
      { name: 'adapter_paths', kind: 'list', label: 'Adapters to fuse', explain: 'Folders of trained BOTTLENECK adapters (comma-separated); each is named after its folder', start: null },
      { name: 'query', kind: 'boolean', label: 'Query projection', explain: 'Train a query projection' },
      { name: 'key', kind: 'boolean', label: 'Key projection', explain: 'Train a key projection' },
      { name: 'value', kind: 'boolean', label: 'Value projection', explain: 'Train a value projection' },
      { name: 'value_before_softmax', kind: 'boolean', label: 'Value before mixing', explain: "Project each adapter's output before the weighted sum" },
      { name: 'regularization', kind: 'boolean', label: 'Regularize', explain: 'Keep the value projection near the identity' },
      { name: 'dropout_prob', kind: 'number', label: 'Dropout', explain: 'Dropout on the fusion scores; empty: none', min: 0, max: 1 },
    ],
  },
  LONGLORA: {
    summary: "Extends a model's context: shifted sparse attention, LoRA plus trained embeddings and norms",
    fields: [
      { name: 'model_max_length', kind: 'integer', label: 'Row length', explain: 'Training length T: every row exactly this many tokens, a multiple of 2 / group ratio', min: 8, start: 512 },
      { name: 'group_size_ratio', kind: 'number', label: 'Group ratio', explain: 'S²-Attn group size as a fraction of T (1/n)', min: 0, max: 1 },
      { name: 'trainable_params', kind: 'list', label: 'Also train', explain: 'Checkpoint tensors trained with the LoRA (embed, norm); empty: LoRA only' },
      targets(),
      rank(),
      alpha,
      dropout(),
    ],
  },
  PROMPT_TUNING: {
    summary: 'Trains a few virtual token embeddings put before every row; the model is untouched',
    fields: [
      virtualTokens,
      { name: 'prompt_tuning_init', kind: 'choice', label: 'Init', explain: 'RANDOM, or TEXT: start from the embeddings of an init text', choices: ['RANDOM', 'TEXT'] },
      { name: 'prompt_tuning_init_text', kind: 'string', label: 'Init text', explain: 'With TEXT: a phrase describing the task' },
      { name: 'tokenizer_name_or_path', kind: 'string', label: 'Tokenizer', explain: "With TEXT: the base model's folder (PEFT needs it to load the adapter); empty: the model in use" },
      { name: 'num_prompts', kind: 'integer', label: 'Prompts', explain: 'Train this many prompts side by side (a prompt ensemble); empty: 1', min: 1 },
    ],
  },
  P_TUNING: {
    summary: 'Virtual tokens produced by a small trained encoder (MLP or LSTM)',
    fields: [
      virtualTokens,
      { name: 'encoder_reparameterization_type', kind: 'choice', label: 'Encoder', explain: 'The network that produces the virtual tokens', choices: ['MLP', 'LSTM'] },
      encoderHidden,
      { name: 'encoder_num_layers', kind: 'integer', label: 'Encoder layers', explain: 'LSTM layers (the MLP always has 2)', min: 1 },
      { name: 'encoder_dropout', kind: 'number', label: 'Encoder dropout', explain: 'Between LSTM layers while training, in [0, 1)', min: 0, max: 1 },
    ],
  },
  PREFIX_TUNING: {
    summary: "Trained key/value prefixes in every layer's attention",
    fields: [
      virtualTokens,
      { name: 'prefix_projection', kind: 'boolean', label: 'Projection', explain: 'Train the prefixes through a small MLP (steadier training)' },
      encoderHidden,
    ],
  },
};

/** The run's training block (parseRunConfig's `training`): label, explanation and range of each field the form shows. */
export const TRAINING_SPECS: readonly FieldSpec[] = [
  { name: 'maxSteps', kind: 'integer', label: 'Steps', explain: 'Optimizer steps to train; empty: epochs × steps per epoch', min: 1 },
  { name: 'epochs', kind: 'integer', label: 'Epochs', explain: 'Passes over the training rows (when steps is empty)', min: 1 },
  { name: 'lr', kind: 'number', label: 'Learning rate', explain: 'Peak learning rate (LoRA: 1e-4 … 5e-4; full fine-tuning: ~1e-5)', min: 0 },
  { name: 'microBatchSize', kind: 'integer', label: 'Micro-batch', explain: 'Rows per forward/backward pass: memory grows with it', min: 1 },
  { name: 'gradientAccumulation', kind: 'integer', label: 'Gradient accumulation', explain: 'Micro-batches per optimizer step (effective batch = micro-batch × this)', min: 1 },
  { name: 'maxLength', kind: 'integer', label: 'Max length', explain: 'Tokens per row; longer rows are cut. Memory grows with it', min: 1 },
  { name: 'packing', kind: 'boolean', label: 'Packing', explain: 'Pack several short examples into one row (faster, same loss)' },
  { name: 'schedule', kind: 'choice', label: 'Schedule', explain: 'How the learning rate decays after warm-up', choices: ['cosine', 'linear', 'constant'] },
  { name: 'warmupSteps', kind: 'integer', label: 'Warm-up steps', explain: 'Steps of linear warm-up from 0 to the learning rate', min: 0 },
  { name: 'maxGradNorm', kind: 'number', label: 'Max grad norm', explain: 'Gradients are clipped to this norm', min: 0 },
  { name: 'evalEvery', kind: 'integer', label: 'Eval every', explain: 'Steps between two eval-loss measurements', min: 1 },
  { name: 'checkpointEvery', kind: 'integer', label: 'Save every', explain: 'Steps between two checkpoints (pause and resume continue from the newest)', min: 1 },
  { name: 'keepCheckpoints', kind: 'integer', label: 'Keep checkpoints', explain: 'Newest checkpoints kept on disk', min: 1 },
  { name: 'earlyStoppingPatience', kind: 'integer', label: 'Early stopping', explain: 'Stop when the eval loss has not improved for this many evals; empty: off', min: 1 },
  { name: 'seed', kind: 'integer', label: 'Seed', explain: 'Seeds the initial adapter, dropout and the order of the rows' },
  { name: 'recompute', kind: 'boolean', label: 'Gradient checkpointing', explain: 'Recompute activations in the backward pass: less memory, ~30% slower' },
  { name: 'mixedPrecision', kind: 'boolean', label: 'Mixed precision', explain: 'float16 compute with loss scaling (for GPUs)' },
];

/** The run's dataset block besides its path. */
export const DATASET_SPECS: readonly FieldSpec[] = [
  { name: 'evalFraction', kind: 'number', label: 'Eval fraction', explain: 'Share of the rows held out to measure the eval loss, in [0, 1)', min: 0, max: 1 },
  { name: 'trainOn', kind: 'choice', label: 'Train on', explain: "assistant: loss on the answers only (chat data); all: on every token", choices: ['assistant', 'all'] },
];
