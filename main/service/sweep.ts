// r/alpha sweeps (also lr, dropout, target modules): grid or random points, trained fused (K trials in one graph
// over one base, optionally with successive halving) or one after another. Every trial is a run in the history (its
// config, metrics, adapter); the sweep records each trial's objective (final eval loss), prunes, and the best trial.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ortVersion } from '../engine/onnx/runtime.ts';
import { applyLora } from '../peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../peft/lora-config.ts';
import { saveAdapter } from '../peft/peft-io.ts';
import type { TrainableTensor } from '../peft/method.ts';
import type { MetricsWriter, Store } from '../store/index.ts';
import type { JsonObject } from '../store/json.ts';
import { FusedTrainer, type FusedEvent, type HalvingPlan } from '../train/fused-trainer.ts';
import { buildTrainingGraph } from '../train/train-graph.ts';
import { Trainer, type TrainerEvent } from '../train/trainer.ts';
import { prepareJob, type PreparedJob } from './prepare.ts';
import { RunConfigError, parseRunConfig, readConfigFile, type RunConfig } from './run-config.ts';
import { bestTrial, pointLabel, sweepMatrix, sweepPoints, type SearchPlan, type SweepMatrix, type SweepSpace, type TrialPoint } from './sweep-space.ts';

export interface SweepConfig extends RunConfig {
  readonly sweep: SearchPlan & {
    readonly mode: 'fused' | 'sequential';
    readonly space: SweepSpace;
    /** Fused mode only: successive halving at these steps. */
    readonly halving?: HalvingPlan;
  };
}

export type SweepEvent =
  | { readonly type: 'sweep'; readonly sweepId: number; readonly message: string }
  | { readonly type: 'trial'; readonly ordinal: number; readonly runId: number; readonly event: TrainerEvent | FusedEvent }
  /** Fused mode: one step of all running trials. */
  | { readonly type: 'progress'; readonly event: Extract<FusedEvent, { type: 'step' }> }
  | { readonly type: 'trial-done'; readonly ordinal: number; readonly status: 'completed' | 'pruned' | 'cancelled'; readonly objective?: number };

export interface TrialSummary {
  readonly ordinal: number;
  readonly point: TrialPoint;
  readonly runId: number;
  readonly status: 'completed' | 'pruned' | 'cancelled';
  readonly objective?: number;
  readonly prunedAtStep?: number;
  readonly adapterDir?: string;
}

export interface SweepOutcome {
  readonly sweepId: number;
  readonly trials: readonly TrialSummary[];
  /** Ordinal of the best trial. */
  readonly best?: number;
  readonly matrix: SweepMatrix;
}

export const readSweepConfig = (file: string): SweepConfig => parseSweepConfig(readConfigFile(file), file);

export const parseSweepConfig = (raw: unknown, file: string): SweepConfig => {
  const base = parseRunConfig(raw, file);
  const s = (raw as Record<string, unknown>).sweep as Record<string, unknown> | undefined;
  if (typeof s !== 'object' || s === null) throw new RunConfigError(`${file}: sweep is missing (mode, space: { r: [...], lora_alpha: [...] })`);
  const mode = s.mode ?? 'fused';
  if (mode !== 'fused' && mode !== 'sequential') throw new RunConfigError(`${file}: sweep.mode must be 'fused' or 'sequential'`);
  const search = s.search ?? 'grid';
  if (search !== 'grid' && search !== 'random') throw new RunConfigError(`${file}: sweep.search must be 'grid' or 'random'`);
  if (typeof s.space !== 'object' || s.space === null) throw new RunConfigError(`${file}: sweep.space must be a mapping of field → values`);
  const halving = s.halving as HalvingPlan | undefined;
  if (halving !== undefined) {
    if (mode !== 'fused') throw new RunConfigError(`${file}: sweep.halving needs mode fused (trials must progress together to be compared)`);
    if (!Array.isArray(halving.rungs) || !halving.rungs.every((r) => Number.isInteger(r) && r > 0)) throw new RunConfigError(`${file}: sweep.halving.rungs must be a list of step numbers`);
    if (halving.keep !== undefined && !(halving.keep > 0 && halving.keep < 1)) throw new RunConfigError(`${file}: sweep.halving.keep must be in (0, 1)`);
  }
  if (String(base.method.peft_type ?? 'LORA') !== 'LORA') throw new RunConfigError(`${file}: sweeps vary LoRA's r and alpha; method.peft_type must be LORA`);
  const sweep: SweepConfig['sweep'] = {
    mode, search, space: s.space as SweepSpace,
    ...(typeof s.trials === 'number' ? { trials: s.trials } : {}),
    ...(typeof s.seed === 'number' ? { seed: s.seed } : {}),
    ...(halving ? { halving } : {}),
  };
  // Every point must make a valid LoRA config: checked here, so errors name the file.
  sweepPoints(sweep.space, sweep, file).forEach((p, i) => parseLoraConfig({ ...base.method, ...withoutLr(p) }, `${file}: sweep trial ${i} (${pointLabel(p)})`));
  return { ...base, sweep };
};

/** The trial's adapter_config: the sweep's method with the point's LoRA fields (lr is not one). */
const withoutLr = (point: TrialPoint): Record<string, unknown> => {
  const { lr: _lr, ...fields } = point;
  return fields;
};
const trialMethod = (config: SweepConfig, point: TrialPoint): Record<string, unknown> => ({ ...config.method, ...withoutLr(point) });

const trialConfig = (config: SweepConfig, point: TrialPoint, ordinal: number): LoraConfig =>
  parseLoraConfig(trialMethod(config, point), `${config.name} trial ${ordinal} (${pointLabel(point)})`).config;

const trialLr = (config: SweepConfig, point: TrialPoint): number => (point.lr === undefined ? config.training.lr : Number(point.lr));

/** Writes a trial's events into its run's metrics. */
const recordTrialEvent = (metrics: MetricsWriter, runId: number, e: TrainerEvent | FusedEvent): void => {
  if (e.type === 'step' && 'loss' in e) {
    for (const [name, value] of [['train/loss', e.loss], ['lr', e.lr], ['grad_norm', e.gradNorm], ['tok_per_s', e.tokensPerSecond], ['rss_bytes', e.rssBytes]] as const) {
      metrics.append({ runId, name, step: e.step, value });
    }
  } else if (e.type === 'trial-step') {
    for (const [name, value] of [['train/loss', e.loss], ['lr', e.lr], ['grad_norm', e.gradNorm]] as const) metrics.append({ runId, name, step: e.step, value });
  } else if (e.type === 'eval' || e.type === 'trial-eval') {
    metrics.append({ runId, name: 'eval/loss', step: e.step, value: e.loss });
  }
};

interface TrialRecord {
  readonly ordinal: number;
  readonly trialId: number;
  readonly runId: number;
  readonly point: TrialPoint;
  readonly config: LoraConfig;
}

export interface SweepControl {
  cancel(): void;
}

export const runSweep = async (
  config: SweepConfig,
  store: Store,
  o: { readonly onEvent?: (e: SweepEvent) => void; readonly control?: (c: SweepControl) => void } = {},
): Promise<SweepOutcome> => {
  const points = sweepPoints(config.sweep.space, config.sweep, config.name);
  // Parse every trial's config before anything runs, so a bad point fails the sweep at once.
  const configs = points.map((p, i) => trialConfig(config, p, i));
  const job = await prepareJob(config, store);
  const { sweep, trials } = store.sweeps.create({ name: config.name, mode: config.sweep.mode, config: config as unknown as JsonObject, trials: points as JsonObject[] });
  const say = (message: string) => o.onEvent?.({ type: 'sweep', sweepId: sweep.id, message });
  for (const w of job.warnings) say(`warning: ${w}`);
  say(`sweep ${sweep.id}: ${points.length} trials (${config.sweep.mode}), ${job.train.length} training and ${job.eval.length} eval examples`);
  const records: TrialRecord[] = trials.map((t, i) => {
    const run = store.runs.create({
      name: `${config.name}/trial${i}`, method: 'LORA', modelId: job.modelId, datasetVersionId: job.datasetVersionId,
      config: { ...config, method: trialMethod(config, points[i]!), training: { ...config.training, lr: trialLr(config, points[i]!) }, sweep: { id: sweep.id, ordinal: i } } as unknown as JsonObject,
    });
    store.sweeps.updateTrial(t.id, { runId: run.id });
    return { ordinal: i, trialId: t.id, runId: run.id, point: points[i]!, config: configs[i]! };
  });
  const environment = { ort: ortVersion(), threads: config.training.session?.threads ?? availableParallelism(), node: process.version };
  store.sweeps.setStatus(sweep.id, 'running');
  const metrics = store.metricsWriter();
  try {
    const summaries = config.sweep.mode === 'fused'
      ? await runFused(config, job, records, { store, metrics, environment, ...o })
      : await runSequential(config, job, records, { store, metrics, environment, ...o });
    const outcomes = summaries.map((s) => ({ point: s.point, ...(s.objective !== undefined ? { objective: s.objective } : {}), pruned: s.status === 'pruned' }));
    const best = bestTrial(outcomes);
    if (best !== undefined) store.sweeps.markBest(records[best]!.trialId);
    const cancelled = summaries.some((s) => s.status === 'cancelled');
    store.sweeps.setStatus(sweep.id, cancelled ? 'cancelled' : 'completed');
    return { sweepId: sweep.id, trials: summaries, ...(best !== undefined ? { best } : {}), matrix: sweepMatrix(outcomes, { r: configs[0]!.r, lora_alpha: configs[0]!.lora_alpha }) };
  } catch (err) {
    store.sweeps.setStatus(sweep.id, 'failed', String((err as Error).message ?? err));
    for (const r of records) if (store.runs.get(r.runId).status === 'running') store.runs.fail(r.runId, `the sweep failed: ${(err as Error).message}`);
    throw err;
  } finally {
    await metrics.close();
  }
};

interface SweepContext {
  readonly store: Store;
  readonly metrics: MetricsWriter;
  readonly environment: { ort: string; threads: number; node: string };
  readonly onEvent?: (e: SweepEvent) => void;
  readonly control?: (c: SweepControl) => void;
}

/** Saves a trial's adapter in PEFT's format and registers it in the adapter library. */
const finishTrial = (config: SweepConfig, job: PreparedJob, ctx: SweepContext, r: TrialRecord, params: readonly TrainableTensor[], key: string): string => {
  const dir = join(config.output, `trial${r.ordinal}`, 'adapter');
  const method = { ...trialMethod(config, r.point), base_model_name_or_path: config.model };
  saveAdapter(dir, method, params, key);
  ctx.store.adapters.add({ runId: r.runId, name: `${config.name}/trial${r.ordinal}`, path: dir, peftType: 'LORA', config: method as never, baseModel: config.model, baseModelId: job.modelId });
  return dir;
};

const runFused = async (config: SweepConfig, job: PreparedJob, records: readonly TrialRecord[], ctx: SweepContext): Promise<TrialSummary[]> => {
  const byKey = new Map(records.map((r) => [`trial${r.ordinal}`, r]));
  const trainer = await FusedTrainer.create({
    model: job.opened.model,
    trials: records.map((r) => ({ key: `trial${r.ordinal}`, config: r.config, lr: trialLr(config, r.point) })),
    train: job.train,
    eval: job.eval,
    hyper: config.training,
    ...(config.sweep.halving ? { halving: config.sweep.halving } : {}),
    onEvent: (e) => {
      const r = 'key' in e ? byKey.get(e.key)! : undefined;
      if (r) {
        recordTrialEvent(ctx.metrics, r.runId, e);
        ctx.onEvent?.({ type: 'trial', ordinal: r.ordinal, runId: r.runId, event: e });
      } else if (e.type === 'step') {
        ctx.onEvent?.({ type: 'progress', event: e });
      }
      if (e.type === 'pruned') {
        ctx.store.sweeps.updateTrial(r!.trialId, { status: 'pruned', prunedAtStep: e.step, objective: e.evalLoss });
        ctx.store.runs.cancel(r!.runId);
        ctx.onEvent?.({ type: 'trial-done', ordinal: r!.ordinal, status: 'pruned', objective: e.evalLoss });
      }
    },
  });
  for (const r of records) {
    ctx.store.runs.start(r.runId, { ...ctx.environment, provider: trainer.provider.provider, providerReason: trainer.provider.reason });
    ctx.store.sweeps.updateTrial(r.trialId, { status: 'running' });
  }
  ctx.control?.({ cancel: () => trainer.cancel() });
  const result = await trainer.run();
  return result.trials.map((t) => {
    const r = byKey.get(t.key)!;
    const objective = t.evals.at(-1)?.loss;
    if (t.prunedAtStep !== undefined) {
      return { ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'pruned', prunedAtStep: t.prunedAtStep, ...(objective !== undefined ? { objective } : {}) };
    }
    if (result.status === 'cancelled') {
      ctx.store.runs.cancel(r.runId);
      ctx.store.sweeps.updateTrial(r.trialId, { status: 'cancelled' });
      return { ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'cancelled' };
    }
    const adapterDir = finishTrial(config, job, ctx, r, t.params, t.key);
    ctx.store.runs.complete(r.runId);
    ctx.store.sweeps.updateTrial(r.trialId, { status: 'completed', ...(objective !== undefined ? { objective } : {}) });
    ctx.onEvent?.({ type: 'trial-done', ordinal: r.ordinal, status: 'completed', ...(objective !== undefined ? { objective } : {}) });
    return { ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'completed', adapterDir, ...(objective !== undefined ? { objective } : {}) };
  });
};

const runSequential = async (config: SweepConfig, job: PreparedJob, records: readonly TrialRecord[], ctx: SweepContext): Promise<TrialSummary[]> => {
  let cancelled = false;
  let current: Trainer | undefined;
  ctx.control?.({ cancel: () => ((cancelled = true), current?.cancel()) });
  const out: TrialSummary[] = [];
  for (const r of records) {
    if (cancelled) {
      ctx.store.runs.cancel(r.runId);
      ctx.store.sweeps.updateTrial(r.trialId, { status: 'cancelled' });
      out.push({ ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'cancelled' });
      continue;
    }
    const key = `trial${r.ordinal}`;
    const adapted = applyLora(buildTrainingGraph(job.opened.model), r.config, { seed: config.training.seed ?? 0, adapterName: key });
    const trainer = await Trainer.create({
      graph: adapted.graph, params: adapted.params, train: job.train, eval: job.eval,
      hyper: { ...config.training, lr: trialLr(config, r.point) }, outputDir: join(config.output, key),
      onEvent: (e) => {
        recordTrialEvent(ctx.metrics, r.runId, e);
        ctx.onEvent?.({ type: 'trial', ordinal: r.ordinal, runId: r.runId, event: e });
      },
    });
    current = trainer;
    ctx.store.runs.start(r.runId, { ...ctx.environment, provider: trainer.provider.provider, providerReason: trainer.provider.reason });
    ctx.store.sweeps.updateTrial(r.trialId, { status: 'running' });
    try {
      const result = await trainer.run();
      if (result.status === 'cancelled') {
        ctx.store.runs.cancel(r.runId);
        ctx.store.sweeps.updateTrial(r.trialId, { status: 'cancelled' });
        out.push({ ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'cancelled' });
        continue;
      }
      // The objective is the eval loss after the last step, as in fused mode.
      // A completed run with evalEvery set was evaluated at its last step; otherwise evaluate now.
      const finalEval = result.status === 'completed' ? result.lastEvalLoss : undefined;
      const objective = job.eval.length ? (finalEval ?? (await trainer.evaluate())) : undefined;
      if (objective !== undefined && result.steps % (config.training.evalEvery ?? Infinity) !== 0) ctx.metrics.append({ runId: r.runId, name: 'eval/loss', step: result.steps, value: objective });
      const adapterDir = finishTrial(config, job, ctx, r, trainer.trainables, key);
      ctx.store.runs.complete(r.runId);
      ctx.store.sweeps.updateTrial(r.trialId, { status: 'completed', ...(objective !== undefined ? { objective } : {}) });
      ctx.onEvent?.({ type: 'trial-done', ordinal: r.ordinal, status: 'completed', ...(objective !== undefined ? { objective } : {}) });
      out.push({ ordinal: r.ordinal, point: r.point, runId: r.runId, status: 'completed', adapterDir, ...(objective !== undefined ? { objective } : {}) });
    } finally {
      await trainer.release();
    }
  }
  return out;
};
