import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { Generator } from '../../main/generate/generator.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const PROMPT = [791, 4062, 14198, 39935, 35308, 927, 279];
const python = process.env.PEFT_ORACLE_PYTHON ?? join(process.env.PEFT_STUDIO_CACHE ?? join(homedir(), '.cache', 'peft-studio'), 'oracle-venv', 'bin', 'python');

const collect = async (gen: AsyncGenerator<{ id: number }>): Promise<number[]> => {
  const ids: number[] = [];
  for await (const t of gen) ids.push(t.id);
  return ids;
};

/** Greedy decoding by re-running the full forward on the whole sequence each step (no cache). */
const greedyWithoutCache = async (dir: string, prompt: number[], n: number): Promise<number[]> => {
  const model = openHfFolder(dir);
  const s = await Session.create(buildLogitsGraph(model), { threads: 2 });
  const ids = [...prompt];
  for (let k = 0; k < n; k++) {
    const T = ids.length;
    const out = await s.run({
      input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ids, BigInt) },
      position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
    });
    const V = model.config.vocabSize;
    const last = (out.logits!.data as Float32Array).subarray((T - 1) * V, T * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (last[i]! > last[best]!) best = i;
    ids.push(best);
  }
  await s.release();
  return ids.slice(prompt.length);
};

describe('generation with a KV cache', () => {
  for (const name of ['llama3', 'qwen3']) {
    const dir = tinyModelDir(name);
    it.skipIf(!dir && !oracleRequired())(`${name}: greedy tokens equal a cache-free recomputation and transformers' generate`, async () => {
      expect(dir).toBeDefined();
      const generator = await Generator.create(openHfFolder(dir!), { threads: 2 });
      const ours = await collect(generator.generate(PROMPT, { maxNewTokens: 12 }));
      await generator.release();
      expect(ours).toHaveLength(12);
      expect(ours).toEqual(await greedyWithoutCache(dir!, PROMPT, 12));
      if (existsSync(python)) {
        const ref = JSON.parse(execFileSync(python, ['tests/oracle/tiny_generate.py', dir!, '12', JSON.stringify(PROMPT)], { encoding: 'utf8' })) as { tokens: number[]; margins: number[] };
        // Identical up to the first step where the reference's top-2 margin is too small to call (our fp32
        // logits agree with transformers' to ~1e-6, so 1e-4 is a safe margin here).
        const trusted = ref.margins.findIndex((m) => m < 1e-4);
        const upTo = trusted < 0 ? ref.tokens.length : trusted + 1;
        expect(ours.slice(0, upTo)).toEqual(ref.tokens.slice(0, upTo));
      } else {
        expect(oracleRequired(), 'oracle python missing').toBe(false);
      }
    });
  }

  it.skipIf(!tinyModelDir('llama3') && !oracleRequired())('sampling with a seed is reproducible, EOS ends generation, abort stops it', async () => {
    const dir = tinyModelDir('llama3')!;
    const generator = await Generator.create(openHfFolder(dir), { threads: 2 });
    const opts = { maxNewTokens: 8, temperature: 1, topK: 50, seed: 3 };
    const a = await collect(generator.generate(PROMPT, opts));
    expect(await collect(generator.generate(PROMPT, opts))).toEqual(a);
    const withEos = await collect(generator.generate(PROMPT, { ...opts, eosTokenIds: [a[2]!] }));
    expect(withEos).toEqual(a.slice(0, 2));
    const ctl = new AbortController();
    ctl.abort();
    expect(await collect(generator.generate(PROMPT, { ...opts, signal: ctl.signal }))).toEqual([]);
    await generator.release();
  });
});
