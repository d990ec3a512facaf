// LoRA as a pure Graph → Graph rewrite: each targeted linear y = x·Wᵀ (+ b) becomes
// y + s·(dropout(x)·Aᵀ)·Bᵀ with s = α/r (rsLoRA: α/√r); A (r, in) and B (out, r) become graph inputs named
// with PEFT's keys, so gradients come back under the names adapters are saved with.
// Options: DoRA (dora.ts); inits from the base weight that replace it by a residual (PiSSA, OLoRA: lora-init.ts);
// trainable base biases and modules_to_save copies (base-trainables.ts).
import { type Graph, type InitializerData, type Tensor, gemm } from '../engine/ir/index.ts';
import { readInitializer } from '../engine/io/initializer.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { createRng, normalArray, uniformArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { baseTrainables } from './base-trainables.ts';
import { doraLinear, doraMagnitude, doraMagnitudeKey } from './dora.ts';
import { PeftError } from './errors.ts';
import { frozenSource, inlineData, withInitializers } from './frozen-weights.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod, TrainableTensor } from './method.ts';
import { parseLoraConfig, pissaIterations } from './lora-config.ts';
import type { LoraConfig } from './lora-config.ts';
import { oloraInit, pissaInit } from './lora-init.ts';
import { savedKey } from './peft-io.ts';
import { patternValue, selectTargets, type LinearModule } from './targets.ts';

export type LoraOptions = ApplyOptions;

/** PEFT's in-memory key of a LoRA parameter; saved files drop the adapter name. */
export const loraKey = (module: string, part: 'lora_A' | 'lora_B', adapter: string): string =>
  `base_model.model.${module}.${part}.${adapter}.weight`;

/** One adapted module: its rank and scale, initial A and B, and (PiSSA/OLoRA) its base weight's new values. */
interface ModulePlan {
  readonly m: LinearModule;
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly a: Float32Array;
  readonly b: Float32Array;
  /** The frozen weight's initializer id, and its replacement when the init leaves a residual. */
  readonly weightId: number;
  readonly residual?: InitializerData;
  /** DoRA's initial magnitude (out,). */
  readonly magnitude?: Float32Array;
}

const randomInit = (m: LinearModule, r: number, init: LoraConfig['init_lora_weights'], rng: () => number) => {
  // nn.Linear's default (Kaiming-uniform with a = √5) is U(±1/√fan_in).
  const a = init === 'gaussian' ? normalArray(r * m.inFeatures, 1 / r, rng) : uniformArray(r * m.inFeatures, 1 / Math.sqrt(m.inFeatures), rng);
  const b = init === false ? uniformArray(m.outFeatures * r, 1 / Math.sqrt(r), rng) : new Float32Array(m.outFeatures * r);
  return { a, b };
};

const planModule = (graph: Graph, m: LinearModule, config: LoraConfig, rng: () => number): ModulePlan => {
  const r = patternValue(config.rank_pattern, m.name, config.r);
  const alpha = patternValue(config.alpha_pattern, m.name, config.lora_alpha);
  const scale = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
  const weightId = frozenSource(graph, m.node.inputs[1]!);
  if (weightId === undefined) throw new PeftError(`'${m.name}' reads a computed weight, not a checkpoint tensor; LoRA cannot adapt it`);
  const init = config.init_lora_weights;
  const fromBase = init === 'olora' || init === 'pissa' || pissaIterations(init) !== undefined;
  const needsWeight = fromBase || config.use_dora;
  const w = needsWeight ? readInitializer(graph, graph.value(weightId).name) : undefined;
  let plan: ModulePlan;
  if (fromBase) {
    const base = { module: m.name, values: w!, outFeatures: m.outFeatures, inFeatures: m.inFeatures };
    const { a, b, residual } = init === 'olora' ? oloraInit(base, r, scale) : pissaInit(base, r, scale, pissaIterations(init), rng);
    plan = { m, r, alpha, scale, a, b, weightId, residual: inlineData(residual, graph.value(weightId).type.dtype) };
  } else {
    plan = { m, r, alpha, scale, ...randomInit(m, r, init, rng), weightId };
  }
  if (!config.use_dora) return plan;
  // PEFT initialises the magnitude after the init, from the weight the module then has (the residual, if any).
  const weightNow = plan.residual ? readStored(graph, weightId, plan.residual) : w!;
  return { ...plan, magnitude: doraMagnitude(weightNow, plan.a, plan.b, m.outFeatures, m.inFeatures, r, scale) };
};

/** The values a replaced initializer holds once stored (rounded to its dtype), as the model will read them. */
const readStored = (graph: Graph, id: number, data: InitializerData): Float32Array =>
  readInitializer(withInitializers(graph, new Map([[id, data]])), graph.value(id).name);

export const applyLora = (graph: Graph, config: LoraConfig, o: LoraOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) {
    throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  }
  const rng = createRng(o.seed ?? 0);
  const plans = new Map(targets.map((m) => [m.node.id, planModule(graph, m, config, rng)]));
  const extra = baseTrainables(graph, {
    bias: config.bias,
    modulesToSave: config.modules_to_save ?? [],
    adapted: new Set(targets.map((m) => m.name)),
    adapter,
  });
  const params: TrainableTensor[] = [];
  const modules = new Map<string, Readonly<Record<string, number>>>();
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;
  const trainableInputs = new Map<string, Tensor>();
  const baseParams = new Map(extra.params.map((p) => [p.name, p]));

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
    const plan = plans.get(node.id);
    if (!plan) return substituted ? g.apply(node.op, inputs, node.attrs, { name: node.name }) : undefined;

    const { m, r, scale } = plan;
    const add = (t: TrainableTensor): Tensor => (params.push(t), trainable(t));
    const A = add({ name: loraKey(m.name, 'lora_A', adapter), shape: [r, m.inFeatures], data: plan.a, module: m.name, role: 'lora_A' });
    const B = add({ name: loraKey(m.name, 'lora_B', adapter), shape: [m.outFeatures, r], data: plan.b, module: m.name, role: 'lora_B' });
    modules.set(m.name, { r, alpha: plan.alpha, scale, ...(plan.magnitude ? { dora: 1 } : {}) });
    const x = inputs[0]!; // (rows, in)
    let xDropped = x;
    if (config.lora_dropout > 0) {
      rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
      xDropped = g.scope(m.name, () => dropout(x, config.lora_dropout, { ...rngInputs!, name: 'lora_dropout' }));
    }
    if (plan.magnitude) {
      const shape = [m.outFeatures];
      const magnitude = add({ name: doraMagnitudeKey(m.name, adapter), shape, data: plan.magnitude, module: m.name, role: 'lora_magnitude_vector' });
      return [doraLinear(g, { x, xDropped, weight: inputs[1]!, bias: inputs[2], loraA: A, loraB: B, magnitude, scale, module: m.name })];
    }
    const [y] = g.apply(node.op, inputs, node.attrs, { name: node.name }); // (rows, out)
    const down = g.scope(m.name, () => gemm(xDropped, A, undefined, { transB: true, name: 'lora_A' })); // (rows, r)
    // One Gemm scales the up-projection and adds it to the base output: y + s·down·Bᵀ.
    return [g.scope(m.name, () => gemm(down, B, y, { transB: true, alpha: scale, name: 'lora_B' }))]; // (rows, out)
  });
  params.push(...extra.params);
  const residuals = new Map([...plans.values()].flatMap((p) => (p.residual ? [[p.weightId, p.residual] as const] : [])));
  return { graph: withInitializers(adapted, residuals), params, modules };
};

export const loraMethod: PeftMethod<LoraConfig> = {
  peftType: 'LORA',
  label: 'LoRA',
  parseConfig: parseLoraConfig,
  apply: applyLora,
  savedKey,
};
