// Child process for crash-safety.test.ts: writes to the history database in a loop until it is killed.
// After each commit it prints one line, `run <id> <streamed>`: run <id> (a running run with 50 metrics and a
// checkpoint) is committed, and `streamed` metric points of the stream run were flushed by the MetricsWriter.
// stdout to a pipe is synchronous on Linux, so a line the parent reads was written after its commit returned.
import { openStore } from '../../main/store/index.ts';

const [path, generation] = process.argv.slice(2);
if (!path || !generation) throw new Error('usage: crash-writer.ts DB GENERATION');

const store = openStore(path);
const modelPath = '/models/crash-test';
const model =
  store.models.findByPath(modelPath) ?? store.models.add({ name: 'crash', path: modelPath, format: 'hf', architecture: 'llama', params: 1 });
const dataset = store.datasets.list()[0] ?? store.datasets.create({ name: 'crash', format: 'text', rows: ['seed row'] }).dataset;
const stream = store.runs.create({
  name: `stream g${generation}`,
  method: 'lora',
  modelId: model.id,
  datasetVersionId: dataset.headVersionId,
  config: { generation: Number(generation) },
});
const writer = store.metricsWriter({ flushIntervalMs: 5, maxPending: 500 });
const padding = 'x'.repeat(2000);

let streamed = 0;
let flushed = 0;
for (let i = 0; ; i++) {
  const runId = store.transaction(() => {
    const version = store.datasets.commit(dataset.id, { insert: [{ text: `g${generation} i${i} ${padding}` }] }, `edit ${i}`);
    const run = store.runs.create({ name: `g${generation}-${i}`, method: 'lora', modelId: model.id, datasetVersionId: version.id, config: { i } });
    store.runs.start(run.id, { ort: '1.30.0', provider: 'cpu', threads: 1, node: process.version });
    store.metrics.append(Array.from({ length: 50 }, (_, step) => ({ runId: run.id, name: 'loss', step, value: i + step / 100 })));
    store.checkpoints.add({ runId: run.id, step: 50, path: `/ckpt/${run.id}`, bytes: 1234 });
    return run.id;
  });
  for (let k = 0; k < 100; k++) writer.append({ runId: stream.id, name: 'loss', step: streamed++, value: k });
  flushed += writer.flush();
  process.stdout.write(`run ${runId} ${stream.id} ${flushed}\n`);
}
