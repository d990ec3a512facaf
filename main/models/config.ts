import { ModelLoadError } from './errors.ts';

export type RopeScaling =
  | { readonly type: 'default' }
  /** Per-frequency divisors as llama.cpp stores them (GGUF rope_freqs.weight: llama3 scaling baked in). */
  | { readonly type: 'freq_factors'; readonly factors: Float32Array }
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** What the engine needs of a decoder-only model's config.json (Hugging Face field meanings). */
export interface ModelConfig {
  readonly architecture: string;
  readonly modelType: string;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  readonly attentionBias: boolean;
  readonly slidingWindow?: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
}

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'] as const;

const ropeScalingOf = (raw: Record<string, unknown> | null | undefined, file: string): RopeScaling => {
  if (!raw) return { type: 'default' };
  const type = String(raw.rope_type ?? raw.type ?? 'default');
  const num = (k: string): number => {
    const v = raw[k];
    if (typeof v !== 'number') throw new ModelLoadError(`${file}: rope_scaling.${k} is missing for rope type '${type}'`, file);
    return v;
  };
  if (type === 'default') return { type };
  if (type === 'linear') return { type, factor: num('factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
    };
  }
  throw new ModelLoadError(`${file}: rope scaling '${type}' is not supported (supported: default, linear, llama3)`, file);
};

/** Validates a parsed config.json; `file` names it in errors. */
export const parseModelConfig = (raw: Record<string, unknown>, file: string): ModelConfig => {
  const architecture = (raw.architectures as string[] | undefined)?.[0];
  if (!architecture) throw new ModelLoadError(`${file}: no 'architectures' entry`, file);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw new ModelLoadError(`${file}: architecture ${architecture} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`, file);
  }
  const required = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size'];
  const missing = required.filter((k) => typeof raw[k] !== 'number');
  if (missing.length) throw new ModelLoadError(`${file}: missing or non-numeric keys: ${missing.join(', ')}`, file);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ModelLoadError(`${file}: hidden_act '${String(act)}' is not supported (silu only)`, file);
  const n = (k: string) => raw[k] as number;
  const numHeads = n('num_attention_heads');
  const eos = raw.eos_token_id;
  const modelType = String(raw.model_type ?? architecture.replace('ForCausalLM', '').toLowerCase());
  const sliding = raw.use_sliding_window === false ? undefined : (raw.sliding_window as number | null | undefined) ?? undefined;
  return {
    architecture,
    modelType,
    hiddenSize: n('hidden_size'),
    intermediateSize: n('intermediate_size'),
    numLayers: n('num_hidden_layers'),
    numHeads,
    numKvHeads: typeof raw.num_key_value_heads === 'number' ? raw.num_key_value_heads : numHeads,
    headDim: typeof raw.head_dim === 'number' ? raw.head_dim : n('hidden_size') / numHeads,
    vocabSize: n('vocab_size'),
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-6,
    ropeTheta: typeof raw.rope_theta === 'number' ? raw.rope_theta : 10000,
    ropeScaling: ropeScalingOf(raw.rope_scaling as Record<string, unknown> | null, file),
    maxPositionEmbeddings: typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 2048,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    // Qwen2 always has q/k/v biases; Llama-family configs say so with attention_bias.
    attentionBias: architecture === 'Qwen2ForCausalLM' || raw.attention_bias === true,
    ...(typeof sliding === 'number' ? { slidingWindow: sliding } : {}),
    ...(typeof raw.bos_token_id === 'number' ? { bosTokenId: raw.bos_token_id } : {}),
    eosTokenIds: Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [],
  };
};
