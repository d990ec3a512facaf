// The training loop: micro-batches with gradient accumulation, schedules, clipping, evaluation with early
// stopping, atomic checkpoints with exact resume, a NaN/Inf guard, pause and cancel, progress events.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../engine/ir/index.ts';
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { OptimizerConfig, ScheduleConfig } from '../engine/optim/index.ts';
import { TrainStep } from '../engine/train-step.ts';
import type { TrainableTensor } from '../peft/method.ts';
import { packMicroBatch, withNormalizer, type Example } from './batch.ts';
import { listCheckpoints, pruneCheckpoints, readCheckpoint, writeCheckpoint, type DataPosition } from './checkpoint.ts';
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
}

export class Trainer {
  private cancelled = false;
  private pauseRequested = false;

  private constructor(
    private readonly init: TrainerInit,
    private readonly step: TrainStep,
    private readonly params: TrainableTensor[],
  ) {}

  static async create(init: TrainerInit): Promise<Trainer> {
    const h = init.hyper;
    const params = init.params.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
    const stepsPerEpoch = Math.max(1, Math.floor(epochMicroBatches(init.train, 0, plan(h)).length / h.gradientAccumulation));
    const totalSteps = h.maxSteps ?? (h.epochs ?? 1) * stepsPerEpoch;
    const step = await TrainStep.create({
      graph: init.graph,
      params,
      optimizer: h.optimizer ?? { kind: 'adamw' },
      lr: { kind: h.schedule ?? 'linear', baseLr: h.lr, warmupSteps: h.warmupSteps ?? 0, totalSteps },
      ...(h.maxGradNorm !== undefined ? { maxGradNorm: h.maxGradNorm } : {}),
      recompute: h.recompute ?? false,
      mixedPrecision: h.mixedPrecision ?? false,
      seed: h.seed ?? 0,
      ...(h.session ? { session: h.session } : {}),
    });
    return new Trainer(init, step, params);
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
    const root = join(outputDir, 'checkpoints');
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

    const resumeFrom = this.init.resume ? listCheckpoints(root).at(-1) : undefined;
    if (resumeFrom) {
      const c = readCheckpoint(resumeFrom);
      for (const param of this.params) {
        const saved = c.params.get(param.name);
        if (!saved || saved.length !== param.data.length) throw new Error(`checkpoint ${resumeFrom} lacks '${param.name}' or has another shape`);
        param.data.set(saved);
      }
      this.step.loadState(c.train);
      position = c.position;
      best = c.bestEvalLoss ?? Infinity;
      stale = c.evalsWithoutImprovement ?? 0;
      lastCheckpoint = resumeFrom;
      this.init.onEvent?.({ type: 'resumed', step: c.step, dir: resumeFrom });
    }

    const checkpoint = (): void => {
      lastCheckpoint = writeCheckpoint(
        root,
        { step: this.step.steps, position, seed: h.seed ?? 0, bestEvalLoss: best, evalsWithoutImprovement: stale },
        this.params,
        this.step.state(),
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
          const r = await this.step.computeGradients(withNormalizer(m, total));
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
        if (h.evalEvery && this.init.eval?.length && result.step % h.evalEvery === 0) {
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
      sum += await this.step.computeLoss(withNormalizer(m, 1));
      count += m.targets;
    }
    return sum / Math.max(1, count);
  }

  async release(): Promise<void> {
    await this.step.release();
  }

  /** Deletes this run's checkpoints (after the final adapter is saved elsewhere). */
  clearCheckpoints(): void {
    rmSync(join(this.init.outputDir, 'checkpoints'), { recursive: true, force: true });
  }
}

const plan = (h: TrainingHyper) => ({ microBatchSize: h.microBatchSize, maxLength: h.maxLength, packing: h.packing ?? true, seed: h.seed ?? 0 });
