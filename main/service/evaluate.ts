// Eval loss and perplexity of a base model and its adapters (any method) on a dataset. Each column (the base, each
// adapter) runs the training loss graph (train/train-graph.ts) forward only, on the micro-batches the trainer's
// evaluate() uses: the same tokenization, assistant-only label masks, packing and token-mean loss, so a number here is
// the number a training run reports. An adapter enters through its method's own rewrite (generate/method-adapter.ts's
// table, the one chat uses), its saved tensors fed as the rewrite's inputs, in the inference form: dropout off and no
// training-only loss terms (AdaLoRA's orthogonal regularization). So every LoRA variant the rewrite knows (rsLoRA,
// DoRA, patterns, biases, modules_to_save, PiSSA / OLoRA residuals) and every other method is evaluated as it was
// trained; a fully fine-tuned model folder is evaluated as a model of its own.
import { basename, resolve } from 'node:path';
import type { Graph } from '../engine/ir/index.ts';
import { Session, type HostTensor, type SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { openModel } from '../models/open-model.ts';
import { loadAdapterGraph } from '../generate/method-adapter.ts';
import { PeftError } from '../peft/errors.ts';
import type { Store } from '../store/index.ts';
import { packMicroBatch, withNormalizer, type Example } from '../train/batch.ts';
import { DatasetError, formatProblem, prepareDataset, type DatasetFormat, type TrainOn } from '../train/dataset/index.ts';
import { epochMicroBatches } from '../train/schedule-data.ts';
import { TRAIN, buildTrainingGraph } from '../train/train-graph.ts';

export interface EvaluateOptions {
  /** An HF model folder or a .gguf file. */
  readonly model: string;
  /** Adapter folders of any method (or fully fine-tuned model folders), one column each. */
  readonly adapters?: readonly string[];
  /** Evaluate the base model too (default true). */
  readonly base?: boolean;
  /** Any file main/train/dataset reads; every example is evaluated. */
  readonly dataset: string;
  readonly format?: DatasetFormat;
  /** Default 512, as training's. */
  readonly maxLength?: number;
  /** Default 'assistant', as training's. */
  readonly trainOn?: TrainOn;
  /** Rows per forward pass (packed up to maxLength each); default 4. */
  readonly microBatchSize?: number;
  readonly session?: SessionOptions;
  /** Record each adapter column a recorded run trained as metrics of that run (see recordEval). */
  readonly store?: Store;
  readonly onEvent?: (e: EvalEvent) => void;
}

export interface EvalColumn {
  /** 'base' or the adapter folder. */
  readonly label: string;
  readonly adapter: string | null;
  /** The adapter's peft_type (FULL for a model folder); null for the base. */
  readonly peftType: string | null;
  /** Token-mean negative log-likelihood of the target tokens. */
  readonly loss: number;
  readonly perplexity: number;
  /** Target tokens the loss averages over. */
  readonly tokens: number;
}

export interface RecordedEval {
  readonly runId: number;
  readonly adapter: string;
  readonly step: number;
  readonly metrics: readonly string[];
}

export interface EvalOutcome {
  readonly model: string;
  readonly dataset: string;
  readonly examples: number;
  readonly columns: readonly EvalColumn[];
  readonly warnings: readonly string[];
  readonly recorded: readonly RecordedEval[];
}

export type EvalEvent =
  | { readonly type: 'stage'; readonly message: string }
  | { readonly type: 'progress'; readonly column: string; readonly batch: number; readonly batches: number }
  | { readonly type: 'column'; readonly column: EvalColumn };

/** A loss graph and the constant feeds (an adapter's tensors) it runs with. */
export interface LossGraph {
  readonly graph: Graph;
  readonly feeds: Readonly<Record<string, HostTensor>>;
}

/** A loss graph of the adapter in `dir`, its peft_type and its config's warnings. */
export interface AdapterLossGraph extends LossGraph {
  readonly peftType: string;
  readonly warnings: readonly string[];
}

/**
 * The training loss graph with the adapter in `dir` applied by its method's rewrite, its tensors as feeds (FULL: the
 * folder's own model). An adapter that does not fit the model (a module it lacks, a tensor of another shape) or of an
 * unknown peft_type is a PeftError naming the folder and the tensor.
 */
export const adapterLossGraph = (model: LoadedModel, dir: string): AdapterLossGraph => {
  const loaded = loadAdapterGraph(model, dir, (m, o) => buildTrainingGraph(m, o));
  const feeds = Object.fromEntries(loaded.params.map((p): [string, HostTensor] => [p.name, { dtype: 'float32', shape: p.shape, data: p.data }]));
  return { graph: loaded.graph, feeds, peftType: loaded.peftType, warnings: loaded.warnings };
};

/** Token-mean loss of `lossGraph` over `batches` (trainer.evaluate's sum / count), in one ORT session. */
export const evaluateLossGraph = async (
  lossGraph: LossGraph,
  batches: readonly (readonly (readonly Example[])[])[],
  o: { readonly session?: SessionOptions; readonly onBatch?: (done: number) => void } = {},
): Promise<{ loss: number; tokens: number }> => {
  const session = await Session.create(lossGraph.graph, o.session);
  let sum = 0;
  let tokens = 0;
  try {
    for (const [i, rows] of batches.entries()) {
      const m = packMicroBatch(rows);
      if (m.targets > 0) {
        const out = await session.run({ ...withNormalizer(m, 1), ...lossGraph.feeds }, [TRAIN.loss]);
        sum += Number(out[TRAIN.loss]!.data[0]);
        tokens += m.targets;
      }
      o.onBatch?.(i + 1);
    }
  } finally {
    await session.release();
  }
  return { loss: sum / Math.max(1, tokens), tokens };
};

/**
 * Records an adapter column as metrics of the run that trained the adapter (found by its path in the adapters
 * table): `eval/<dataset file>/loss` and `…/perplexity` at the run's last training step. Adapters no run trained
 * (imported, merged) have nowhere to go and are skipped (undefined).
 */
export const recordEval = (store: Store, column: EvalColumn, dataset: string): RecordedEval | undefined => {
  if (!column.adapter) return undefined;
  const path = resolve(column.adapter);
  const adapter = store.adapters.list().find((a) => resolve(a.path) === path);
  if (!adapter || adapter.runId === null) return undefined;
  const runId = adapter.runId;
  const step = store.metrics.latest(runId).get('train/loss')?.step ?? 0;
  const prefix = `eval/${basename(dataset)}`;
  const metrics = [`${prefix}/loss`, `${prefix}/perplexity`];
  store.metrics.append([
    { runId, name: metrics[0]!, step, value: column.loss },
    { runId, name: metrics[1]!, step, value: column.perplexity },
  ]);
  return { runId, adapter: column.adapter, step, metrics };
};

/** Eval loss, perplexity and target tokens of the base model and each adapter on one dataset. */
export const evaluate = async (o: EvaluateOptions): Promise<EvalOutcome> => {
  const say = (message: string) => o.onEvent?.({ type: 'stage', message });
  const adapters = o.adapters ?? [];
  if (o.base === false && adapters.length === 0) throw new PeftError('nothing to evaluate: no adapter given and the base model left out');
  const maxLength = o.maxLength ?? 512;
  const microBatchSize = o.microBatchSize ?? 4;
  if (!(Number.isInteger(microBatchSize) && microBatchSize > 0)) throw new RangeError(`micro-batch size must be a positive integer, got ${microBatchSize}`);
  say(`opening ${o.model}`);
  const opened = openModel(o.model);
  say(`reading ${o.dataset}`);
  const prepared = await prepareDataset(o.dataset, opened.tokenizer, {
    ...(o.format ? { format: o.format } : {}),
    tokenize: { maxLength, trainOn: o.trainOn ?? 'assistant' },
  });
  const examples = prepared.tokenized.examples;
  const batches = epochMicroBatches(examples, 0, { microBatchSize, maxLength, packing: true, seed: 0 });
  if (batches.every((rows) => packMicroBatch(rows).targets === 0)) {
    throw new DatasetError(`${o.dataset}: no example has a token to predict (labels all masked), so there is no loss to measure`);
  }
  // Check every adapter before the first (slow) column runs: a bad one fails at once.
  const lossGraphs: { label: string; adapter: string | null; peftType: string | null; lossGraph: LossGraph; warnings: readonly string[] }[] = [
    ...(o.base === false ? [] : [{ label: 'base', adapter: null, peftType: null, lossGraph: { graph: buildTrainingGraph(opened.model), feeds: {} }, warnings: [] }]),
    ...adapters.map((dir) => {
      const lossGraph = adapterLossGraph(opened.model, dir);
      return { label: dir, adapter: dir, peftType: lossGraph.peftType, lossGraph, warnings: lossGraph.warnings };
    }),
  ];
  say(`${examples.length} examples in ${batches.length} batches; ${lossGraphs.length} column(s)`);

  const columns: EvalColumn[] = [];
  const recorded: RecordedEval[] = [];
  for (const c of lossGraphs) {
    const r = await evaluateLossGraph(c.lossGraph, batches, {
      ...(o.session ? { session: o.session } : {}),
      onBatch: (batch) => o.onEvent?.({ type: 'progress', column: c.label, batch, batches: batches.length }),
    });
    const column: EvalColumn = { label: c.label, adapter: c.adapter, peftType: c.peftType, loss: r.loss, perplexity: Math.exp(r.loss), tokens: r.tokens };
    columns.push(column);
    o.onEvent?.({ type: 'column', column });
    const written = o.store ? recordEval(o.store, column, o.dataset) : undefined;
    if (written) recorded.push(written);
  }
  return { model: o.model, dataset: o.dataset, examples: examples.length, columns, warnings: [...prepared.warnings.map(formatProblem), ...lossGraphs.flatMap((c) => c.warnings)], recorded };
};
