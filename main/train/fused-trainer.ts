// A fused sweep's training loop: K LoRA trials in one graph and one ORT session over one copy of the base weights
// (main/peft/fused-lora.ts). Every micro-batch is replicated into K row blocks, so each trial sees exactly the data a
// sequential run would, in the same order; each trial has its own loss, gradient clipping, learning-rate schedule and
// AdamW state, so it follows the path its sequential run takes. Trials progress together, which makes successive
// halving possible: at each rung the worse trials stop and the graph is rebuilt with the survivors.
import type { Graph } from '../engine/ir/index.ts';
import { clipGradNorm, createOptimizer, globalGradNorm, lrAt, type Optimizer, type ScheduleConfig } from '../engine/optim/index.ts';
import { TrainStep } from '../engine/train-step.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { applyFusedLora, type FusedTrial } from '../peft/fused-lora.ts';
import type { LoraConfig } from '../peft/lora-config.ts';
import type { TrainableTensor } from '../peft/method.ts';
import { packMicroBatch, withNormalizer, type Example, type MicroBatch } from './batch.ts';
import { dataPlan, epochMicroBatches } from './schedule-data.ts';
import { TRAIN, buildTrainingGraph } from './train-graph.ts';
import type { TrainingHyper } from './trainer.ts';

export interface FusedTrialSpec {
  /** Stable name (its tensors' adapter name), e.g. 'trial3'. */
  readonly key: string;
  readonly config: LoraConfig;
  /** This trial's learning rate (default: hyper.lr). */
  readonly lr?: number;
}

/** Successive halving: at each rung step, keep the best `keep` fraction of the running trials (by eval loss). */
export interface HalvingPlan {
  readonly rungs: readonly number[];
  /** Fraction kept at each rung (default 0.5, i.e. η = 2). */
  readonly keep?: number;
  readonly minTrials?: number;
}

export interface FusedTrainerInit {
  readonly model: LoadedModel;
  readonly trials: readonly FusedTrialSpec[];
  readonly train: readonly Example[];
  readonly eval?: readonly Example[];
  /** Shared by all trials (micro-batch, steps, schedule, clipping, eval, seed, session); lr per trial. */
  readonly hyper: TrainingHyper;
  readonly halving?: HalvingPlan;
  readonly onEvent?: (e: FusedEvent) => void;
}

export type FusedEvent =
  | { readonly type: 'step'; readonly step: number; readonly totalSteps: number; readonly trials: number; readonly tokensPerSecond: number; readonly etaSeconds: number; readonly rssBytes: number }
  | { readonly type: 'trial-step'; readonly key: string; readonly step: number; readonly loss: number; readonly lr: number; readonly gradNorm: number }
  | { readonly type: 'trial-eval'; readonly key: string; readonly step: number; readonly loss: number }
  | { readonly type: 'pruned'; readonly key: string; readonly step: number; readonly evalLoss: number };

export interface FusedTrialResult {
  readonly key: string;
  readonly losses: readonly number[];
  readonly evals: readonly { readonly step: number; readonly loss: number }[];
  readonly prunedAtStep?: number;
  readonly params: readonly TrainableTensor[];
  readonly modules: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

export interface FusedResult {
  readonly status: 'completed' | 'cancelled';
  readonly steps: number;
  readonly trials: readonly FusedTrialResult[];
}

export class FusedTrainerError extends Error {
  override readonly name = 'FusedTrainerError';
}

/** One trial's state across graph rebuilds. */
interface TrialState {
  readonly spec: FusedTrialSpec;
  params: readonly TrainableTensor[];
  modules: ReadonlyMap<string, Readonly<Record<string, number>>>;
  optimizer?: Optimizer;
  readonly losses: number[];
  readonly evals: { step: number; loss: number }[];
  prunedAtStep?: number;
}

/** The micro-batch's rows repeated for every trial (block k = trial k), short blocks padded with empty rows. */
export const fusedMicroBatch = (rows: readonly (readonly Example[])[], trials: number, microBatchSize: number): MicroBatch & { readonly perTrialTargets: number } => {
  if (rows.length > microBatchSize) throw new FusedTrainerError(`a micro-batch of ${rows.length} rows does not fit blocks of ${microBatchSize}`);
  const block = [...rows, ...Array.from({ length: microBatchSize - rows.length }, () => [] as Example[])];
  const packed = packMicroBatch(Array.from({ length: trials }, () => block).flat());
  const [, T] = packed.feeds[TRAIN.inputIds]!.shape as [number, number];
  const positions = packed.feeds[TRAIN.lossPositions]!.data as BigInt64Array;
  const trialOf = BigInt64Array.from(positions, (p) => p / BigInt(microBatchSize * T));
  return {
    feeds: { ...packed.feeds, [TRAIN.lossTrials]: { dtype: 'int64', shape: [trialOf.length], data: trialOf } },
    targets: packed.targets,
    tokens: packed.tokens / trials,
    perTrialTargets: packed.targets / trials,
  };
};

export class FusedTrainer {
  private cancelled = false;
  private readonly states: TrialState[];
  private step?: TrainStep;
  private graphTrials: TrialState[] = [];

  private constructor(private readonly init: FusedTrainerInit) {
    if (init.trials.length === 0) throw new FusedTrainerError('a fused sweep needs at least one trial');
    this.states = init.trials.map((spec) => ({ spec, params: [], modules: new Map(), losses: [], evals: [] }));
  }

  /** Builds the fused graph and its session (every trial's tensors initialised). */
  static async create(init: FusedTrainerInit): Promise<FusedTrainer> {
    const trainer = new FusedTrainer(init);
    await trainer.build(0);
    return trainer;
  }

  /** The execution provider the fused session runs on, and why. */
  get provider(): { readonly provider: string; readonly reason: string } {
    if (!this.step) throw new FusedTrainerError('the fused session is not open (run() has finished)');
    return this.step.provider;
  }

  cancel(): void {
    this.cancelled = true;
  }

  private get running(): TrialState[] {
    return this.states.filter((s) => s.prunedAtStep === undefined);
  }

  /** (Re)builds the fused graph and session for the running trials, carrying their tensors and the step count. */
  private async build(startStep: number): Promise<void> {
    await this.step?.release();
    const h = this.init.hyper;
    const running = this.running;
    const fusedTrials: FusedTrial[] = running.map((s) => ({ key: s.spec.key, config: s.spec.config, ...(s.params.length ? { params: s.params } : {}) }));
    const base: Graph = buildTrainingGraph(this.init.model, { batch: running.length * h.microBatchSize, trials: running.length });
    const fused = applyFusedLora(base, { trials: fusedTrials, seed: h.seed ?? 0 });
    fused.trials.forEach((t, i) => {
      const s = running[i]!;
      if (!s.params.length) s.params = t.params.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
      s.modules = t.modules;
      s.optimizer ??= createOptimizer(h.optimizer ?? { kind: 'adamw' }, [{ name: 'default', params: s.params }]);
    });
    this.graphTrials = running;
    this.step = await TrainStep.create({
      graph: fused.graph,
      params: running.flatMap((s) => s.params),
      // Never stepped: each trial is updated by its own optimizer below (SGD without momentum keeps no state).
      optimizer: { kind: 'sgd' },
      lr: 0,
      recompute: h.recompute ?? false,
      seed: h.seed ?? 0,
      startStep,
      ...(h.session ? { session: h.session } : {}),
    });
  }

  private schedule(s: TrialState, totalSteps: number): ScheduleConfig {
    const h = this.init.hyper;
    return { kind: h.schedule ?? 'linear', baseLr: s.spec.lr ?? h.lr, warmupSteps: h.warmupSteps ?? 0, totalSteps };
  }

  async run(): Promise<FusedResult> {
    const h = this.init.hyper;
    const plan = dataPlan(h);
    const accumulation = h.gradientAccumulation;
    const stepsPerEpoch = Math.max(1, Math.floor(epochMicroBatches(this.init.train, 0, plan).length / accumulation));
    const totalSteps = h.maxSteps ?? (h.epochs ?? 1) * stepsPerEpoch;
    const rungs = new Set(this.init.halving?.rungs ?? []);
    if (rungs.size > 0 && !this.init.eval?.length) throw new FusedTrainerError('successive halving ranks trials by eval loss: give an eval set');
    if (!this.step) throw new FusedTrainerError('run() was called twice; create a new FusedTrainer');
    const started = performance.now();
    let tokensSeen = 0;
    let steps = 0;
    try {
      for (let epoch = 0; steps < totalSteps; epoch++) {
        const batches = epochMicroBatches(this.init.train, epoch, plan);
        if (batches.length < accumulation) throw new FusedTrainerError(`an epoch has ${batches.length} micro-batches, fewer than gradient accumulation ${accumulation}`);
        for (let mb = 0; mb + accumulation <= batches.length && steps < totalSteps; mb += accumulation) {
          if (this.cancelled) return this.result('cancelled', steps);
          const trials = this.graphTrials;
          const micro = batches.slice(mb, mb + accumulation).map((rows) => fusedMicroBatch(rows, trials.length, h.microBatchSize));
          const perTrialTotal = micro.reduce((n, m) => n + m.perTrialTargets, 0);
          const losses = new Float64Array(trials.length);
          let summed: Map<string, Float32Array> | undefined;
          for (const m of micro) {
            const r = await this.step!.computeGradients(withNormalizer(m, perTrialTotal), [TRAIN.trialLosses]);
            const perTrial = r.outputs[TRAIN.trialLosses]!.data as Float32Array;
            perTrial.forEach((l, k) => (losses[k]! += l));
            tokensSeen += m.tokens;
            if (!summed) summed = r.grads;
            else for (const [k, g] of r.grads) {
              const acc = summed.get(k)!;
              for (let i = 0; i < g.length; i++) acc[i]! += g[i]!;
            }
          }
          trials.forEach((s, k) => this.update(s, summed!, losses[k]!, steps, totalSteps));
          steps = this.step!.countStep();
          const elapsed = (performance.now() - started) / 1000;
          this.init.onEvent?.({
            type: 'step', step: steps, totalSteps, trials: trials.length, tokensPerSecond: (tokensSeen * trials.length) / elapsed,
            etaSeconds: (elapsed / steps) * (totalSteps - steps), rssBytes: process.memoryUsage().rss,
          });
          const atRung = rungs.has(steps) && this.running.length > (this.init.halving?.minTrials ?? 1);
          if (this.init.eval?.length && ((h.evalEvery && steps % h.evalEvery === 0) || atRung || steps === totalSteps)) await this.evaluate(steps);
          if (atRung && steps < totalSteps) await this.prune(steps);
        }
      }
      return this.result('completed', steps);
    } finally {
      await this.step?.release();
      this.step = undefined;
    }
  }

  /** The trial's own step, as TrainStep.applyGradients takes it: schedule, global-norm clipping, optimizer. */
  private update(s: TrialState, grads: ReadonlyMap<string, Float32Array>, loss: number, step: number, totalSteps: number): void {
    const own = new Map(s.params.map((p) => [p.name, grads.get(p.name)!]));
    const lr = lrAt(this.schedule(s, totalSteps), step);
    const gradNorm = globalGradNorm(own);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new FusedTrainerError(`trial ${s.spec.key}: loss or gradients are not finite at step ${step + 1}`);
    }
    if (this.init.hyper.maxGradNorm !== undefined) clipGradNorm(own, this.init.hyper.maxGradNorm);
    s.optimizer!.step(own, lr);
    s.losses.push(loss);
    this.init.onEvent?.({ type: 'trial-step', key: s.spec.key, step: step + 1, loss, lr, gradNorm });
  }

  /** Each running trial's token-mean eval loss, in one fused pass per eval micro-batch. */
  async evaluate(step: number): Promise<void> {
    const trials = this.graphTrials;
    const batches = epochMicroBatches(this.init.eval ?? [], 0, { ...dataPlan(this.init.hyper), seed: 0 });
    const sums = new Float64Array(trials.length);
    let count = 0;
    for (const rows of batches) {
      const m = fusedMicroBatch(rows, trials.length, this.init.hyper.microBatchSize);
      if (m.targets === 0) continue;
      const out = await this.step!.computeOutputs(withNormalizer(m, 1), [TRAIN.trialLosses]);
      (out[TRAIN.trialLosses]!.data as Float32Array).forEach((l, k) => (sums[k]! += l));
      count += m.perTrialTargets;
    }
    trials.forEach((s, k) => {
      const loss = sums[k]! / Math.max(1, count);
      s.evals.push({ step, loss });
      this.init.onEvent?.({ type: 'trial-eval', key: s.spec.key, step, loss });
    });
  }

  private async prune(step: number): Promise<void> {
    const running = this.running;
    const keep = Math.max(this.init.halving?.minTrials ?? 1, Math.ceil(running.length * (this.init.halving?.keep ?? 0.5)));
    const ranked = [...running].sort((a, b) => a.evals.at(-1)!.loss - b.evals.at(-1)!.loss);
    for (const s of ranked.slice(keep)) {
      s.prunedAtStep = step;
      this.init.onEvent?.({ type: 'pruned', key: s.spec.key, step, evalLoss: s.evals.at(-1)!.loss });
    }
    await this.build(step);
  }

  private result(status: FusedResult['status'], steps: number): FusedResult {
    return {
      status,
      steps,
      trials: this.states.map((s) => ({
        key: s.spec.key, losses: s.losses, evals: s.evals, params: s.params, modules: s.modules,
        ...(s.prunedAtStep !== undefined ? { prunedAtStep: s.prunedAtStep } : {}),
      })),
    };
  }
}

