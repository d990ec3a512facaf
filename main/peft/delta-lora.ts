// Delta-LoRA (Zi et al. 2023, arXiv 2309.02411, Algorithm 1): LoRA whose frozen weight also moves by the change
// of the low-rank product, W ← W + λ·s·(B⁽ᵗ⁺¹⁾A⁽ᵗ⁺¹⁾ − B⁽ᵗ⁾A⁽ᵗ⁾) after every optimizer step t > K (s = α/r, PEFT's
// (out, in) layout: the paper's A·B is our B·A). No dropout on the LoRA branch (the paper removes it so that
// ∂L/∂W = ∂L/∂(s·BA)); A and B get exactly LoRA's gradients, computed as if W were constant.
//
// W is never materialized. The updates telescope: for t ≥ K+1, W⁽ᵗ⁾ = W₀ + λ·s·(B⁽ᵗ⁾A⁽ᵗ⁾ − B_K A_K), with (A_K, B_K)
// the LoRA factors after optimizer step K. So the adapted linear is
//   y = x·W₀ᵀ + s·(x·A_gᵀ)·B_effᵀ − s·(x·A_Kᵀ)·(c·B_K)ᵀ,   B_eff = B + c·sg(B),   A_g = A/(1+c) + sg(A)·c/(1+c)
// with c the runtime input `delta_lora.update_ratio` (0 until step K, then λ) and sg = stop-gradient: the values
// are W⁽ᵗ⁾ + s·BA, the gradients of A and B are LoRA's and x's gradient sees all of W⁽ᵗ⁾ + s·BA. Cost per module:
// two (r, ·) factors as extra inputs and one more rank-r chain, instead of an (out, in) W input or ΔW accumulator
// per module (fed every step, updated by an O(out·in·r) product in JS). The hook only copies A, B until step K.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorFloat32, writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { type Graph, type Tensor, add, div, gemm, mul, neg } from '../engine/ir/index.ts';
import { stopGradient } from '../engine/ir/ops/stop-gradient.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import type { HostTensor } from '../engine/onnx/runtime.ts';
import { createRng, normalArray, uniformArray } from '../engine/random.ts';
import { type FieldFail, checkRankAndAlpha, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import { LORA_DEFAULTS } from './lora-config.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, savedKey } from './peft-io.ts';
import { patternValue, selectTargets, type TargetConfig } from './targets.ts';

/** Delta-LoRA's config: LoRA's fields (PEFT's names) + the update ratio λ and the start step K. */
export interface DeltaLoraConfig extends TargetConfig {
  readonly peft_type: 'DELTA_LORA';
  readonly r: number;
  readonly lora_alpha: number;
  readonly use_rslora: boolean;
  /** true: A Kaiming-uniform, B zero (PEFT's default); false: both random (tests); 'gaussian'. */
  readonly init_lora_weights: boolean | 'gaussian';
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  /** The paper's update ratio λ: W moves by λ·s·Δ(BA). */
  readonly delta_lora_lambda: number;
  /** The paper's K: W moves after optimizer steps t > K (0-based), i.e. from the (K+2)-th step on. */
  readonly delta_lora_start_step: number;
  /** Must be 0: the paper removes dropout from the low-rank branch. */
  readonly lora_dropout: number;
  readonly bias: 'none';
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const DELTA_LORA_DEFAULTS: Omit<DeltaLoraConfig, 'target_modules'> = {
  peft_type: 'DELTA_LORA',
  r: 8,
  lora_alpha: 16,
  use_rslora: false,
  init_lora_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
  delta_lora_lambda: 2,
  delta_lora_start_step: 500,
  lora_dropout: 0,
  bias: 'none',
  modules_to_save: null,
  task_type: 'CAUSAL_LM',
};

export const parseDeltaLoraConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<DeltaLoraConfig> => {
  const c = { ...DELTA_LORA_DEFAULTS, ...raw } as DeltaLoraConfig & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(c, where);
  if (c.peft_type !== 'DELTA_LORA') fail('peft_type', "is not 'DELTA_LORA'");
  checkRankAndAlpha(c, fail);
  if (typeof c.use_rslora !== 'boolean') fail('use_rslora', 'must be true or false');
  if (![true, false, 'gaussian'].includes(c.init_lora_weights as never)) fail('init_lora_weights', "must be true, false or 'gaussian'");
  if (!(typeof c.delta_lora_lambda === 'number' && c.delta_lora_lambda >= 0 && Number.isFinite(c.delta_lora_lambda))) fail('delta_lora_lambda', 'must be a finite number ≥ 0');
  if (!(Number.isInteger(c.delta_lora_start_step) && c.delta_lora_start_step >= -1)) fail('delta_lora_start_step', 'must be an integer ≥ -1 (-1: W moves from the first step)');
  if (c.lora_dropout !== 0) fail('lora_dropout', 'must be 0: Delta-LoRA removes dropout from the low-rank branch (its W update assumes ∂L/∂W = ∂L/∂(s·BA))');
  if (c.bias !== 'none') fail('bias', "must be 'none' for Delta-LoRA");
  if (c.modules_to_save?.length) fail('modules_to_save', 'is not supported by Delta-LoRA');
  if (c.target_modules === undefined || c.target_modules === null) fail('target_modules', 'must name the modules to adapt');
  for (const [k, v] of Object.entries(c.rank_pattern)) if (!(Number.isInteger(v) && v > 0)) throw new PeftError(`${where}: rank_pattern['${k}']=${v} must be a positive integer`);
  return { config: c, warnings: unknownFieldWarnings(raw, Object.keys(DELTA_LORA_DEFAULTS), where) };
};

/** The runtime input c: 0 until optimizer step K has run, then λ. */
export const DELTA_LORA_RATIO_INPUT = 'delta_lora.update_ratio';

const key = (module: string, part: string, adapter: string): string => `base_model.model.${module}.${part}.${adapter}.weight`;
/** The non-trained inputs holding A and B as they were after optimizer step K. */
export const deltaLoraStartKey = (module: string, part: 'lora_A' | 'lora_B', adapter: string): string =>
  key(module, `delta_lora_start_${part.slice(-1)}`, adapter);

export interface DeltaLoraModule {
  readonly module: string;
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export interface DeltaLoraGraph extends AdaptedGraph {
  readonly deltaModules: readonly DeltaLoraModule[];
}

export const applyDeltaLora = (graph: Graph, config: DeltaLoraConfig, o: ApplyOptions = {}): DeltaLoraGraph => {
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  const rng = createRng(o.seed ?? 0);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  const params: TrainableTensor[] = [];
  const deltaModules: DeltaLoraModule[] = [];
  let coef: { c: Tensor; keep: Tensor; pass: Tensor; negC: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const g = ctx.b;
    const r = patternValue(config.rank_pattern, m.name, config.r);
    const alpha = patternValue(config.alpha_pattern, m.name, config.lora_alpha);
    const scale = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    const init = config.init_lora_weights;
    const a = init === 'gaussian' ? normalArray(r * m.inFeatures, 1 / r, rng) : uniformArray(r * m.inFeatures, 1 / Math.sqrt(m.inFeatures), rng);
    const b = init === false ? uniformArray(m.outFeatures * r, 1 / Math.sqrt(r), rng) : new Float32Array(m.outFeatures * r);
    const aShape = [r, m.inFeatures];
    const bShape = [m.outFeatures, r];
    params.push({ name: key(m.name, 'lora_A', adapter), shape: aShape, data: a, module: m.name, role: 'lora_A' });
    params.push({ name: key(m.name, 'lora_B', adapter), shape: bShape, data: b, module: m.name, role: 'lora_B' });
    deltaModules.push({ module: m.name, r, alpha, scale, inFeatures: m.inFeatures, outFeatures: m.outFeatures });
    // Shared by every module: outside any recomputation block.
    coef ??= g.inBlock(undefined, () => g.scope('delta_lora', () => {
      const c = g.input(DELTA_LORA_RATIO_INPUT, 'float32', []);
      const onePlus = add(c, 1, 'one_plus_ratio');
      return { c, keep: div(1, onePlus, 'grad_share'), pass: div(c, onePlus, 'value_share'), negC: neg(c, 'neg_ratio') };
    }));
    const k = coef;
    const A = g.input(key(m.name, 'lora_A', adapter), 'float32', aShape);
    const B = g.input(key(m.name, 'lora_B', adapter), 'float32', bShape);
    const A0 = g.input(deltaLoraStartKey(m.name, 'lora_A', adapter), 'float32', aShape);
    const B0 = g.input(deltaLoraStartKey(m.name, 'lora_B', adapter), 'float32', bShape);
    const x = ctx.inputs[0]!; // (rows, in)
    const [y] = ctx.copy(); // x·W₀ᵀ (+ b)  (rows, out)
    return [
      g.scope(m.name, () => {
        // A_g: value A, gradient scaled by 1/(1+c); B_eff: value (1+c)·B, gradient passed as is.
        const aG = add(mul(A, k.keep, 'delta_lora.a_grad_part'), mul(stopGradient(A, 'delta_lora.a_detached'), k.pass, 'delta_lora.a_value_part'), 'delta_lora.a');
        const bEff = add(B, mul(stopGradient(B, 'delta_lora.b_detached'), k.c, 'delta_lora.b_moved'), 'delta_lora.b');
        const down = gemm(x, aG, undefined, { transB: true, name: 'lora_A' }); // (rows, r)
        const withLora = gemm(down, bEff, y, { transB: true, alpha: scale, name: 'lora_B' }); // (rows, out)
        const downStart = gemm(x, A0, undefined, { transB: true, name: 'delta_lora.start_A' }); // (rows, r)
        const bStart = mul(B0, k.negC, 'delta_lora.start_B_scaled'); // −c·B_K (out, r)
        return gemm(downStart, bStart, withLora, { transB: true, alpha: scale, name: 'delta_lora.start_B' }); // (rows, out)
      }),
    ];
  });
  const modules = new Map(deltaModules.map((d) => [d.module, { r: d.r, alpha: d.alpha, scale: d.scale, delta_lora: 1 }]));
  return { graph: adapted, params, modules, deltaModules };
};

interface Tracked extends DeltaLoraModule {
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly a0: Float32Array;
  readonly b0: Float32Array;
  readonly keyA0: string;
  readonly keyB0: string;
}

export interface DeltaLoraState {
  /** Optimizer steps seen by the hook (the last step index + 1). */
  readonly step: number;
  readonly ratio: number;
  /** A and B after step K (or the latest step before it), by start-input name. */
  readonly start: Readonly<Record<string, Float32Array>>;
}

/**
 * Delta-LoRA's step hook and the inputs it owns. Pass `afterOptimizerStep` to TrainStep and spread `feeds()` into
 * every batch. It reads the trainable tensors' Float32Arrays, which must be the ones TrainStep updates in place.
 */
export class DeltaLoraUpdater {
  private readonly tracked: readonly Tracked[];
  private ratio = 0;
  private steps = 0;

  constructor(
    adapted: DeltaLoraGraph,
    readonly config: DeltaLoraConfig,
    o: { readonly adapterName?: string } = {},
  ) {
    const adapter = o.adapterName ?? 'default';
    const byName = new Map(adapted.params.map((p) => [p.name, p.data]));
    this.tracked = adapted.deltaModules.map((d) => {
      const a = byName.get(key(d.module, 'lora_A', adapter));
      const b = byName.get(key(d.module, 'lora_B', adapter));
      if (!a || !b) throw new PeftError(`Delta-LoRA module '${d.module}' lacks its lora_A or lora_B tensor (adapter '${adapter}')`);
      return { ...d, a, b, a0: Float32Array.from(a), b0: Float32Array.from(b), keyA0: deltaLoraStartKey(d.module, 'lora_A', adapter), keyB0: deltaLoraStartKey(d.module, 'lora_B', adapter) };
    });
    this.advance(-1);
  }

  /** True once W moves (optimizer step K has run). */
  get started(): boolean {
    return this.steps - 1 >= this.config.delta_lora_start_step;
  }

  /** TrainStep's afterOptimizerStep: `step` is the 0-based index of the step just applied. */
  readonly afterOptimizerStep = (step: number): void => {
    this.advance(step);
    this.steps = step + 1;
  };

  private advance(step: number): void {
    const K = this.config.delta_lora_start_step;
    // The telescoped form needs A, B as they were after step K; a skipped step K is covered by copying every
    // applied step up to K.
    if (step <= K) {
      for (const t of this.tracked) {
        t.a0.set(t.a);
        t.b0.set(t.b);
      }
    }
    this.ratio = step >= K ? this.config.delta_lora_lambda : 0;
  }

  /** The non-trained inputs for the next forward: c and the start factors. */
  feeds(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = { [DELTA_LORA_RATIO_INPUT]: { dtype: 'float32', shape: [], data: new Float32Array([this.ratio]) } };
    for (const t of this.tracked) {
      out[t.keyA0] = { dtype: 'float32', shape: [t.r, t.inFeatures], data: t.a0 };
      out[t.keyB0] = { dtype: 'float32', shape: [t.outFeatures, t.r], data: t.b0 };
    }
    return out;
  }

  /** W⁽ᵗ⁾ − W₀ of a module, (out, in) row-major: c·s·(B·A − B_K·A_K), summed in float64. */
  deltaWeight(module: string): Float32Array {
    const t = this.tracked.find((x) => x.module === module);
    if (!t) throw new PeftError(`'${module}' is not a Delta-LoRA module`);
    const { r, inFeatures: n, outFeatures: m } = t;
    const out = new Float32Array(m * n);
    if (this.ratio === 0) return out;
    const f = this.ratio * t.scale;
    const row = new Float64Array(n);
    for (let o = 0; o < m; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const bk = t.b[o * r + k]!;
        const b0k = t.b0[o * r + k]!;
        for (let i = 0; i < n; i++) row[i]! += bk * t.a[k * n + i]! - b0k * t.a0[k * n + i]!;
      }
      for (let i = 0; i < n; i++) out[o * n + i] = f * row[i]!;
    }
    return out;
  }

  state(): DeltaLoraState {
    return { step: this.steps, ratio: this.ratio, start: Object.fromEntries(this.tracked.flatMap((t) => [[t.keyA0, Float32Array.from(t.a0)], [t.keyB0, Float32Array.from(t.b0)]])) };
  }

  loadState(s: DeltaLoraState): void {
    for (const t of this.tracked) {
      for (const [name, dst] of [[t.keyA0, t.a0], [t.keyB0, t.b0]] as const) {
        const src = s.start[name];
        if (!src || src.length !== dst.length) throw new PeftError(`Delta-LoRA state: '${name}' is missing or has ${src?.length ?? 0} values, wants ${dst.length}`);
        dst.set(src);
      }
    }
    this.ratio = s.ratio;
    this.steps = s.step;
  }

  /**
   * The adapter as plain PEFT LoRA tensors that reproduce W⁽ᵗ⁾ + s·BA exactly: once W has moved, rank 2r with
   * A' = [A; A_K] and B' = [(1+λ)·B, −λ·B_K] (W₀ + s·B'A' = W₀ + λs(BA − B_K A_K) + s·BA), and lora_alpha set so
   * the scale stays s; before that, A and B at rank r.
   */
  peftLora(adapter = 'default'): { config: Record<string, unknown>; tensors: Record<string, TensorToWrite> } {
    const c = this.ratio;
    const doubled = c !== 0;
    const tensors: Record<string, TensorToWrite> = {};
    for (const t of this.tracked) {
      const { r, inFeatures: n, outFeatures: m } = t;
      const rr = doubled ? 2 * r : r;
      const a = doubled ? new Float32Array(rr * n) : Float32Array.from(t.a);
      const b = doubled ? new Float32Array(m * rr) : Float32Array.from(t.b);
      if (doubled) {
        a.set(t.a, 0);
        a.set(t.a0, r * n);
        for (let o = 0; o < m; o++) {
          for (let k = 0; k < r; k++) {
            b[o * rr + k] = (1 + c) * t.b[o * r + k]!;
            b[o * rr + r + k] = -c * t.b0[o * r + k]!;
          }
        }
      }
      tensors[savedKey(key(t.module, 'lora_A', adapter), adapter)] = { shape: [rr, n], data: a };
      tensors[savedKey(key(t.module, 'lora_B', adapter), adapter)] = { shape: [m, rr], data: b };
    }
    const k = this.config;
    const alphaFactor = doubled ? (k.use_rslora ? Math.SQRT2 : 2) : 1;
    const rankFactor = doubled ? 2 : 1;
    const config = {
      ...LORA_DEFAULTS,
      r: k.r * rankFactor,
      lora_alpha: k.lora_alpha * alphaFactor,
      use_rslora: k.use_rslora,
      target_modules: k.target_modules,
      ...(k.exclude_modules ? { exclude_modules: k.exclude_modules } : {}),
      ...(k.layers_to_transform !== undefined && k.layers_to_transform !== null ? { layers_to_transform: k.layers_to_transform } : {}),
      ...(k.layers_pattern ? { layers_pattern: k.layers_pattern } : {}),
      rank_pattern: Object.fromEntries(Object.entries(k.rank_pattern).map(([p, v]) => [p, v * rankFactor])),
      alpha_pattern: Object.fromEntries(Object.entries(k.alpha_pattern).map(([p, v]) => [p, v * alphaFactor])),
      base_model_name_or_path: k.base_model_name_or_path ?? null,
    };
    return { config, tensors };
  }
}

export const DELTA_LORA_SIDECAR = 'delta_lora.json';
export const DELTA_LORA_STATE = 'delta_lora_state.safetensors';

/**
 * Saves a Delta-LoRA run: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors, see peftLora) that
 * PEFT, merge and export load as any LoRA; plus delta_lora.json (the config, step, c) and
 * delta_lora_state.safetensors (raw A, B and the start factors) to resume training exactly.
 */
export const saveDeltaLoraAdapter = (dir: string, updater: DeltaLoraUpdater, params: readonly TrainableTensor[], adapter = 'default'): void => {
  mkdirSync(dir, { recursive: true });
  const { config, tensors } = updater.peftLora(adapter);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const s = updater.state();
  const raw: Record<string, TensorToWrite> = {};
  for (const p of params) raw[p.name] = { shape: p.shape, data: p.data };
  const shapes = new Map(params.map((p) => [p.name.replace(/\.lora_([AB])\./, '.delta_lora_start_$1.'), p.shape]));
  for (const [name, data] of Object.entries(s.start)) raw[name] = { shape: shapes.get(name)!, data };
  writeSafetensors(join(dir, DELTA_LORA_STATE), raw);
  const write = (file: string, value: unknown) => {
    const tmp = join(dir, `${file}.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
    renameSync(tmp, join(dir, file));
  };
  write(DELTA_LORA_SIDECAR, { config: updater.config, step: s.step, update_ratio: s.ratio, adapter });
  write(ADAPTER_CONFIG, config);
};

/** Reads what saveDeltaLoraAdapter wrote, to rebuild the graph, restore the tensors and `loadState` the updater. */
export const loadDeltaLoraCheckpoint = (dir: string): { config: DeltaLoraConfig; tensors: ReadonlyMap<string, Float32Array>; state: DeltaLoraState } => {
  let side: { config: Record<string, unknown>; step: number; update_ratio: number };
  try {
    side = JSON.parse(readFileSync(join(dir, DELTA_LORA_SIDECAR), 'utf8')) as typeof side;
  } catch (err) {
    throw new PeftError(`${dir}: no readable ${DELTA_LORA_SIDECAR} (${(err as Error).message}); a plain LoRA folder cannot resume Delta-LoRA`);
  }
  const { config } = parseDeltaLoraConfig(side.config, join(dir, DELTA_LORA_SIDECAR));
  const tensors = new Map(readSafetensorsHeader(join(dir, DELTA_LORA_STATE)).map((e) => [e.name, readTensorFloat32(e)]));
  const start = Object.fromEntries([...tensors].filter(([n]) => n.includes('.delta_lora_start_')));
  return { config, tensors, state: { step: side.step, ratio: side.update_ratio, start } };
};

export const deltaLoraMethod: PeftMethod<DeltaLoraConfig> = {
  peftType: 'DELTA_LORA',
  label: 'Delta-LoRA',
  parseConfig: parseDeltaLoraConfig,
  apply: applyDeltaLora,
  savedKey,
};
