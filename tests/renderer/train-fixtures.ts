// Shared by the Train and Runs tests: the real service with a tiny Llama opened as the workspace model, and a small
// prompt/completion dataset on disk.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { TrainingState } from '../../renderer/lib/state/training.svelte.ts';
import { tinyModelDir } from '../helpers/oracle-cache.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

export const tinyModel = tinyModelDir('llama3');

export interface TrainBench {
  readonly service: ServiceApi;
  readonly app: AppState;
  readonly datasetPath: string;
  close(): void;
}

/** 24 distinct short rows (counting on from a number), so the loss falls within a few steps. */
export const writeDataset = (dir: string): string => {
  const rows = Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Count on from ${i + 1}:`, completion: ` ${Array.from({ length: (i % 4) + 2 }, (_, k) => i + 2 + k).join(' ')}` }));
  const path = join(dir, 'count.jsonl');
  writeFileSync(path, `${rows.join('\n')}\n`);
  return path;
};

export const trainBench = async (): Promise<TrainBench> => {
  const service = serviceApi();
  setApi(service);
  const app = new AppState();
  await app.load();
  app.workspace.model = await api().request('models.describe', { path: tinyModel! });
  return {
    service,
    app,
    datasetPath: writeDataset(service.dir),
    close: () => {
      setApi(undefined);
      service.close();
    },
  };
};

/** Fills a loaded TrainingState for a quick LoRA run on the tiny model. */
export const fillQuickRun = (training: TrainingState, datasetPath: string | undefined, o: { steps: number; lr?: string; checkpointEvery?: number }): void => {
  // undefined: keep the library dataset the state chose.
  if (datasetPath !== undefined) {
    training.datasetChoice = 'file';
    training.datasetPath = datasetPath;
  }
  training.methodForm!.set('r', '2');
  training.methodForm!.set('target_modules', 'q_proj, v_proj');
  const t = training.training!;
  t.set('maxSteps', String(o.steps));
  t.set('microBatchSize', '2');
  t.set('maxLength', '32');
  t.set('evalEvery', '2');
  t.set('checkpointEvery', String(o.checkpointEvery ?? 100));
  t.set('lr', o.lr ?? '0.01');
  training.datasetBlock!.set('evalFraction', '0.25');
};

/** A run straight through the API (not the Train form), for tests that need a history. */
export const trainDirect = async (bench: TrainBench, o: { name: string; lr: number; steps: number; checkpointEvery?: number }) =>
  api().request('train.start', {
    config: {
      name: o.name,
      model: tinyModel!,
      dataset: { path: bench.datasetPath, evalFraction: 0.25 },
      method: { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
      training: { maxSteps: o.steps, microBatchSize: 2, maxLength: 32, evalEvery: 2, checkpointEvery: o.checkpointEvery ?? 100, lr: o.lr },
      output: join(bench.service.dir, 'runs', o.name),
    },
  });
