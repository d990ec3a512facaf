// A training run with its history: the run, its model and exact dataset version, metrics, checkpoints and the
// final adapter go into the SQLite store; the service reports progress as events. Any registered PEFT method
// trains (main/train/method-training.ts); an interrupted run (paused, or its process killed) continues in the
// same run row from its newest complete checkpoint, exactly as if it had never stopped.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import { ortVersion } from '../engine/onnx/runtime.ts';
import { ADAPTER_CONFIG } from '../peft/peft-io.ts';
import { loraPlusParamGroups } from '../peft/lora-plus.ts';
import { peftMethod } from '../peft/registry.ts';
import { INTERRUPTED, type JsonObject, type Store } from '../store/index.ts';
import { checkpointsRoot, listCheckpoints, newestCheckpoint } from '../train/checkpoint.ts';
import { prepareMethod, type LoraOptimizerVariant, type MethodRun } from '../train/method-training.ts';
import { plannedSteps, Trainer, TrainingDivergedError, type TrainerEvent, type TrainerResult, type TrainingHyper } from '../train/trainer.ts';
import { loadJobData, recordDataset, recordModel } from './prepare.ts';
import { RunConfigError, type RunConfig } from './run-config.ts';
import { checkDatasetUnchanged, findRunToResume, unfinishedRunFor } from './run-resume.ts';

export type RunEvent = TrainerEvent | { readonly type: 'run'; readonly runId: number; readonly message: string };

export interface RunOutcome {
  readonly runId: number;
  readonly result: TrainerResult;
  readonly adapterDir?: string;
  /** FULL fine-tuning: the trained model's Hugging Face folder (also added to the model library). */
  readonly modelDir?: string;
  /** The checkpoint step a resumed run continued from. */
  readonly resumedFrom?: number;
}

export interface TrainRunOptions {
  readonly onEvent?: (e: RunEvent) => void;
  readonly control?: (t: Trainer) => void;
  /**
   * Continue an interrupted run: `runId`, else the newest unfinished run that writes to the config's output folder,
   * from its newest complete checkpoint. With no such run (or no checkpoint) it starts from step 0 and says so.
   */
  readonly resume?: boolean;
  readonly runId?: number;
}

/**
 * LoRA's optimizer variants, given in the method block beside the adapter_config fields (PEFT has them as optimizer
 * factories, so they are not adapter fields and never reach adapter_config.json): create_loraplus_optimizer's
 * `loraplus_lr_ratio` (+ `loraplus_lr_embedding`, `loraplus_weight_decay`), and `lora_fa: true` for
 * create_lorafa_optimizer (its weight decay and betas from training.optimizer, which must then be AdamW).
 */
const splitOptimizerVariant = (method: Readonly<Record<string, unknown>>, training: TrainingHyper): { adapterConfig: Record<string, unknown>; variant: LoraOptimizerVariant } => {
  const { loraplus_lr_ratio: ratio, loraplus_lr_embedding: embedding, loraplus_weight_decay: decay, lora_fa: loraFa, ...adapterConfig } = method;
  const variant: { -readonly [K in keyof LoraOptimizerVariant]: LoraOptimizerVariant[K] } = {};
  if (ratio !== undefined) {
    const options = { loraplus_lr_ratio: ratio as number, ...(embedding !== undefined ? { loraplus_lr_embedding: embedding as number } : {}), ...(decay !== undefined ? { loraplus_weight_decay: decay as number } : {}) };
    loraPlusParamGroups([], { ...options, lr: training.lr });
    variant.loraPlus = options;
  } else if (embedding !== undefined || decay !== undefined) {
    throw new RunConfigError('method: loraplus_lr_embedding and loraplus_weight_decay need loraplus_lr_ratio (LoRA+)');
  }
  if (loraFa !== undefined && typeof loraFa !== 'boolean') throw new RunConfigError(`method.lora_fa=${JSON.stringify(loraFa)} must be true or false`);
  if (loraFa) {
    const opt = training.optimizer;
    if (opt && opt.kind !== 'adamw') throw new RunConfigError(`method.lora_fa: LoRA-FA has its own AdamW-style optimizer; training.optimizer.kind must be adamw, not ${opt.kind}`);
    variant.loraFa = { weightDecay: opt?.weightDecay ?? 0, ...(opt?.betas ? { betas: opt.betas } : {}) };
  }
  return { adapterConfig, variant };
};

export const trainRun = async (config: RunConfig, store: Store, o: TrainRunOptions = {}): Promise<RunOutcome> => {
  const method = peftMethod(String(config.method.peft_type ?? 'LORA'));
  const { adapterConfig, variant } = splitOptimizerVariant(config.method, config.training);
  const resumed = o.resume ? findRunToResume(store, config, o.runId) : undefined;
  const owner = o.resume ? undefined : unfinishedRunFor(store, config);
  if (owner) throw new RunConfigError(`${config.output} is the output of run ${owner.id} (${owner.status}); continue it with --resume, or choose another output folder`);
  const data = await loadJobData(config);
  const { opened } = data;
  if (resumed) checkDatasetUnchanged(store, resumed, data.records, config.dataset.path);
  const seed = config.training.seed ?? 0;
  const split = { train: data.train, eval: data.eval };
  // AdaLoRA schedules its rank budget over the whole run: without total_step it gets the run's step count.
  const totalStepFilled = method.peftType === 'ADALORA' && adapterConfig.total_step === undefined;
  const rawMethod = totalStepFilled ? { ...adapterConfig, total_step: plannedSteps(split.train, config.training) } : adapterConfig;
  const { config: methodConfig, warnings } = method.parseConfig(rawMethod, 'method');
  const prep = prepareMethod({ peftType: method.peftType, config: methodConfig, model: opened.model, tokenizer: opened.tokenizer, seed, lr: config.training.lr, baseModel: config.model, ...variant });

  const modelId = resumed ? resumed.modelId : recordModel(store, { path: config.model, opened });
  const run =
    resumed ??
    store.runs.create({ name: config.name, method: method.peftType, modelId, datasetVersionId: recordDataset(store, config, data), config: config as never });
  const threads = config.training.session?.threads ?? availableParallelism();
  const say = (message: string) => o.onEvent?.({ type: 'run', runId: run.id, message });
  for (const w of [...warnings, ...data.warnings]) say(`warning: ${w}`);
  if (totalStepFilled) say(`AdaLoRA total_step = ${rawMethod.total_step as number} (the run's steps)`);

  const root = checkpointsRoot(config.output);
  const from = resumed ? newestCheckpoint(root) : undefined;
  if (resumed) {
    say(from ? `resuming run ${run.id} (${run.status}) from its step-${from.step} checkpoint ${from.dir}` : `run ${run.id} has no checkpoint in ${root} to resume from: starting it again from step 0`);
    // The history keeps what the checkpoint covers: a killed process may have logged steps past it.
    store.metrics.deleteAfter(run.id, from?.step ?? 0);
    for (const c of store.checkpoints.list(run.id)) if (c.step > (from?.step ?? 0) || !existsSync(c.path)) store.checkpoints.delete(c.id);
    // A process killed between the checkpoint's rename and its record leaves it unrecorded.
    if (from) store.checkpoints.add({ runId: run.id, step: from.step, path: from.dir, bytes: statSync(join(from.dir, 'trainable.safetensors')).size });
  } else if (o.resume) {
    say(`no unfinished run writes to ${config.output}: nothing to resume, starting run ${run.id} from step 0`);
  }
  if (!from) {
    // Checkpoints of an earlier, finished run in this folder would shadow this run's in a later resume.
    const stale = listCheckpoints(root);
    rmSync(root, { recursive: true, force: true });
    if (stale.length > 0) say(`removed ${stale.length} checkpoint(s) an earlier run left in ${root}`);
  }
  say(`run ${run.id}: ${split.train.length} training and ${split.eval.length} eval examples, ${method.label}`);

  const metrics = store.metricsWriter();
  const keep = config.training.keepCheckpoints ?? 2;
  let methodRun: MethodRun | undefined;
  const trainer = await Trainer.create({
    graph: prep.graph,
    params: prep.params,
    train: split.train,
    eval: split.eval,
    hyper: config.training,
    outputDir: config.output,
    resume: from !== undefined,
    method: (live) => (methodRun = prep.bind(live)),
    // A checkpoint never exists without the metrics up to its step: a resume from it finds them all.
    beforeCheckpointCommit: () => void metrics.flush(),
    onEvent: (e) => {
      if (e.type === 'step') {
        for (const [name, value] of [['train/loss', e.loss], ['lr', e.lr], ['grad_norm', e.gradNorm], ['tok_per_s', e.tokensPerSecond], ['rss_bytes', e.rssBytes]] as const) {
          metrics.append({ runId: run.id, name, step: e.step, value });
        }
      } else if (e.type === 'eval') {
        metrics.append({ runId: run.id, name: 'eval/loss', step: e.step, value: e.loss });
      } else if (e.type === 'checkpoint') {
        store.checkpoints.add({ runId: run.id, step: e.step, path: e.dir, bytes: statSync(join(e.dir, 'trainable.safetensors')).size });
        store.checkpoints.keepLatest(run.id, keep);
      }
      o.onEvent?.(e);
    },
  });
  o.control?.(trainer);
  // A run left 'running' lost its process (SIGKILL, crash): it was interrupted, and now runs again.
  if (run.status === 'running') store.runs.setStatus(run.id, 'paused', { error: INTERRUPTED });
  store.runs.start(run.id, { ort: ortVersion(), provider: trainer.provider.provider, providerReason: trainer.provider.reason, threads, node: process.version, pid: process.pid, host: hostname() });
  const resumedFrom = from ? { resumedFrom: from.step } : {};
  try {
    const result = await trainer.run();
    if (result.status === 'cancelled') {
      store.runs.cancel(run.id);
      return { runId: run.id, result, ...resumedFrom };
    }
    if (result.status === 'paused') {
      store.runs.pause(run.id);
      return { runId: run.id, result, ...resumedFrom };
    }
    if (prep.saves === 'model') {
      const modelDir = join(config.output, 'model');
      methodRun!.saveAdapter(modelDir);
      recordModel(store, { path: modelDir, opened, name: `${config.name} (full fine-tune)`, format: 'hf' });
      store.runs.complete(run.id);
      return { runId: run.id, result, modelDir, ...resumedFrom };
    }
    const adapterDir = join(config.output, 'adapter');
    methodRun!.saveAdapter(adapterDir);
    const saved = JSON.parse(readFileSync(join(adapterDir, ADAPTER_CONFIG), 'utf8')) as JsonObject;
    store.adapters.add({ runId: run.id, name: config.name, path: adapterDir, peftType: String(saved.peft_type ?? method.peftType), config: saved, baseModel: config.model, baseModelId: modelId });
    store.runs.complete(run.id);
    return { runId: run.id, result, adapterDir, ...resumedFrom };
  } catch (err) {
    store.runs.fail(run.id, err instanceof TrainingDivergedError ? err.message : String((err as Error).stack ?? err));
    throw err;
  } finally {
    metrics.close();
    await trainer.release();
  }
};
