// A training run with its history: the run, its model and exact dataset version, metrics, checkpoints and the
// final adapter go into the SQLite store; the service reports progress as events.
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ortVersion } from '../engine/onnx/runtime.ts';
import { openModel } from '../models/open-model.ts';
import { peftMethod } from '../peft/registry.ts';
import { saveAdapter } from '../peft/peft-io.ts';
import type { Store } from '../store/index.ts';
import { prepareDataset, splitTrainEval, type DatasetFormat } from '../train/dataset/index.ts';
import { buildTrainingGraph } from '../train/train-graph.ts';
import { Trainer, TrainingDivergedError, type TrainerEvent, type TrainerResult } from '../train/trainer.ts';
import { RunConfigError, type RunConfig } from './run-config.ts';

export type RunEvent = TrainerEvent | { readonly type: 'run'; readonly runId: number; readonly message: string };

export interface RunOutcome {
  readonly runId: number;
  readonly result: TrainerResult;
  readonly adapterDir?: string;
}

const parameterCount = (weights: ReadonlyMap<string, { readonly shape: readonly number[] }>): number =>
  [...weights.values()].reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);

/** Methods whose adapters the generic PEFT writer saves (the LoRA family's keys). */
const SAVABLE = new Set(['LORA']);

export const trainRun = async (config: RunConfig, store: Store, o: { readonly onEvent?: (e: RunEvent) => void; readonly control?: (t: Trainer) => void } = {}): Promise<RunOutcome> => {
  const method = peftMethod(String(config.method.peft_type ?? 'LORA'));
  if (!SAVABLE.has(method.peftType)) throw new RunConfigError(`method ${method.peftType} cannot be trained from a run config yet (LORA can)`);
  const { config: methodConfig, warnings } = method.parseConfig(config.method, 'method');
  const opened = openModel(config.model);
  const prepared = await prepareDataset(config.dataset.path, opened.tokenizer, {
    ...(config.dataset.format ? { format: config.dataset.format as DatasetFormat } : {}),
    tokenize: { maxLength: config.training.maxLength, trainOn: config.dataset.trainOn ?? 'assistant' },
  });
  const split = splitTrainEval(prepared.tokenized.examples, { evalFraction: config.dataset.evalFraction ?? 0.05, seed: config.training.seed ?? 0 });

  const model =
    store.models.list().find((m) => m.path === config.model) ??
    store.models.add({ name: config.model.split('/').pop()!, path: config.model, format: opened.format, architecture: opened.model.config.architecture, params: parameterCount(opened.model.weights) });
  const { version } = store.datasets.create({
    name: config.dataset.path.split('/').pop()!,
    format: prepared.loaded.format ?? 'unknown',
    sourcePath: config.dataset.path,
    rows: prepared.loaded.records as never,
  });
  const run = store.runs.create({ name: config.name, method: method.peftType, modelId: model.id, datasetVersionId: version.id, config: config as never });
  const threads = config.training.session?.threads ?? availableParallelism();
  const say = (message: string) => o.onEvent?.({ type: 'run', runId: run.id, message });
  for (const w of [...warnings, ...prepared.warnings.map((p) => `${p.file}:${p.line}: ${p.message}`)]) say(`warning: ${w}`);
  say(`run ${run.id}: ${split.train.length} training and ${split.eval.length} eval examples`);

  const adapted = method.apply(buildTrainingGraph(opened.model), methodConfig as never, { seed: config.training.seed ?? 0 });
  const metrics = store.metricsWriter();
  const trainer = await Trainer.create({
    graph: adapted.graph,
    params: adapted.params,
    train: split.train,
    eval: split.eval,
    hyper: config.training,
    outputDir: config.output,
    onEvent: (e) => {
      if (e.type === 'step') {
        for (const [name, value] of [['train/loss', e.loss], ['lr', e.lr], ['grad_norm', e.gradNorm], ['tok_per_s', e.tokensPerSecond], ['rss_bytes', e.rssBytes]] as const) {
          metrics.append({ runId: run.id, name, step: e.step, value });
        }
      } else if (e.type === 'eval') {
        metrics.append({ runId: run.id, name: 'eval/loss', step: e.step, value: e.loss });
      } else if (e.type === 'checkpoint') {
        store.checkpoints.add({ runId: run.id, step: e.step, path: e.dir, bytes: statSync(join(e.dir, 'trainable.safetensors')).size });
      }
      o.onEvent?.(e);
    },
  });
  o.control?.(trainer);
  store.runs.start(run.id, { ort: ortVersion(), provider: trainer.provider.provider, providerReason: trainer.provider.reason, threads, node: process.version });
  try {
    const result = await trainer.run();
    if (result.status === 'cancelled') {
      store.runs.cancel(run.id);
      return { runId: run.id, result };
    }
    if (result.status === 'paused') {
      store.runs.pause(run.id);
      return { runId: run.id, result };
    }
    const adapterDir = join(config.output, 'adapter');
    saveAdapter(adapterDir, { ...config.method, base_model_name_or_path: config.model }, trainer.trainables);
    store.adapters.add({ runId: run.id, name: config.name, path: adapterDir, peftType: method.peftType, config: config.method as never, baseModel: config.model, baseModelId: model.id });
    store.runs.complete(run.id);
    return { runId: run.id, result, adapterDir };
  } catch (err) {
    store.runs.fail(run.id, err instanceof TrainingDivergedError ? err.message : String((err as Error).stack ?? err));
    throw err;
  } finally {
    await metrics.close();
    await trainer.release();
  }
};
