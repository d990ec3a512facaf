// VeRA (Kopiczko et al., 2023) as a pure Graph → Graph rewrite, with HF PEFT's config fields and keys.
// One frozen random pair vera_A (r, max_in) and vera_B (max_out, r) is shared by every adapted linear layer;
// each layer slices it to its own shape and trains two vectors: y + λ_b ⊙ (B[:out]·(λ_d ⊙ (A[:, :in]·x))).
// The projections are generated bit-for-bit as PEFT does from projection_prng_key (torch's CPU mt19937 and
// uniform_, see torchUniform), and go into the graph as inline initializers (AdaptedGraph.frozen).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Graph, type Tensor, add, gemm, mul, slice } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { type FieldFail, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, FrozenTensor, ParsedConfig, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles } from './peft-io.ts';
import { selectTargets, type TargetConfig } from './targets.ts';

/** VeRA's adapter_config.json, with HF PEFT's (0.17) field names. */
export interface VeraConfig extends TargetConfig {
  readonly peft_type: 'VERA';
  readonly r: number;
  /** Seed of torch.Generator for vera_A / vera_B. */
  readonly projection_prng_key: number;
  /** Save vera_A / vera_B in adapter_model.safetensors (PEFT's default). */
  readonly save_projection: boolean;
  readonly vera_dropout: number;
  /** Initial value of every vera_lambda_d entry (vera_lambda_b starts at 0). */
  readonly d_initial: number;
  readonly fan_in_fan_out: boolean;
  readonly bias: 'none' | 'all' | 'vera_only';
  /** true: λ_d = d_initial, λ_b = 0 (PEFT's default); false: λ_b = 1, λ_d ~ N(0, 1) (tests). */
  readonly init_weights: boolean;
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const VERA_DEFAULTS: Omit<VeraConfig, 'target_modules'> = {
  peft_type: 'VERA',
  r: 256,
  projection_prng_key: 0,
  save_projection: true,
  vera_dropout: 0,
  d_initial: 0.1,
  fan_in_fan_out: false,
  bias: 'none',
  init_weights: true,
  task_type: 'CAUSAL_LM',
};

const KNOWN_INERT = new Set([
  'auto_mapping', 'revision', 'inference_mode', 'base_model_name_or_path', 'task_type', 'peft_version',
  'target_modules', 'layers_to_transform', 'layers_pattern', 'modules_to_save', 'exclude_modules',
]);

/** Validates a VeRA config (adapter_config.json or the UI); `where` names its origin in errors. */
export const parseVeraConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<VeraConfig> => {
  const c = { ...VERA_DEFAULTS, ...raw } as VeraConfig & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(c, where);
  if (c.peft_type !== 'VERA') fail('peft_type', "is not 'VERA'");
  if (!(Number.isInteger(c.r) && c.r > 0)) fail('r', 'must be a positive integer');
  if (!(Number.isInteger(c.projection_prng_key) && c.projection_prng_key >= -(2 ** 63) && c.projection_prng_key < 2 ** 64)) {
    fail('projection_prng_key', 'must be an integer (a torch.Generator seed)');
  }
  if (typeof c.save_projection !== 'boolean') fail('save_projection', 'must be true or false');
  if (!(typeof c.vera_dropout === 'number' && c.vera_dropout >= 0 && c.vera_dropout < 1)) fail('vera_dropout', 'must be in [0, 1)');
  if (!(typeof c.d_initial === 'number' && Number.isFinite(c.d_initial))) fail('d_initial', 'must be a finite number');
  if (typeof c.init_weights !== 'boolean') fail('init_weights', 'must be true or false');
  if (!['none', 'all', 'vera_only'].includes(c.bias)) fail('bias', "must be 'none', 'all' or 'vera_only'");
  if (c.bias !== 'none') fail('bias', "trains the base layers' biases, which this version cannot do yet; use 'none'");
  if (c.fan_in_fan_out) fail('fan_in_fan_out', 'is for GPT-2 style Conv1D layers, which these models do not have');
  if (c.target_modules === undefined || c.target_modules === null) fail('target_modules', 'must name the modules to adapt');
  if (c.layers_pattern && (c.layers_to_transform === undefined || c.layers_to_transform === null)) {
    fail('layers_pattern', 'needs layers_to_transform as well (as PEFT requires)');
  }
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) fail('modules_to_save', 'is not available yet for VeRA');
  return { config: c, warnings: unknownFieldWarnings(raw, [...Object.keys(VERA_DEFAULTS), ...KNOWN_INERT], where) };
};

// --- keys: PEFT's in-memory names; saved files drop every `.<adapter>` (PEFT's str.replace) ---
export type VeraPart = 'vera_lambda_b' | 'vera_lambda_d';
export const veraKey = (module: string, part: VeraPart, adapter: string): string => `base_model.model.${module}.${part}.${adapter}`;
export const veraProjectionKey = (part: 'vera_A' | 'vera_B', adapter: string): string => `base_model.${part}.${adapter}`;
export const veraSavedKey = (key: string, adapter: string): string => key.split(`.${adapter}`).join('');

// --- torch.Generator().manual_seed(key) + Tensor.uniform_ on CPU, bit for bit ---
/** torch's CPU generator: mt19937 seeded with the low 32 bits of the seed (at::mt19937_engine). */
export const torchMt19937 = (seed: number | bigint): (() => number) => {
  const s = new Uint32Array(624);
  s[0] = Number(BigInt.asUintN(32, BigInt(seed)));
  for (let j = 1; j < 624; j++) {
    const p = s[j - 1]! ^ (s[j - 1]! >>> 30);
    s[j] = (Math.imul(1812433253, p) + j) >>> 0;
  }
  let next = 624;
  return () => {
    if (next >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (s[k]! & 0x80000000) | (s[(k + 1) % 624]! & 0x7fffffff);
        s[k] = s[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      next = 0;
    }
    let y = s[next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
};

/**
 * float32 `uniform_(from, to)` as torch's CPU kernel computes it: x = (u32 & 0xFFFFFF)·2⁻²⁴, then x·(to−from) + from
 * in float32 with one rounding (the kernel is compiled with FMA contraction; the exact sum fits a double, so one
 * Math.fround is that single rounding), and a value rounded up to `to` becomes `from`.
 */
export const torchUniform = (n: number, lo: number, hi: number, next: () => number): Float32Array => {
  const from = Math.fround(lo);
  const to = Math.fround(hi);
  const range = Math.fround(to - from);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.fround(((next() & 0xffffff) / 16777216) * range + from);
    out[i] = v === to ? from : v;
  }
  return out;
};

/** PEFT's _kaiming_init of a (rows, fanIn) tensor: U(±√3·√2/√fanIn) from the shared generator. */
const kaiming = (rows: number, fanIn: number, next: () => number): Float32Array => {
  const bound = Math.sqrt(3) * (Math.sqrt(2) / Math.sqrt(fanIn));
  return torchUniform(rows * fanIn, -bound, bound, next);
};

export interface VeraProjections {
  readonly vera_A: { readonly shape: readonly number[]; readonly data: Float32Array };
  readonly vera_B: { readonly shape: readonly number[]; readonly data: Float32Array };
}

/** vera_A (r, maxIn) then vera_B (maxOut, r) from one torch.Generator seeded with projection_prng_key. */
export const veraProjections = (r: number, maxIn: number, maxOut: number, key: number): VeraProjections => {
  const next = torchMt19937(key);
  const a = kaiming(r, maxIn, next);
  const b = kaiming(maxOut, r, next);
  return { vera_A: { shape: [r, maxIn], data: a }, vera_B: { shape: [maxOut, r], data: b } };
};

// --- the rewrite ---
export interface VeraOptions extends ApplyOptions {
  /** Projections read from an adapter file; without them they are generated from projection_prng_key. */
  readonly projections?: VeraProjections;
}

const checkProjection = (name: string, got: readonly number[], rows: number, cols: number, which: 'rows' | 'cols'): void => {
  const ok = got.length === 2 && (which === 'cols' ? got[0] === rows && got[1]! >= cols : got[1] === cols && got[0]! >= rows);
  if (!ok) {
    const need = which === 'cols' ? `[${rows}, ≥${cols}]` : `[≥${rows}, ${cols}]`;
    throw new PeftError(`${name} has shape [${got.join(', ')}], this model and r need ${need}`);
  }
};

export const applyVera = (graph: Graph, config: VeraConfig, o: VeraOptions = {}): AdaptedGraph => {
  if (config.bias !== 'none') throw new PeftError(`bias='${config.bias}' is not available yet; use bias='none'`);
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) {
    throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  }
  const r = config.r;
  const maxIn = Math.max(...targets.map((m) => m.inFeatures));
  const maxOut = Math.max(...targets.map((m) => m.outFeatures));
  const keyA = veraProjectionKey('vera_A', adapter);
  const keyB = veraProjectionKey('vera_B', adapter);
  const proj = o.projections ?? veraProjections(r, maxIn, maxOut, config.projection_prng_key);
  checkProjection(veraSavedKey(keyA, adapter), proj.vera_A.shape, r, maxIn, 'cols');
  checkProjection(veraSavedKey(keyB, adapter), proj.vera_B.shape, maxOut, r, 'rows');
  const frozen: FrozenTensor[] = [
    { name: keyA, shape: proj.vera_A.shape, data: proj.vera_A.data },
    { name: keyB, shape: proj.vera_B.shape, data: proj.vera_B.data },
  ];
  const rng = createRng(o.seed ?? 0);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  const params: TrainableTensor[] = [];
  const modules = new Map<string, { r: number; inFeatures: number; outFeatures: number }>();
  let shared: { A: Tensor; B: Tensor } | undefined;
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const g = ctx.b;
    shared ??= {
      A: g.initializer(keyA, 'float32', proj.vera_A.shape, { kind: 'inline', data: proj.vera_A.data }),
      B: g.initializer(keyB, 'float32', proj.vera_B.shape, { kind: 'inline', data: proj.vera_B.data }),
    };
    const { A: sharedA, B: sharedB } = shared;
    modules.set(m.name, { r, inFeatures: m.inFeatures, outFeatures: m.outFeatures });
    const nameB = veraKey(m.name, 'vera_lambda_b', adapter);
    const nameD = veraKey(m.name, 'vera_lambda_d', adapter);
    const lambdaB = config.init_weights ? new Float32Array(m.outFeatures) : new Float32Array(m.outFeatures).fill(1);
    const lambdaD = config.init_weights ? new Float32Array(r).fill(config.d_initial) : normalArray(r, 1, rng);
    params.push({ name: nameB, shape: [m.outFeatures], data: lambdaB, module: m.name, role: 'vera_lambda_b' });
    params.push({ name: nameD, shape: [r], data: lambdaD, module: m.name, role: 'vera_lambda_d' });
    const [y] = ctx.copy(); // (rows, out)
    const lb = g.input(nameB, 'float32', [m.outFeatures]);
    const ld = g.input(nameD, 'float32', [r]);
    let x = ctx.inputs[0]!; // (rows, in)
    return [
      g.scope(m.name, () => {
        if (config.vera_dropout > 0) {
          rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
          x = dropout(x, config.vera_dropout, { ...rngInputs, name: 'vera_dropout' });
        }
        // PEFT slices the shared projections to the layer: vera_A[:, :in], vera_B[:out, :].
        const A = m.inFeatures < proj.vera_A.shape[1]! ? slice(sharedA, { starts: [0], ends: [m.inFeatures], axes: [1] }, 'vera_A_slice') : sharedA;
        const B = m.outFeatures < proj.vera_B.shape[0]! ? slice(sharedB, { starts: [0], ends: [m.outFeatures], axes: [0] }, 'vera_B_slice') : sharedB;
        const down = mul(gemm(x, A, undefined, { transB: true, name: 'vera_A' }), ld, 'vera_lambda_d'); // (rows, r)
        const up = mul(gemm(down, B, undefined, { transB: true, name: 'vera_B' }), lb, 'vera_lambda_b'); // (rows, out)
        return add(y!, up, 'vera_add');
      }),
    ];
  });
  return { graph: adapted, params, frozen, modules };
};

// --- adapter files ---
/** Writes adapter_config.json + adapter_model.safetensors as PEFT does (projections only when save_projection). */
export const saveVeraAdapter = (
  dir: string,
  config: VeraConfig,
  adapted: Pick<AdaptedGraph, 'params' | 'frozen'>,
  adapter = 'default',
): void => {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  const saved = [...adapted.params, ...(config.save_projection ? (adapted.frozen ?? []) : [])];
  for (const t of saved) tensors[veraSavedKey(t.name, adapter)] = { shape: t.shape, data: t.data };
  if (config.save_projection && !(veraSavedKey(veraProjectionKey('vera_A', adapter), adapter) in tensors)) {
    throw new PeftError('save_projection=true but the adapted graph carries no vera_A / vera_B to save');
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

export interface LoadedVera {
  readonly config: VeraConfig;
  readonly warnings: readonly string[];
  /** The adapted graph with the saved lambdas as the trainable tensors' values. */
  readonly adapted: AdaptedGraph;
  /** Where vera_A / vera_B came from: the file (save_projection) or projection_prng_key. */
  readonly projectionsFrom: 'file' | 'prng_key';
}

/**
 * Loads a PEFT VeRA adapter folder onto `graph`. Saved projections are used when present (PEFT 0.17 itself
 * regenerates them from projection_prng_key, which gives the same bits: see torchUniform); a missing, unknown or
 * mis-shaped tensor is an error naming it.
 */
export const loadVeraAdapter = (dir: string, graph: Graph, o: ApplyOptions = {}): LoadedVera => {
  const adapter = o.adapterName ?? 'default';
  const loaded = loadAdapterFiles(dir);
  const { config, warnings } = parseVeraConfig(loaded.config, join(dir, ADAPTER_CONFIG));
  const savedA = loaded.tensors.get('base_model.vera_A');
  const savedB = loaded.tensors.get('base_model.vera_B');
  if (config.save_projection && (!savedA || !savedB)) {
    throw new PeftError(`${dir}: save_projection=true but ${ADAPTER_WEIGHTS} lacks '${savedA ? 'base_model.vera_B' : 'base_model.vera_A'}'`);
  }
  const projections = savedA && savedB ? { vera_A: savedA, vera_B: savedB } : undefined;
  const adapted = applyVera(graph, config, { ...o, ...(projections ? { projections } : {}) });
  const wanted = new Map(adapted.params.map((p) => [veraSavedKey(p.name, adapter), p]));
  for (const key of loaded.tensors.keys()) {
    if (!wanted.has(key) && key !== 'base_model.vera_A' && key !== 'base_model.vera_B') {
      throw new PeftError(`${dir}: tensor '${key}' has no place in this model (an adapter for another base model or config?)`);
    }
  }
  const params = adapted.params.map((p) => {
    const key = veraSavedKey(p.name, adapter);
    const t = loaded.tensors.get(key);
    if (!t) throw new PeftError(`${dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== 1 || t.shape[0] !== p.shape[0]) {
      throw new PeftError(`${dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model needs [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
  return { config, warnings, adapted: { ...adapted, params }, projectionsFrom: projections ? 'file' : 'prng_key' };
};

export const veraMethod: PeftMethod<VeraConfig> = {
  peftType: 'VERA',
  label: 'VeRA',
  parseConfig: parseVeraConfig,
  apply: applyVera,
  savedKey: veraSavedKey,
};
