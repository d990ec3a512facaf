// LoRA as a pure Graph → Graph rewrite: each targeted linear y = x·Wᵀ (+ b) becomes
// y + s·(dropout(x)·Aᵀ)·Bᵀ with s = α/r (rsLoRA: α/√r); A (r, in) and B (out, r) become graph inputs named
// with PEFT's keys, so gradients come back under the names adapters are saved with.
import { type Graph, type Tensor, gemm } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { createRng, normalArray, uniformArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod, TrainableTensor } from './method.ts';
import { parseLoraConfig } from './lora-config.ts';
import { savedKey } from './peft-io.ts';
import type { LoraConfig } from './lora-config.ts';
import { patternValue, selectTargets, type LinearModule } from './targets.ts';


export type LoraOptions = ApplyOptions;

/** PEFT's in-memory key of a LoRA parameter; saved files drop the adapter name. */
export const loraKey = (module: string, part: 'lora_A' | 'lora_B', adapter: string): string =>
  `base_model.model.${module}.${part}.${adapter}.weight`;

const initialValues = (m: LinearModule, r: number, init: LoraConfig['init_lora_weights'], rng: () => number) => {
  // nn.Linear's default (Kaiming-uniform with a = √5) is U(±1/√fan_in).
  const a = init === 'gaussian' ? normalArray(r * m.inFeatures, 1 / r, rng) : uniformArray(r * m.inFeatures, 1 / Math.sqrt(m.inFeatures), rng);
  const b = init === false ? uniformArray(m.outFeatures * r, 1 / Math.sqrt(r), rng) : new Float32Array(m.outFeatures * r);
  if (init === 'pissa' || init === 'olora') throw new PeftError(`init_lora_weights='${init}' needs the base weights' decomposition, not available yet`);
  return { a, b };
};

export const applyLora = (graph: Graph, config: LoraConfig, o: LoraOptions = {}): AdaptedGraph => {
  if (config.bias !== 'none') throw new PeftError(`bias='${config.bias}' is not available yet; use bias='none'`);
  const adapter = o.adapterName ?? 'default';
  const targets = selectTargets(graph, config);
  if (targets.length === 0) {
    throw new PeftError(`target_modules ${JSON.stringify(config.target_modules)} matched no linear layer of the model`);
  }
  const rng = createRng(o.seed ?? 0);
  const byNode = new Map(targets.map((m) => [m.node.id, m]));
  const params: TrainableTensor[] = [];
  const modules = new Map<string, { r: number; alpha: number; scale: number }>();
  let rngInputs: { seed: Tensor; step: Tensor } | undefined;

  const adapted = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const r = patternValue(config.rank_pattern, m.name, config.r);
    const alpha = patternValue(config.alpha_pattern, m.name, config.lora_alpha);
    const scale = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    modules.set(m.name, { r, alpha, scale });
    const { a, b } = initialValues(m, r, config.init_lora_weights, rng);
    const nameA = loraKey(m.name, 'lora_A', adapter);
    const nameB = loraKey(m.name, 'lora_B', adapter);
    params.push({ name: nameA, shape: [r, m.inFeatures], data: a, module: m.name, role: 'lora_A' });
    params.push({ name: nameB, shape: [m.outFeatures, r], data: b, module: m.name, role: 'lora_B' });
    const g = ctx.b;
    const [y] = ctx.copy(); // (rows, out)
    const A = g.input(nameA, 'float32', [r, m.inFeatures]);
    const B = g.input(nameB, 'float32', [m.outFeatures, r]);
    let x = ctx.inputs[0]!; // (rows, in)
    if (config.lora_dropout > 0) {
      rngInputs ??= { seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) };
      x = g.scope(m.name, () => dropout(x, config.lora_dropout, { ...rngInputs!, name: 'lora_dropout' }));
    }
    const down = g.scope(m.name, () => gemm(x, A, undefined, { transB: true, name: 'lora_A' })); // (rows, r)
    // One Gemm scales the up-projection and adds it to the base output: y + s·down·Bᵀ.
    return [g.scope(m.name, () => gemm(down, B, y, { transB: true, alpha: scale, name: 'lora_B' }))]; // (rows, out)
  });
  return { graph: adapted, params, modules };
};

export const loraMethod: PeftMethod<LoraConfig> = {
  peftType: 'LORA',
  label: 'LoRA',
  parseConfig: parseLoraConfig,
  apply: applyLora,
  savedKey,
};
