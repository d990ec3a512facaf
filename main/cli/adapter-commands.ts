import { EXPORT_FORMATS, GGUF_TYPES, exportAdapter, mergeAdapters, type AdapterEvent, type ExportFormat, type GgufType } from '../service/adapters.ts';
import type { CombinationType } from '../peft/weighted.ts';
import { openHistory } from './store-path.ts';

const COMBINATIONS: readonly CombinationType[] = [
  'linear', 'cat', 'svd', 'ties', 'ties_svd', 'dare_linear', 'dare_ties', 'dare_linear_svd', 'dare_ties_svd', 'magnitude_prune', 'magnitude_prune_svd',
];

const stageLogger = (json: boolean | undefined) => (e: AdapterEvent): void => {
  if (json) console.log(JSON.stringify(e));
  else if (process.stderr.isTTY) process.stderr.write(`${e.message}\n`);
};

export interface MergeArgs {
  readonly model?: string | undefined;
  readonly adapter?: string[] | undefined;
  readonly weights?: string | undefined;
  readonly combination?: string | undefined;
  readonly svdRank?: string | undefined;
  readonly density?: string | undefined;
  readonly out?: string | undefined;
  readonly db?: string | undefined;
  readonly json?: boolean | undefined;
}

/** `merge`: several LoRA adapters (or one, rescaled) combined into one PEFT adapter folder. */
export const runMergeCommand = async (a: MergeArgs): Promise<number> => {
  const fail = (message: string): number => (console.error(`peft-studio merge: ${message}`), 2);
  if (!a.model) return fail('--model PATH is required (the base the adapters were trained on)');
  if (!a.adapter?.length) return fail('give at least one --adapter DIR');
  if (!a.out) return fail('--out DIR is required (a new adapter folder)');
  const weights = a.weights?.split(',').map((w) => Number(w.trim()));
  if (weights && (weights.some((w) => !Number.isFinite(w)) || weights.length !== a.adapter.length)) {
    return fail(`--weights must be ${a.adapter.length} comma-separated numbers (one per --adapter), got '${a.weights}'`);
  }
  if (a.combination && !(COMBINATIONS as readonly string[]).includes(a.combination)) return fail(`--combination must be one of ${COMBINATIONS.join(', ')}, got '${a.combination}'`);
  const svdRank = a.svdRank === undefined ? undefined : Number(a.svdRank);
  if (svdRank !== undefined && !(Number.isInteger(svdRank) && svdRank > 0)) return fail(`--svd-rank must be a positive integer, got '${a.svdRank}'`);
  const density = a.density === undefined ? undefined : Number(a.density);
  if (density !== undefined && !(density >= 0 && density <= 1)) return fail(`--density must be in [0, 1], got '${a.density}'`);

  const store = a.db ? openHistory(a.db) : undefined;
  try {
    const r = mergeAdapters({
      model: a.model,
      adapters: a.adapter,
      out: a.out,
      ...(weights ? { weights } : {}),
      ...(a.combination ? { combination: a.combination as CombinationType } : {}),
      ...(svdRank !== undefined ? { svdRank } : {}),
      ...(density !== undefined ? { density } : {}),
      ...(store ? { store } : {}),
      onEvent: stageLogger(a.json),
    });
    if (a.json) console.log(JSON.stringify({ type: 'result', ...r }));
    else {
      for (const w of r.warnings) console.error(`warning: ${w}`);
      console.log(`${r.dir}: ${r.combination} of ${a.adapter.length} adapter(s) (weights ${r.weights.join(', ')}), rank ${r.rank}, ${r.modules} modules`);
      if (r.registered) console.log(`registered as adapter ${r.registered.id}`);
    }
    return 0;
  } finally {
    store?.close();
  }
};

export interface ExportArgs {
  readonly model?: string | undefined;
  readonly adapter?: string[] | undefined;
  readonly format?: string | undefined;
  readonly ggufType?: string | undefined;
  readonly name?: string | undefined;
  readonly out?: string | undefined;
  readonly json?: boolean | undefined;
}

/** `export`: one adapter merged into its base (hf, gguf, ollama) or as a llama.cpp GGUF LoRA. */
export const runExportCommand = async (a: ExportArgs): Promise<number> => {
  const fail = (message: string): number => (console.error(`peft-studio export: ${message}`), 2);
  if (!a.model) return fail('--model PATH is required (the base the adapter was trained on)');
  if (a.adapter?.length !== 1) return fail('give exactly one --adapter DIR (combine several with `merge` first)');
  if (!a.format || !(EXPORT_FORMATS as readonly string[]).includes(a.format)) return fail(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got '${a.format ?? ''}'`);
  if (a.ggufType && !(GGUF_TYPES as readonly string[]).includes(a.ggufType)) return fail(`--gguf-type must be one of ${GGUF_TYPES.join(', ')}, got '${a.ggufType}'`);
  if (!a.out) return fail('--out PATH is required');
  const r = exportAdapter({
    model: a.model,
    adapter: a.adapter[0]!,
    format: a.format as ExportFormat,
    out: a.out,
    ...(a.ggufType ? { ggufType: a.ggufType as GgufType } : {}),
    ...(a.name ? { name: a.name } : {}),
    onEvent: stageLogger(a.json),
  });
  if (a.json) console.log(JSON.stringify({ type: 'result', ...r }));
  else {
    for (const w of r.warnings) console.error(`warning: ${w}`);
    console.log(`${r.format}: wrote ${r.paths.join(', ')}${r.format === 'gguf-lora' ? '' : ` (${r.changed} tensors merged)`}`);
  }
  return 0;
};
