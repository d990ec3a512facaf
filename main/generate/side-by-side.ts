// Side-by-side columns — the base model and up to four adapters — answering one prompt. Plain LoRA adapters (and the
// base) share ONE batched pass per token through serving slots (multi-adapter.ts); an adapter of any other method,
// or a LoRA variant slots cannot serve (DoRA, trained biases, modules_to_save, PiSSA/OLoRA residuals), gets a
// generation graph of its own with the adapter baked in (method-adapter.ts). Every column samples with the same
// settings and seed as it would alone, and the columns stream together: one decode step of every pass per round.
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { PeftError } from '../peft/errors.ts';
import { parseLoraConfig, type LoraConfig } from '../peft/lora-config.ts';
import { ADAPTER_CONFIG, loadAdapterFiles, type LoadedAdapter } from '../peft/peft-io.ts';
import { buildGenerationGraph } from './kv-graph.ts';
import { adapterGenerationGraph, adapterPeftType } from './method-adapter.ts';
import { MultiAdapterGenerator, type FinishReason, type MultiGenerateOptions, type RowEvent } from './multi-adapter.ts';

/** The most adapters one side-by-side view shows. */
export const MAX_SIDE_BY_SIDE_ADAPTERS = 4;

export interface SideBySideColumn {
  /** 'base' or the adapter folder. */
  readonly label: string;
  readonly adapter: string | null;
  /** The adapter's peft_type (FULL for a fine-tuned model folder); null for the base. */
  readonly peftType: string | null;
  /** 'batched': answered in the shared pass with the base model (serving slots); 'own': by its own graph. */
  readonly pass: 'batched' | 'own';
}

/** A column's next token, or its end (with any text a stop-string matcher still held back). */
export type ColumnEvent =
  | { readonly kind: 'token'; readonly column: number; readonly id: number; readonly text: string }
  | { readonly kind: 'done'; readonly column: number; readonly reason: FinishReason; readonly text: string };

export interface SideBySideOptions {
  /** Include the base model as column 0 (default true). */
  readonly base?: boolean;
  readonly session?: SessionOptions;
}

export interface SideBySideGenerateOptions extends Omit<MultiGenerateOptions, 'padTokenId'> {
  /** Each column's streaming detokenizer (text of events, stop strings). */
  readonly decode?: (column: number, id: number) => string;
}

/** A LoRA folder serving slots answer exactly as LoRA's rewrite does; undefined for anything else. */
const servableLora = (dir: string): { loaded: LoadedAdapter; config: LoraConfig } | undefined => {
  if (adapterPeftType(dir) !== 'LORA') return undefined;
  const loaded = loadAdapterFiles(dir);
  const { config } = parseLoraConfig(loaded.config, `${dir}/${ADAPTER_CONFIG}`);
  const init = config.init_lora_weights;
  const residual = init === 'pissa' || init === 'olora' || (typeof init === 'string' && init.startsWith('pissa_niter_'));
  if (config.bias !== 'none' || config.use_dora || (config.modules_to_save?.length ?? 0) > 0 || residual) return undefined;
  return { loaded, config };
};

interface Source {
  readonly generator: MultiAdapterGenerator;
  /** Column of each of its rows, and its slot (null: the graph alone, or the base in the slot graph). */
  readonly columns: number[];
  readonly slots: (number | null)[];
}

export class SideBySideGenerator {
  private constructor(
    readonly columns: readonly SideBySideColumn[],
    private readonly sources: readonly Source[],
    readonly warnings: readonly string[],
  ) {}

  /** Opens every column's graph; a bad adapter fails here, naming its folder, before any generation. */
  static async open(base: LoadedModel, adapters: readonly string[], o: SideBySideOptions = {}): Promise<SideBySideGenerator> {
    if (adapters.length > MAX_SIDE_BY_SIDE_ADAPTERS) throw new PeftError(`at most ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters side by side, got ${adapters.length}`);
    const withBase = o.base ?? true;
    if (!withBase && adapters.length === 0) throw new PeftError('nothing to answer with: no adapter given and the base model left out');
    const session = o.session ?? {};
    const lora = adapters.map(servableLora);
    const columns: SideBySideColumn[] = withBase ? [{ label: 'base', adapter: null, peftType: null, pass: lora.some(Boolean) ? 'batched' : 'own' }] : [];
    const sources: Source[] = [];
    const warnings: string[] = [];
    try {
      const batched = adapters.flatMap((dir, i) => (lora[i] ? [{ dir, ...lora[i] }] : []));
      if (batched.length > 0) {
        const generator = await MultiAdapterGenerator.create(base, { slots: batched.length, targets: batched.map((x) => x.config), session });
        sources.push({ generator, columns: [], slots: [] });
        batched.forEach((x, slot) => generator.loadAdapter(slot, x.loaded, x.config, x.dir));
      } else if (withBase) {
        sources.push({ generator: await MultiAdapterGenerator.forGraph(base, buildGenerationGraph(base), session), columns: [], slots: [] });
      }
      const shared = sources[0];
      const add = (source: Source, column: number, slot: number | null) => (source.columns.push(column), source.slots.push(slot));
      if (withBase) add(shared!, 0, null);
      let slot = 0;
      for (const [i, dir] of adapters.entries()) {
        const column = columns.length;
        if (lora[i]) {
          columns.push({ label: dir, adapter: dir, peftType: 'LORA', pass: 'batched' });
          add(shared!, column, slot++);
          continue;
        }
        const opened = await adapterGenerationGraph(base, dir, session);
        warnings.push(...opened.warnings);
        columns.push({ label: dir, adapter: dir, peftType: opened.peftType, pass: 'own' });
        const generator = await MultiAdapterGenerator.forGraph(opened.model, opened.graph, session);
        sources.push({ generator, columns: [column], slots: [null] });
      }
    } catch (err) {
      await Promise.all(sources.map((s) => s.generator.release()));
      throw err;
    }
    return new SideBySideGenerator(columns, sources, warnings);
  }

  /**
   * Every column's answer to `promptIds`, streamed together: each round runs one decode step of every pass and
   * yields its events (columns of one pass in column order).
   */
  async *generate(promptIds: readonly number[], o: SideBySideGenerateOptions): AsyncGenerator<ColumnEvent, void> {
    const { decode, ...generation } = o;
    const streams = this.sources.map((s) => ({
      columns: s.columns,
      events: s.generator.generate(
        s.columns.map((column, row) => ({ promptIds, slot: s.slots[row]!, ...(decode ? { decode: (id: number) => decode(column, id) } : {}) })),
        generation,
      ),
      // Rows (of this pass) that have not ended.
      active: new Set(s.columns.keys()),
    }));
    const asColumn = (e: RowEvent, columns: readonly number[]): ColumnEvent =>
      e.kind === 'token' ? { kind: 'token', column: columns[e.row]!, id: e.id, text: e.text } : { kind: 'done', column: columns[e.row]!, reason: e.reason, text: e.text };
    try {
      while (streams.some((s) => s.active.size > 0)) {
        for (const s of streams) {
          // One step: an event from each row still going. A row ending with its last token sends 'done' next
          // (already computed), so a round never runs a pass twice.
          const waiting = new Set(s.active);
          while (waiting.size > 0) {
            const next = await s.events.next();
            if (next.done) {
              s.active.clear();
              break;
            }
            const e = next.value;
            waiting.delete(e.row);
            if (e.kind === 'done') s.active.delete(e.row);
            yield asColumn(e, s.columns);
          }
        }
      }
    } finally {
      await Promise.all(streams.map((s) => s.events.return(undefined)));
    }
  }

  async release(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.generator.release()));
  }
}
