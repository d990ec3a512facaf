import type { Graph } from '../engine/ir/index.ts';
import type { HostTensor, SessionOptions } from '../engine/onnx/runtime.ts';
import { Session } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { GEN, buildGenerationGraph } from './kv-graph.ts';
import { createRng } from '../engine/random.ts';
import { StopStringMatcher, sampleToken, validateSampling, type SamplingOptions } from './sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  readonly maxNewTokens: number;
  /** Generation ends when one of these is produced (it is not yielded). */
  readonly eosTokenIds?: readonly number[];
  /** Generation ends before any of these strings; needs `decode`. */
  readonly stopStrings?: readonly string[];
  /** Text of one token, for stop strings (a streaming detokenizer's push). */
  readonly decode?: (id: number) => string;
  readonly signal?: AbortSignal;
}

export interface GeneratedToken {
  readonly id: number;
  /** Text safe to show now (stop-string prefixes are held back); empty without `decode`. */
  readonly text: string;
}

const NEG = -1e9;

/** Greedy or sampled generation with a KV cache, streamed token by token. */
export class Generator {
  private constructor(
    private readonly session: Session,
    private readonly model: LoadedModel,
  ) {}

  /** `graph`: the model's generation graph, or one rewritten from it with the same inputs and outputs (an adapter baked in). */
  static async create(model: LoadedModel, session: SessionOptions = {}, graph: Graph = buildGenerationGraph(model)): Promise<Generator> {
    return new Generator(await Session.create(graph, session), model);
  }

  async *generate(promptIds: readonly number[], o: GenerateOptions): AsyncGenerator<GeneratedToken, void> {
    validateSampling(o);
    if (promptIds.length === 0) throw new Error('generate needs at least one prompt token');
    const { numLayers, numKvHeads, headDim } = this.model.config;
    const rng = createRng(o.seed ?? 0);
    const stops = o.stopStrings?.length ? new StopStringMatcher(o.stopStrings) : undefined;
    const context = [...promptIds];
    let past: HostTensor[] = Array.from({ length: 2 * numLayers }, () => ({
      dtype: 'float32',
      shape: [1, numKvHeads, 0, headDim],
      data: new Float32Array(0),
    }));
    let fresh: readonly number[] = promptIds;
    for (let produced = 0; produced < o.maxNewTokens; produced++) {
      if (o.signal?.aborted) return;
      const P = context.length - fresh.length;
      const T = fresh.length;
      const mask = new Float32Array(T * (P + T));
      for (let i = 0; i < T; i++) for (let j = P + i + 1; j < P + T; j++) mask[i * (P + T) + j] = NEG;
      const feeds: Record<string, HostTensor> = {
        [GEN.inputIds]: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(fresh, BigInt) },
        [GEN.positionIds]: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(P + i)) },
        [GEN.mask]: { dtype: 'float32', shape: [1, 1, T, P + T], data: mask },
      };
      for (let l = 0; l < numLayers; l++) {
        feeds[GEN.pastKey(l)] = past[2 * l]!;
        feeds[GEN.pastValue(l)] = past[2 * l + 1]!;
      }
      const out = await this.session.run(feeds);
      past = Array.from({ length: numLayers }, (_, l) => [out[GEN.presentKey(l)]!, out[GEN.presentValue(l)]!]).flat();
      const id = sampleToken(out[GEN.logits]!.data as Float32Array, context, o, rng);
      if (o.eosTokenIds?.includes(id)) return;
      context.push(id);
      fresh = [id];
      const piece = o.decode ? o.decode(id) : '';
      if (stops) {
        const { text, stopped } = stops.push(piece);
        if (text || !stopped) yield { id, text };
        if (stopped) return;
      } else {
        yield { id, text: piece };
      }
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
