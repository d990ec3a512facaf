// AdaLoRA as HF PEFT computes it (SVDLinear + AdaLoraModel.forward), as a pure Graph → Graph rewrite: each
// targeted linear y = x·Wᵀ (+ b) becomes y + (dropout(x)·(A ⊙ E)ᵀ·Bᵀ)·scaling/(ranknum + 1e-5), the SVD form
// P·Λ·Q with Q = lora_A (r, in), Λ = lora_E (r, 1), P = lora_B (out, r); and a graph's loss output becomes
// loss + orth_reg_weight·(Σ_A ‖A·Aᵀ − I‖_F + Σ_B ‖Bᵀ·B − I‖_F)/#(A and B), so gradients carry the regularization.
// The rank allocator that masks Λ during training is adalora-allocator.ts.
import { join } from 'node:path';
import { writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { type Graph, type Tensor, add, gemm, mul, reduceSum, sqrt, sub } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { type FieldFail, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type LoadedAdapter } from './peft-io.ts';
import { selectTargets, type TargetConfig } from './targets.ts';

/** Kept singular triplets per module: `<module>.lora_E` (PEFT's saved form; `.<adapter>` may follow) → mask. */
export type RankPattern = Readonly<Record<string, readonly boolean[]>>;

/** AdaLoRA's adapter_config.json, with HF PEFT's field names (AdaLoraConfig extends LoraConfig). */
export interface AdaLoraConfig extends TargetConfig {
  readonly peft_type: 'ADALORA';
  /** Initial rank of every adapted module. */
  readonly init_r: number;
  /** Target average rank: the final budget is target_r × #modules. */
  readonly target_r: number;
  /** Warm-up steps at the full budget, final steps at the target budget, total steps. */
  readonly tinit: number;
  readonly tfinal: number;
  readonly total_step: number;
  /** Steps between two budget allocations. */
  readonly deltaT: number;
  /** EMA coefficients of sensitivity (beta1) and uncertainty (beta2). */
  readonly beta1: number;
  readonly beta2: number;
  readonly orth_reg_weight: number;
  /** The allocated ranks (set by the allocator, saved with the adapter); null before any allocation. */
  readonly rank_pattern: RankPattern | null;
  /** LoraConfig's r: AdaLoRA ignores it (init_r sets the rank). */
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  /** true: E = 0, A and B ~ N(0, 0.02²) (PEFT's default); false: all ~ N(0, 1). */
  readonly init_lora_weights: boolean;
  readonly bias: 'none' | 'all' | 'lora_only';
  readonly fan_in_fan_out: boolean;
  readonly use_rslora: boolean;
  readonly use_dora: boolean;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const ADALORA_DEFAULTS: Omit<AdaLoraConfig, 'target_modules' | 'total_step'> = {
  peft_type: 'ADALORA',
  init_r: 12,
  target_r: 8,
  tinit: 0,
  tfinal: 0,
  deltaT: 1,
  beta1: 0.85,
  beta2: 0.85,
  orth_reg_weight: 0.5,
  rank_pattern: null,
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  init_lora_weights: true,
  bias: 'none',
  fan_in_fan_out: false,
  use_rslora: false,
  use_dora: false,
  alpha_pattern: {},
  task_type: 'CAUSAL_LM',
};

/** Fields PEFT writes that do not change what AdaLoRA computes here. */
const KNOWN_INERT = new Set([
  'auto_mapping', 'revision', 'inference_mode', 'megatron_config', 'megatron_core', 'loftq_config', 'eva_config',
  'corda_config', 'layer_replication', 'runtime_config', 'lora_bias', 'target_parameters', 'trainable_token_indices',
  'use_qalora', 'qalora_group_size', 'exclude_modules', 'layers_pattern', 'layers_to_transform', 'modules_to_save',
  'target_modules', 'base_model_name_or_path', 'task_type', 'peft_version', 'total_step',
]);

const isInt = (v: unknown, min: number): boolean => Number.isInteger(v) && (v as number) >= min;

/** Validates an AdaLoRA config (adapter_config.json or the UI) as AdaLoraConfig.__post_init__ does; `where` names its origin. */
export const parseAdaloraConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<AdaLoraConfig> => {
  const c = { ...ADALORA_DEFAULTS, ...raw } as AdaLoraConfig & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(c, where);
  const warnings: string[] = [];
  if (c.peft_type !== 'ADALORA') fail('peft_type', "is not 'ADALORA'");
  if (!isInt(c.init_r, 1)) fail('init_r', 'must be a positive integer');
  if (!isInt(c.target_r, 0) || c.target_r > c.init_r) fail('target_r', `must be an integer in [0, init_r=${c.init_r}]`);
  if (!isInt(c.total_step, 1)) fail('total_step', 'must be a positive integer: AdaLoRA schedules its budget over the whole run');
  if (!isInt(c.tinit, 0)) fail('tinit', 'must be a non-negative integer');
  if (!isInt(c.tfinal, 0)) fail('tfinal', 'must be a non-negative integer');
  if (c.tinit >= c.total_step - c.tfinal) fail('tinit', `leaves no budgeting phase: needs tinit < total_step − tfinal = ${c.total_step - c.tfinal}`);
  if (!isInt(c.deltaT, 1)) fail('deltaT', 'must be a positive integer');
  for (const f of ['beta1', 'beta2'] as const) if (!(typeof c[f] === 'number' && c[f] > 0 && c[f] < 1)) fail(f, 'must be in (0, 1)');
  if (!(typeof c.orth_reg_weight === 'number' && Number.isFinite(c.orth_reg_weight))) fail('orth_reg_weight', 'must be a number');
  if (!(typeof c.lora_alpha === 'number' && Number.isFinite(c.lora_alpha))) fail('lora_alpha', 'must be a number');
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) fail('lora_dropout', 'must be in [0, 1)');
  if (typeof c.init_lora_weights !== 'boolean') fail('init_lora_weights', 'must be true or false for AdaLoRA');
  if (c.bias !== 'none') fail('bias', "is not available yet; use 'none'");
  if (c.use_dora) fail('use_dora', 'asks for DoRA, which AdaLoRA does not support');
  const loftq = raw.loftq_config;
  if (loftq && typeof loftq === 'object' && Object.keys(loftq).length > 0) fail('loftq_config', 'asks for LoftQ, which AdaLoRA does not support');
  if (c.target_modules === undefined || c.target_modules === null) fail('target_modules', 'must name the modules to adapt');
  if (typeof c.target_modules === 'string' && c.layers_to_transform !== undefined && c.layers_to_transform !== null) {
    fail('layers_to_transform', 'cannot be used when target_modules is a regex string');
  }
  const noLayers = c.layers_to_transform === undefined || c.layers_to_transform === null || (Array.isArray(c.layers_to_transform) && c.layers_to_transform.length === 0);
  if (c.layers_pattern && noLayers) fail('layers_pattern', 'needs layers_to_transform');
  if (c.rank_pattern !== null) {
    if (typeof c.rank_pattern !== 'object' || Array.isArray(c.rank_pattern)) fail('rank_pattern', 'must be null or an object of boolean lists');
    for (const [k, v] of Object.entries(c.rank_pattern)) {
      if (!Array.isArray(v) || !v.every((b) => typeof b === 'boolean')) throw new PeftError(`${where}: rank_pattern['${k}'] must be a list of booleans (AdaLoRA's kept triplets)`);
    }
  }
  if (c.r !== 8) warnings.push(`${where}: r=${c.r} is not used by AdaLoRA (init_r=${c.init_r} sets the initial rank)`);
  if (c.use_rslora) warnings.push(`${where}: use_rslora is ignored by AdaLoRA (scaling is lora_alpha/ranknum)`);
  if (Object.keys(c.alpha_pattern ?? {}).length > 0) warnings.push(`${where}: alpha_pattern is ignored by AdaLoRA`);
  if (c.fan_in_fan_out) warnings.push(`${where}: fan_in_fan_out is for Conv1D layers; ignored for these linear layers (as PEFT does)`);
  warnings.push(...unknownFieldWarnings(raw, [...Object.keys(ADALORA_DEFAULTS), ...KNOWN_INERT], where));
  return { config: { ...c, fan_in_fan_out: false }, warnings };
};

export type AdaLoraPart = 'lora_A' | 'lora_B' | 'lora_E';

/** PEFT's in-memory key of an AdaLoRA parameter (a ParameterDict entry, so no `.weight`); saved files drop the adapter. */
export const adaloraKey = (module: string, part: AdaLoraPart, adapter: string): string => `base_model.model.${module}.${part}.${adapter}`;

export const adaloraSavedKey = (key: string, adapter: string): string => (key.endsWith(`.${adapter}`) ? key.slice(0, -adapter.length - 1) : key);

/** The rank-pattern key of a module, as PEFT saves it. */
export const rankPatternKey = (module: string): string => `${module}.lora_E`;

/** rank_pattern key (`<module>.lora_E` or `<module>.lora_E.<adapter>`) → module name. */
export const patternModule = (key: string, adapter: string): string => {
  const parts = key.split('.');
  return parts.slice(0, key.endsWith(`.${adapter}`) ? -2 : -1).join('.');
};

/** rank_pattern with the keys PEFT saves (`.<adapter>` dropped). */
export const normalizeRankPattern = (p: RankPattern | null | undefined, adapter: string): Record<string, boolean[]> | null =>
  p ? Object.fromEntries(Object.entries(p).map(([k, v]) => [rankPatternKey(patternModule(k, adapter)), [...v]])) : null;

export interface AdaLoraOptions extends ApplyOptions {
  /** The graph output that gets the orthogonal regularization when present (default 'loss'). */
  readonly lossOutput?: string;
}

/** PEFT's ranknum + 1e-5 in float32, and the factor the update is scaled by. */
const scaleOf = (alpha: number, rank: number, initR: number): { ranknum: number; scale: number } => {
  const ranknum = Math.fround(initR + Math.fround(1e-5));
  return { ranknum, scale: (alpha > 0 ? alpha : rank) / ranknum };
};

const eye = (g: Tensor['g'], r: number): Tensor => {
  const data = new Float32Array(r * r);
  for (let i = 0; i < r; i++) data[i * r + i] = 1;
  return g.constant(data, 'float32', [r, r]);
};

export const applyAdalora = (graph: Graph, config: AdaLoraConfig, o: AdaLoraOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  // A saved rank_pattern resizes its modules to the kept triplets (PEFT's resize_modules_by_rank_pattern).
  const masks = new Map<string, readonly boolean[]>();
  for (const [key, mask] of Object.entries(config.rank_pattern ?? {})) {
    const module = patternModule(key, adapter);
    if (!targets.some((m) => m.name === module)) throw new PeftError(`rank_pattern['${key}'] names no adapted module of this model`);
    if (mask.length !== config.init_r) throw new PeftError(`rank_pattern['${key}'] has ${mask.length} entries, init_r is ${config.init_r}`);
    masks.set(module, mask);
  }
  const lossName = o.lossOutput ?? 'loss';
  const lossId = graph.has(lossName) && graph.outputs.includes(graph.idOf(lossName)) ? graph.idOf(lossName) : undefined;
  const lossNode = lossId === undefined ? undefined : graph.producer.get(lossId);
  if (lossId !== undefined && !lossNode) throw new PeftError(`loss output '${lossName}' is not computed by the graph`);
  if (lossNode && !(config.orth_reg_weight > 0)) throw new PeftError(`orth_reg_weight=${config.orth_reg_weight} must be greater than 0 to train AdaLoRA`);

  const rng = createRng(o.seed ?? 0);
  const params: TrainableTensor[] = [];
  const modules = new Map<string, Record<string, number>>();
  const ortho: { a: Tensor; b: Tensor; r: number }[] = [];
  let visited = 0;
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const g = ctx.b;
    if (node === lossNode) {
      if (visited !== targets.length) throw new PeftError(`loss output '${lossName}' is computed before every adapted module`);
      const outs = g.apply(node.op, ctx.inputs, node.attrs, { name: `${node.name}.task` });
      if (ortho.length === 0) return outs;
      const k = node.outputs.indexOf(lossId!);
      const reg = g.scope('adalora.orth_reg', () => {
        const eyes = new Map<number, Tensor>();
        const I = (r: number): Tensor => eyes.get(r) ?? eyes.set(r, eye(g, r)).get(r)!;
        const norms = ortho.flatMap(({ a, b, r }) => [
          sub(gemm(a, a, undefined, { transB: true }), I(r)), // A·Aᵀ − I (r, r)
          sub(gemm(b, b, undefined, { transA: true }), I(r)), // Bᵀ·B − I (r, r)
        ]).map((d) => sqrt(reduceSum(mul(d, d), [], { keepdims: false })));
        // PEFT counts every A and B, rank-0 modules' empty ones too.
        return mul(norms.reduce((s, t) => add(s, t)), config.orth_reg_weight / (2 * targets.length));
      });
      outs[k] = add(outs[k]!, reg, lossName);
      return outs;
    }
    const m = byNode.get(node.id);
    if (!m) return undefined;
    visited++;
    const mask = masks.get(m.name);
    const r = mask ? mask.filter(Boolean).length : config.init_r;
    const { ranknum, scale } = scaleOf(config.lora_alpha, r, config.init_r);
    modules.set(m.name, { r, init_r: config.init_r, ranknum, scale, in_features: m.inFeatures, out_features: m.outFeatures });
    if (r === 0) return undefined; // nothing kept: the base layer alone (PEFT's update is an empty product)
    const std = config.init_lora_weights ? 0.02 : 1;
    const a = normalArray(r * m.inFeatures, std, rng);
    const b = normalArray(m.outFeatures * r, std, rng);
    const e = config.init_lora_weights ? new Float32Array(r) : normalArray(r, 1, rng);
    const names = { a: adaloraKey(m.name, 'lora_A', adapter), b: adaloraKey(m.name, 'lora_B', adapter), e: adaloraKey(m.name, 'lora_E', adapter) };
    params.push({ name: names.a, shape: [r, m.inFeatures], data: a, module: m.name, role: 'lora_A' });
    params.push({ name: names.b, shape: [m.outFeatures, r], data: b, module: m.name, role: 'lora_B' });
    params.push({ name: names.e, shape: [r, 1], data: e, module: m.name, role: 'lora_E' });
    const [y] = ctx.copy(); // (rows, out)
    const A = g.input(names.a, 'float32', [r, m.inFeatures]);
    const B = g.input(names.b, 'float32', [m.outFeatures, r]);
    const E = g.input(names.e, 'float32', [r, 1]);
    ortho.push({ a: A, b: B, r });
    let x = ctx.inputs[0]!; // (rows, in)
    if (config.lora_dropout > 0) {
      rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
      x = g.scope(m.name, () => dropout(x, config.lora_dropout, { ...rngInputs!, name: 'lora_dropout' }));
    }
    return [
      g.scope(m.name, () => {
        const ae = mul(A, E, 'lora_E'); // A ⊙ E (r, in)
        const down = gemm(x, ae, undefined, { transB: true, name: 'lora_A' }); // (rows, r)
        return gemm(down, B, y, { transB: true, alpha: scale, name: 'lora_B' }); // y + s·down·Bᵀ (rows, out)
      }),
    ];
  });
  return { graph: adapted, params, modules };
};

export interface SaveAdaLoraOptions {
  readonly adapterName?: string;
  /** The allocator's pattern; defaults to config.rank_pattern. Tensors are cut to the kept triplets, as PEFT saves them. */
  readonly rankPattern?: RankPattern | null;
  /** The adapted modules (AdaptedGraph.modules): rank-0 modules, which have no tensors here, are saved empty. */
  readonly modules?: AdaptedGraph['modules'];
}

const keepRows = (data: Float32Array, cols: number, keep: readonly boolean[]): Float32Array =>
  Float32Array.from(keep.flatMap((k, i) => (k ? Array.from(data.subarray(i * cols, (i + 1) * cols)) : [])));

const keepCols = (data: Float32Array, rows: number, keep: readonly boolean[]): Float32Array => {
  const r = keep.length;
  const out: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < r; j++) if (keep[j]) out.push(data[i * r + j]!);
  return Float32Array.from(out);
};

/** Writes adapter_config.json (with rank_pattern) + adapter_model.safetensors with PEFT's keys and resized tensors. */
export const saveAdaloraAdapter = (dir: string, config: AdaLoraConfig, params: readonly TrainableTensor[], o: SaveAdaLoraOptions = {}): void => {
  const adapter = o.adapterName ?? 'default';
  const pattern = normalizeRankPattern(o.rankPattern === undefined ? config.rank_pattern : o.rankPattern, adapter);
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) {
    const keep = pattern?.[rankPatternKey(p.module)];
    const r = p.role === 'lora_B' ? p.shape[1]! : p.shape[0]!;
    const kept = keep?.filter(Boolean).length;
    let t: TensorToWrite = { shape: p.shape, data: p.data };
    if (keep && kept !== r) {
      if (keep.length !== r) throw new PeftError(`rank_pattern['${rankPatternKey(p.module)}'] has ${keep.length} entries, '${p.name}' has rank ${r}`);
      t = p.role === 'lora_B'
        ? { shape: [p.shape[0]!, kept!], data: keepCols(p.data, p.shape[0]!, keep) }
        : { shape: [kept!, p.shape[1]!], data: keepRows(p.data, p.shape[1]!, keep) };
    }
    tensors[adaloraSavedKey(p.name, adapter)] = t;
  }
  for (const [module, info] of o.modules ?? []) {
    if (info.r !== 0) continue;
    const [inF, outF] = [info.in_features!, info.out_features!];
    const empty = new Float32Array(0);
    tensors[`base_model.model.${module}.lora_A`] = { shape: [0, inF], data: empty };
    tensors[`base_model.model.${module}.lora_B`] = { shape: [outF, 0], data: empty };
    tensors[`base_model.model.${module}.lora_E`] = { shape: [0, 1], data: empty };
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify({ ...config, rank_pattern: pattern }, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

/**
 * Gives the adapted graph's tensors the saved values (apply the saved config first, so rank_pattern sizes them).
 * Empty tensors of rank-0 modules have no place in the graph and are skipped; anything else missing, extra or
 * misshapen is an error naming the tensor.
 */
export const assignAdaloraWeights = (params: readonly TrainableTensor[], loaded: LoadedAdapter, adapter = 'default'): TrainableTensor[] => {
  const wanted = new Set(params.map((p) => adaloraSavedKey(p.name, adapter)));
  for (const [key, t] of loaded.tensors) {
    if (!wanted.has(key) && t.data.length > 0) throw new PeftError(`${loaded.dir}: tensor '${key}' has no place in this model (an adapter for another base model or config?)`);
  }
  return params.map((p) => {
    const key = adaloraSavedKey(p.name, adapter);
    const t = loaded.tensors.get(key);
    if (!t) throw new PeftError(`${loaded.dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new PeftError(`${loaded.dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model needs [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
};

export const adaloraMethod: PeftMethod<AdaLoraConfig> = {
  peftType: 'ADALORA',
  label: 'AdaLoRA',
  parseConfig: parseAdaloraConfig,
  apply: applyAdalora,
  savedKey: adaloraSavedKey,
};
