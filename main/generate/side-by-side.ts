// Side-by-side columns — the base model and up to four adapters — answering one prompt. Plain LoRA adapters (and the
// base) share ONE batched pass per token through serving slots (slot-pass.ts); an adapter of any other method,
// or a LoRA variant slots cannot serve (DoRA, trained biases, modules_to_save, PiSSA/OLoRA residuals), gets a
// generation graph of its own with the adapter baked in (method-adapter.ts). Every column samples with the same
// settings and seed as it would alone, and the columns stream together: one decode step of every pass per round.
// A column's adapter can be switched without reopening anything else (setColumn): a LoRA adapter the slot graph
// can serve is a tensor swap; only an adapter of another method, or a LoRA adapting modules the slot graph has no
// branch for, builds a graph (its own, or a new slot graph).
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { PeftError } from '../peft/errors.ts';
import { buildGenerationGraph } from './kv-graph.ts';
import { adapterGenerationGraph } from './method-adapter.ts';
import { MultiAdapterGenerator, type FinishReason, type MultiGenerateOptions, type RowEvent } from './multi-adapter.ts';
import { SlotPass, servableLora, type ServableLora } from './slot-pass.ts';

/** The most adapters one side-by-side view shows. */
export const MAX_SIDE_BY_SIDE_ADAPTERS = 4;
/** The most columns: the base model and that many adapters. */
export const MAX_SIDE_BY_SIDE_COLUMNS = MAX_SIDE_BY_SIDE_ADAPTERS + 1;

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

/** What an ORT session was created for. */
export type PassKind = 'slot-graph' | 'base-graph' | 'own-graph';

export interface SideBySideOptions {
  /** Include the base model as column 0 (default true). */
  readonly base?: boolean;
  readonly session?: SessionOptions;
  /**
   * Slots of the shared batched graph (default: the LoRA columns it opens with). A view that switches adapters
   * keeps MAX_SIDE_BY_SIDE_ADAPTERS, so that a LoRA column never needs a new graph for want of a slot.
   */
  readonly slots?: number;
  /** Told of every ORT session this generator creates (what it costs to switch is visible, and countable). */
  readonly onSession?: (kind: PassKind, label: string) => void;
}

/** What switching a column's adapter took: 'none' (nothing built), 'tensors' (a slot's tensors only), or a graph. */
export interface ColumnSwap {
  readonly column: number;
  readonly how: 'none' | 'tensors' | PassKind;
  /** Why it took that. */
  readonly reason: string;
  readonly ms: number;
}

export interface SideBySideGenerateOptions extends Omit<MultiGenerateOptions, 'padTokenId'> {
  /** Each column's streaming detokenizer (text of events, stop strings). */
  readonly decode?: (column: number, id: number) => string;
}

interface ColumnState {
  readonly adapter: string | null;
  readonly peftType: string | null;
  /** In the slot pass (its slot), or its own graph; neither for the base. */
  readonly lora?: ServableLora;
  slot: number | null;
  readonly own?: MultiAdapterGenerator;
  readonly warnings: readonly string[];
}

const BASE: ColumnState = { adapter: null, peftType: null, slot: null, warnings: [] };

export class SideBySideGenerator {
  private states: ColumnState[] = [];
  private slotPass: SlotPass | undefined;
  /** The base model's own graph: only while base columns exist and no slot pass answers them. */
  private basePass: MultiAdapterGenerator | undefined;
  private generating = 0;

  private constructor(
    private readonly base: LoadedModel,
    private readonly o: SideBySideOptions,
  ) {}

  /** Opens every column's graph (the base first unless `base: false`); a bad adapter fails here, naming its folder. */
  static async open(base: LoadedModel, adapters: readonly string[], o: SideBySideOptions = {}): Promise<SideBySideGenerator> {
    if (adapters.length > MAX_SIDE_BY_SIDE_ADAPTERS) throw new PeftError(`at most ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters side by side, got ${adapters.length}`);
    const withBase = o.base ?? true;
    if (!withBase && adapters.length === 0) throw new PeftError('nothing to answer with: no adapter given and the base model left out');
    return SideBySideGenerator.openColumns(base, [...(withBase ? [null] : []), ...adapters], o);
  }

  /** Opens columns in the order given: an adapter folder each, or null for the base model. */
  static async openColumns(base: LoadedModel, columns: readonly (string | null)[], o: SideBySideOptions = {}): Promise<SideBySideGenerator> {
    checkColumns(columns);
    const g = new SideBySideGenerator(base, o);
    try {
      const lora = columns.map((dir) => (dir === null ? undefined : servableLora(dir)));
      const served = lora.filter((x): x is ServableLora => x !== undefined);
      if (served.length > 0) g.slotPass = await g.newSlotPass(served, Math.max(o.slots ?? 0, served.length));
      for (const [i, dir] of columns.entries()) {
        if (dir === null) g.states.push(BASE);
        else if (lora[i]) {
          const slot = g.freeSlot(g.states)!;
          g.slotPass!.load(slot, lora[i]);
          g.states.push({ adapter: dir, peftType: 'LORA', lora: lora[i], slot, warnings: [] });
        } else g.states.push(await g.ownColumn(dir));
      }
      await g.settlePasses();
    } catch (err) {
      await g.release();
      throw err;
    }
    return g;
  }

  get columns(): readonly SideBySideColumn[] {
    return this.states.map((s) => ({
      label: s.adapter ?? 'base',
      adapter: s.adapter,
      peftType: s.peftType,
      pass: s.own || (s.adapter === null && !this.slotPass) ? 'own' : 'batched',
    }));
  }

  /** The adapter configs' warnings (unknown fields, fields PEFT ignores), column by column. */
  get warnings(): readonly string[] {
    return this.states.flatMap((s) => s.warnings);
  }

  /**
   * Puts `adapter` (a folder, or null for the base model) in column `index`; `index` = the column count adds a
   * column. Everything else stays open; a bad adapter fails naming its folder and leaves the column as it was.
   */
  async setColumn(index: number, adapter: string | null): Promise<ColumnSwap> {
    this.checkIdle('switch a column');
    if (!(Number.isInteger(index) && index >= 0 && index <= this.states.length)) throw new PeftError(`column ${index} does not exist: there are ${this.states.length} (add one as column ${this.states.length})`);
    const old = this.states[index];
    checkColumns([...this.states.map((s) => s.adapter).toSpliced(index, 1), adapter]);
    const started = performance.now();
    const others = this.states.filter((_, i) => i !== index);
    let next: ColumnState;
    let how: ColumnSwap['how'];
    let reason: string;
    const lora = adapter === null ? undefined : servableLora(adapter);
    if (adapter === null) {
      [next, how, reason] = [BASE, 'none', this.slotPass ? 'the base model answers in the shared batched pass' : 'the base model needs no adapter'];
    } else if (!lora) {
      next = await this.ownColumn(adapter);
      [how, reason] = ['own-graph', `a ${next.peftType} adapter runs a graph of its own with its tensors baked in`];
    } else {
      // The column's own slot, when it had one, else a free one.
      const slot = old?.slot ?? this.freeSlot(others);
      const missing = this.slotPass?.missing(lora) ?? [];
      if (this.slotPass && slot !== null && missing.length === 0) {
        this.slotPass.load(slot, lora);
        [next, how, reason] = [{ adapter, peftType: 'LORA', lora, slot, warnings: [] }, 'tensors', `LoRA r=${lora.config.r} fits the shared graph's slot ${slot}`];
      } else {
        reason = !this.slotPass ? 'no shared batched graph yet' : slot === null ? 'every slot of the shared graph is taken' : `the shared graph has no branch for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`;
        next = await this.rebuildSlotPass(others, { adapter, peftType: 'LORA', lora, slot: null, warnings: [] });
        how = 'slot-graph';
      }
    }
    if (old?.own) await old.own.release();
    if (old?.slot !== undefined && old.slot !== null && old.slot !== next.slot && this.slotPass && !others.some((s) => s.slot === old.slot)) this.slotPass.clear(old.slot);
    this.states[index] = next;
    if (await this.settlePasses()) [how, reason] = ['base-graph', 'the base model has no shared batched pass to answer in'];
    return { column: index, how, reason, ms: performance.now() - started };
  }

  /** Drops column `index` (at least one column stays). */
  async removeColumn(index: number): Promise<void> {
    this.checkIdle('remove a column');
    const old = this.states[index];
    if (!old) throw new PeftError(`column ${index} does not exist: there are ${this.states.length}`);
    if (this.states.length === 1) throw new PeftError('the last column cannot be removed: side-by-side chat needs one column to answer');
    if (old.own) await old.own.release();
    if (old.slot !== null) this.slotPass?.clear(old.slot);
    this.states.splice(index, 1);
    await this.settlePasses();
  }

  /**
   * Every column's answer, streamed together: each round runs one decode step of every pass and yields its events
   * (columns of one pass in column order). `prompts`: one prompt for every column, or one per column (each
   * column's own conversation so far).
   */
  async *generate(prompts: readonly number[] | readonly (readonly number[])[], o: SideBySideGenerateOptions): AsyncGenerator<ColumnEvent, void> {
    const perColumn = prompts.length > 0 && Array.isArray(prompts[0]);
    if (perColumn && prompts.length !== this.states.length) throw new PeftError(`${prompts.length} prompts for ${this.states.length} columns: give one per column`);
    const promptOf = (column: number) => (perColumn ? (prompts as readonly (readonly number[])[])[column]! : (prompts as readonly number[]));
    const { decode, ...generation } = o;
    const passes: { generator: MultiAdapterGenerator; columns: number[] }[] = [];
    const shared = this.slotPass?.generator ?? this.basePass;
    if (shared) passes.push({ generator: shared, columns: this.states.flatMap((s, i) => (!s.own && (s.adapter === null || s.slot !== null) ? [i] : [])) });
    this.states.forEach((s, i) => s.own && passes.push({ generator: s.own, columns: [i] }));
    this.generating++;
    const streams = passes.map((p) => ({
      columns: p.columns,
      events: p.generator.generate(
        p.columns.map((column) => ({ promptIds: promptOf(column), slot: this.states[column]!.slot, ...(decode ? { decode: (id: number) => decode(column, id) } : {}) })),
        generation,
      ),
      // Rows (of this pass) that have not ended.
      active: new Set(p.columns.keys()),
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
      this.generating--;
    }
  }

  async release(): Promise<void> {
    const own = this.states.flatMap((s) => (s.own ? [s.own] : []));
    this.states = [];
    await Promise.all([...own, this.slotPass, this.basePass].map((p) => p?.release()));
    this.slotPass = undefined;
    this.basePass = undefined;
  }

  private checkIdle(what: string): void {
    if (this.generating > 0) throw new PeftError(`cannot ${what} while the columns are answering: wait for the answers, or stop them`);
  }

  private freeSlot(taken: readonly ColumnState[]): number | null {
    const used = new Set(taken.map((s) => s.slot));
    for (let k = 0; k < (this.slotPass?.slots ?? 0); k++) if (!used.has(k)) return k;
    return null;
  }

  private async newSlotPass(adapters: readonly ServableLora[], slots: number): Promise<SlotPass> {
    const targets = this.slotPass?.targets ?? [];
    const pass = await SlotPass.create(this.base, { slots, adapters, targets, session: this.o.session ?? {} });
    this.o.onSession?.('slot-graph', `${slots} slots`);
    return pass;
  }

  /**
   * A new slot graph serving `others`' LoRA columns and `next`, and every module the old one served (so that switching
   * back costs no graph); the old one is released once the new one works.
   */
  private async rebuildSlotPass(others: readonly ColumnState[], next: ColumnState): Promise<ColumnState> {
    const served = [...others.filter((s) => s.slot !== null), next];
    const pass = await this.newSlotPass(served.map((s) => s.lora!), Math.max(this.o.slots ?? 0, this.slotPass?.slots ?? 0, served.length));
    try {
      served.forEach((s, slot) => pass.load(slot, s.lora!));
    } catch (err) {
      await pass.release();
      throw err;
    }
    await this.slotPass?.release();
    this.slotPass = pass;
    served.forEach((s, slot) => (s.slot = slot));
    return next;
  }

  private async ownColumn(dir: string): Promise<ColumnState> {
    const session = this.o.session ?? {};
    const opened = await adapterGenerationGraph(this.base, dir, session);
    const own = await MultiAdapterGenerator.forGraph(opened.model, opened.graph, session);
    this.o.onSession?.('own-graph', dir);
    return { adapter: dir, peftType: opened.peftType, own, slot: null, warnings: opened.warnings };
  }

  /**
   * Every pass held must answer some column (each is a whole copy of the model's weights in ORT): the slot graph
   * is kept while a base or LoRA column is left (the base answers in it, and a LoRA swap stays a tensor swap), and
   * the base model's own graph exists only while base columns have no slot graph to answer in. Whether one was built.
   */
  private async settlePasses(): Promise<boolean> {
    const hasBase = this.states.some((s) => s.adapter === null);
    if (this.slotPass && !hasBase && !this.states.some((s) => s.slot !== null)) {
      await this.slotPass.release();
      this.slotPass = undefined;
    }
    const needed = !this.slotPass && hasBase;
    if (!needed && this.basePass) {
      await this.basePass.release();
      this.basePass = undefined;
    }
    if (!needed || this.basePass) return false;
    this.basePass = await MultiAdapterGenerator.forGraph(this.base, buildGenerationGraph(this.base), this.o.session ?? {});
    this.o.onSession?.('base-graph', 'base');
    return true;
  }
}

const checkColumns = (columns: readonly (string | null)[]): void => {
  if (columns.length === 0) throw new PeftError('nothing to answer with: no column given');
  if (columns.length > MAX_SIDE_BY_SIDE_COLUMNS) throw new PeftError(`at most ${MAX_SIDE_BY_SIDE_COLUMNS} columns side by side (the base model and ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters), got ${columns.length}`);
  const adapters = columns.filter((c) => c !== null).length;
  if (adapters > MAX_SIDE_BY_SIDE_ADAPTERS) throw new PeftError(`at most ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters side by side, got ${adapters}`);
};
