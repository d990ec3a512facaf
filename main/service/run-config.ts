import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { TrainingHyper } from '../train/trainer.ts';

/** A training run as a config file describes it (YAML or JSON). */
export interface RunConfig {
  readonly name: string;
  /** An HF folder or a .gguf file. */
  readonly model: string;
  readonly dataset: {
    readonly path: string;
    readonly format?: string;
    readonly trainOn?: 'assistant' | 'all';
    readonly evalFraction?: number;
  };
  /** The method's adapter_config (PEFT's field names), e.g. { peft_type: LORA, r: 16, lora_alpha: 32, target_modules: all-linear }. */
  readonly method: Record<string, unknown>;
  readonly training: TrainingHyper;
  /** Run folder: checkpoints/ and adapter/. */
  readonly output: string;
}

export class RunConfigError extends Error {
  override readonly name = 'RunConfigError';
}

const DEFAULT_TRAINING: TrainingHyper = {
  microBatchSize: 4, gradientAccumulation: 1, lr: 2e-4, schedule: 'cosine', warmupSteps: 0, maxGradNorm: 1, maxLength: 512,
  packing: true, epochs: 1, evalEvery: 50, checkpointEvery: 100, keepCheckpoints: 2, seed: 42,
};

/** A YAML or JSON config file's contents (unchecked); an unreadable file or a syntax error names the file. */
export const readConfigFile = (file: string): unknown => {
  try {
    const text = readFileSync(file, 'utf8');
    return file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new RunConfigError(`${file}: ${(err as Error).message}`);
  }
};

/** Reads and checks a run config; every problem names the file and the field. */
export const readRunConfig = (file: string): RunConfig => parseRunConfig(readConfigFile(file), file);

export const parseRunConfig = (raw: unknown, file: string): RunConfig => {
  const fail = (field: string, rule: string): never => {
    throw new RunConfigError(`${file}: ${field} ${rule}`);
  };
  if (typeof raw !== 'object' || raw === null) fail('(top level)', 'must be a mapping');
  const r = raw as Record<string, unknown>;
  const str = (v: unknown, field: string): string => (typeof v === 'string' && v.length > 0 ? v : fail(field, 'must be a non-empty string'));
  const dataset = (r.dataset ?? fail('dataset', 'is missing')) as Record<string, unknown>;
  const method = (r.method ?? fail('method', 'is missing (a PEFT adapter_config, e.g. peft_type: LORA)')) as Record<string, unknown>;
  if (typeof method !== 'object') fail('method', 'must be a mapping');
  const training = { ...DEFAULT_TRAINING, ...((r.training as object | undefined) ?? {}) } as TrainingHyper;
  for (const k of ['microBatchSize', 'gradientAccumulation', 'maxLength'] as const) {
    if (!(Number.isInteger(training[k]) && training[k] > 0)) fail(`training.${k}`, 'must be a positive integer');
  }
  if (!(training.lr > 0)) fail('training.lr', 'must be positive');
  const trainOn = dataset.trainOn ?? 'assistant';
  if (trainOn !== 'assistant' && trainOn !== 'all') fail('dataset.trainOn', "must be 'assistant' or 'all'");
  const evalFraction = dataset.evalFraction ?? 0.05;
  if (typeof evalFraction !== 'number' || !(evalFraction >= 0 && evalFraction < 1)) fail('dataset.evalFraction', 'must be in [0, 1)');
  return {
    name: typeof r.name === 'string' ? r.name : `run-${new Date().toISOString()}`,
    model: str(r.model, 'model'),
    dataset: {
      path: str(dataset.path, 'dataset.path'),
      ...(typeof dataset.format === 'string' ? { format: dataset.format } : {}),
      trainOn: trainOn as 'assistant' | 'all',
      evalFraction: evalFraction as number,
    },
    method,
    training,
    output: str(r.output, 'output'),
  };
};
