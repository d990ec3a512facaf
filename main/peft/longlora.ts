// LongLoRA (Chen et al. 2023): extends a model's context cheaply. Training: LoRA on the attention projections,
// the embeddings and norms trained alongside ("LoRA+"), RoPE position interpolation, and S²-Attn — attention
// inside groups of a quarter of the row, half the heads shifted by half a group — so the long rows cost a fraction
// of full attention. Inference: the same tensors and interpolation with full attention (`attention: 'full'`).
// Rows are single unpacked sequences of exactly model_max_length tokens (checkLongLoraRows says so when not).
import type { Graph } from '../engine/ir/index.ts';
import { checkpointTensors, trainableTensors, withTrainableTensors } from './base-tensors.ts';
import { PeftError } from './errors.ts';
import { groupCount, groupSize, loraPart, parseLongLoraConfig, type LongLoraConfig } from './longlora-config.ts';
import { withLinearRopeScaling, withShiftedSparseAttention } from './longlora-rewrite.ts';
import { applyLora } from './lora.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod } from './method.ts';
import { saveAdapter, savedKey } from './peft-io.ts';
import { selectTensors } from './tensor-patterns.ts';

export interface LongLoraOptions extends ApplyOptions {
  /** 's2' (default): the training graph, with S²-Attn at model_max_length; 'full': full attention, any length (inference, eval). */
  readonly attention?: 's2' | 'full';
}

/**
 * Order: the attention and RoPE rewrites act on the base graph; LoRA then adapts the projections; the chosen
 * checkpoint tensors (embeddings, norms) become trainable inputs read wherever the frozen ones were.
 */
export const applyLongLora = (graph: Graph, config: LongLoraConfig, o: LongLoraOptions = {}): AdaptedGraph => {
  let g = graph;
  if ((o.attention ?? 's2') === 's2') g = withShiftedSparseAttention(g, { sequenceLength: config.model_max_length, groupSize: groupSize(config) });
  if (config.rope_scaling) g = withLinearRopeScaling(g, config.rope_scaling.factor);
  const lora = applyLora(g, loraPart(config), o);
  if (config.trainable_params === null) return lora;
  const chosen = selectTensors(checkpointTensors(lora.graph), {
    include: config.trainable_params,
    exclude: null,
    includeField: 'trainable_params',
    excludeField: 'trainable_params',
    method: 'LONGLORA',
  });
  const extra = withTrainableTensors(lora.graph, trainableTensors(lora.graph, chosen, 'LONGLORA'));
  return { graph: extra.graph, params: [...lora.params, ...extra.params], modules: new Map([...lora.modules, ...extra.modules]) };
};

/** A training example as LongLoRA sees it: its token ids. */
export interface TokenRow {
  readonly inputIds: readonly number[];
}

/**
 * Refuses training data S²-Attn cannot take: packed rows (attention would cross examples inside a group) and rows
 * of any length but model_max_length (the groups are cut at fixed positions). `where` names the data in the message.
 */
export const checkLongLoraRows = (rows: readonly TokenRow[], config: LongLoraConfig, o: { readonly packing?: boolean; readonly where: string }): void => {
  const T = config.model_max_length;
  const rule =
    `LongLoRA's S²-Attn trains unpacked fixed-length rows: every row one sequence of exactly model_max_length=${T} tokens ` +
    `(${groupCount(config.group_size_ratio)} groups of ${groupSize(config)}), e.g. chunks of long documents (longLoraRows)`;
  if (o.packing) throw new PeftError(`${o.where}: packing is on; ${rule}`);
  const bad = rows.findIndex((r) => r.inputIds.length !== T);
  if (bad >= 0) throw new PeftError(`${o.where}: row ${bad} has ${rows[bad]!.inputIds.length} tokens; ${rule}`);
};

/**
 * Consecutive rows of `length` tokens from a token stream (the remainder is dropped), labels = inputs. With `bos`,
 * each row is that token followed by the next length − 1 tokens of the stream, as a tokenizer that adds BOS has it.
 */
export const longLoraRows = (tokens: ArrayLike<number>, length: number, o: { readonly bos?: number } = {}): { inputIds: number[]; labels: number[] }[] => {
  const lead = o.bos === undefined ? [] : [o.bos];
  const take = length - lead.length;
  const rows: { inputIds: number[]; labels: number[] }[] = [];
  for (let start = 0; start + take <= tokens.length; start += take) {
    const ids = [...lead, ...Array.from({ length: take }, (_, i) => tokens[start + i]!)];
    rows.push({ inputIds: ids, labels: ids });
  }
  return rows;
};

/**
 * The adapter folder: LoRA's tensors under PEFT's keys, the trained embeddings and norms under their in-memory keys
 * (`base_model.model.model.embed_tokens.weight`, as LongLoRA's trainable_params.bin holds them), and the config
 * with the rope scaling the model must be read with.
 */
export const saveLongLoraAdapter = (dir: string, config: LongLoraConfig, params: AdaptedGraph['params'], adapter = 'default'): void =>
  saveAdapter(dir, { ...config }, params, adapter);

export const longLoraMethod: PeftMethod<LongLoraConfig> = {
  peftType: 'LONGLORA',
  label: 'LongLoRA (context extension: S²-Attn, trainable embeddings and norms, RoPE interpolation)',
  parseConfig: parseLongLoraConfig,
  apply: applyLongLora,
  savedKey,
};
