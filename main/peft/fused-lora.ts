// Fused LoRA trials (mLoRA's batch fusion): K LoRA configs with their own r, alpha, dropout and targets trained in ONE
// graph over ONE copy of the base weights. The batch holds K blocks of rows, block k for trial k; each adapted linear
// y = x·Wᵀ (+ b) runs once on every row, and each trial's branch only on its own block:
//     x (K·n, in) → split into K blocks (n, in) → block k: s_k·(dropout_k(x_k)·A_kᵀ)·B_kᵀ (or zeros if k skips it)
//     → concat (K·n, out) → added to y.
// Rows never mix across batch rows in a decoder (attention stays inside its row), so trial k's loss depends on its own
// tensors only and the gradient of the summed loss w.r.t. them is the trial's own gradient. Each trial is initialised
// exactly as applyLora would initialise it alone with the same seed, and its dropout draws the same masks, so a fused
// trial follows the same path as the sequential run of its config.
import { type Graph, type Tensor, add, concat, gemm, reshape, shapeStr, split, unsqueeze, zeros } from '../engine/ir/index.ts';
import { dropout, dropoutSalt } from '../engine/ir/ops/random.ts';
import { rewriteGraph } from '../engine/ir/rewrite.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { PeftError } from './errors.ts';
import { applyLora, loraKey } from './lora.ts';
import type { LoraConfig } from './lora-config.ts';
import type { TrainableTensor } from './method.ts';
import { linearModules, selectTargets } from './targets.ts';

export interface FusedTrial {
  /** Stable name of the trial (the adapter name in its tensors' keys), e.g. 'trial3'; kept when other trials are pruned. */
  readonly key: string;
  readonly config: LoraConfig;
  /** Current values of its tensors (after pruning rebuilds the graph); default: LoRA's initialisation. */
  readonly params?: readonly TrainableTensor[];
}

export interface FusedLoraOptions {
  readonly trials: readonly FusedTrial[];
  /** Seed of each trial's initial values (the same seed for all, as separate runs would use). */
  readonly seed?: number;
}

export interface FusedTrialTensors {
  readonly key: string;
  readonly params: readonly TrainableTensor[];
  /** Adapted module → { r, alpha, scale }. */
  readonly modules: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

export interface FusedLoraGraph {
  readonly graph: Graph;
  /** In batch-block order: trial i owns rows [i·n, (i+1)·n). */
  readonly trials: readonly FusedTrialTensors[];
}

/** What a fused trial cannot have: anything that changes the shared base weights or needs more than A and B. */
const fusable = (c: LoraConfig, key: string): void => {
  const why =
    c.use_dora ? 'DoRA' :
    typeof c.init_lora_weights === 'string' && c.init_lora_weights !== 'gaussian' ? `init_lora_weights '${c.init_lora_weights}' (it rewrites the base weights)` :
    c.bias !== 'none' ? `bias '${c.bias}'` :
    (c.modules_to_save ?? []).length > 0 ? 'modules_to_save' : undefined;
  if (why) throw new PeftError(`fused sweeps train plain LoRA (A, B over one shared base); ${key} uses ${why} — run this sweep in sequential mode`);
};

/** The trial's tensors as applyLora makes them alone (the same values a sequential run of its config starts from). */
const initialTensors = (graph: Graph, t: FusedTrial, seed: number): FusedTrialTensors => {
  const adapted = applyLora(graph, t.config, { seed, adapterName: t.key });
  if (t.params) {
    const given = new Map(t.params.map((p) => [p.name, p]));
    const params = adapted.params.map((p) => {
      const q = given.get(p.name);
      if (!q || q.data.length !== p.data.length) throw new PeftError(`fused trial ${t.key}: tensor '${p.name}' is missing or has another size`);
      return q;
    });
    return { key: t.key, params, modules: adapted.modules };
  }
  return { key: t.key, params: adapted.params, modules: adapted.modules };
};

/** Graph → Graph: K LoRA trials over one base, trial i on batch block i. The graph's batch dim must be a multiple of K. */
export const applyFusedLora = (graph: Graph, o: FusedLoraOptions): FusedLoraGraph => {
  const K = o.trials.length;
  if (K === 0) throw new PeftError('a fused sweep needs at least one trial');
  if (new Set(o.trials.map((t) => t.key)).size !== K) throw new PeftError('fused trials need distinct keys');
  o.trials.forEach((t) => fusable(t.config, t.key));
  const trials = o.trials.map((t) => initialTensors(graph, t, o.seed ?? 0));
  const targetsOf = o.trials.map((t) => new Set(selectTargets(graph, t.config).map((m) => m.name)));
  const adapted = new Set(targetsOf.flatMap((s) => [...s]));
  const byNode = new Map(linearModules(graph).filter((m) => adapted.has(m.name)).map((m) => [m.node.id, m]));
  const tensorOf = trials.map((t) => new Map(t.params.map((p) => [p.name, p])));
  // Dropout salts as the lone LoRA rewrite names its sites: '<x>/lora_dropout.mask', '_1', '_2', … per input x.
  const sitesUsed = trials.map(() => new Set<string>());
  const salt = (k: number, x: Tensor): number => {
    const base = `${x.name}/lora_dropout.mask`;
    let name = base;
    for (let i = 1; sitesUsed[k]!.has(name); i++) name = `${base}_${i}`;
    sitesUsed[k]!.add(name);
    return dropoutSalt(name);
  };
  let rng: { seed: Tensor; step: Tensor } | undefined;
  const inputs = new Map<string, Tensor>();

  const out = rewriteGraph(graph, (node, ctx) => {
    const m = byNode.get(node.id);
    if (!m) return undefined;
    const g = ctx.b;
    const x = ctx.inputs[0]!; // (K·n, in)
    if (x.rank !== 2) throw new PeftError(`fused LoRA: '${m.name}' reads '${x.name}' of shape ${shapeStr(x.shape)}, not (rows, in)`);
    const y = ctx.copy()[0]!; // (K·n, out)
    const blocks = g.scope(`${m.name}.trials`, () =>
      K === 1 ? [reshape(x, [1, -1, m.inFeatures])] : split(reshape(x, [K, -1, m.inFeatures]), Array<number>(K).fill(1), 0, 'split'),
    ); // K × (1, n, in)
    const pieces = trials.map((t, k) => {
      const c = o.trials[k]!.config;
      const block = blocks[k]!;
      const rows = block.shape[1]!;
      if (!targetsOf[k]!.has(m.name)) return g.scope(`${m.name}.${t.key}`, () => zeros(block, 'float32', [1, rows, m.outFeatures]));
      const tensor = (part: 'lora_A' | 'lora_B'): Tensor => {
        const p = tensorOf[k]!.get(loraKey(m.name, part, t.key))!;
        let input = inputs.get(p.name);
        if (!input) inputs.set(p.name, (input = g.input(p.name, 'float32', p.shape)));
        return input;
      };
      const A = tensor('lora_A'); // (r, in)
      const B = tensor('lora_B'); // (out, r)
      const scale = t.modules.get(m.name)!.scale!;
      const siteSalt = c.lora_dropout > 0 ? salt(k, x) : 0;
      return g.scope(m.name, () => {
        let xk = reshape(block, [-1, m.inFeatures], `${t.key}.rows`); // (n, in)
        if (c.lora_dropout > 0) {
          rng ??= g.inBlock(undefined, () => ({ seed: g.input(SEED_INPUT, 'int64', []), step: g.input(STEP_INPUT, 'int64', []) }));
          xk = dropout(xk, c.lora_dropout, { ...rng, name: `${t.key}.lora_dropout`, salt: siteSalt });
        }
        const down = gemm(xk, A, undefined, { transB: true, name: `${t.key}.lora_A` }); // (n, r)
        const up = gemm(down, B, undefined, { transB: true, alpha: scale, name: `${t.key}.lora_B` }); // (n, out)
        return unsqueeze(up, [0]); // (1, n, out)
      });
    });
    const delta = g.scope(`${m.name}.trials`, () => reshape(K === 1 ? pieces[0]! : concat(pieces, 0, 'concat'), [-1, m.outFeatures])); // (K·n, out)
    return [g.scope(`${m.name}.trials`, () => add(y, delta, 'add'))];
  });
  return { graph: out, trials };
};
