import type { GgufFile, GgufValue } from './reader.ts';
import { GgufError } from './types.ts';

/**
 * GGUF metadata → a Hugging Face config.json-shaped object (so models/config.ts's parseModelConfig validates GGUF
 * and HF folders alike), plus the tokenizer metadata and chat template, exposed raw for the tokenizer module.
 * Keys are `<arch>.<name>` (llama.cpp's LLM_KV names); e.g. `llama.embedding_length`.
 */

const HF_ARCHITECTURES: Readonly<Record<string, { readonly architecture: string; readonly modelType: string }>> = {
  llama: { architecture: 'LlamaForCausalLM', modelType: 'llama' },
  qwen2: { architecture: 'Qwen2ForCausalLM', modelType: 'qwen2' },
  qwen3: { architecture: 'Qwen3ForCausalLM', modelType: 'qwen3' },
};

/** Name of llama.cpp's precomputed llama3-style rope frequency factors (no HF counterpart). */
export const ROPE_FREQS_TENSOR = 'rope_freqs.weight';

export type HfStyleConfig = Record<string, unknown> & {
  readonly architectures: readonly string[];
  readonly model_type: string;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly max_position_embeddings: number;
  readonly vocab_size: number;
  readonly tie_word_embeddings: boolean;
  readonly rope_scaling: Record<string, unknown> | null;
};

const requireNumber = (file: GgufFile, key: string): number => {
  const v = file.number(key);
  if (v === undefined) throw new GgufError('missing-key', file.path, `metadata '${key}' is missing or not a number`);
  return v;
};

/** Stored as float32 in GGUF: 1e-5 reads back as 9.999999747378752e-06. Round to the float32's shortest decimal. */
const f32Decimal = (v: number): number => {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === Math.fround(v)) return d;
  }
  return v;
};

const ropeScalingOf = (file: GgufFile, arch: string): Record<string, unknown> | null => {
  const type = file.string(`${arch}.rope.scaling.type`);
  const factor = file.number(`${arch}.rope.scaling.factor`) ?? file.number(`${arch}.rope.scale_linear`);
  if (type === 'linear' || (type === undefined && factor !== undefined && factor !== 1)) {
    return { rope_type: 'linear', factor: f32Decimal(factor ?? 1) };
  }
  if (type === 'yarn') {
    const original = file.number(`${arch}.rope.scaling.original_context_length`);
    return { rope_type: 'yarn', factor: f32Decimal(factor ?? 1), ...(original !== undefined ? { original_max_position_embeddings: original } : {}) };
  }
  // 'none', absent, or llama3 (which llama.cpp stores as the rope_freqs tensor, not as metadata: see ggufRopeFreqs).
  return null;
};

/** The HF config.json equivalent of a GGUF's metadata. */
export const ggufHfConfig = (file: GgufFile): HfStyleConfig => {
  const arch = file.architecture;
  if (!arch) throw new GgufError('missing-key', file.path, `metadata 'general.architecture' is missing`);
  const hf = HF_ARCHITECTURES[arch];
  if (!hf) {
    throw new GgufError('unsupported-architecture', file.path, `architecture '${arch}' is not supported (supported: ${Object.keys(HF_ARCHITECTURES).join(', ')})`);
  }
  const k = (name: string): string => `${arch}.${name}`;
  const heads = requireNumber(file, k('attention.head_count'));
  const tokens = file.array('tokenizer.ggml.tokens');
  const embd = file.tensor('token_embd.weight');
  const vocab = tokens?.length ?? file.number(k('vocab_size')) ?? embd?.dims[1];
  if (vocab === undefined) throw new GgufError('missing-key', file.path, 'cannot tell the vocabulary size: no tokenizer.ggml.tokens, vocab_size or token_embd.weight');
  const headDim = file.number(k('attention.key_length'));
  const eos = file.number('tokenizer.ggml.eos_token_id');
  const eot = file.number('tokenizer.ggml.eot_token_id');
  const bos = file.number('tokenizer.ggml.bos_token_id');
  const pad = file.number('tokenizer.ggml.padding_token_id');
  return {
    architectures: [hf.architecture],
    model_type: hf.modelType,
    hidden_act: 'silu',
    hidden_size: requireNumber(file, k('embedding_length')),
    intermediate_size: requireNumber(file, k('feed_forward_length')),
    num_hidden_layers: requireNumber(file, k('block_count')),
    num_attention_heads: heads,
    num_key_value_heads: file.number(k('attention.head_count_kv')) ?? heads,
    ...(headDim !== undefined ? { head_dim: headDim } : {}),
    rms_norm_eps: f32Decimal(requireNumber(file, k('attention.layer_norm_rms_epsilon'))),
    rope_theta: f32Decimal(file.number(k('rope.freq_base')) ?? 10000),
    rope_scaling: ropeScalingOf(file, arch),
    max_position_embeddings: requireNumber(file, k('context_length')),
    vocab_size: vocab,
    // llama.cpp omits output.weight when the LM head is the embedding matrix.
    tie_word_embeddings: file.tensor('output.weight') === undefined,
    attention_bias: arch === 'qwen2' || file.tensor('blk.0.attn_q.bias') !== undefined,
    ...(bos !== undefined ? { bos_token_id: bos } : {}),
    // Chat models stop at the end-of-turn token too when the GGUF names one apart from eos.
    ...(eos !== undefined ? { eos_token_id: eot !== undefined && eot !== eos ? [eos, eot] : eos } : {}),
    ...(pad !== undefined ? { pad_token_id: pad } : {}),
  };
};

/**
 * llama.cpp's llama3 rope scaling lives in a tensor of per-frequency divisors rather than in metadata;
 * this names it when present so the rope can use the factors directly.
 */
export const ggufRopeFreqs = (file: GgufFile): string | undefined => (file.tensor(ROPE_FREQS_TENSOR) ? ROPE_FREQS_TENSOR : undefined);

export const ggufChatTemplate = (file: GgufFile): string | undefined => file.string('tokenizer.chat_template');

/** The tokenizer as llama.cpp stores it (tokenizer.ggml.*), unchanged. */
export interface GgufTokenizerMetadata {
  /** 'gpt2' (byte-level BPE), 'llama' (SentencePiece), ... */
  readonly model: string | undefined;
  /** Pre-tokenizer name, e.g. 'smollm', 'llama-bpe', 'qwen2'. */
  readonly pre: string | undefined;
  readonly tokens: readonly string[];
  readonly merges: readonly string[] | undefined;
  readonly tokenTypes: readonly number[] | undefined;
  readonly scores: readonly number[] | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly eotTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unknownTokenId: number | undefined;
  readonly addBosToken: boolean | undefined;
  readonly addEosToken: boolean | undefined;
  readonly addSpacePrefix: boolean | undefined;
}

const stringArray = (v: readonly GgufValue[] | undefined): readonly string[] | undefined =>
  v?.every((x) => typeof x === 'string') ? (v as readonly string[]) : undefined;
const numberArray = (v: readonly GgufValue[] | undefined): readonly number[] | undefined =>
  v?.every((x) => typeof x === 'number') ? (v as readonly number[]) : undefined;

export const ggufTokenizer = (file: GgufFile): GgufTokenizerMetadata => {
  const tokens = stringArray(file.array('tokenizer.ggml.tokens'));
  if (!tokens) throw new GgufError('missing-key', file.path, `metadata 'tokenizer.ggml.tokens' is missing: the file has no tokenizer`);
  return {
    model: file.string('tokenizer.ggml.model'),
    pre: file.string('tokenizer.ggml.pre'),
    tokens,
    merges: stringArray(file.array('tokenizer.ggml.merges')),
    tokenTypes: numberArray(file.array('tokenizer.ggml.token_type')),
    scores: numberArray(file.array('tokenizer.ggml.scores')),
    bosTokenId: file.number('tokenizer.ggml.bos_token_id'),
    eosTokenId: file.number('tokenizer.ggml.eos_token_id'),
    eotTokenId: file.number('tokenizer.ggml.eot_token_id'),
    padTokenId: file.number('tokenizer.ggml.padding_token_id'),
    unknownTokenId: file.number('tokenizer.ggml.unknown_token_id'),
    addBosToken: file.bool('tokenizer.ggml.add_bos_token'),
    addEosToken: file.bool('tokenizer.ggml.add_eos_token'),
    addSpacePrefix: file.bool('tokenizer.ggml.add_space_prefix'),
  };
};
