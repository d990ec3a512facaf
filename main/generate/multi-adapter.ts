// Side-by-side chat: B rows answered in ONE batched pass per token by the base model and up to K adapters
// (serving slots, main/peft/serving.ts), over the KV-cache generation graph; or, without slots (forGraph), by one
// graph with an adapter of another method baked in. Prompts of different lengths are left-padded: padding is masked
// out as keys, position ids count each row's real tokens only, and a row that finishes (EOS, a stop string, its token
// budget) leaves the batch: its cache rows are dropped, and so are the cache columns that have become padding for
// every row left.
import type { Graph } from '../engine/ir/index.ts';
import type { HostTensor, SessionOptions } from '../engine/onnx/runtime.ts';
import { Session } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import type { LoraConfig } from '../peft/lora-config.ts';
import type { LoadedAdapter } from '../peft/peft-io.ts';
import { AdapterSlots, SERVE, applyServingSlots, slotIndexFeed, type ServingGraph } from '../peft/serving.ts';
import type { TargetConfig } from '../peft/targets.ts';
import { GEN, buildGenerationGraph } from './kv-graph.ts';
import { StopStringMatcher, createRng, sampleToken, validateSampling, type SamplingOptions } from './sampling.ts';

export interface RowRequest {
  readonly promptIds: readonly number[];
  /** The slot whose adapter answers this row; null or absent: the base model. */
  readonly slot?: number | null;
  /** Text of one token for this row (its own streaming detokenizer's push): event text and stop strings. */
  readonly decode?: (id: number) => string;
  /** This row's sampling seed; default the shared one, so a row samples exactly as it would alone. */
  readonly seed?: number;
}

export interface MultiGenerateOptions extends SamplingOptions {
  /** Per row. */
  readonly maxNewTokens: number;
  /** A row ends when it produces one of these (not yielded). */
  readonly eosTokenIds?: readonly number[];
  /** A row ends before any of these strings; needs each row's `decode`. */
  readonly stopStrings?: readonly string[];
  /** Token fed at padding positions (masked; any id works). Default 0. */
  readonly padTokenId?: number;
  readonly signal?: AbortSignal;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'aborted';

/** A row's next token, or its end (with any text a stop-string matcher still held back and that was no stop). */
export type RowEvent =
  | { readonly kind: 'token'; readonly row: number; readonly id: number; readonly text: string }
  | { readonly kind: 'done'; readonly row: number; readonly reason: FinishReason; readonly text: string };

export interface MultiAdapterOptions {
  /** Adapter slots in the graph (K ≤ 4 in the chat view). */
  readonly slots: number;
  /** Modules targeted by any of these configs get slot branches: pass the configs of the adapters to serve. */
  readonly targets: readonly TargetConfig[];
  readonly session?: SessionOptions;
  /** How empty slots are fed: rank-0 matrices (default) or rank-1 zeros (see emptySlotFeeds). */
  readonly emptySlotRank?: 0 | 1;
}

export class MultiAdapterError extends Error {
  override readonly name = 'MultiAdapterError';
}

const NEG = -1e9;

interface RowState {
  readonly row: number;
  readonly slot: number | null;
  readonly context: number[];
  /** Leading cache columns that are padding for this row. */
  pad: number;
  produced: number;
  readonly rng: () => number;
  readonly stops: StopStringMatcher | undefined;
  readonly decode: ((id: number) => string) | undefined;
}

const i64 = (shape: readonly number[], values: ArrayLike<number>): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(Array.from(values), BigInt) });

/** Keeps cache rows `keep` (in order) and drops the first `dropCols` positions: (B, H, P, D) → (B', H, P−drop, D). */
const compactCache = (t: HostTensor, keep: readonly number[], dropCols: number): HostTensor => {
  const [, H, P, D] = t.shape as [number, number, number, number];
  const src = t.data as Float32Array;
  const cols = P - dropCols;
  const out = new Float32Array(keep.length * H * cols * D);
  keep.forEach((b, nb) => {
    for (let h = 0; h < H; h++) {
      const from = ((b * H + h) * P + dropCols) * D;
      out.set(src.subarray(from, from + cols * D), (nb * H + h) * cols * D);
    }
  });
  return { dtype: 'float32', shape: [keep.length, H, cols, D], data: out };
};

/** Greedy or sampled generation for several rows at once, each with its own adapter slot or the base model. */
export class MultiAdapterGenerator {
  private constructor(
    /** The one ORT session: loading or swapping adapters never replaces it. */
    readonly session: Session,
    private readonly model: LoadedModel,
    /** null: a graph without serving slots (forGraph), every row answered by that graph. */
    readonly slots: AdapterSlots | null,
  ) {}

  static async create(model: LoadedModel, o: MultiAdapterOptions): Promise<MultiAdapterGenerator> {
    const serving = applyServingSlots(buildGenerationGraph(model), { slots: o.slots, targets: o.targets });
    return new MultiAdapterGenerator(await Session.create(serving.graph, o.session ?? {}), model, new AdapterSlots(serving, o.emptySlotRank ?? 0));
  }

  /**
   * Rows answered by `graph` alone: the model's generation graph or one with an adapter baked in (method-adapter.ts),
   * with the same batching, stopping and sampling as the slot graph. Its rows take no slot.
   */
  static async forGraph(model: LoadedModel, graph: Graph, session: SessionOptions = {}): Promise<MultiAdapterGenerator> {
    return new MultiAdapterGenerator(await Session.create(graph, session), model, null);
  }

  get serving(): ServingGraph | null {
    return this.slots?.serving ?? null;
  }

  private slotsOrThrow(): AdapterSlots {
    if (!this.slots) throw new MultiAdapterError('this generator runs one graph without adapter slots (forGraph): it cannot load an adapter');
    return this.slots;
  }

  /** Puts an adapter in `slot`; generations started afterwards use it. */
  loadAdapter(slot: number, adapter: LoadedAdapter, config?: LoraConfig, label?: string): void {
    this.slotsOrThrow().load(slot, adapter, config, label);
  }

  clearSlot(slot: number): void {
    this.slotsOrThrow().clear(slot);
  }

  /** Streams every row's tokens as they come (rows interleaved, in row order within a step). */
  async *generate(rows: readonly RowRequest[], o: MultiGenerateOptions): AsyncGenerator<RowEvent, void> {
    validateSampling(o);
    if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) throw new MultiAdapterError(`maxNewTokens=${o.maxNewTokens} must be an integer ≥ 0`);
    rows.forEach((r, i) => {
      if (r.promptIds.length === 0) throw new MultiAdapterError(`row ${i}: generation needs at least one prompt token`);
      if (o.stopStrings?.length && !r.decode) throw new MultiAdapterError(`row ${i}: stop strings need the row's decode`);
    });
    const serving = this.serving;
    if (serving) slotIndexFeed(serving, rows.map((r) => r.slot ?? null)); // validates the slots before any work
    else {
      const bad = rows.findIndex((r) => r.slot !== undefined && r.slot !== null);
      if (bad >= 0) throw new MultiAdapterError(`row ${bad}: slot ${rows[bad]!.slot} asked of a generator without adapter slots`);
    }
    if (rows.length === 0) return;
    const { numLayers, numKvHeads, headDim } = this.model.config;
    const slotFeeds = this.slots?.feeds() ?? {}; // a snapshot: loads during this generation do not affect it
    const L = Math.max(...rows.map((r) => r.promptIds.length));
    let active: RowState[] = rows.map((r, row) => ({
      row,
      slot: r.slot ?? null,
      context: [...r.promptIds],
      pad: L - r.promptIds.length,
      produced: 0,
      rng: createRng(r.seed ?? o.seed ?? 0),
      stops: o.stopStrings?.length ? new StopStringMatcher(o.stopStrings) : undefined,
      decode: r.decode,
    }));
    const done = (s: RowState, reason: FinishReason): RowEvent => ({ kind: 'done', row: s.row, reason, text: reason === 'stop' ? '' : (s.stops?.flush() ?? '') });
    if (o.maxNewTokens === 0) {
      for (const s of active) yield done(s, 'length');
      return;
    }
    let fresh: number[][] = rows.map((r, b) => [...Array<number>(active[b]!.pad).fill(o.padTokenId ?? 0), ...r.promptIds]);
    let past: HostTensor[] = Array.from({ length: 2 * numLayers }, () => ({ dtype: 'float32', shape: [rows.length, numKvHeads, 0, headDim], data: new Float32Array(0) }));

    while (active.length > 0) {
      if (o.signal?.aborted) {
        for (const s of active) yield done(s, 'aborted');
        return;
      }
      const B = active.length;
      const T = fresh[0]!.length;
      const P = past[0]!.shape[2]!;
      const S = P + T;
      const positions = new Array<number>(B * T);
      const mask = new Float32Array(B * T * S);
      active.forEach((s, b) => {
        for (let i = 0; i < T; i++) {
          positions[b * T + i] = Math.max(0, P + i - s.pad);
          const rowMask = mask.subarray((b * T + i) * S, (b * T + i + 1) * S);
          rowMask.fill(NEG, 0, Math.min(s.pad, S));
          rowMask.fill(NEG, P + i + 1);
        }
      });
      const feeds: Record<string, HostTensor> = {
        ...slotFeeds,
        [GEN.inputIds]: i64([B, T], fresh.flat()),
        [GEN.positionIds]: i64([B, T], positions),
        [GEN.mask]: { dtype: 'float32', shape: [B, 1, T, S], data: mask },
      };
      if (serving) feeds[SERVE.slotIndex] = slotIndexFeed(serving, active.map((s) => s.slot));
      for (let l = 0; l < numLayers; l++) {
        feeds[GEN.pastKey(l)] = past[2 * l]!;
        feeds[GEN.pastValue(l)] = past[2 * l + 1]!;
      }
      const out = await this.session.run(feeds);
      past = Array.from({ length: numLayers }, (_, l) => [out[GEN.presentKey(l)]!, out[GEN.presentValue(l)]!]).flat();
      const logits = out[GEN.logits]!.data as Float32Array;
      const V = logits.length / B;

      const keep: number[] = [];
      const events: RowEvent[] = [];
      active.forEach((s, b) => {
        const id = sampleToken(logits.subarray(b * V, (b + 1) * V), s.context, o, s.rng);
        if (o.eosTokenIds?.includes(id)) return void events.push(done(s, 'eos'));
        s.context.push(id);
        s.produced++;
        const piece = s.decode ? s.decode(id) : '';
        if (s.stops) {
          const { text, stopped } = s.stops.push(piece);
          if (text || !stopped) events.push({ kind: 'token', row: s.row, id, text });
          if (stopped) return void events.push(done(s, 'stop'));
        } else {
          events.push({ kind: 'token', row: s.row, id, text: piece });
        }
        if (s.produced >= o.maxNewTokens) return void events.push(done(s, 'length'));
        keep.push(b);
      });
      for (const e of events) yield e;
      if (keep.length < B) {
        const kept = keep.map((b) => active[b]!);
        const drop = kept.length ? Math.min(...kept.map((s) => s.pad)) : 0;
        past = past.map((t) => compactCache(t, keep, drop));
        for (const s of kept) s.pad -= drop;
        active = kept;
      }
      fresh = active.map((s) => [s.context[s.context.length - 1]!]);
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
