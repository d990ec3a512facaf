// The training loop: micro-batches with gradient accumulation, schedules, clipping, evaluation with early
// stopping, atomic checkpoints with exact resume, a NaN/Inf guard, pause and cancel, progress events.
import { rmSync } from 'node:fs';
import type { Graph } from '../engine/ir/index.ts';
import type { HostTensor, SessionOptions } from '../engine/onnx/runtime.ts';
import type { Optimizer, OptimizerConfig, ParamGroup, ScheduleConfig } from '../engine/optim/index.ts';
import { TrainStep } from '../engine/train-step.ts';
import type { TrainableTensor } from '../peft/method.ts';
import { packMicroBatch, withNormalizer, type Example } from './batch.ts';
import { checkpointsRoot, newestCheckpoint, pruneCheckpoints, readCheckpoint, removeInterruptedWrites, writeCheckpoint, type DataPosition } from './checkpoint.ts';
import { epochMicroBatches } from './schedule-data.ts';

export interface TrainingHyper {
  readonly microBatchSize: number;
  readonly gradientAccumulation: number;
  /** Stop after this many optimizer steps (default: epochs × steps per epoch). */
  readonly maxSteps?: number;
  readonly epochs?: number;
  readonly lr: number;
  readonly schedule?: ScheduleConfig['kind'];
  readonly warmupSteps?: number;
  readonly optimizer?: OptimizerConfig;
  readonly maxGradNorm?: number;
  readonly maxLength: number;
  readonly packing?: boolean;
  readonly evalEvery?: number;
  /** Stop when the eval loss has not improved for this many evaluations. */
  readonly earlyStoppingPatience?: number;
  readonly checkpointEvery?: number;
  readonly keepCheckpoints?: number;
  readonly seed?: number;
  readonly recompute?: boolean;
  readonly mixedPrecision?: boolean;
  readonly session?: SessionOptions;
}

export type TrainerEvent =
  | { readonly type: 'step'; readonly step: number; readonly totalSteps: number; readonly loss: number; readonly lr: number; readonly gradNorm: number; readonly tokensPerSecond: number; readonly etaSeconds: number; readonly rssBytes: number; readonly epoch: number }
  | { readonly type: 'eval'; readonly step: number; readonly loss: number; readonly perplexity: number }
  | { readonly type: 'checkpoint'; readonly step: number; readonly dir: string }
  | { readonly type: 'resumed'; readonly step: number; readonly dir: string };

export type TrainerStatus = 'completed' | 'cancelled' | 'paused' | 'early-stopped';

export interface TrainerResult {
  readonly status: TrainerStatus;
  readonly steps: number;
  readonly losses: readonly number[];
  readonly lastEvalLoss?: number;
}

export class TrainingDivergedError extends Error {
  override readonly name = 'TrainingDivergedError';
  constructor(
    readonly step: number,
    readonly lastCheckpoint: string | undefined,
  ) {
    super(`loss or gradients are not finite at step ${step}; training stopped${lastCheckpoint ? `, the last good checkpoint is ${lastCheckpoint}` : ' (no checkpoint written yet)'}`);
  }
}

/**
 * What a PEFT method adds to the loop beyond its graph and tensors, built over the trainer's own (live) tensors:
 * optimizer groups (LoRA+), an optimizer of its own (LoRA-FA), a hook after each optimizer step (AdaLoRA's rank
 * allocator, Delta-LoRA's weight update), inputs fed with every batch (Delta-LoRA's start factors), and state a
 * checkpoint must carry for an exact resume.
 */
export interface MethodTraining {
  readonly groups?: readonly ParamGroup[];
  readonly optimizer?: (groups: readonly ParamGroup[]) => Optimizer;
  readonly afterOptimizerStep?: (step: number, grads: ReadonlyMap<string, Float32Array>) => void;
  readonly feeds?: () => Readonly<Record<string, HostTensor>>;
  /** Writes the method's state into a checkpoint folder being written, and reads it back on resume. */
  readonly checkpointState?: { save(dir: string): void; load(dir: string): void };
}

export interface TrainerInit {
  /** The adapted training graph (buildTrainingGraph + a method's rewrite) and its trainable tensors. */
  readonly graph: Graph;
  readonly params: readonly TrainableTensor[];
  readonly train: readonly Example[];
  readonly eval?: readonly Example[];
  readonly hyper: TrainingHyper;
  /** Checkpoints go to <outputDir>/checkpoints. */
  readonly outputDir: string;
  /** Resume from the newest complete checkpoint in outputDir when there is one. */
  readonly resume?: boolean;
  readonly onEvent?: (e: TrainerEvent) => void;
  /** The method's part of the loop, given the tensors the trainer updates in place (see MethodTraining). */
  readonly method?: (params: readonly TrainableTensor[]) => MethodTraining;
  /**
   * Runs when a checkpoint's files are written and before it becomes visible (its rename): whatever must be durable
   * whenever that checkpoint exists goes here, e.g. the run's metrics up to its step, so a resume from it never
   * lacks a point a killed process had only queued.
   */
  readonly beforeCheckpointCommit?: (step: number) => void;
}

/** Optimizer steps a run with these settings takes (maxSteps, else epochs × steps per epoch). */
export const plannedSteps = (train: readonly Example[], h: TrainingHyper): number => {
  const stepsPerEpoch = Math.max(1, Math.floor(epochMicroBatches(train, 0, plan(h)).length / h.gradientAccumulation));
  return h.maxSteps ?? (h.epochs ?? 1) * stepsPerEpoch;
};

export class Trainer {
  private cancelled = false;
  private pauseRequested = false;

  private constructor(
    private readonly init: TrainerInit,
    private readonly step: TrainStep,
    private readonly params: TrainableTensor[],
    private readonly method: MethodTraining,
  ) {}

  static async create(init: TrainerInit): Promise<Trainer> {
    const h = init.hyper;
    const params = init.params.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
    const method = init.method?.(params) ?? {};
    const step = await TrainStep.create({
      graph: init.graph,
      params,
      ...(method.groups ? { groups: method.groups } : {}),
      optimizer: method.optimizer ?? h.optimizer ?? { kind: 'adamw' },
      lr: { kind: h.schedule ?? 'linear', baseLr: h.lr, warmupSteps: h.warmupSteps ?? 0, totalSteps: plannedSteps(init.train, h) },
      ...(h.maxGradNorm !== undefined ? { maxGradNorm: h.maxGradNorm } : {}),
      recompute: h.recompute ?? false,
      mixedPrecision: h.mixedPrecision ?? false,
      seed: h.seed ?? 0,
      ...(h.session ? { session: h.session } : {}),
      ...(method.afterOptimizerStep ? { afterOptimizerStep: method.afterOptimizerStep } : {}),
    });
    return new Trainer(init, step, params, method);
  }

  /** Finishes the current step, then stops; run() resolves with status 'cancelled'. */
  cancel(): void {
    this.cancelled = true;
  }

  /** Finishes the current step, writes a checkpoint, then stops with status 'paused' (resume with resume: true). */
  pause(): void {
    this.pauseRequested = true;
  }

  /** The execution provider the training session runs on, and why. */
  get provider(): { readonly provider: string; readonly reason: string } {
    return this.step.provider;
  }

  get trainables(): readonly TrainableTensor[] {
    return this.params;
  }

  async run(): Promise<TrainerResult> {
    const { hyper: h, train, outputDir } = this.init;
    const root = checkpointsRoot(outputDir);
    const p = plan(h);
    const accumulation = h.gradientAccumulation;
    const stepsPerEpoch = Math.max(1, Math.floor(epochMicroBatches(train, 0, p).length / accumulation));
    const epochs = h.epochs ?? Math.ceil((h.maxSteps ?? stepsPerEpoch) / stepsPerEpoch);
    const totalSteps = h.maxSteps ?? epochs * stepsPerEpoch;
    let position: DataPosition = { epoch: 0, microBatch: 0 };
    let best = Infinity;
    let stale = 0;
    let lastCheckpoint: string | undefined;
    const losses: number[] = [];
    let lastEvalLoss: number | undefined;

    const resumeFrom = this.init.resume ? newestCheckpoint(root)?.dir : undefined;
    if (this.init.resume) removeInterruptedWrites(root);
    if (resumeFrom) {
      const c = readCheckpoint(resumeFrom);
      for (const param of this.params) {
        const saved = c.params.get(param.name);
        if (!saved || saved.length !== param.data.length) throw new Error(`checkpoint ${resumeFrom} lacks '${param.name}' or has another shape`);
        param.data.set(saved);
      }
      this.step.loadState(c.train);
      this.method.checkpointState?.load(resumeFrom);
      position = c.position;
      best = c.bestEvalLoss ?? Infinity;
      stale = c.evalsWithoutImprovement ?? 0;
      lastCheckpoint = resumeFrom;
      this.init.onEvent?.({ type: 'resumed', step: c.step, dir: resumeFrom });
    }

    const checkpoint = (): void => {
      const step = this.step.steps;
      lastCheckpoint = writeCheckpoint(
        root,
        { step, position, seed: h.seed ?? 0, bestEvalLoss: best, evalsWithoutImprovement: stale },
        this.params,
        this.step.state(),
        (dir) => {
          this.method.checkpointState?.save(dir);
          this.init.beforeCheckpointCommit?.(step);
        },
      );
      pruneCheckpoints(root, h.keepCheckpoints ?? 2);
      this.init.onEvent?.({ type: 'checkpoint', step: this.step.steps, dir: lastCheckpoint });
    };

    const started = performance.now();
    let tokensSeen = 0;
    const startStep = this.step.steps;
    // With maxSteps, epochs continue until the steps are done (packing makes epochs differ slightly in length).
    for (let epoch = position.epoch; (h.maxSteps !== undefined || epoch < epochs) && this.step.steps < totalSteps; epoch++) {
      const batches = epochMicroBatches(train, epoch, p);
      for (let mb = epoch === position.epoch ? position.microBatch : 0; mb + accumulation <= batches.length; mb += accumulation) {
        if (this.step.steps >= totalSteps) break;
        if (this.cancelled) return { status: 'cancelled', steps: this.step.steps, losses, ...(lastEvalLoss !== undefined ? { lastEvalLoss } : {}) };
        const micro = batches.slice(mb, mb + accumulation).map((rows) => packMicroBatch(rows));
        const total = micro.reduce((n, m) => n + m.targets, 0);
        let summed: Map<string, Float32Array> | undefined;
        let loss = 0;
        let finite = true;
        for (const m of micro) {
          const r = await this.step.computeGradients(this.feeds(withNormalizer(m, total)));
          loss += r.loss;
          finite &&= r.finite;
          tokensSeen += m.tokens;
          if (!summed) summed = r.grads;
          else for (const [k, g] of r.grads) {
            const acc = summed.get(k)!;
            for (let i = 0; i < g.length; i++) acc[i]! += g[i]!;
          }
        }
        const result = this.step.applyGradients(summed!, loss, finite);
        if (!Number.isFinite(result.loss) || (!h.mixedPrecision && result.skipped)) {
          throw new TrainingDivergedError(result.step, lastCheckpoint);
        }
        position = { epoch, microBatch: mb + accumulation };
        losses.push(result.loss);
        const elapsed = (performance.now() - started) / 1000;
        const done = this.step.steps - startStep;
        this.init.onEvent?.({
          type: 'step',
          step: result.step,
          totalSteps,
          loss: result.loss,
          lr: result.lr,
          gradNorm: result.gradNorm,
          tokensPerSecond: tokensSeen / elapsed,
          etaSeconds: (elapsed / done) * (totalSteps - this.step.steps),
          rssBytes: process.memoryUsage().rss,
          epoch,
        });
        // Every evalEvery steps, and at the last step too, so that a finished run always has its final eval loss.
        if (h.evalEvery && this.init.eval?.length && (result.step % h.evalEvery === 0 || result.step === totalSteps)) {
          lastEvalLoss = await this.evaluate();
          this.init.onEvent?.({ type: 'eval', step: result.step, loss: lastEvalLoss, perplexity: Math.exp(lastEvalLoss) });
          if (lastEvalLoss < best - 1e-6) [best, stale] = [lastEvalLoss, 0];
          else stale++;
          if (h.earlyStoppingPatience !== undefined && stale >= h.earlyStoppingPatience) {
            checkpoint();
            return { status: 'early-stopped', steps: this.step.steps, losses, lastEvalLoss };
          }
        }
        if (h.checkpointEvery && result.step % h.checkpointEvery === 0) checkpoint();
        if (this.pauseRequested) {
          checkpoint();
          return { status: 'paused', steps: this.step.steps, losses, ...(lastEvalLoss !== undefined ? { lastEvalLoss } : {}) };
        }
      }
    }
    return { status: 'completed', steps: this.step.steps, losses, ...(lastEvalLoss !== undefined ? { lastEvalLoss } : {}) };
  }

  /**
   * Token-mean loss over the eval examples with the current trainable tensors, through the training session (one
   * copy of the weights; loss only). Dropout, when the method has it, draws the current step's masks.
   */
  async evaluate(): Promise<number> {
    const examples = this.init.eval ?? [];
    if (examples.length === 0) throw new Error('no eval set');
    const batches = epochMicroBatches(examples, 0, { ...plan(this.init.hyper), seed: 0 });
    let sum = 0;
    let count = 0;
    for (const rows of batches) {
      const m = packMicroBatch(rows);
      if (m.targets === 0) continue;
      sum += await this.step.computeLoss(this.feeds(withNormalizer(m, 1)));
      count += m.targets;
    }
    return sum / Math.max(1, count);
  }

  private feeds(batch: Record<string, HostTensor>): Record<string, HostTensor> {
    return this.method.feeds ? { ...batch, ...this.method.feeds() } : batch;
  }

  async release(): Promise<void> {
    await this.step.release();
  }

  /** Deletes this run's checkpoints (after the final adapter is saved elsewhere). */
  clearCheckpoints(): void {
    rmSync(checkpointsRoot(this.init.outputDir), { recursive: true, force: true });
  }
}

const plan = (h: TrainingHyper) => ({ microBatchSize: h.microBatchSize, maxLength: h.maxLength, packing: h.packing ?? true, seed: h.seed ?? 0 });
