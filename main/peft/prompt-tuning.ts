// Prompt tuning (Lester et al., 2021) with HF PEFT's (0.17) config and saved tensor: V trainable embeddings before
// every row's tokens (PEFT's PromptEmbedding), initialised at random (N(0, 1), nn.Embedding's default) or from the
// word embeddings of a text (prompt_tuning_init TEXT). Ours on top: prompt ensembles (num_prompts K): K prompts for
// one task trained in one batch, row b of every micro-batch using prompt b mod K, so the loss is the token mean over
// all K; they are saved as K PEFT adapters, <dir>/prompt-<k>/, listed in <dir>/prompt_ensemble.json. (A TEXT init
// starts every prompt from the same text; RANDOM gives each its own draw.)
import { closeSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Graph, concat, unsqueeze } from '../engine/ir/index.ts';
import { halfToFloat } from '../engine/io/safetensors.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { fieldChecker } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, TrainableTensor } from './method.ts';
import {
  type PromptLearningFields, type PromptLearningMethod, type PromptModelDims, type VirtualTokenSpec,
  checkPromptLearningFields, promptEncoderKey, savedCommonFields, substituteVirtualTokens, trainable, writePromptEmbeddings,
} from './virtual-tokens.ts';

export interface PromptTuningConfig extends PromptLearningFields {
  readonly peft_type: 'PROMPT_TUNING';
  readonly prompt_tuning_init: 'RANDOM' | 'TEXT';
  readonly prompt_tuning_init_text?: string | null;
  /** PEFT requires it with TEXT (it loads that tokenizer); PEFT Studio tokenizes with the model's own (initTokenIds). */
  readonly tokenizer_name_or_path?: string | null;
  readonly tokenizer_kwargs?: Readonly<Record<string, unknown>> | null;
  /** Ours: K prompts trained side by side (prompt ensembling); 1 = plain prompt tuning. Not written to saved configs. */
  readonly num_prompts?: number;
}

const OWN_FIELDS = ['prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs', 'num_prompts'];

export const parsePromptTuningConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<PromptTuningConfig> => {
  const c = { prompt_tuning_init: 'RANDOM', ...raw } as PromptTuningConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'PROMPT_TUNING') fail('peft_type', "is not 'PROMPT_TUNING'");
  const warnings = checkPromptLearningFields(c, fail, OWN_FIELDS, where);
  if (c.prompt_tuning_init !== 'RANDOM' && c.prompt_tuning_init !== 'TEXT') fail('prompt_tuning_init', "must be 'RANDOM' or 'TEXT'");
  if (c.prompt_tuning_init === 'TEXT') {
    if (typeof c.prompt_tuning_init_text !== 'string' || c.prompt_tuning_init_text === '') fail('prompt_tuning_init_text', "must be the init text when prompt_tuning_init is 'TEXT'");
    if (typeof c.tokenizer_name_or_path !== 'string' || c.tokenizer_name_or_path === '') {
      fail('tokenizer_name_or_path', "must be set when prompt_tuning_init is 'TEXT' (PEFT refuses to load the adapter without it): the base model's name or folder");
    }
  } else if (c.tokenizer_kwargs) fail('tokenizer_kwargs', "is only valid with prompt_tuning_init 'TEXT' (as in PEFT)");
  if (c.num_prompts !== undefined && !(Number.isInteger(c.num_prompts) && c.num_prompts > 0)) fail('num_prompts', 'must be a positive integer');
  return { config: c, warnings };
};

export const promptTuningVirtualTokens = (c: PromptTuningConfig): VirtualTokenSpec => ({
  kind: 'embeddings',
  count: c.num_virtual_tokens,
  ...(c.num_prompts && c.num_prompts > 1 ? { prompts: c.num_prompts } : {}),
});

export interface PromptTuningOptions extends ApplyOptions {
  /**
   * prompt_tuning_init TEXT: prompt_tuning_init_text tokenized by the model's tokenizer with its special tokens, as
   * PEFT's tokenizer(text)["input_ids"]; repeated or cut to num_virtual_tokens as PEFT does.
   */
  readonly initTokenIds?: readonly number[];
}

/** The adapter name of prompt k of an ensemble (K > 1); a plain prompt keeps the adapter's own name. */
export const ensembleAdapterName = (adapter: string, k: number, K: number): string => (K > 1 ? `${adapter}_prompt${k}` : adapter);

const EMBED = 'model.embed_tokens.weight';
const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);
const bfloat16ToFloat = (b: number): number => ((bits[0] = b << 16), asFloat[0]!);

/** Rows `ids` of the model's word embeddings (only those rows are read: vocabularies are large). */
export const wordEmbeddingRows = (graph: Graph, ids: readonly number[]): Float32Array => {
  if (!graph.has(EMBED) || !graph.initializers.has(graph.idOf(EMBED))) throw new PeftError(`prompt_tuning_init TEXT needs the model's '${EMBED}' in the graph`);
  const id = graph.idOf(EMBED);
  const { dtype, shape } = graph.value(id).type;
  const [vocab, C] = shape as [number, number];
  const init = graph.initializers.get(id)!;
  const size = dtype === 'float32' ? 4 : dtype === 'bfloat16' || dtype === 'float16' ? 2 : 0;
  if (size === 0) throw new PeftError(`'${EMBED}' has dtype ${dtype}; TEXT init reads float32, bfloat16 or float16 embeddings`);
  const out = new Float32Array(ids.length * C);
  const fd = init.kind === 'inline' ? undefined : openSync(init.file, 'r');
  try {
    ids.forEach((tok, r) => {
      if (!(Number.isInteger(tok) && tok >= 0 && tok < vocab)) throw new PeftError(`init text token id ${tok} is outside the vocabulary (0..${vocab - 1})`);
      let bytes: Buffer;
      if (init.kind === 'inline') {
        const d = init.data;
        bytes = Buffer.from(d.buffer, d.byteOffset + tok * C * size, C * size);
      } else {
        bytes = Buffer.alloc(C * size);
        readSync(fd!, bytes, 0, C * size, init.offset + tok * C * size);
      }
      for (let i = 0; i < C; i++) {
        out[r * C + i] = size === 4 ? bytes.readFloatLE(4 * i) : dtype === 'bfloat16' ? bfloat16ToFloat(bytes.readUInt16LE(2 * i)) : halfToFloat(bytes.readUInt16LE(2 * i));
      }
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return out;
};

/** PEFT's PromptEmbedding init for `V` tokens: the text's ids cut to V, or repeated until they fill V. */
export const textInitIds = (ids: readonly number[], V: number): number[] => {
  if (ids.length === 0) throw new PeftError('prompt_tuning_init_text tokenizes to no tokens');
  return Array.from({ length: V }, (_, i) => ids[i % ids.length]!);
};

export const applyPromptTuning = (graph: Graph, config: PromptTuningConfig, o: PromptTuningOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const V = config.num_virtual_tokens;
  const K = config.num_prompts ?? 1;
  const params: TrainableTensor[] = [];
  const adapted = substituteVirtualTokens(graph, 'embeddings', 'PROMPT_TUNING', (g, shape) => {
    const C = shape.at(-1)!;
    const want = K > 1 ? [K, V, C] : [V, C];
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new PeftError(`PROMPT_TUNING with num_virtual_tokens=${V}${K > 1 ? `, num_prompts=${K}` : ''} needs virtual embeddings [${want.join(', ')}]; the graph was built with [${shape.join(', ')}]`);
    }
    if ((config.token_dim ?? C) !== C) throw new PeftError(`PROMPT_TUNING: token_dim=${config.token_dim}, but this model's hidden size is ${C} (a config for another base model?)`);
    let text: Float32Array | undefined;
    if (config.prompt_tuning_init === 'TEXT') {
      if (!o.initTokenIds) throw new PeftError("prompt_tuning_init 'TEXT' needs initTokenIds: prompt_tuning_init_text tokenized with the model's tokenizer");
      text = wordEmbeddingRows(graph, textInitIds(o.initTokenIds, V));
    }
    const rng = createRng(o.seed ?? 0);
    for (let k = 0; k < K; k++) {
      const name = promptEncoderKey(ensembleAdapterName(adapter, k, K), 'embedding.weight');
      params.push(trainable(name, [V, C], text ? Float32Array.from(text) : normalArray(V * C, 1, rng), 'prompt_embeddings'));
    }
    const prompts = params.map((p) => g.input(p.name, 'float32', p.shape)); // K × (V, C)
    return K > 1 ? concat(prompts.map((t) => unsqueeze(t, [0])), 0, 'prompt_encoder.prompts') : prompts[0]!; // (K, V, C) or (V, C)
  });
  return { graph: adapted, params, modules: new Map([['prompt_encoder', { num_virtual_tokens: V, num_prompts: K }]]) };
};

export const PROMPT_ENSEMBLE_FILE = 'prompt_ensemble.json';

/** The adapter_config.json PEFT writes for this config on a model of these sizes (without our num_prompts). */
export const savedPromptTuningConfig = (c: PromptTuningConfig, dims: PromptModelDims): Record<string, unknown> => ({
  ...savedCommonFields(c, { token_dim: dims.hiddenSize, num_attention_heads: dims.numHeads, num_layers: dims.numLayers }),
  peft_type: 'PROMPT_TUNING',
  prompt_tuning_init: c.prompt_tuning_init,
  prompt_tuning_init_text: c.prompt_tuning_init_text ?? null,
  tokenizer_kwargs: c.tokenizer_kwargs ?? null,
  tokenizer_name_or_path: c.tokenizer_name_or_path ?? null,
});

/**
 * Saves as PEFT does (adapter_model.safetensors {prompt_embeddings (V, C)}); an ensemble as K such adapters in
 * <dir>/prompt-<k>/ and a prompt_ensemble.json naming them. Returns the adapter folders written.
 */
export const savePromptTuningAdapter = (dir: string, config: PromptTuningConfig, params: readonly TrainableTensor[], dims: PromptModelDims, o: ApplyOptions = {}): string[] => {
  const adapter = o.adapterName ?? 'default';
  const K = config.num_prompts ?? 1;
  const saved = savedPromptTuningConfig(config, dims);
  const byName = new Map(params.map((p) => [p.name, p]));
  const dirs = Array.from({ length: K }, (_, k) => {
    const name = promptEncoderKey(ensembleAdapterName(adapter, k, K), 'embedding.weight');
    const p = byName.get(name);
    if (!p) throw new PeftError(`PROMPT_TUNING save: tensor '${name}' is missing`);
    const target = K > 1 ? join(dir, `prompt-${k}`) : dir;
    writePromptEmbeddings(target, saved, p);
    return target;
  });
  if (K > 1) {
    mkdirSync(dir, { recursive: true });
    const ensemble = { peft_type: 'PROMPT_TUNING', num_prompts: K, row_assignment: 'row b of a micro-batch uses prompt b mod num_prompts', adapters: dirs.map((_, k) => `prompt-${k}`) };
    writeFileSync(join(dir, PROMPT_ENSEMBLE_FILE), `${JSON.stringify(ensemble, null, 2)}\n`);
  }
  return dirs;
};

/** In-memory key → saved key: every prompt's embedding is saved as `prompt_embeddings` (in its own folder). */
const promptTuningSavedKey = (key: string): string => (/^prompt_encoder\.[^.]+\.embedding\.weight$/.test(key) ? 'prompt_embeddings' : key);

export const promptTuningMethod: PromptLearningMethod<PromptTuningConfig, PromptTuningOptions> = {
  peftType: 'PROMPT_TUNING',
  label: 'Prompt tuning',
  parseConfig: parsePromptTuningConfig,
  apply: applyPromptTuning,
  savedKey: promptTuningSavedKey,
  saveAdapter: (dir, config, params, dims, o) => void savePromptTuningAdapter(dir, config, params, dims, o),
  virtualTokens: promptTuningVirtualTokens,
};
