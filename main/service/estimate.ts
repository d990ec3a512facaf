// A run's peak memory and step time before it starts: the run config's model and method, built into the same
// training graph the run would train (main/train/estimate.ts), with this machine's throughput probed through the
// runtime. The dataset is not read: rows are taken as full (maxLength tokens, every position a target), the most a
// packed run can hold, so the memory figure is an upper bound for the config.
import { availableParallelism } from 'node:os';
import { planProvider } from '../engine/onnx/runtime.ts';
import { openModel } from '../models/open-model.ts';
import { peftMethod } from '../peft/registry.ts';
import { estimateTraining, type MachineThroughput, type TrainingEstimate } from '../train/estimate.ts';
import { prepareMethod } from '../train/method-training.ts';
import { probeThroughput } from '../train/throughput-probe.ts';
import { RunConfigError, type RunConfig } from './run-config.ts';

export interface RunEstimate extends TrainingEstimate {
  readonly name: string;
  readonly model: string;
  readonly method: string;
  readonly threads: number;
  /** Optimizer steps of the run when the config fixes them (training.maxSteps). */
  readonly steps?: number;
  /** steps × stepSeconds. */
  readonly totalSeconds?: number;
}

export interface EstimateRunOptions {
  /** Measure this machine's throughput (about half a second) for the time estimate; default true. */
  readonly probe?: boolean;
  /** Throughput measured earlier (e.g. in the process that trained), used instead of probing. */
  readonly throughput?: MachineThroughput;
}

/** LoRA+ and LoRA-FA options ride in the method block (train-run.ts); they are not adapter_config fields. */
const OPTIMIZER_VARIANT_KEYS = ['loraplus_lr_ratio', 'loraplus_lr_embedding', 'loraplus_weight_decay', 'lora_fa'];

export const estimateRun = async (config: RunConfig, o: EstimateRunOptions = {}): Promise<RunEstimate> => {
  const method = peftMethod(String(config.method.peft_type ?? 'LORA'));
  const adapterConfig = Object.fromEntries(Object.entries(config.method).filter(([k]) => !OPTIMIZER_VARIANT_KEYS.includes(k)));
  const loraFa = config.method.lora_fa;
  if (loraFa !== undefined && typeof loraFa !== 'boolean') throw new RunConfigError(`method.lora_fa=${JSON.stringify(loraFa)} must be true or false`);
  // AdaLoRA's rank schedule needs the run's length; it changes no tensor's size, so any length estimates the same.
  const raw = method.peftType === 'ADALORA' && adapterConfig.total_step === undefined ? { ...adapterConfig, total_step: config.training.maxSteps ?? 1000 } : adapterConfig;
  const { config: methodConfig } = method.parseConfig(raw, 'method');
  const opened = openModel(config.model);
  const h = config.training;
  const prepared = prepareMethod({
    peftType: method.peftType,
    config: methodConfig,
    model: opened.model,
    tokenizer: opened.tokenizer,
    seed: h.seed ?? 0,
    lr: h.lr,
    baseModel: config.model,
    ...(loraFa ? { loraFa: {} } : {}),
  });
  const threads = h.session?.threads ?? availableParallelism();
  const throughput = o.throughput ?? (o.probe === false ? undefined : await probeThroughput({ threads, optimizer: h.optimizer?.kind ?? 'adamw' }));
  const estimate = estimateTraining({
    model: opened.model,
    graph: prepared.graph,
    trainable: prepared.params,
    microBatchSize: h.microBatchSize,
    seqLength: h.maxLength,
    gradientAccumulation: h.gradientAccumulation,
    recompute: h.recompute ?? false,
    precision: h.mixedPrecision ? 'mixed' : 'float32',
    lowMemory: h.session?.lowMemory ?? true,
    ...(h.optimizer ? { optimizer: h.optimizer } : {}),
    threads,
    ...(throughput ? { throughput } : {}),
  });
  const provider = planProvider(h.session?.provider);
  const assumptions = [
    ...estimate.assumptions,
    'rows full: maxLength tokens each, every position a target (the dataset is not read)',
    ...(provider.provider === 'cpu' ? [] : [`the run would use ${provider.provider} (${provider.reason}); this estimate is for the CPU`]),
  ];
  const steps = h.maxSteps;
  return {
    ...estimate,
    assumptions,
    name: config.name,
    model: config.model,
    method: method.label,
    threads,
    ...(steps !== undefined ? { steps } : {}),
    ...(steps !== undefined && estimate.stepSeconds !== undefined ? { totalSeconds: steps * estimate.stepSeconds } : {}),
  };
};
