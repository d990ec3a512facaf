// Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) as a pure Graph → Graph rewrite, with the AdapterHub
// `adapters` library's definitions (methods/modeling.py Adapter; models/llama: the adapters follow self_attn and mlp
// and are called with the residual stream and no layer norm). An adapter at hidden size C with bottleneck r is
//   up(x) = s · (W_up · act(W_down · x + b_down) + b_up)      W_down (r, C), W_up (C, r), s = scaling
// and with h the residual stream entering a sub-block, f the sub-block's output (o_proj's or down_proj's):
//   houlsby  (DoubleSeqBnConfig: original_ln_before=False, residual_before_ln=True), after attention and after the FFN:
//            h' = h + f + up(f)
//   pfeiffer (SeqBnConfig: original_ln_before=True with no layer norm = the residual add first), after the FFN only:
//            h' = (h + f) + up(h + f)
// Trainable: W_down, b_down, W_up, b_up per site, graph inputs named
//   base_model.model.model.layers.N.{self_attn|mlp}.adapter.<adapter>.{down|up}.{weight|bias}
// and saved in adapter_model.safetensors without `.<adapter>` (…mlp.adapter.down.weight).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { type Graph, type Tensor, add } from '../engine/ir/index.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { createRng, normalArray, uniformArray } from '../engine/random.ts';
import { type BottleneckConfig, bottleneckSize, parseBottleneckConfig } from './bottleneck-config.ts';
import { type AdapterSite, BOTTLENECK_PARTS, type BottleneckPart, adapterSites, bottleneckShape, bottleneckUp } from './bottleneck-graph.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles, type LoadedAdapter } from './peft-io.ts';

/** In-memory key of an adapter tensor; the saved key drops `.<adapter>`. */
export const bottleneckKey = (module: string, adapter: string, part: BottleneckPart): string => `base_model.model.${module}.adapter.${adapter}.${part}`;

export const bottleneckSavedKey = (key: string, adapter: string): string => key.replace(`.adapter.${adapter}.`, '.adapter.');

/** N(0, std) truncated to ±2·std by redrawing, as torch's trunc_normal_(std, a=−2std, b=2std) bounds it. */
const truncatedNormal = (n: number, std: number, rng: () => number): Float32Array => {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = normalArray(1, std, rng)[0]!;
    while (Math.abs(v) > 2 * std);
    out[i] = v;
  }
  return out;
};

const initialValue = (part: BottleneckPart, shape: readonly number[], config: BottleneckConfig, rng: () => number): Float32Array => {
  const n = shape.reduce((a, b) => a * b, 1);
  if (part.endsWith('.bias')) return new Float32Array(n);
  switch (config.init_weights) {
    case 'bert':
      return normalArray(n, 0.02, rng);
    case 'houlsby':
      return truncatedNormal(n, 0.01, rng);
    case 'mam_adapter':
      // kaiming_uniform_(a=√5) on the down weight is U(±1/√fan_in); the up weight starts at 0: the identity.
      return part === 'down.weight' ? uniformArray(n, 1 / Math.sqrt(shape[1]!), rng) : new Float32Array(n);
  }
};

export const applyBottleneck = (graph: Graph, config: BottleneckConfig, o: ApplyOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const sites = adapterSites(graph, config.architecture, config.leave_out);
  const rng = createRng(o.seed ?? 0);
  const bySite = new Map<number, { site: AdapterSite; tensors: TrainableTensor[] }>();
  const modules = new Map<string, Readonly<Record<string, number>>>();
  for (const site of sites) {
    const r = bottleneckSize(config, site.hidden, site.layer);
    const tensors = BOTTLENECK_PARTS.map((part): TrainableTensor => {
      const shape = bottleneckShape(part, site.hidden, r);
      return { name: bottleneckKey(site.module, adapter, part), shape, data: initialValue(part, shape, config, rng), module: site.module, role: `adapter.${part}` };
    });
    bySite.set(site.add.id, { site, tensors });
    modules.set(site.module, { layer: site.layer, bottleneck: r, hidden: site.hidden });
  }

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const planned = bySite.get(node.id);
    if (!planned) return undefined;
    const { site, tensors } = planned;
    const g = ctx.b;
    const [down, downBias, up, upBias] = tensors.map((t) => g.input(t.name, 'float32', t.shape)) as [Tensor, Tensor, Tensor, Tensor];
    // x + up(x), named under the module: model.layers.N.mlp.adapter.{down,up,residual}
    const withAdapter = (x: Tensor) => g.scope(`${site.module}.adapter`, () => add(x, bottleneckUp(x, { down, downBias, up, upBias }, config.non_linearity, config.scaling), 'residual'));
    if (config.architecture === 'houlsby') {
      const f = withAdapter(ctx.inputs[site.subInput]!); // (B, T, C): f + up(f)
      return [g.apply1('Add', ctx.inputs.map((t, i) => (i === site.subInput ? f : t)), {}, { name: node.name })]; // h + …
    }
    const [s] = ctx.copy(); // (B, T, C): h + f
    return [withAdapter(s!)]; // s + up(s)
  });
  return { graph: adapted, params: [...bySite.values()].flatMap((p) => p.tensors), modules };
};

// --- adapter files ---
const writeConfig = (dir: string, config: Readonly<Record<string, unknown>>): void => {
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

/** Writes adapter_config.json + adapter_model.safetensors (tensors under `savedKey`), the config last. */
export const writeAdapterFolder = (dir: string, config: Readonly<Record<string, unknown>>, tensors: readonly { name: string; shape: readonly number[]; data: Float32Array }[], savedKey: (name: string) => string): void => {
  mkdirSync(dir, { recursive: true });
  const out: Record<string, TensorToWrite> = {};
  for (const t of tensors) out[savedKey(t.name)] = { shape: t.shape, data: t.data };
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), out);
  writeConfig(dir, config);
};

export const saveBottleneckAdapter = (dir: string, config: BottleneckConfig, params: readonly TrainableTensor[], adapter = 'default'): void =>
  writeAdapterFolder(dir, config as unknown as Record<string, unknown>, params, (name) => bottleneckSavedKey(name, adapter));

/**
 * The params with the values the file holds under their saved keys. A tensor the file lacks, one nothing here takes
 * (an adapter for another model or config) or a shape mismatch is an error naming the tensor and the folder.
 */
export const assignSavedTensors = (params: readonly TrainableTensor[], loaded: LoadedAdapter, savedKey: (name: string) => string, extra: ReadonlySet<string> = new Set()): TrainableTensor[] => {
  const wanted = new Set(params.map((p) => savedKey(p.name)));
  for (const key of loaded.tensors.keys()) {
    if (!wanted.has(key) && !extra.has(key)) throw new PeftError(`${loaded.dir}: tensor '${key}' has no place in this model (an adapter for another base model or config?)`);
  }
  return params.map((p) => {
    const key = savedKey(p.name);
    const t = loaded.tensors.get(key);
    if (!t) throw new PeftError(`${loaded.dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new PeftError(`${loaded.dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model and config need [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
};

export interface LoadedBottleneck {
  readonly config: BottleneckConfig;
  readonly warnings: readonly string[];
  /** The adapted graph with the saved tensors as the trainable tensors' values. */
  readonly adapted: AdaptedGraph;
}

/** Loads a BOTTLENECK adapter folder onto `graph`. */
export const loadBottleneckAdapter = (dir: string, graph: Graph, o: ApplyOptions = {}): LoadedBottleneck => {
  const adapter = o.adapterName ?? 'default';
  const loaded = loadAdapterFiles(dir);
  const { config, warnings } = parseBottleneckConfig(loaded.config, join(dir, ADAPTER_CONFIG));
  const adapted = applyBottleneck(graph, config, o);
  const params = assignSavedTensors(adapted.params, loaded, (name) => bottleneckSavedKey(name, adapter));
  return { config, warnings, adapted: { ...adapted, params } };
};

export const bottleneckMethod: PeftMethod<BottleneckConfig> = {
  peftType: 'BOTTLENECK',
  label: 'Bottleneck adapters (Houlsby / Pfeiffer)',
  parseConfig: parseBottleneckConfig,
  apply: applyBottleneck,
  savedKey: bottleneckSavedKey,
};
