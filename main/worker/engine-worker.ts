// Worker-thread entry: owns the ORT sessions, so that session.run() never blocks the main event loop.
import { parentPort } from 'node:worker_threads';
import { Graph } from '../engine/ir/index.ts';
import { TrainStep } from '../engine/train-step.ts';
import type { Request, RequestMap, WorkerMessage } from './engine-protocol.ts';

const port = parentPort;
if (!port) throw new Error('engine-worker must run in a worker_thread');
const trainers = new Map<number, TrainStep>();
let nextTrainer = 1;

const post = (m: WorkerMessage): void => port.postMessage(m);

const trainer = (id: number): TrainStep => {
  const t = trainers.get(id);
  if (!t) throw new Error(`no trainer #${id} (released or never created)`);
  return t;
};

type Handlers = { [K in keyof RequestMap]: (args: RequestMap[K]['args'], id: number) => Promise<RequestMap[K]['result']> };

const handlers: Handlers = {
  createTrainer: async ({ spec }) => {
    const t = await TrainStep.create({ ...spec, graph: Graph.fromWire(spec.graph) });
    const id = nextTrainer++;
    trainers.set(id, t);
    return { trainer: id, provider: t.provider };
  },
  step: ({ trainer: id, batch }) => trainer(id).step(batch),
  run: async ({ trainer: id, batches, steps, cancel }, requestId) => {
    const t = trainer(id);
    const flag = new Int32Array(cancel);
    for (let i = 0; i < steps; i++) {
      if (Atomics.load(flag, 0) !== 0) return { steps: i, cancelled: true };
      const result = await t.step(batches[i % batches.length]!);
      post({ id: requestId, kind: 'event', event: { type: 'step', trainer: id, result } });
    }
    return { steps, cancelled: false };
  },
  params: async ({ trainer: id }) => trainer(id).paramsSnapshot(),
  state: async ({ trainer: id }) => trainer(id).state(),
  release: async ({ trainer: id }) => {
    await trainer(id).release();
    trainers.delete(id);
    return null;
  },
};

port.on('message', (req: Request) => {
  const handler = handlers[req.kind] as (args: unknown, id: number) => Promise<unknown>;
  handler(req.args, req.id).then(
    (value) => post({ id: req.id, kind: 'result', value }),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ id: req.id, kind: 'error', error: { name: e.name, message: e.message } });
    },
  );
});
