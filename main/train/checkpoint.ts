// Checkpoints: trainable tensors (PEFT's format), optimizer state, the data position and RNG seed, written to a
// temporary folder and renamed into place, so a crash mid-write never leaves a half checkpoint that looks whole.
// A test-only fault hook (PEFT_STUDIO_FAULT, see faultPoint) kills the process inside that window.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorFloat32, writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import type { OptimizerState } from '../engine/optim/index.ts';
import type { TrainStepState } from '../engine/train-step.ts';

export interface DataPosition {
  readonly epoch: number;
  /** Micro-batches of this epoch already consumed. */
  readonly microBatch: number;
}

export interface CheckpointState {
  readonly step: number;
  readonly position: DataPosition;
  readonly seed: number;
  readonly bestEvalLoss?: number;
  readonly evalsWithoutImprovement?: number;
}

export interface Checkpoint extends CheckpointState {
  readonly dir: string;
  readonly params: ReadonlyMap<string, Float32Array>;
  readonly train: TrainStepState;
}

const STATE = 'trainer_state.json';
const PARAMS = 'trainable.safetensors';
const OPTIMIZER = 'optimizer.safetensors';
const PREFIX = 'step-';
const TMP = '.tmp-';

/** Where a run's checkpoints live inside its output folder. */
export const checkpointsRoot = (outputDir: string): string => join(outputDir, 'checkpoints');

export const checkpointDir = (root: string, step: number): string => join(root, `${PREFIX}${String(step).padStart(8, '0')}`);

export const writeCheckpoint = (
  root: string,
  state: CheckpointState,
  params: readonly { readonly name: string; readonly shape: readonly number[]; readonly data: Float32Array }[],
  train: TrainStepState,
  extra?: (tmpDir: string) => void,
): string => {
  mkdirSync(root, { recursive: true });
  const final = checkpointDir(root, state.step);
  const tmp = `${final}${TMP}${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) tensors[p.name] = { shape: p.shape, data: p.data };
  writeSafetensors(join(tmp, PARAMS), tensors);
  const opt: Record<string, TensorToWrite> = {};
  for (const [k, v] of Object.entries(train.optimizer.tensors)) opt[k] = { shape: [v.length], data: v };
  writeSafetensors(join(tmp, OPTIMIZER), opt);
  const { tensors: _, ...optimizerMeta } = train.optimizer;
  writeFileSync(join(tmp, STATE), JSON.stringify({ ...state, train: { ...train, optimizer: optimizerMeta } }, null, 2));
  extra?.(tmp);
  faultPoint('checkpoint-write', state.step);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  return final;
};

/** Complete checkpoints under `root`, oldest first (temporary folders of interrupted writes are ignored). */
export const listCheckpoints = (root: string): string[] =>
  existsSync(root)
    ? readdirSync(root)
        .filter((d) => d.startsWith(PREFIX) && !d.includes(TMP) && existsSync(join(root, d, STATE)))
        .sort()
        .map((d) => join(root, d))
    : [];

/** The checkpoint a resume starts from: the newest complete one, with its step. */
export const newestCheckpoint = (root: string): { readonly dir: string; readonly step: number } | undefined => {
  const dir = listCheckpoints(root).at(-1);
  return dir === undefined ? undefined : { dir, step: (JSON.parse(readFileSync(join(dir, STATE), 'utf8')) as CheckpointState).step };
};

/** Removes the temporary folders of writes a killed process left behind; returns them. */
export const removeInterruptedWrites = (root: string): string[] => {
  const left = existsSync(root) ? readdirSync(root).filter((d) => d.startsWith(PREFIX) && d.includes(TMP)).map((d) => join(root, d)) : [];
  for (const dir of left) rmSync(dir, { recursive: true, force: true });
  return left;
};

export const readCheckpoint = (dir: string): Checkpoint => {
  const raw = JSON.parse(readFileSync(join(dir, STATE), 'utf8')) as CheckpointState & { train: Omit<TrainStepState, 'optimizer'> & { optimizer: Omit<OptimizerState, 'tensors'> } };
  const tensors = (file: string) => new Map(readSafetensorsHeader(join(dir, file)).map((e) => [e.name, readTensorFloat32(e)]));
  const optimizerTensors = Object.fromEntries(tensors(OPTIMIZER));
  return {
    ...raw,
    dir,
    params: tensors(PARAMS),
    train: { ...raw.train, optimizer: { ...raw.train.optimizer, tensors: optimizerTensors } },
  };
};

/** Keeps the newest `keep` checkpoints. */
export const pruneCheckpoints = (root: string, keep: number): void => {
  const all = listCheckpoints(root);
  for (const dir of all.slice(0, Math.max(0, all.length - keep))) rmSync(dir, { recursive: true, force: true });
};

/**
 * Test-only fault injection, in the spirit of SQLite's test hooks: with PEFT_STUDIO_FAULT=checkpoint-write:STEP in
 * the environment, the process SIGKILLs itself once checkpoint STEP's files are in its temporary folder and before
 * the rename that publishes it — the one window a crash must not turn into a checkpoint that looks whole
 * (tests/cli/resume-kill.test.ts). Unset, it costs one string comparison per checkpoint.
 */
const faultPoint = (point: 'checkpoint-write', step: number): void => {
  if (process.env.PEFT_STUDIO_FAULT === `${point}:${step}`) process.kill(process.pid, 'SIGKILL');
};
