import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { Generator } from '../../main/generate/generator.ts';
import { MultiAdapterGenerator, type MultiGenerateOptions, type RowEvent, type RowRequest } from '../../main/generate/multi-adapter.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import { assignAdapterWeights, loadAdapterFiles, type LoadedAdapter } from '../../main/peft/peft-io.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const python = process.env.PEFT_ORACLE_PYTHON ?? join(process.env.PEFT_STUDIO_CACHE ?? join(homedir(), '.cache', 'peft-studio'), 'oracle-venv', 'bin', 'python');
const modelDir = tinyModelDir('llama3');
const ready = modelDir !== undefined && existsSync(python);
if (!ready) console.warn('ORACLE MISSING: multi-adapter generation tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

interface Reference {
  generate: { prompts: number[][]; adapters: string[]; tokens: number[][]; margins: number[][] };
}
const N = 10;

/** Each row's token ids and how it ended. */
const collect = async (events: AsyncGenerator<RowEvent>, rows: number) => {
  const ids: number[][] = Array.from({ length: rows }, () => []);
  const reasons: string[] = Array.from({ length: rows }, () => '');
  for await (const e of events) {
    if (e.kind === 'token') {
      expect(reasons[e.row], `row ${e.row} got a token after it ended`).toBe('');
      ids[e.row]!.push(e.id);
    } else reasons[e.row] = e.reason;
  }
  return { ids, reasons };
};

/** Greedy decoding by re-running an applyLora'd full forward on the whole sequence each step (no cache, no padding). */
const greedyWithoutCache = async (model: LoadedModel, adapter: { loaded: LoadedAdapter; config: LoraConfig }, prompt: number[], n: number) => {
  const lora = applyLora(buildLogitsGraph(model), adapter.config);
  const weights = Object.fromEntries(assignAdapterWeights(lora.params, adapter.loaded).map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }]));
  const s = await Session.create(lora.graph, { threads: 2 });
  const ids = [...prompt];
  const V = model.config.vocabSize;
  for (let k = 0; k < n; k++) {
    const T = ids.length;
    const out = await s.run({
      ...weights,
      input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ids, BigInt) },
      position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
    });
    const last = (out.logits!.data as Float32Array).subarray((T - 1) * V, T * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (last[i]! > last[best]!) best = i;
    ids.push(best);
  }
  await s.release();
  return ids.slice(prompt.length);
};

describe.skipIf(!ready && !oracleRequired())('multi-adapter generation: base and adapters answer in one batch', () => {
  let ref: Reference;
  let model: LoadedModel;
  let gen: MultiAdapterGenerator;
  const adapters: Record<string, { loaded: LoadedAdapter; config: LoraConfig }> = {};
  const slotOf: Record<string, number | null> = { __base__: null, a1: 0, a2: 1 };
  let rows: RowRequest[];
  let batched: number[][];

  beforeAll(async () => {
    const out = mkdtempSync(join(tmpdir(), 'peft-mixed-gen-'));
    ref = JSON.parse(execFileSync(python, ['tests/oracle/peft_mixed_batch_ref.py', modelDir!, out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Reference;
    model = openHfFolder(modelDir!);
    for (const name of ['a1', 'a2']) {
      const loaded = loadAdapterFiles(join(out, name));
      adapters[name] = { loaded, config: parseLoraConfig(loaded.config, name).config };
    }
    gen = await MultiAdapterGenerator.create(model, { slots: 2, targets: [adapters.a1!.config, adapters.a2!.config], session: { threads: 2 } });
    gen.loadAdapter(0, adapters.a1!.loaded);
    gen.loadAdapter(1, adapters.a2!.loaded);
    rows = ref.generate.prompts.map((promptIds, b) => ({ promptIds, slot: slotOf[ref.generate.adapters[b]!]! }));
    expect(new Set(rows.map((r) => r.promptIds.length)).size).toBe(rows.length); // different prompt lengths
    const { ids, reasons } = await collect(gen.generate(rows, { maxNewTokens: N }), rows.length);
    expect(reasons).toEqual(['length', 'length', 'length']);
    batched = ids;
  });
  afterAll(async () => {
    await gen?.release();
  });

  it('greedy: each row of the batch generates what it generates alone', async () => {
    const single = await Generator.create(model, { threads: 2 });
    const alone: number[][] = [];
    for await (const t of single.generate(rows[0]!.promptIds, { maxNewTokens: N })) (alone[0] ??= []).push(t.id);
    await single.release();
    for (const b of [1, 2]) {
      const name = ref.generate.adapters[b]!;
      alone[b] = await greedyWithoutCache(model, adapters[name]!, ref.generate.prompts[b]!, N);
      // The slot graph with one row agrees too.
      expect((await collect(gen.generate([rows[b]!], { maxNewTokens: N }), 1)).ids[0], `${name} alone in its slot`).toEqual(alone[b]);
    }
    console.log(`batched rows [${ref.generate.adapters.join(', ')}], prompt lengths ${rows.map((r) => r.promptIds.length).join('/')}:\n${batched.map((t) => t.join(' ')).join('\n')}`);
    expect(batched).toEqual(alone);
    expect(batched[1]).not.toEqual(batched[0]);
  });

  it('greedy: equals PEFT’s left-padded generate(adapter_names=…) up to each row’s first near-tie', () => {
    ref.generate.tokens.forEach((want, b) => {
      const tie = ref.generate.margins[b]!.findIndex((m) => m < 1e-4);
      const upTo = tie < 0 ? want.length : tie + 1;
      expect(upTo, `row ${b} compared over ${upTo} tokens`).toBeGreaterThanOrEqual(4);
      expect(batched[b]!.slice(0, upTo), `row ${b} (${ref.generate.adapters[b]})`).toEqual(want.slice(0, upTo));
    });
  });

  it('rows finish independently at EOS and stop strings; the others go on unchanged', async () => {
    const eos = batched[2]![2]!; // the longest prompt leaves first: the cache drops its row and the padding columns
    const stop = batched[1]![4]!;
    const decode = (id: number) => `<${id}>`;
    const o: MultiGenerateOptions = { maxNewTokens: N, eosTokenIds: [eos], stopStrings: [decode(stop)] };
    const { ids, reasons } = await collect(gen.generate(rows.map((r) => ({ ...r, decode })), o), rows.length);
    const ends = batched.map((t) => t.findIndex((id) => id === eos || id === stop));
    expect(ids).toEqual(batched.map((t, b) => (ends[b]! < 0 ? t : t.slice(0, ends[b]))));
    expect(reasons).toEqual(batched.map((t, b) => (ends[b]! < 0 ? 'length' : t[ends[b]!] === eos ? 'eos' : 'stop')));
    expect(reasons.slice(1)).toEqual(['stop', 'eos']);
  });

  it('sampling with a seed gives each row what it samples alone; swapping a slot keeps the session; abort ends every row', async () => {
    const o: MultiGenerateOptions = { maxNewTokens: 6, temperature: 1, topK: 50, seed: 5 };
    const together = (await collect(gen.generate(rows, o), 3)).ids;
    const single = await Generator.create(model, { threads: 2 });
    const base: number[] = [];
    for await (const t of single.generate(rows[0]!.promptIds, o)) base.push(t.id);
    await single.release();
    expect(together[0]).toEqual(base);
    expect((await collect(gen.generate([rows[2]!], o), 1)).ids[0]).toEqual(together[2]);

    const session = gen.session;
    gen.loadAdapter(0, adapters.a2!.loaded); // slot 0 now holds a2: row 1 answers as a2 would
    const swapped = (await collect(gen.generate([{ ...rows[2]!, slot: 0 }], { maxNewTokens: N }), 1)).ids[0];
    gen.loadAdapter(0, adapters.a1!.loaded);
    expect(gen.session).toBe(session);
    expect(swapped).toEqual(batched[2]);

    const ctl = new AbortController();
    ctl.abort();
    expect(await collect(gen.generate(rows, { maxNewTokens: N, signal: ctl.signal }), 3)).toEqual({ ids: [[], [], []], reasons: ['aborted', 'aborted', 'aborted'] });
    await expect(collect(gen.generate([{ promptIds: [1], slot: 2 }], { maxNewTokens: 1 }), 1)).rejects.toThrow(/slot 2 does not exist/);
  });
});
