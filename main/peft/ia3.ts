// (IA)³ (Liu et al., 2022) as a pure Graph → Graph rewrite, with HF PEFT's (0.17) config fields and keys. Each
// targeted linear layer learns one vector l that rescales it:
//   y = (x·Wᵀ + b) ⊙ l    l (out, 1) in PEFT, for an ordinary target (output scaled, bias included)
//   y = (x ⊙ l)·Wᵀ + b    l (1, in) in PEFT, for a feedforward target (input scaled)
// The vectors keep PEFT's 2-D shapes, so gradients and saved tensors line up with PEFT's without reshaping.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Graph, type Tensor, mul, reshape } from '../engine/ir/index.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { baseTrainables } from './base-trainables.ts';
import { PeftError } from './errors.ts';
import { type Ia3Config, isFeedforward, parseIa3Config, withIa3Defaults } from './ia3-config.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles, savedKey as loraFamilySavedKey } from './peft-io.ts';
import { selectTargets } from './targets.ts';

export interface Ia3Options extends ApplyOptions {
  /** The model's config.json model_type: picks PEFT's default target / feedforward modules when they are null. */
  readonly modelType?: string;
}

/** PEFT's in-memory key of a scaling vector (`...<module>.ia3_l.<adapter>`); the saved key drops `.<adapter>`. */
export const ia3Key = (module: string, adapter: string): string => `base_model.model.${module}.ia3_l.${adapter}`;

/** In-memory key → key in adapter_model.safetensors, as get_peft_model_state_dict writes it. */
export const ia3SavedKey = (key: string, adapter: string): string => {
  const suffix = `.ia3_l.${adapter}`;
  return key.endsWith(suffix) ? key.slice(0, -(adapter.length + 1)) : loraFamilySavedKey(key, adapter);
};

export const applyIa3 = (graph: Graph, raw: Ia3Config, o: Ia3Options = {}): AdaptedGraph => {
  const config = withIa3Defaults(raw, o.modelType);
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) {
    throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  }
  const rng = createRng(o.seed ?? 0);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  const extra = baseTrainables(graph, { bias: 'none', modulesToSave: config.modules_to_save ?? [], adapted: new Set(targets.map((m) => m.name)), adapter });
  const baseParams = new Map(extra.params.map((p) => [p.name, p]));
  const params: TrainableTensor[] = [];
  const modules = new Map<string, Readonly<Record<string, number>>>();
  const trainableInputs = new Map<string, Tensor>();

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const g = ctx.b;
    const trainable = (p: TrainableTensor): Tensor => {
      let t = trainableInputs.get(p.name);
      if (!t) {
        t = g.input(p.name, 'float32', p.shape);
        trainableInputs.set(p.name, t);
      }
      return t;
    };
    const substituted = extra.substitutions.get(node.id);
    const inputs = ctx.inputs.map((t, i) => {
      const name = substituted?.get(i);
      return name === undefined ? t : trainable(baseParams.get(name)!);
    });
    const m = byNode.get(node.id);
    if (!m) return substituted ? g.apply(node.op, inputs, node.attrs, { name: node.name }) : undefined;

    const feedforward = isFeedforward(config, m.name);
    const shape = feedforward ? [1, m.inFeatures] : [m.outFeatures, 1];
    const size = feedforward ? m.inFeatures : m.outFeatures;
    const data = config.init_ia3_weights ? new Float32Array(size).fill(1) : normalArray(size, 1, rng);
    const p: TrainableTensor = { name: ia3Key(m.name, adapter), shape, data, module: m.name, role: 'ia3_l' };
    params.push(p);
    modules.set(m.name, { feedforward: feedforward ? 1 : 0, size });
    const l = trainable(p);
    const [x, ...rest] = inputs; // x (rows, in)
    if (feedforward) {
      const scaled = g.scope(m.name, () => mul(x!, l, 'ia3_scale_input')); // (rows, in) ⊙ (1, in)
      return g.apply(node.op, [scaled, ...rest], node.attrs, { name: node.name }); // (rows, out)
    }
    const [y] = g.apply(node.op, inputs, node.attrs, { name: node.name }); // (rows, out)
    return [g.scope(m.name, () => mul(y!, reshape(l, [m.outFeatures], 'ia3_l_row'), 'ia3_scale_output'))]; // (rows, out)
  });
  params.push(...extra.params);
  return { graph: adapted, params, modules };
};

// --- adapter files ---
/**
 * Writes adapter_config.json + adapter_model.safetensors as PEFT's save_pretrained does. The config is written with
 * target_modules / feedforward_modules resolved (pass modelType when they are null), as PEFT writes them.
 */
export const saveIa3Adapter = (dir: string, config: Ia3Config, params: readonly TrainableTensor[], o: Ia3Options = {}): void => {
  const adapter = o.adapterName ?? 'default';
  const resolved = withIa3Defaults(config, o.modelType);
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) tensors[ia3SavedKey(p.name, adapter)] = { shape: p.shape, data: p.data };
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify({ ...resolved, inference_mode: true }, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

export interface LoadedIa3 {
  readonly config: Ia3Config;
  readonly warnings: readonly string[];
  /** The adapted graph with the saved vectors (and modules_to_save copies) as the trainable tensors' values. */
  readonly adapted: AdaptedGraph;
}

/**
 * Loads a PEFT IA3 adapter folder onto `graph`. A tensor the file lacks, one the graph has no place for (an adapter
 * for another base model) or a shape mismatch (a feedforward vector where an output one belongs) is an error naming it.
 */
export const loadIa3Adapter = (dir: string, graph: Graph, o: Ia3Options = {}): LoadedIa3 => {
  const adapter = o.adapterName ?? 'default';
  const loaded = loadAdapterFiles(dir);
  const parsed = parseIa3Config(loaded.config, join(dir, ADAPTER_CONFIG));
  const config = withIa3Defaults(parsed.config, o.modelType);
  const adapted = applyIa3(graph, config, o);
  const wanted = new Set(adapted.params.map((p) => ia3SavedKey(p.name, adapter)));
  for (const key of loaded.tensors.keys()) {
    if (!wanted.has(key)) throw new PeftError(`${dir}: tensor '${key}' has no place in this model (an adapter for another base model or config?)`);
  }
  const params = adapted.params.map((p) => {
    const key = ia3SavedKey(p.name, adapter);
    const t = loaded.tensors.get(key);
    if (!t) throw new PeftError(`${dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new PeftError(`${dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model and config need [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
  return { config, warnings: parsed.warnings, adapted: { ...adapted, params } };
};

export const ia3Method: PeftMethod<Ia3Config> = {
  peftType: 'IA3',
  label: 'IA³',
  parseConfig: parseIa3Config,
  apply: applyIa3,
  savedKey: ia3SavedKey,
};
