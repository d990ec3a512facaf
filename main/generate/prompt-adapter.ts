// Chat with a prompt-learning adapter (PEFT's PROMPT_TUNING, P_TUNING, PREFIX_TUNING). All three become a fixed
// key/value prefix of every layer, baked into the KV-cache generation graph as constants: prefix tuning's saved
// prefixes directly; prompt tuning's and P-tuning's virtual embeddings through one run of the decoder over them
// (virtual tokens come first and only see each other, so their keys and values never depend on the prompt). The
// generator then runs as for the base model; the graph shifts positions by V and lets every token see the prefix,
// as PEFT's generate does.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, type Graph } from '../engine/ir/index.ts';
import { Session, type SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { decoder } from '../models/llama.ts';
import { WeightBinder } from '../models/weights.ts';
import { PeftError } from '../peft/errors.ts';
import { parsePTuningConfig } from '../peft/p-tuning.ts';
import { parsePrefixTuningConfig } from '../peft/prefix-tuning.ts';
import { PROMPT_ENSEMBLE_FILE, parsePromptTuningConfig } from '../peft/prompt-tuning.ts';
import { type LoadedPromptAdapter, type PromptLearningType, VIRTUAL_TOKEN_INPUTS, readPromptAdapter } from '../peft/virtual-tokens.ts';
import { Generator } from './generator.ts';
import { buildGenerationGraph } from './kv-graph.ts';
import { bakeAdapterTensors } from './method-adapter.ts';

const PARSERS: Readonly<Record<PromptLearningType, (raw: Record<string, unknown>, where: string) => { readonly warnings: readonly string[] }>> = {
  PROMPT_TUNING: parsePromptTuningConfig,
  P_TUNING: parsePTuningConfig,
  PREFIX_TUNING: parsePrefixTuningConfig,
};

/** A PEFT prompt-learning adapter folder, its config checked by its method's parser. */
export const readPromptLearningAdapter = (dir: string): LoadedPromptAdapter => {
  if (existsSync(join(dir, PROMPT_ENSEMBLE_FILE))) {
    throw new PeftError(`${dir} holds a prompt ensemble (${PROMPT_ENSEMBLE_FILE}): open one of its prompts, ${join(dir, 'prompt-0')} …`);
  }
  return readPromptAdapter(dir, (type, raw, where) => PARSERS[type](raw, where));
};

/**
 * The keys and values (V, L, 2, Hkv, D) that virtual embeddings (V, C) leave in every layer at positions 0..V−1:
 * the decoder's virtual-token stream, run once (with one placeholder token, which the stream never sees).
 */
export const virtualEmbeddingKeyValues = async (model: LoadedModel, embeddings: Float32Array, session: SessionOptions = {}): Promise<Float32Array> => {
  const { hiddenSize: C, numLayers: L, numKvHeads: Hkv, headDim: D } = model.config;
  const V = embeddings.length / C;
  if (!Number.isInteger(V) || V === 0) throw new PeftError(`virtual embeddings of ${embeddings.length} values do not fit this model's hidden size ${C}`);
  const g = new GraphBuilder();
  const inputIds = g.input('input_ids', 'int64', [1, 1]);
  const positionIds = g.input('position_ids', 'int64', [1, 1]);
  const virtual = g.initializer('virtual_embeddings', 'float32', [V, C], { kind: 'inline', data: embeddings });
  const w = new WeightBinder(g, model.weights, model.source);
  const { virtualKeyValues } = decoder(g, model.config, w, { inputIds, positionIds, virtualTokens: { embeddings: virtual } });
  virtualKeyValues!.forEach((kv, l) => {
    g.output(kv.key, `key.${l}`); // (1, Hkv, V, D)
    g.output(kv.value, `value.${l}`);
  });
  const run = await Session.create(g.build(), session);
  try {
    const zero = { dtype: 'int64' as const, shape: [1, 1], data: new BigInt64Array(1) };
    const out = await run.run({ input_ids: zero, position_ids: zero });
    const prefix = new Float32Array(V * L * 2 * Hkv * D);
    for (let l = 0; l < L; l++) {
      (['key', 'value'] as const).forEach((part, which) => {
        const data = out[`${part}.${l}`]!.data as Float32Array; // (1, Hkv, V, D)
        for (let h = 0; h < Hkv; h++) {
          for (let t = 0; t < V; t++) prefix.set(data.subarray((h * V + t) * D, (h * V + t + 1) * D), (((t * L + l) * 2 + which) * Hkv + h) * D);
        }
      });
    }
    return prefix;
  } finally {
    await run.release();
  }
};

/** The KV-cache generation graph with the adapter's prefix baked in (same inputs and outputs as the base model's). */
export const promptAdapterGenerationGraph = async (model: LoadedModel, loaded: LoadedPromptAdapter, session: SessionOptions = {}): Promise<Graph> => {
  const { hiddenSize: C, numLayers: L, numKvHeads: Hkv, headDim: D } = model.config;
  const [V, width] = loaded.embeddings.shape as [number, number];
  const want = loaded.spec.kind === 'embeddings' ? C : L * 2 * Hkv * D;
  if (width !== want) {
    throw new PeftError(`${loaded.peftType} adapter: 'prompt_embeddings' is [${V}, ${width}], this model needs [${V}, ${want}] (an adapter for another base model?)`);
  }
  const keyValues = loaded.spec.kind === 'embeddings' ? await virtualEmbeddingKeyValues(model, loaded.embeddings.data, session) : Float32Array.from(loaded.embeddings.data);
  const graph = buildGenerationGraph(model, { virtualTokens: { kind: 'keyValues', count: V } });
  const placeholder = { name: VIRTUAL_TOKEN_INPUTS.keyValues, shape: [V, L, 2, Hkv, D], data: keyValues, module: '', role: 'prefix' };
  return bakeAdapterTensors({ graph, params: [placeholder], modules: new Map() });
};

export interface PromptAdapterGenerator {
  readonly generator: Generator;
  readonly peftType: PromptLearningType;
  readonly warnings: readonly string[];
}

/** A generator answering with the prompt-learning adapter in `dir` (use it with chat()); release it when done. */
export const openPromptAdapterGenerator = async (model: LoadedModel, dir: string, session: SessionOptions = {}): Promise<PromptAdapterGenerator> => {
  const loaded = readPromptLearningAdapter(dir);
  const graph = await promptAdapterGenerationGraph(model, loaded, session);
  return { generator: await Generator.create(model, session, graph), peftType: loaded.peftType, warnings: loaded.warnings };
};
