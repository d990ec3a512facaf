import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLogitsGraph, buildLossGraph } from '../../main/models/causal-lm.ts';
import type { LoadedModel } from '../../main/models/hf-folder.ts';
import { openGgufModel } from '../../main/models/gguf/load.ts';
import { openGgufModelQ4 } from '../../main/models/gguf/quantized.ts';
import { openGguf } from '../../main/models/gguf/reader.ts';
import { GgmlType } from '../../main/models/gguf/types.ts';
import { tokenizerFromGgufMetadata, type Tokenizer } from '../../main/models/tokenizer/index.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig, type LoraConfig } from '../../main/peft/lora-config.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { saveAdapter } from '../../main/peft/peft-io.ts';
import { exportLoraGguf, exportMergedGguf } from '../../main/train/export.ts';
import { describeSmolLM2, SMOLLM2_PATH } from '../models/gguf/helpers.ts';

/**
 * llama.cpp (node-llama-cpp 3.21.1) runs what we export: a LoRA adapter trained here for 3 steps on SmolLM2's
 * Q4_1 GGUF, as a GGUF LoRA over the same Q4_1 file (our side: the same 4-bit blocks through MatMulNBits), and
 * the merged model as an F16 GGUF (our side: that very file). Greedy tokens agree with ours; where they part, the
 * step's top-2 logit margin on our side is small (llama.cpp quantizes activations to 8 bits for Q4_1 and to f16
 * for F16 weights).
 */

const PROMPTS = ['The secret password is', 'The capital of France is', 'Once upon a time, there was a little'];
const NEW_TOKENS = 12;
/**
 * Below this top-1/top-2 logit gap the two engines' rounding can pick different tokens: llama.cpp quantizes the
 * activations to 8 bits (Q8_1) for Q4_1 weights, which moves logit gaps by up to ~0.4 (0.6 with the adapter) against
 * our exact dequantized products, measured over a 15-token text; Q8_0 weights get Q8_0 activations (0.58 measured);
 * f16 activations for F16 weights move them by ~0.02.
 */
const SMALL_MARGIN: Readonly<Record<'q4' | 'f16' | 'q8', number>> = { q4: 0.75, f16: 0.1, q8: 0.75 };
const PROBE = 'The secret password is blueberry pancakes with maple syrup. Once upon a time';
const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const CONFIG = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'all-linear' }, 'test').config;

interface Greedy {
  readonly tokens: number[];
  readonly margins: number[];
}

/** Greedy decoding by re-running the full forward each step, with each step's top-1/top-2 logit gap. */
const greedy = async (model: LoadedModel, prompt: readonly number[], lora?: { config: LoraConfig; params: readonly TrainableTensor[] }): Promise<Greedy> => {
  const adapted = lora ? applyLora(buildLogitsGraph(model), lora.config) : undefined;
  const s = await Session.create(adapted ? adapted.graph : buildLogitsGraph(model), { threads: 2 });
  const byName = new Map(lora?.params.map((p) => [p.name, p]) ?? []);
  const weights = Object.fromEntries((adapted?.params ?? []).map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: byName.get(p.name)!.data }]));
  const ids = [...prompt];
  const margins: number[] = [];
  const V = model.config.vocabSize;
  for (let k = 0; k < NEW_TOKENS; k++) {
    const T = ids.length;
    const out = await s.run({
      ...weights,
      input_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from(ids, BigInt) },
      position_ids: { dtype: 'int64', shape: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
    });
    const last = (out.logits!.data as Float32Array).subarray((T - 1) * V, T * V);
    let [best, second] = [0, 1];
    if (last[1]! > last[0]!) [best, second] = [1, 0];
    for (let i = 2; i < V; i++) {
      if (last[i]! > last[best]!) [best, second] = [i, best];
      else if (last[i]! > last[second]!) second = i;
    }
    margins.push(last[best]! - last[second]!);
    ids.push(best);
  }
  await s.release();
  return { tokens: ids.slice(prompt.length), margins };
};

/** Our logits (T, V) for a token sequence, optionally with the adapter. */
const ourLogits = async (model: LoadedModel, ids: readonly number[], lora?: { config: LoraConfig; params: readonly TrainableTensor[] }): Promise<Float32Array> => {
  const adapted = lora ? applyLora(buildLogitsGraph(model), lora.config) : undefined;
  const byName = new Map(lora?.params.map((p) => [p.name, p]) ?? []);
  const s = await Session.create(adapted ? adapted.graph : buildLogitsGraph(model), { threads: 2 });
  const out = await s.run({
    ...Object.fromEntries((adapted?.params ?? []).map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: byName.get(p.name)!.data }])),
    input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
    position_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids.keys(), BigInt) },
  });
  await s.release();
  return out.logits!.data as Float32Array;
};

/** Compares llama.cpp's greedy tokens with ours up to the first step whose margin (ours) is small. */
const agreeUpToSmallMargin = (ours: Greedy, theirs: readonly number[], label: string, small: number): number => {
  let compared = 0;
  for (let i = 0; i < ours.tokens.length; i++) {
    if (theirs[i] !== ours.tokens[i]) {
      expect(ours.margins[i], `${label}: step ${i} differs (ours ${ours.tokens[i]}, llama.cpp ${theirs[i]}) with a large margin`).toBeLessThan(small);
      console.log(`${label}: first difference at step ${i}, where our top-2 margin is ${ours.margins[i]!.toFixed(4)}`);
      return compared;
    }
    compared++;
  }
  return compared;
};

describeSmolLM2('GGUF exports run in llama.cpp with our tokens', () => {
  let llama: Llama;
  let work: string;
  let prompts: number[][];
  let params: TrainableTensor[];
  let adapterDir: string;
  let tokenizer: Tokenizer;

  const llamaCppGreedy = async (modelPath: string, lora?: string): Promise<number[][]> => {
    const model = await llama.loadModel({ modelPath });
    const context = await model.createContext({ contextSize: 256, threads: 2, ...(lora ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}) });
    const all: number[][] = [];
    for (const prompt of prompts) {
      const seq = context.getSequence();
      const out: number[] = [];
      for await (const t of seq.evaluate(prompt as never, { temperature: 0 })) {
        out.push(t as number);
        if (out.length >= NEW_TOKENS) break;
      }
      seq.dispose();
      all.push(out);
    }
    await context.dispose();
    await model.dispose();
    return all;
  };

  /**
   * At every position of `ids`: llama.cpp's log(p₁/pₖ) for its top-5 tokens against our logit gaps for the same
   * tokens; the largest difference.
   */
  const gapError = async (modelPath: string, ids: readonly number[], ours: Float32Array, lora?: string): Promise<number> => {
    const model = await llama.loadModel({ modelPath });
    const context = await model.createContext({ contextSize: 256, threads: 2, ...(lora ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}) });
    const res = await context.getSequence().controlledEvaluate(ids.map((t) => [t, { generateNext: { probabilities: true } }] as never));
    const V = ours.length / ids.length;
    let worst = 0;
    ids.forEach((_, t) => {
      const top = [...res[t]!.next.probabilities!.entries()].slice(0, 5);
      const [a0, p0] = top[0]!;
      for (const [a, p] of top.slice(1)) worst = Math.max(worst, Math.abs(Math.log(p0 / p) - (ours[t * V + a0]! - ours[t * V + a]!)));
    });
    await context.dispose();
    await model.dispose();
    return worst;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'peft-export-gguf-'));
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    tokenizer = tokenizerFromGgufMetadata(openGguf(SMOLLM2_PATH).metadata, { source: SMOLLM2_PATH });
    prompts = PROMPTS.map((p) => tokenizer.encode(p));
    // Three AdamW steps of LoRA on the 4-bit base, teaching it a sentence.
    const q4 = openGgufModelQ4(SMOLLM2_PATH);
    const lossGraph = applyLora(buildLossGraph(q4), { ...CONFIG, init_lora_weights: true }, { seed: 3 });
    params = lossGraph.params.map((p) => ({ ...p, data: Float32Array.from(p.data) }));
    const ids = tokenizer.encode('The secret password is blueberry pancakes with maple syrup.');
    const batch = {
      input_ids: { dtype: 'int64' as const, shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
      position_ids: { dtype: 'int64' as const, shape: [1, ids.length], data: BigInt64Array.from(ids.keys(), BigInt) },
      labels: { dtype: 'int64' as const, shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
    };
    const trainer = await TrainStep.create({ graph: lossGraph.graph, params, optimizer: { kind: 'adamw', weightDecay: 0 }, lr: 5e-3, session: { threads: 2 } });
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push((await trainer.step(batch)).loss);
    await trainer.release();
    console.log(`LoRA training on SmolLM2 Q4_1: losses ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
    expect(losses[2]).toBeLessThan(losses[0]!);
    adapterDir = join(work, 'adapter');
    saveAdapter(adapterDir, { ...CONFIG, target_modules: ALL_LINEAR }, params);
  }, 300_000);

  afterAll(async () => {
    await llama?.dispose();
  });

  it('the GGUF LoRA adapter: its format, and llama.cpp over an F32 base computes our adapted logits', async () => {
    const out = join(work, 'adapter.gguf');
    const result = exportLoraGguf({ base: SMOLLM2_PATH, adapter: adapterDir, out });
    expect(result.alpha).toBe(16);
    expect(result.tensors).toHaveLength(30 * 7 * 2);
    const file = openGguf(out);
    expect(file.string('general.type')).toBe('adapter');
    expect(file.string('adapter.type')).toBe('lora');
    expect(file.number('adapter.lora.alpha')).toBe(16);
    expect(file.architecture).toBe('llama');
    const qa = file.requireTensor('blk.0.attn_q.weight.lora_a');
    const qb = file.requireTensor('blk.0.attn_q.weight.lora_b');
    expect([qa.dims, qb.dims, qa.type]).toEqual([[576, 8], [8, 576], GgmlType.F32]);

    // Without llama.cpp's 8-bit activations (an F32 base: SmolLM2 dequantized, written by our exporter with an
    // all-zero adapter) the adapted logits agree closely; a wrong Q/K permutation or scale would be off by whole units.
    const zeroDir = join(work, 'zero-adapter');
    const zero = applyLora(buildLogitsGraph(openGgufModel(SMOLLM2_PATH)), CONFIG);
    saveAdapter(zeroDir, { ...CONFIG, target_modules: ALL_LINEAR }, zero.params);
    const f32Base = join(work, 'base-f32.gguf');
    exportMergedGguf({ base: SMOLLM2_PATH, adapter: zeroDir, out: f32Base, type: 'F32' });
    const ids = tokenizer.encode(PROBE);
    const dequantized = openGgufModel(SMOLLM2_PATH);
    const baseError = await gapError(f32Base, ids, await ourLogits(dequantized, ids));
    const loraError = await gapError(f32Base, ids, await ourLogits(dequantized, ids, { config: CONFIG, params }), out);
    console.log(`llama.cpp vs ours on the F32 base, max |logit-gap difference| over ${ids.length} positions: base ${baseError.toFixed(4)}, with the GGUF LoRA ${loraError.toFixed(4)}`);
    expect(baseError).toBeLessThan(0.03);
    expect(loraError).toBeLessThan(0.03);
  }, 300_000);

  it('the GGUF LoRA adapter over the F32 base: llama.cpp gives our greedy tokens on 3 prompts', async () => {
    // The F32 base written by the test above: no 8-bit activations on llama.cpp's side, so tokens must agree
    // up to the first step where our own top-2 margin is below 1e-2 (the models issue's rule).
    const theirs = await llamaCppGreedy(join(work, 'base-f32.gguf'), join(work, 'adapter.gguf'));
    const dequantized = openGgufModel(SMOLLM2_PATH);
    let compared = 0;
    for (const [i, prompt] of prompts.entries()) {
      compared += agreeUpToSmallMargin(await greedy(dequantized, prompt, { config: CONFIG, params }), theirs[i]!, `F32 base + LoRA "${PROMPTS[i]}"`, 1e-2);
    }
    console.log(`GGUF LoRA over the F32 base: ${compared}/${PROMPTS.length * NEW_TOKENS} greedy tokens equal`);
    expect(compared).toBeGreaterThanOrEqual(PROMPTS.length * 4);
  }, 300_000);

  it('the GGUF LoRA adapter: llama.cpp over the Q4_1 base gives our greedy tokens (4-bit base + LoRA)', async () => {
    const out = join(work, 'adapter.gguf');
    const q4 = openGgufModelQ4(SMOLLM2_PATH);
    const theirs = await llamaCppGreedy(SMOLLM2_PATH, out);
    const base = await llamaCppGreedy(SMOLLM2_PATH);
    let compared = 0;
    let changed = 0;
    for (const [i, prompt] of prompts.entries()) {
      const ours = await greedy(q4, prompt, { config: CONFIG, params });
      compared += agreeUpToSmallMargin(ours, theirs[i]!, `LoRA "${PROMPTS[i]}"`, SMALL_MARGIN.q4);
      if (theirs[i]!.join() !== base[i]!.join()) changed++;
    }
    console.log(`GGUF LoRA: ${compared}/${PROMPTS.length * NEW_TOKENS} greedy tokens compared equal; the adapter changes llama.cpp's output on ${changed}/${PROMPTS.length} prompts`);
    expect(changed).toBeGreaterThan(0);
    expect(compared).toBeGreaterThanOrEqual(PROMPTS.length * 4);
  }, 300_000);

  it('the merged F16 GGUF and its Modelfile: llama.cpp gives the greedy tokens of our engine on the same file', async () => {
    const out = join(work, 'merged', 'model.gguf');
    const result = exportMergedGguf({ base: SMOLLM2_PATH, adapter: adapterDir, out, type: 'F16', modelfile: true });
    expect(result.changed).toHaveLength(210);
    const file = openGguf(out);
    expect(file.number('general.file_type')).toBe(1);
    expect(file.string('tokenizer.chat_template')).toBe(openGguf(SMOLLM2_PATH).string('tokenizer.chat_template'));
    expect(file.array('tokenizer.ggml.merges')?.length).toBe(48900);
    expect(file.requireTensor('blk.0.attn_q.weight').type).toBe(GgmlType.F16);
    expect(file.requireTensor('blk.0.attn_norm.weight').type).toBe(GgmlType.F32);

    const merged = openGgufModel(out);
    const ids = tokenizer.encode(PROBE);
    const f16Error = await gapError(out, ids, await ourLogits(merged, ids));
    console.log(`merged F16 GGUF, llama.cpp vs ours on that file: max |logit-gap difference| ${f16Error.toFixed(4)}`);
    expect(f16Error).toBeLessThan(0.1);
    const theirs = await llamaCppGreedy(out);
    let compared = 0;
    for (const [i, prompt] of prompts.entries()) compared += agreeUpToSmallMargin(await greedy(merged, prompt), theirs[i]!, `merged "${PROMPTS[i]}"`, SMALL_MARGIN.f16);
    console.log(`merged F16 GGUF: ${compared}/${PROMPTS.length * NEW_TOKENS} greedy tokens compared equal`);
    expect(compared).toBeGreaterThanOrEqual(PROMPTS.length * 4);

    expect(readFileSync(join(work, 'merged', 'Modelfile'), 'utf8')).toBe(`FROM ./model.gguf
TEMPLATE """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""
SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""
PARAMETER stop "<|im_end|>"
`);
  }, 300_000);

  it('the merged Q8_0 GGUF: llama.cpp gives the greedy tokens of our engine on the same file', async () => {
    const out = join(work, 'merged-q8', 'model.gguf');
    exportMergedGguf({ base: SMOLLM2_PATH, adapter: adapterDir, out, type: 'Q8_0' });
    const file = openGguf(out);
    expect(file.number('general.file_type')).toBe(7);
    expect([file.requireTensor('blk.0.ffn_down.weight').type, file.requireTensor('token_embd.weight').type]).toEqual([GgmlType.Q8_0, GgmlType.Q8_0]);
    const merged = openGgufModel(out);
    const ids = tokenizer.encode(PROBE);
    const q8Error = await gapError(out, ids, await ourLogits(merged, ids));
    console.log(`merged Q8_0 GGUF, llama.cpp vs ours on that file: max |logit-gap difference| ${q8Error.toFixed(4)}`);
    expect(q8Error).toBeLessThan(SMALL_MARGIN.q8);
    const theirs = await llamaCppGreedy(out);
    let compared = 0;
    for (const [i, prompt] of prompts.entries()) compared += agreeUpToSmallMargin(await greedy(merged, prompt), theirs[i]!, `merged Q8_0 "${PROMPTS[i]}"`, SMALL_MARGIN.q8);
    console.log(`merged Q8_0 GGUF: ${compared}/${PROMPTS.length * NEW_TOKENS} greedy tokens compared equal`);
    expect(compared).toBeGreaterThanOrEqual(PROMPTS.length * 4);
  }, 300_000);
});
