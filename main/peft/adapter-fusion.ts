// AdapterFusion (Pfeiffer et al. 2020), stage 2 of the two-stage flow, with the AdapterHub `adapters` library's
// definitions (methods/bottleneck.py compose_fuse, methods/modeling.py BertFusion). N trained BOTTLENECK adapters are
// frozen; at each of their sites a fusion layer attends over their up-projections. With x the adapters' input at a
// site (houlsby: the sub-block output f; pfeiffer: h + f), up_i = scaling_i·(W_up,i·act_i(W_down,i·x + b_down,i) + b_up,i):
//   q   = W_q·x + b_q               (pfeiffer with query_before_ln: W_q·f + b_q)
//   k_i = W_k·up_i + b_k            v_i = W_v·up_i     (value_before_softmax; else W_v is applied to the sum below)
//   p   = softmax_i(q·k_i)          (dropout_prob: dropout on the scores q·k_i, before the softmax, as AdapterHub)
//   h'  = h + f + Σ_i p_i·v_i       (the fusion output plus the adapters' residual f, then the model's residual h)
// Trainable: only W_q, b_q, W_k, b_k, W_v (C × C each) per site, graph inputs named
//   base_model.model.model.layers.N.{self_attn|mlp}.adapter_fusion.<adapter>.{query|key|value}.{weight|bias}
// Init as AdapterHub: W_q, W_k ~ N(0, 0.02), biases 0, W_v = I with 1e-6 off the diagonal (value_initialized).
// regularization adds 0.01·Σ_sites ‖I − W_v‖²_F to the graph's `loss` output (AdapterHub adds the same term's
// gradient after each step through its trainer callback), so the training loss reported includes it.
// The fused adapters' tensors are frozen inline initializers, saved with the fusion layers in one standalone folder as
//   base_model.model.model.layers.N.mlp.adapters.<name>.down.weight …
import { join } from 'node:path';
import { type Graph, type Tensor, add, concat, mul, reduceSum, slice, softmax, square, sub } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { linear } from '../engine/nn/linear.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { assignSavedTensors, writeAdapterFolder } from './bottleneck.ts';
import { bottleneckSize } from './bottleneck-config.ts';
import { type AdapterFusionConfig, parseAdapterFusionConfig } from './bottleneck-fusion-config.ts';
import { type AdapterSite, BOTTLENECK_PARTS, type BottleneckPart, adapterSites, bottleneckShape, bottleneckUp } from './bottleneck-graph.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, FrozenTensor, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles } from './peft-io.ts';

export type { AdapterFusionConfig } from './bottleneck-fusion-config.ts';

/** A fused adapter's tensors by their BOTTLENECK saved keys (`base_model.model.<module>.adapter.down.weight`, …). */
export type AdapterTensors = ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;

export interface AdapterFusionOptions extends ApplyOptions {
  /** The fused adapters' tensors by name; without them they are read from config.adapter_paths. */
  readonly adapters?: ReadonlyMap<string, AdapterTensors>;
  /** An inference graph (generation, evaluation): no dropout and no regularization term. */
  readonly inference?: boolean;
}

export type FusionPart = 'query.weight' | 'query.bias' | 'key.weight' | 'key.bias' | 'value.weight';

export const fusionKey = (module: string, adapter: string, part: FusionPart): string => `base_model.model.${module}.adapter_fusion.${adapter}.${part}`;
export const fusionSavedKey = (key: string, adapter: string): string => key.replace(`.adapter_fusion.${adapter}.`, '.adapter_fusion.');
/** A fused (frozen) adapter's tensor, in the graph and in the fusion folder. */
export const fusedAdapterKey = (module: string, name: string, part: BottleneckPart): string => `base_model.model.${module}.adapters.${name}.${part}`;
const bottleneckFileKey = (module: string, part: BottleneckPart): string => `base_model.model.${module}.adapter.${part}`;

const fusionParts = (c: AdapterFusionConfig): FusionPart[] => [
  ...(c.query ? (['query.weight', 'query.bias'] as const) : []),
  ...(c.key ? (['key.weight', 'key.bias'] as const) : []),
  ...(c.value ? (['value.weight'] as const) : []),
];

/** I (C × C) with `offDiagonal` everywhere else: AdapterHub's value init uses 1e-6. */
const identity = (C: number, offDiagonal = 0): Float32Array => {
  const out = new Float32Array(C * C).fill(offDiagonal);
  for (let i = 0; i < C; i++) out[i * C + i] = 1;
  return out;
};

const initialValue = (part: FusionPart, C: number, config: AdapterFusionConfig, rng: () => number): Float32Array => {
  if (part.endsWith('.bias')) return new Float32Array(C);
  if (part === 'value.weight' && config.value_initialized) return identity(C, 1e-6);
  return normalArray(C * C, 0.02, rng);
};

const readAdapterTensors = (config: AdapterFusionConfig): Map<string, AdapterTensors> =>
  new Map(
    config.adapters.map((name) => {
      const dir = config.adapter_paths?.[name];
      if (!dir) throw new PeftError(`ADAPTER_FUSION: no tensors given for adapter '${name}' and adapter_paths names no folder for it`);
      return [name, loadAdapterFiles(dir).tensors];
    }),
  );

/** Each fused adapter's tensors at one site, checked against its config's bottleneck size. */
const frozenAt = (site: AdapterSite, config: AdapterFusionConfig, tensors: ReadonlyMap<string, AdapterTensors>): FrozenTensor[][] =>
  config.adapters.map((name) => {
    const r = bottleneckSize(config.adapter_configs[name]!, site.hidden, site.layer);
    const from = tensors.get(name);
    if (!from) throw new PeftError(`ADAPTER_FUSION: no tensors for adapter '${name}'`);
    return BOTTLENECK_PARTS.map((part) => {
      const key = bottleneckFileKey(site.module, part);
      const t = from.get(key);
      const shape = bottleneckShape(part, site.hidden, r);
      if (!t) throw new PeftError(`adapter '${name}' has no tensor '${key}' (not a ${config.adapter_configs[name]!.architecture} adapter for this model?)`);
      if (t.shape.join() !== shape.join()) throw new PeftError(`adapter '${name}': tensor '${key}' has shape [${t.shape.join(', ')}], its config and this model need [${shape.join(', ')}]`);
      return { name: fusedAdapterKey(site.module, name, part), shape, data: t.data };
    });
  });

export const applyAdapterFusion = (graph: Graph, config: AdapterFusionConfig, o: AdapterFusionOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const first = config.adapter_configs[config.adapters[0]!]!;
  const sites = adapterSites(graph, first.architecture, first.leave_out);
  const tensors = o.adapters ?? readAdapterTensors(config);
  const rng = createRng(o.seed ?? 0);
  const plans = new Map(
    sites.map((site) => {
      const params = fusionParts(config).map((part): TrainableTensor & { part: FusionPart } => {
        const shape = part.endsWith('.bias') ? [site.hidden] : [site.hidden, site.hidden];
        return { name: fusionKey(site.module, adapter, part), shape, data: initialValue(part, site.hidden, config, rng), module: site.module, role: `adapter_fusion.${part}`, part };
      });
      return [site.add.id, { site, params, frozen: frozenAt(site, config, tensors) }] as const;
    }),
  );
  const lossNode = graph.outputs.map((id) => graph.producer.get(id)).find((n) => n && graph.value(n.outputs[0]!).name === 'loss');
  const regularize = config.regularization && config.value && !o.inference && lossNode !== undefined;
  const dropoutP = o.inference ? 0 : (config.dropout_prob ?? 0);
  const values: Tensor[] = [];
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const g = ctx.b;
    if (regularize && node === lossNode) {
      const [loss] = g.apply(node.op, ctx.inputs, node.attrs, { name: 'loss_before_fusion_regularization' });
      const C = values[0]!.shape[0] as number;
      const eye = g.initializer('adapter_fusion.identity', 'float32', [C, C], { kind: 'inline', data: identity(C) });
      const terms = values.map((v) => reduceSum(square(sub(eye, v)), [], { keepdims: false }));
      return [add(loss!, mul(terms.reduce((a, b) => add(a, b)), 0.01), 'fusion_regularization')];
    }
    const plan = plans.get(node.id);
    if (!plan) return undefined;
    const { site, params, frozen } = plan;
    const w = new Map(params.map((p) => [p.part, g.input(p.name, 'float32', p.shape)]));
    const f = ctx.inputs[site.subInput]!; // (B, T, C)
    const x = first.architecture === 'houlsby' ? f : ctx.copy()[0]!; // (B, T, C): the adapters' input
    const ups = config.adapters.map((name, i) =>
      g.scope(`${site.module}.adapters.${name}`, () => {
        const [down, downBias, up, upBias] = frozen[i]!.map((t) => g.initializer(t.name, 'float32', t.shape, { kind: 'inline', data: t.data }));
        const c = config.adapter_configs[name]!;
        return bottleneckUp(x, { down: down!, downBias: downBias!, up: up!, upBias: upBias! }, c.non_linearity, c.scaling); // (B, T, C)
      }),
    );
    const fused = g.scope(`${site.module}.adapter_fusion`, () => {
      const queryIn = first.architecture === 'pfeiffer' && config.query_before_ln ? f : x;
      const q = config.query ? linear(queryIn, w.get('query.weight')!, w.get('query.bias'), 'query') : queryIn; // (B, T, C)
      const scores = ups.map((u) => reduceSum(mul(q, config.key ? linear(u, w.get('key.weight')!, w.get('key.bias'), 'key') : u), [-1], { keepdims: true })); // (B, T, 1) each
      let s = concat(scores, -1, 'scores'); // (B, T, N)
      if (dropoutP > 0) {
        rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
        s = dropout(s, dropoutP, { ...rngInputs, name: 'score_dropout' });
      }
      const p = softmax(s, -1, 'attention'); // (B, T, N)
      const valueW = config.value ? w.get('value.weight')! : undefined;
      if (valueW) values.push(valueW);
      const before = valueW && config.value_before_softmax;
      const weighted = ups.map((u, i) => mul(slice(p, { starts: [i], ends: [i + 1], axes: [-1] }), before ? linear(u, valueW, undefined, 'value') : u)); // (B, T, C)
      const sum = weighted.reduce((a, b) => add(a, b));
      return valueW && !before ? linear(sum, valueW, undefined, 'value') : sum; // (B, T, C)
    });
    if (first.architecture === 'houlsby') {
      const withFusion = g.scope(`${site.module}.adapter_fusion`, () => add(f, fused, 'residual')); // f + Σ p_i·v_i
      return [g.apply1('Add', ctx.inputs.map((t, i) => (i === site.subInput ? withFusion : t)), {}, { name: node.name })];
    }
    return [g.scope(`${site.module}.adapter_fusion`, () => add(x, fused, 'residual'))]; // (h + f) + Σ p_i·v_i
  });
  const all = [...plans.values()];
  const modules = new Map(all.map(({ site }) => [site.module, { layer: site.layer, hidden: site.hidden, adapters: config.adapters.length }]));
  return { graph: adapted, params: all.flatMap((p) => p.params.map(({ part: _, ...t }) => t)), frozen: all.flatMap((p) => p.frozen.flat()), modules };
};

// --- adapter files: the fusion layers and the fused adapters in one folder ---
export const saveAdapterFusion = (dir: string, config: AdapterFusionConfig, adapted: Pick<AdaptedGraph, 'params' | 'frozen'>, adapter = 'default'): void =>
  writeAdapterFolder(dir, config as unknown as Record<string, unknown>, [...adapted.params, ...(adapted.frozen ?? [])], (name) => fusionSavedKey(name, adapter));

const FUSED_KEY = /^(base_model\.model\..+)\.adapters\.([A-Za-z0-9_-]+)\.((?:down|up)\.(?:weight|bias))$/;

export interface LoadedAdapterFusion {
  readonly config: AdapterFusionConfig;
  readonly warnings: readonly string[];
  readonly adapted: AdaptedGraph;
}

/** Loads an ADAPTER_FUSION folder onto `graph`: fusion layers and fused adapters from its own files. */
export const loadAdapterFusion = (dir: string, graph: Graph, o: AdapterFusionOptions = {}): LoadedAdapterFusion => {
  const adapter = o.adapterName ?? 'default';
  const loaded = loadAdapterFiles(dir);
  const { config, warnings } = parseAdapterFusionConfig({ ...loaded.config, adapter_paths: null }, join(dir, ADAPTER_CONFIG));
  const byAdapter = new Map(config.adapters.map((name) => [name, new Map<string, { shape: readonly number[]; data: Float32Array }>()]));
  const fusedKeys = new Set<string>();
  for (const [key, t] of loaded.tensors) {
    const m = FUSED_KEY.exec(key);
    if (!m) continue;
    const into = byAdapter.get(m[2]!);
    if (!into) throw new PeftError(`${dir}: tensor '${key}' belongs to adapter '${m[2]}', which the config's adapters do not list`);
    into.set(`${m[1]}.adapter.${m[3]}`, t);
    fusedKeys.add(key);
  }
  let adapted: AdaptedGraph;
  try {
    adapted = applyAdapterFusion(graph, config, { ...o, adapters: byAdapter });
  } catch (err) {
    throw err instanceof PeftError ? new PeftError(`${dir}: ${err.message} (in ${ADAPTER_WEIGHTS})`) : err;
  }
  const params = assignSavedTensors(adapted.params, loaded, (name) => fusionSavedKey(name, adapter), fusedKeys);
  return { config, warnings, adapted: { ...adapted, params } };
};

export const adapterFusionMethod: PeftMethod<AdapterFusionConfig> = {
  peftType: 'ADAPTER_FUSION',
  label: 'AdapterFusion',
  parseConfig: parseAdapterFusionConfig,
  apply: applyAdapterFusion,
  savedKey: fusionSavedKey,
};
