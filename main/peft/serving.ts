// Serving LoRA adapters side by side: K adapter SLOTS in one graph, each slot's A/B matrices and scales plain graph
// inputs, so swapping the adapter in a slot swaps tensors (no new ORT session) and one batch gives every row its own
// slot or the base model. Each adapted linear y = x·Wᵀ (+ b) becomes
//     y + Σₖ ((x·Aₖᵀ) ⊙ (maskₖ·sₖ))·Bₖᵀ
// with maskₖ (rows, 1) = 1 on the rows whose sequence chose slot k (adapter_slot[b] = k) and 0 elsewhere, and sₖ the
// slot's α/r for that module. Every module any served config targets gets a branch for every slot; a slot whose
// adapter lacks the module is fed rank-0 matrices (A (0, in), B (out, 0)): ORT's Gemm returns C for an inner
// dimension of 0, so the branch adds nothing. Ranks are symbolic dims (one per slot and module), so any r fits.
import { join } from 'node:path';
import {
  type Dim, type Graph, type Tensor, cast, dimEq, equal, expand, gather, gemm, mul, mulDims, reshape, shapeStr, unsqueeze,
} from '../engine/ir/index.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import type { HostTensor } from '../engine/onnx/runtime.ts';
import { PeftError } from './errors.ts';
import { parseLoraConfig, type LoraConfig } from './lora-config.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type LoadedAdapter } from './peft-io.ts';
import { isTargeted, linearModules, patternValue, selectTargets, type TargetConfig } from './targets.ts';

/** Names of the serving graph's inputs (and of its rank dims). */
export const SERVE = {
  /** int64 (B,): the slot each sequence uses; any value outside 0..K−1 (−1 by convention) means the base model. */
  slotIndex: 'adapter_slot',
  /** float32 (M,): the slot's scale (α/r, rsLoRA α/√r) for each served module, 0 where its adapter lacks it. */
  scales: (slot: number) => `serving.slot${slot}.scales`,
  loraA: (slot: number, module: string) => `serving.slot${slot}.${module}.lora_A`,
  loraB: (slot: number, module: string) => `serving.slot${slot}.${module}.lora_B`,
  /** The symbolic rank dim of a slot's matrices for one module. */
  rank: (slot: number, module: string) => `slot${slot}.${module}.r`,
} as const;

/** The base model's slot value in `adapter_slot`. */
export const BASE_SLOT = -1;

export interface ServedModule {
  readonly name: string;
  /** Its position in each slot's scales vector. */
  readonly index: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export interface ServingGraph {
  readonly graph: Graph;
  readonly slots: number;
  readonly modules: readonly ServedModule[];
}

export interface ServingOptions {
  /** How many adapters one batch can mix (the base model needs no slot). */
  readonly slots: number;
  /** Every module one of these configs targets gets a branch per slot (pass the configs of the adapters to serve). */
  readonly targets: readonly TargetConfig[];
  /** The (batch, seq) int64 input whose dims name the batch's rows; default 'input_ids'. */
  readonly rowsFrom?: string;
}

const i64 = (values: readonly number[]): BigInt64Array => BigInt64Array.from(values, (v) => BigInt(v));

/** Graph → Graph: adds K adapter slots to every linear layer one of `o.targets` adapts. */
export const applyServingSlots = (graph: Graph, o: ServingOptions): ServingGraph => {
  if (!(Number.isInteger(o.slots) && o.slots >= 1)) throw new PeftError(`serving slots=${o.slots} must be an integer ≥ 1`);
  if (graph.has(SERVE.slotIndex)) throw new PeftError(`the graph already has a value named '${SERVE.slotIndex}' (serving slots applied twice?)`);
  const rowsFrom = o.rowsFrom ?? 'input_ids';
  if (!graph.has(rowsFrom)) throw new PeftError(`serving needs the (batch, seq) input '${rowsFrom}' to find the batch's rows; the graph has none`);
  const ids = graph.value(graph.idOf(rowsFrom));
  if (ids.type.shape.length !== 2) throw new PeftError(`serving: input '${rowsFrom}' has shape ${shapeStr(ids.type.shape)}, not (batch, seq)`);
  const [batch, seq] = ids.type.shape as [Dim, Dim];
  const wanted = new Set(o.targets.flatMap((c) => selectTargets(graph, c).map((m) => m.name)));
  const served = linearModules(graph).filter((m) => wanted.has(m.name));
  if (served.length === 0) throw new PeftError(`serving: the target_modules of ${o.targets.length} config(s) matched no linear layer of the model`);
  const modules: ServedModule[] = served.map((m, index) => ({ name: m.name, index, inFeatures: m.inFeatures, outFeatures: m.outFeatures }));
  const byNode = new Map(served.map((m, i) => [m.node.id, modules[i]!]));

  // Shared per-slot tensors, made on first use (outside any recomputation block).
  let slotIndex: Tensor | undefined;
  const scales = new Map<number, Tensor>();
  const masks = new Map<string, Tensor>();
  const rowMask = (x: Tensor, slot: number, module: string): Tensor => {
    const g = x.g;
    const rows = x.shape[0]!;
    const perToken = dimEq(rows, mulDims(batch, seq));
    if (!perToken && !dimEq(rows, batch)) {
      throw new PeftError(`serving: '${module}' reads '${x.name}' with ${rows} rows; a served linear must run on the batch's rows (${batch}) or on every token's (${mulDims(batch, seq)})`);
    }
    const made = (key: string, make: () => Tensor): Tensor => {
      const hit = masks.get(key) ?? g.inBlock(undefined, () => g.scope(`serving.slot${slot}`, make));
      masks.set(key, hit);
      return hit;
    };
    const chosen = made(`${slot}:seq`, () => {
      slotIndex ??= g.input(SERVE.slotIndex, 'int64', [batch]);
      return unsqueeze(cast(equal(slotIndex, g.constant(i64([slot]), 'int64')), 'float32'), [1], 'row_mask'); // (B, 1)
    });
    return perToken ? made(`${slot}:token`, () => reshape(expand(chosen, [batch, seq]), [-1, 1], 'token_mask')) : chosen; // (rows, 1)
  };

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const g = ctx.b;
    const x = ctx.inputs[0]!; // (rows, in)
    if (x.dtype !== 'float32') throw new PeftError(`serving: '${m.name}' reads '${x.name}' as ${x.dtype}; served adapters need float32 activations`);
    if (x.rank !== 2) throw new PeftError(`serving: '${m.name}' reads '${x.name}' of shape ${shapeStr(x.shape)}, not (rows, in)`);
    let y = ctx.copy()[0]!; // (rows, out)
    for (let k = 0; k < o.slots; k++) {
      const r = SERVE.rank(k, m.name);
      const A = g.input(SERVE.loraA(k, m.name), 'float32', [r, m.inFeatures]);
      const B = g.input(SERVE.loraB(k, m.name), 'float32', [m.outFeatures, r]);
      const s = scales.get(k) ?? g.inBlock(undefined, () => g.input(SERVE.scales(k), 'float32', [modules.length]));
      scales.set(k, s);
      const mask = rowMask(x, k, m.name); // made outside the module's scope: it is shared
      y = g.scope(`${m.name}.slot${k}`, () => {
        const rowScale = mul(mask, gather(s, g.constant(i64([m.index]), 'int64', [1]))); // (rows, 1)
        const down = mul(gemm(x, A, undefined, { transB: true, name: 'lora_A' }), rowScale); // (rows, r)
        return gemm(down, B, y, { transB: true, name: 'lora_B' }); // (rows, out)
      });
    }
    return [y];
  });
  return { graph: adapted, slots: o.slots, modules };
};

const checkSlot = (sg: ServingGraph, slot: number): void => {
  if (!(Number.isInteger(slot) && slot >= 0 && slot < sg.slots)) throw new PeftError(`slot ${slot} does not exist: this serving graph has slots 0..${sg.slots - 1}`);
};

const f32 = (shape: readonly number[], data: Float32Array): HostTensor => ({ dtype: 'float32', shape, data });

/**
 * Feeds that leave `slot` empty: zero scales and rank-0 matrices (ORT's CPU Gemm returns C for an inner dim of 0),
 * or with `rank` 1 zero matrices of rank 1, for an execution provider that mishandles empty tensors. Rows choosing
 * an empty slot get the base model either way.
 */
export const emptySlotFeeds = (sg: ServingGraph, slot: number, rank: 0 | 1 = 0): Record<string, HostTensor> => {
  checkSlot(sg, slot);
  const feeds: Record<string, HostTensor> = { [SERVE.scales(slot)]: f32([sg.modules.length], new Float32Array(sg.modules.length)) };
  for (const m of sg.modules) {
    feeds[SERVE.loraA(slot, m.name)] = f32([rank, m.inFeatures], new Float32Array(rank * m.inFeatures));
    feeds[SERVE.loraB(slot, m.name)] = f32([m.outFeatures, rank], new Float32Array(m.outFeatures * rank));
  }
  return feeds;
};

const savedLoraKey = (module: string, part: 'lora_A' | 'lora_B'): string => `base_model.model.${module}.${part}.weight`;

/**
 * Feeds that put a loaded PEFT LoRA adapter (peft-io's loadAdapterFiles) in `slot`. `config` defaults to the
 * adapter's own adapter_config.json. A tensor the serving graph has no branch for, a module the config targets but
 * the file lacks, or a shape that does not fit is a PeftError naming the tensor.
 */
export const slotFeeds = (sg: ServingGraph, slot: number, adapter: LoadedAdapter, config?: LoraConfig): Record<string, HostTensor> => {
  checkSlot(sg, slot);
  const c = config ?? parseLoraConfig(adapter.config, join(adapter.dir, ADAPTER_CONFIG)).config;
  if (c.bias !== 'none') throw new PeftError(`${adapter.dir}: bias='${c.bias}' cannot be served yet; serve adapters trained with bias='none'`);
  const served = new Map(sg.modules.map((m) => [m.name, m]));
  for (const key of adapter.tensors.keys()) {
    const hit = /^base_model\.model\.(.+)\.lora_[AB]\.weight$/.exec(key);
    if (!hit) throw new PeftError(`${adapter.dir}: tensor '${key}' is not a LoRA A/B matrix of a linear layer; serving cannot use it`);
    if (!served.has(hit[1]!)) {
      throw new PeftError(`${adapter.dir}: tensor '${key}' adapts '${hit[1]}', which this serving graph has no branch for (build it with this adapter's target_modules)`);
    }
  }
  const allLinear = [...new Set(sg.modules.map((m) => m.name.split('.').pop()!))];
  const feeds = emptySlotFeeds(sg, slot);
  const scales = feeds[SERVE.scales(slot)]!.data as Float32Array;
  for (const m of sg.modules) {
    const keyA = savedLoraKey(m.name, 'lora_A');
    const keyB = savedLoraKey(m.name, 'lora_B');
    const a = adapter.tensors.get(keyA);
    const b = adapter.tensors.get(keyB);
    if (!a && !b) {
      // PEFT's all-linear expands over the model's linears; those are not all served, so only check explicit lists.
      if (typeof c.target_modules !== 'string' && isTargeted(c, m.name, allLinear)) {
        throw new PeftError(`${adapter.dir}: its config targets '${m.name}' but '${keyA}' is missing from ${ADAPTER_WEIGHTS}`);
      }
      continue;
    }
    if (!a || !b) throw new PeftError(`${adapter.dir}: '${a ? keyB : keyA}' is missing from ${ADAPTER_WEIGHTS} (its pair is there)`);
    const r = patternValue(c.rank_pattern, m.name, c.r);
    if (a.shape.length !== 2 || a.shape[0] !== r || a.shape[1] !== m.inFeatures) {
      throw new PeftError(`${adapter.dir}: tensor '${keyA}' has shape [${a.shape.join(', ')}], this model and config need [${r}, ${m.inFeatures}]`);
    }
    if (b.shape.length !== 2 || b.shape[0] !== m.outFeatures || b.shape[1] !== r) {
      throw new PeftError(`${adapter.dir}: tensor '${keyB}' has shape [${b.shape.join(', ')}], this model and config need [${m.outFeatures}, ${r}]`);
    }
    const alpha = patternValue(c.alpha_pattern, m.name, c.lora_alpha);
    scales[m.index] = c.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    feeds[SERVE.loraA(slot, m.name)] = f32([r, m.inFeatures], a.data);
    feeds[SERVE.loraB(slot, m.name)] = f32([m.outFeatures, r], b.data);
  }
  return feeds;
};

/** The `adapter_slot` feed: one entry per sequence, a slot index or null for the base model. */
export const slotIndexFeed = (sg: ServingGraph, choices: readonly (number | null)[]): HostTensor => {
  for (const s of choices) if (s !== null) checkSlot(sg, s);
  return { dtype: 'int64', shape: [choices.length], data: i64(choices.map((s) => s ?? BASE_SLOT)) };
};

/** What each slot holds now, and the feeds for all of them (start: every slot empty). */
export class AdapterSlots {
  private readonly feedsBySlot: Record<string, HostTensor>[];
  private readonly labels: (string | null)[];

  /** `emptyRank`: how empty slots are fed (see emptySlotFeeds). */
  constructor(
    readonly serving: ServingGraph,
    private readonly emptyRank: 0 | 1 = 0,
  ) {
    this.feedsBySlot = Array.from({ length: serving.slots }, (_, k) => emptySlotFeeds(serving, k, emptyRank));
    this.labels = Array.from({ length: serving.slots }, () => null);
  }

  /** Puts an adapter in `slot` (replacing what was there); `label` defaults to the adapter's folder. */
  load(slot: number, adapter: LoadedAdapter, config?: LoraConfig, label = adapter.dir): void {
    this.feedsBySlot[slot] = slotFeeds(this.serving, slot, adapter, config);
    this.labels[slot] = label;
  }

  clear(slot: number): void {
    this.feedsBySlot[slot] = emptySlotFeeds(this.serving, slot, this.emptyRank);
    this.labels[slot] = null;
  }

  /** The label of the adapter in `slot`, null when empty. */
  label(slot: number): string | null {
    checkSlot(this.serving, slot);
    return this.labels[slot]!;
  }

  /** Every slot's feeds (a snapshot: later loads do not change it). */
  feeds(): Record<string, HostTensor> {
    return Object.assign({}, ...this.feedsBySlot) as Record<string, HostTensor>;
  }
}
