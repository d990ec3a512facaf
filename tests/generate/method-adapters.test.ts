// Every method's adapter folder opens for generation through method-adapter.ts's table: greedy tokens through the
// KV-cache generation graph (adapter baked in) differ from the base model's and equal those of the method's own
// rewrite of the full (cache-free) logits graph, fed the tensors before they were saved.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Graph } from '../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { Generator } from '../../main/generate/generator.ts';
import { METHOD_OPENERS, adapterGenerationGraph, openAdapterGenerator } from '../../main/generate/method-adapter.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder, type LoadedModel } from '../../main/models/hf-folder.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { applyIa3, saveIa3Adapter } from '../../main/peft/ia3.ts';
import { parseIa3Config } from '../../main/peft/ia3-config.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { METHOD_CASES, perturbed } from './method-adapter-fixtures.ts';

const dirs = { llama3: tinyModelDir('llama3'), qwen2: tinyModelDir('qwen2'), qwen3: tinyModelDir('qwen3') };
const ready = Object.values(dirs).every(Boolean);
if (!ready) console.warn('ORACLE MISSING: method adapter generation tests skipped (run tests/oracle/make_tiny_models.py)');
const SESSION = { threads: 2 };
const PROMPT = [791, 4062, 14198, 39935, 35308, 927, 279];
const N = 8;

/** Greedy decoding by re-running the whole sequence through `graph` each step; each step's top-2 logit margin too. */
const greedyWithoutCache = async (graph: Graph, feeds: Readonly<Record<string, HostTensor>>, vocab: number): Promise<{ tokens: number[]; margins: number[] }> => {
  const session = await Session.create(graph, SESSION);
  const ids = [...PROMPT];
  const margins: number[] = [];
  try {
    for (let k = 0; k < N; k++) {
      const T = ids.length;
      const out = await session.run({
        ...feeds,
        input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ids, BigInt) },
        position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
      }, ['logits']);
      const last = (out.logits!.data as Float32Array).subarray((T - 1) * vocab, T * vocab);
      let [best, second] = last[0]! >= last[1]! ? [0, 1] : [1, 0];
      for (let i = 2; i < vocab; i++) {
        if (last[i]! > last[best]!) [best, second] = [i, best];
        else if (last[i]! > last[second]!) second = i;
      }
      margins.push(last[best]! - last[second]!);
      ids.push(best);
    }
  } finally {
    await session.release();
  }
  return { tokens: ids.slice(PROMPT.length), margins };
};

const greedy = async (generator: Generator): Promise<number[]> => {
  const out: number[] = [];
  for await (const t of generator.generate(PROMPT, { maxNewTokens: N })) out.push(t.id);
  return out;
};

describe.skipIf(!ready && !oracleRequired())('adapters of every method open for generation', () => {
  const models = new Map<string, LoadedModel>();
  const baseTokens = new Map<string, number[]>();
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'method-adapters-'));
    for (const name of ['llama3', 'qwen2'] as const) {
      const model = openHfFolder(dirs[name]!);
      models.set(name, model);
      const generator = await Generator.create(model, SESSION);
      baseTokens.set(name, await greedy(generator));
      await generator.release();
    }
  });
  afterAll(() => models.clear());

  it('the table covers every method of the engine', () => {
    expect(Object.keys(METHOD_OPENERS).sort()).toEqual(
      ['ADALORA', 'ADAPTER_FUSION', 'BITFIT', 'BOTTLENECK', 'FULL', 'IA3', 'LONGLORA', 'LORA', 'PREFIX_TUNING', 'PROMPT_TUNING', 'P_TUNING', 'SELECTIVE', 'VERA'],
    );
    // Delta-LoRA and LoRA-drop open as the plain LoRA folders they save (their cases below).
    expect(new Set(METHOD_CASES.map((c) => c.name.split(' ')[0]))).toEqual(
      new Set(['LORA', 'ADALORA', 'VERA', 'DELTA_LORA', 'LORA_DROP', 'LONGLORA', 'IA3', 'BOTTLENECK', 'ADAPTER_FUSION', 'BITFIT', 'SELECTIVE', 'FULL']),
    );
  });

  it.each(METHOD_CASES)('$name: greedy tokens differ from the base and equal the method’s own graph', async (c) => {
    const model = models.get(c.model)!;
    const dir = join(root, c.name.replace(/\W+/g, '-'));
    const adapter = c.make({ model, modelDir: dirs[c.model]!, graph: buildLogitsGraph(model), dir });
    const { generator, peftType, warnings } = await openAdapterGenerator(model, adapter.dir, SESSION);
    const tokens = await greedy(generator);
    await generator.release();
    const ref = await greedyWithoutCache(adapter.graph, adapter.feeds, model.config.vocabSize);
    // Identical up to the first step whose top-2 margin is too small to call (the two paths round differently).
    const tie = ref.margins.findIndex((m) => m < 1e-4);
    const upTo = tie < 0 ? N : tie + 1;
    console.log(`NUM ${c.name}: ${tokens.join(' ')} | reference ${ref.tokens.join(' ')} | base ${baseTokens.get(c.model)!.join(' ')} | compared ${upTo}`);
    expect([peftType, warnings]).toEqual([adapter.opensAs, []]);
    expect(upTo).toBeGreaterThanOrEqual(4);
    expect(tokens.slice(0, upTo)).toEqual(ref.tokens.slice(0, upTo));
    expect(tokens).not.toEqual(baseTokens.get(c.model));
  });

  it('errors name the folder and what is wrong', async () => {
    const llama = models.get('llama3')!;
    const unknown = join(root, 'oft');
    mkdirSync(unknown);
    writeFileSync(join(unknown, 'adapter_config.json'), JSON.stringify({ peft_type: 'OFT', r: 8 }));
    const err = openAdapterGenerator(llama, unknown);
    await expect(err).rejects.toThrow(PeftError);
    await expect(err).rejects.toThrow(`${unknown}/adapter_config.json: peft_type 'OFT' cannot be opened; supported: LORA, ADALORA, VERA, LONGLORA, IA3, BOTTLENECK`);

    // An IA3 adapter of a model whose key/value heads are twice as wide.
    const qwen3 = openHfFolder(dirs.qwen3!);
    const { config } = parseIa3Config({ peft_type: 'IA3', target_modules: ['k_proj', 'down_proj'], feedforward_modules: ['down_proj'] }, 'case');
    const foreign = join(root, 'qwen3-ia3');
    saveIa3Adapter(foreign, config, perturbed(applyIa3(buildLogitsGraph(qwen3), config).params, 1, 0.5));
    await expect(openAdapterGenerator(llama, foreign)).rejects.toThrow(
      `${foreign}: tensor 'base_model.model.model.layers.0.self_attn.k_proj.ia3_l' has shape [32, 1], this model and config need [16, 1]`,
    );

    // A fully fine-tuned model of another base: a model folder whose vocabulary differs.
    await expect(adapterGenerationGraph(llama, dirs.qwen2!)).rejects.toThrow(
      new RegExp(`^${dirs.qwen2!}: tensor 'model\\.embed_tokens\\.weight' has shape \\[151936, 32\\], the base model's is \\[128256, 32\\]`),
    );
    await expect(openAdapterGenerator(llama, join(root, 'nothing-here'))).rejects.toThrow(/is not a PEFT adapter folder: it has no adapter_config\.json/);
  });
});
