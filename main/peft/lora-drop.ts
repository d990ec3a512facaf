// LoRA-drop (Zhou et al. 2024, arXiv 2402.07721): after a short LoRA warm-up on every targeted module, each
// module's importance is its LoRA output's squared norm on sampled data, g_i = mean_x ‖ΔW_i·x‖² (ΔW = s·B·A);
// within a ranking group the importances are normalized (I_i = g_i / Σ g_j), sorted in decreasing order, and modules
// are kept until their cumulative share reaches the threshold T. Kept modules train their own LoRA; all dropped
// modules of one type (the same name up to the layer index: `model.layers.shared.self_attn.q_proj`) share ONE A/B
// pair — one pair of graph inputs read by several Gemms, whose gradients the autodiff sums.
//
// Flow: applyLoraDrop with shared_modules = [] is the warm-up LoRA (PEFT's keys) → loraDropImportanceGraph (the same
// rewrite exposing Σ‖ΔW·x‖² per module as its only outputs) + measureLoraDropImportance on sample batches →
// selectLoraDropLayers → applyLoraDrop with the selection → saveLoraDropAdapter (a plain PEFT LoRA folder: every
// dropped module holds a copy of its shared pair; lora_drop.json records the selection).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { Graph, type Tensor, add, gemm, mul, reduceSum } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { prune } from '../engine/onnx/prune.ts';
import { Session, type HostTensor, type SessionOptions } from '../engine/onnx/runtime.ts';
import { createRng, normalArray, uniformArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { type FieldFail, checkRankAndAlpha, fieldChecker, unknownFieldWarnings } from './config-fields.ts';
import { PeftError } from './errors.ts';
import { LORA_DEFAULTS } from './lora-config.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles, savedKey, type LoadedAdapter } from './peft-io.ts';
import { patternValue, selectTargets, type TargetConfig } from './targets.ts';

export type LoraDropScope = 'module_type' | 'all';

export interface LoraDropConfig extends TargetConfig {
  readonly peft_type: 'LORA_DROP';
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  readonly use_rslora: boolean;
  readonly init_lora_weights: boolean | 'gaussian';
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  /** T: keep modules until their cumulative normalized importance reaches it. */
  readonly lora_drop_threshold: number;
  /** Rank each module type across layers ('module_type'), or all targeted modules together ('all'). */
  readonly lora_drop_scope: LoraDropScope;
  /** The selection: modules that share their type's single LoRA ([] = plain LoRA, the warm-up). */
  readonly shared_modules: readonly string[];
  readonly bias: 'none';
  readonly base_model_name_or_path?: string | null;
  readonly task_type?: string | null;
}

export const LORA_DROP_DEFAULTS: Omit<LoraDropConfig, 'target_modules'> = {
  peft_type: 'LORA_DROP',
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  use_rslora: false,
  init_lora_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
  lora_drop_threshold: 0.9,
  lora_drop_scope: 'module_type',
  shared_modules: [],
  bias: 'none',
  modules_to_save: null,
  task_type: 'CAUSAL_LM',
};

export const parseLoraDropConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<LoraDropConfig> => {
  const c = { ...LORA_DROP_DEFAULTS, ...raw } as LoraDropConfig & Record<string, unknown>;
  const fail: FieldFail = fieldChecker(c, where);
  if (c.peft_type !== 'LORA_DROP') fail('peft_type', "is not 'LORA_DROP'");
  checkRankAndAlpha(c, fail);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) fail('lora_dropout', 'must be in [0, 1)');
  if (typeof c.use_rslora !== 'boolean') fail('use_rslora', 'must be true or false');
  if (![true, false, 'gaussian'].includes(c.init_lora_weights as never)) fail('init_lora_weights', "must be true, false or 'gaussian'");
  if (!(typeof c.lora_drop_threshold === 'number' && c.lora_drop_threshold > 0 && c.lora_drop_threshold <= 1)) fail('lora_drop_threshold', 'must be in (0, 1]');
  if (!['module_type', 'all'].includes(c.lora_drop_scope)) fail('lora_drop_scope', "must be 'module_type' or 'all'");
  if (!(Array.isArray(c.shared_modules) && c.shared_modules.every((m) => typeof m === 'string'))) fail('shared_modules', 'must be a list of module names');
  if (c.bias !== 'none') fail('bias', "must be 'none' for LoRA-drop");
  if (c.modules_to_save?.length) fail('modules_to_save', 'is not supported by LoRA-drop');
  if (c.target_modules === undefined || c.target_modules === null) fail('target_modules', 'must name the modules to adapt');
  for (const [k, v] of Object.entries(c.rank_pattern)) if (!(Number.isInteger(v) && v > 0)) throw new PeftError(`${where}: rank_pattern['${k}']=${v} must be a positive integer`);
  return { config: c, warnings: unknownFieldWarnings(raw, Object.keys(LORA_DROP_DEFAULTS), where) };
};

/** The module type a module shares its LoRA with: its name with the layer index replaced by `shared`. */
export const loraDropGroup = (module: string): string => module.replace(/\.(\d+)\./, '.shared.');

const key = (module: string, part: 'lora_A' | 'lora_B', adapter: string): string => `base_model.model.${module}.${part}.${adapter}.weight`;

export interface LoraDropGraph extends AdaptedGraph {
  /** Importance graphs only: module → the output holding Σ_rows ‖ΔW·x‖² on a batch. */
  readonly importanceOutputs: ReadonlyMap<string, string>;
}

const rewrite = (graph: Graph, config: LoraDropConfig, o: ApplyOptions, probe: boolean): LoraDropGraph => {
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  const names = new Set(targets.map((m) => m.name));
  const shared = new Set(config.shared_modules);
  for (const m of shared) if (!names.has(m)) throw new PeftError(`shared_modules: '${m}' is not one of the targeted modules`);
  const rng = createRng(o.seed ?? 0);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  const params: TrainableTensor[] = [];
  const inputs = new Map<string, { t: Tensor; p: TrainableTensor }>();
  const modules = new Map<string, Readonly<Record<string, number>>>();
  const norms = new Map<string, Tensor>();
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const g = ctx.b;
    const r = patternValue(config.rank_pattern, m.name, config.r);
    const alpha = patternValue(config.alpha_pattern, m.name, config.lora_alpha);
    const scale = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    const owner = shared.has(m.name) ? loraDropGroup(m.name) : m.name;
    const param = (part: 'lora_A' | 'lora_B', shape: number[], init: () => Float32Array): Tensor => {
      const name = key(owner, part, adapter);
      const hit = inputs.get(name);
      if (hit) {
        if (hit.p.shape.some((d, i) => d !== shape[i])) {
          throw new PeftError(`'${m.name}' cannot share ${name}: it needs [${shape.join(', ')}], the group has [${hit.p.shape.join(', ')}] (rank_pattern or shapes differ)`);
        }
        return hit.t;
      }
      const p: TrainableTensor = { name, shape, data: init(), module: owner, role: part };
      params.push(p);
      const t = g.input(name, 'float32', shape);
      inputs.set(name, { t, p });
      return t;
    };
    const init = config.init_lora_weights;
    const A = param('lora_A', [r, m.inFeatures], () =>
      init === 'gaussian' ? normalArray(r * m.inFeatures, 1 / r, rng) : uniformArray(r * m.inFeatures, 1 / Math.sqrt(m.inFeatures), rng));
    const B = param('lora_B', [m.outFeatures, r], () => (init === false ? uniformArray(m.outFeatures * r, 1 / Math.sqrt(r), rng) : new Float32Array(m.outFeatures * r)));
    const prev = modules.get(owner);
    if (prev && prev.scale !== scale) throw new PeftError(`'${m.name}' cannot share the LoRA of ${owner}: its scale ${scale} differs from ${prev.scale} (alpha_pattern)`);
    modules.set(owner, { r, alpha, scale, shared: owner === m.name ? 0 : 1 });
    const [y] = ctx.copy(); // (rows, out)
    let x = ctx.inputs[0]!; // (rows, in)
    if (config.lora_dropout > 0 && !probe) {
      rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
      x = g.scope(m.name, () => dropout(x, config.lora_dropout, { ...rngInputs!, name: 'lora_dropout' }));
    }
    return [
      g.scope(m.name, () => {
        const down = gemm(x, A, undefined, { transB: true, name: 'lora_A' }); // (rows, r)
        if (!probe) return gemm(down, B, y, { transB: true, alpha: scale, name: 'lora_B' }); // y + s·down·Bᵀ
        const delta = gemm(down, B, undefined, { transB: true, alpha: scale, name: 'lora_B' }); // ΔW·x (rows, out)
        norms.set(m.name, reduceSum(mul(delta, delta), [], { keepdims: false, name: 'lora_drop.sq_norm' }));
        return add(y!, delta, 'lora_drop.add');
      }),
    ];
  });
  if (!probe) return { graph: adapted, params, modules, importanceOutputs: new Map() };
  // Only the norms are outputs: what feeds nothing but logits/loss (the LM head, labels) is dropped.
  const outputs = [...norms.values()].map((t) => t.id);
  const pruned = prune(new Graph(adapted.values, adapted.nodes, adapted.inputs, outputs, adapted.initializers));
  const read = new Set(pruned.nodes.flatMap((n) => n.inputs));
  const used = pruned.inputs.filter((id) => read.has(id));
  const probeGraph = new Graph(new Map([...pruned.values].filter(([id]) => read.has(id) || pruned.producer.has(id))), pruned.nodes, used, outputs, pruned.initializers);
  return { graph: probeGraph, params, modules, importanceOutputs: new Map([...norms].map(([m, t]) => [m, t.name])) };
};

/** The training graph: kept modules with their own LoRA, dropped ones sharing their type's pair. */
export const applyLoraDrop = (graph: Graph, config: LoraDropConfig, o: ApplyOptions = {}): LoraDropGraph => rewrite(graph, config, o, false);

/** An inference graph whose outputs are Σ‖ΔW·x‖² per module (no dropout); its inputs take the warm-up tensors. */
export const loraDropImportanceGraph = (graph: Graph, config: LoraDropConfig, o: ApplyOptions = {}): LoraDropGraph => rewrite(graph, config, o, true);

/**
 * Runs the importance graph on sample batches: module → mean over tokens of ‖ΔW·x‖² (tokens = elements of
 * `tokensInput`, default input_ids). Batch entries the graph does not read (labels) are not fed.
 */
export const measureLoraDropImportance = async (
  probe: LoraDropGraph,
  params: readonly { readonly name: string; readonly shape: readonly number[]; readonly data: Float32Array }[],
  batches: Iterable<Readonly<Record<string, HostTensor>>>,
  o: { readonly session?: SessionOptions; readonly tokensInput?: string } = {},
): Promise<Map<string, number>> => {
  if (probe.importanceOutputs.size === 0) throw new PeftError('measureLoraDropImportance needs the graph from loraDropImportanceGraph');
  const wanted = new Set(probe.graph.inputs.map((id) => probe.graph.value(id).name));
  const weights = Object.fromEntries(params.filter((p) => wanted.has(p.name)).map((p) => [p.name, { dtype: 'float32' as const, shape: [...p.shape], data: p.data }]));
  const sums = new Map([...probe.importanceOutputs.keys()].map((m) => [m, 0]));
  const session = await Session.create(probe.graph, o.session);
  let tokens = 0;
  try {
    for (const batch of batches) {
      const feeds: Record<string, HostTensor> = { ...weights };
      for (const [k, v] of Object.entries(batch)) if (wanted.has(k)) feeds[k] = v;
      const out = await session.run(feeds, [...probe.importanceOutputs.values()]);
      for (const [m, name] of probe.importanceOutputs) sums.set(m, sums.get(m)! + Number(out[name]!.data[0]));
      const t = batch[o.tokensInput ?? 'input_ids'];
      if (!t) throw new PeftError(`a sample batch lacks '${o.tokensInput ?? 'input_ids'}', which counts its tokens`);
      tokens += t.shape.reduce((a, d) => a * d, 1);
    }
  } finally {
    await session.release();
  }
  if (tokens === 0) throw new PeftError('measureLoraDropImportance got no sample batches');
  return new Map([...sums].map(([m, s]) => [m, s / tokens]));
};

export interface LoraDropSelection {
  /** Normalized importance of each module within its ranking group. */
  readonly share: ReadonlyMap<string, number>;
  readonly kept: readonly string[];
  readonly shared: readonly string[];
}

/** The paper's selection: per ranking group, sort by importance and keep until the cumulative share reaches T. */
export const selectLoraDropLayers = (importance: ReadonlyMap<string, number>, config: Pick<LoraDropConfig, 'lora_drop_threshold' | 'lora_drop_scope'>): LoraDropSelection => {
  const groups = new Map<string, string[]>();
  for (const m of importance.keys()) {
    const g = config.lora_drop_scope === 'module_type' ? loraDropGroup(m) : 'all';
    groups.set(g, [...(groups.get(g) ?? []), m]);
  }
  const share = new Map<string, number>();
  const kept = new Set<string>();
  for (const [g, members] of groups) {
    const total = members.reduce((s, m) => s + importance.get(m)!, 0);
    if (!(total > 0) || !Number.isFinite(total)) throw new PeftError(`LoRA-drop: the importances of ${g} sum to ${total}; warm the LoRA up (B = 0 gives no output) before measuring`);
    let cumulative = 0;
    for (const m of [...members].sort((a, b) => importance.get(b)! - importance.get(a)!)) {
      share.set(m, importance.get(m)! / total);
      if (cumulative >= config.lora_drop_threshold) continue;
      kept.add(m);
      cumulative += share.get(m)!;
    }
  }
  const all = [...importance.keys()];
  return { share, kept: all.filter((m) => kept.has(m)), shared: all.filter((m) => !kept.has(m)) };
};

export const LORA_DROP_SIDECAR = 'lora_drop.json';

/** The modules a tensor serves: a shared pair's group members, else its own module. */
const holders = (config: LoraDropConfig, p: TrainableTensor): string[] => {
  const members = config.shared_modules.filter((m) => loraDropGroup(m) === p.module);
  return members.length > 0 ? members : [p.module];
};

const loraConfigOf = (c: LoraDropConfig): Record<string, unknown> => ({
  ...LORA_DEFAULTS,
  r: c.r,
  lora_alpha: c.lora_alpha,
  lora_dropout: c.lora_dropout,
  use_rslora: c.use_rslora,
  target_modules: c.target_modules,
  ...(c.exclude_modules ? { exclude_modules: c.exclude_modules } : {}),
  ...(c.layers_to_transform !== undefined && c.layers_to_transform !== null ? { layers_to_transform: c.layers_to_transform } : {}),
  ...(c.layers_pattern ? { layers_pattern: c.layers_pattern } : {}),
  rank_pattern: c.rank_pattern,
  alpha_pattern: c.alpha_pattern,
  base_model_name_or_path: c.base_model_name_or_path ?? null,
});

/**
 * Saves a PEFT LoRA folder that PEFT (and applyLora) load as is: kept modules' tensors under their keys, each
 * dropped module with a copy of its group's shared pair; lora_drop.json keeps the LoRA-drop config (selection
 * included) so loadLoraDropAdapter can rebuild the shared graph.
 */
export const saveLoraDropAdapter = (dir: string, config: LoraDropConfig, params: readonly TrainableTensor[], adapter = 'default', extra: Readonly<Record<string, unknown>> = {}): void => {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) {
    for (const m of holders(config, p)) tensors[savedKey(key(m, p.role as 'lora_A' | 'lora_B', adapter), adapter)] = { shape: p.shape, data: p.data };
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  for (const [file, value] of [[LORA_DROP_SIDECAR, { ...extra, config }], [ADAPTER_CONFIG, loraConfigOf(config)]] as const) {
    const tmp = join(dir, `${file}.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
    renameSync(tmp, join(dir, file));
  }
};

/** Reads a folder saveLoraDropAdapter wrote: the LoRA-drop config and the PEFT tensors. */
export const loadLoraDropAdapter = (dir: string): { config: LoraDropConfig; adapter: LoadedAdapter } => {
  let side: { config: Record<string, unknown> };
  try {
    side = JSON.parse(readFileSync(join(dir, LORA_DROP_SIDECAR), 'utf8')) as typeof side;
  } catch (err) {
    throw new PeftError(`${dir}: no readable ${LORA_DROP_SIDECAR} (${(err as Error).message}); load it as a plain LoRA adapter instead`);
  }
  return { config: parseLoraDropConfig(side.config, join(dir, LORA_DROP_SIDECAR)).config, adapter: loadAdapterFiles(dir) };
};

/** The shared graph's tensors from a saved folder; the copies of a shared pair must be identical. */
export const assignLoraDropWeights = (params: readonly TrainableTensor[], config: LoraDropConfig, loaded: LoadedAdapter, adapter = 'default'): TrainableTensor[] =>
  params.map((p) => {
    const keys = holders(config, p).map((m) => savedKey(key(m, p.role as 'lora_A' | 'lora_B', adapter), adapter));
    const copies = keys.map((k) => {
      const t = loaded.tensors.get(k);
      if (!t) throw new PeftError(`${loaded.dir}: tensor '${k}' is missing from ${ADAPTER_WEIGHTS}`);
      if (t.data.length !== p.data.length) throw new PeftError(`${loaded.dir}: tensor '${k}' has shape [${t.shape.join(', ')}], this model needs [${p.shape.join(', ')}]`);
      return t.data;
    });
    const differs = copies.findIndex((d) => d.some((v, i) => v !== copies[0]![i]));
    if (differs > 0) throw new PeftError(`${loaded.dir}: '${keys[differs]}' differs from '${keys[0]}' though both modules share one LoRA`);
    return { ...p, data: Float32Array.from(copies[0]!) };
  });

export const loraDropMethod: PeftMethod<LoraDropConfig> = {
  peftType: 'LORA_DROP',
  label: 'LoRA-drop',
  parseConfig: parseLoraDropConfig,
  apply: applyLoraDrop,
  savedKey,
};
