import { DATASET_FORMATS, type DatasetFormat } from '../train/dataset/index.ts';
import { evaluate, type EvalEvent } from '../service/evaluate.ts';
import { openHistory } from './store-path.ts';

export interface EvalArgs {
  readonly model?: string | undefined;
  readonly adapter?: string[] | undefined;
  readonly dataset?: string | undefined;
  readonly format?: string | undefined;
  readonly maxLength?: string | undefined;
  readonly batchSize?: string | undefined;
  readonly threads?: string | undefined;
  readonly noBase?: boolean | undefined;
  readonly db?: string | undefined;
  readonly json?: boolean | undefined;
}

/** A positive integer option, or an error line naming it. */
const positiveInt = (flag: string, text: string | undefined, min = 1): number | string | undefined => {
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isInteger(n) && n >= min ? n : `peft-studio eval: ${flag} must be an integer ≥ ${min}, got '${text}'`;
};

/**
 * `eval`: eval loss, perplexity and target tokens of the base model and each adapter on a dataset, one line per
 * column; with --db, adapter columns are also recorded on the runs that trained them.
 */
export const runEvalCommand = async (a: EvalArgs): Promise<number> => {
  const fail = (message: string): number => (console.error(message), 2);
  if (!a.model) return fail('peft-studio eval: --model PATH is required (an HF folder or a .gguf file)');
  if (!a.dataset) return fail('peft-studio eval: --dataset FILE is required');
  if (a.format && !(DATASET_FORMATS as readonly string[]).includes(a.format)) return fail(`peft-studio eval: --format must be one of ${DATASET_FORMATS.join(', ')}, got '${a.format}'`);
  if (a.noBase && !a.adapter?.length) return fail('peft-studio eval: --no-base leaves nothing to evaluate without an --adapter');
  const maxLength = positiveInt('--max-length', a.maxLength, 2);
  const batchSize = positiveInt('--batch-size', a.batchSize);
  const threads = positiveInt('--threads', a.threads);
  for (const v of [maxLength, batchSize, threads]) if (typeof v === 'string') return fail(v);

  const tty = !a.json && process.stderr.isTTY;
  const onEvent = (e: EvalEvent): void => {
    if (a.json) console.log(JSON.stringify(e));
    else if (tty && e.type === 'stage') process.stderr.write(`${e.message}\n`);
    else if (tty && e.type === 'progress') process.stderr.write(`\r${e.column}: batch ${e.batch}/${e.batches}${e.batch === e.batches ? '\n' : ''}`);
  };
  const store = a.db ? openHistory(a.db) : undefined;
  try {
    const r = await evaluate({
      model: a.model,
      adapters: a.adapter ?? [],
      base: !a.noBase,
      dataset: a.dataset,
      ...(a.format ? { format: a.format as DatasetFormat } : {}),
      ...(typeof maxLength === 'number' ? { maxLength } : {}),
      ...(typeof batchSize === 'number' ? { microBatchSize: batchSize } : {}),
      ...(typeof threads === 'number' ? { session: { threads } } : {}),
      ...(store ? { store } : {}),
      onEvent,
    });
    if (a.json) {
      console.log(JSON.stringify({ type: 'result', ...r }));
      return 0;
    }
    for (const w of r.warnings) console.error(`warning: ${w}`);
    const width = Math.max(...r.columns.map((c) => c.label.length));
    for (const c of r.columns) {
      console.log(`${c.label.padEnd(width)}  eval loss ${c.loss.toFixed(4)}  perplexity ${c.perplexity.toFixed(3)}  tokens ${c.tokens}`);
    }
    for (const x of r.recorded) console.log(`recorded on run ${x.runId} at step ${x.step}: ${x.metrics.join(', ')}`);
    return 0;
  } finally {
    store?.close();
  }
};
