import { describe, expect, it } from 'vitest';
import { createRng, normalArray } from '../../main/engine/random.ts';
import { chatFamily, defaultSystemPrompt, ollamaModelfile } from '../../main/models/export/modelfile.ts';
import { llamaCppLora } from '../../main/peft/gguf-export.ts';
import { deltaWeight, loraAdapterWeights, mergeModule, mergeWeights, unmergeModule, unmergeWeights } from '../../main/peft/merge.ts';
import type { LoadedAdapter } from '../../main/peft/peft-io.ts';

const rng = createRng(42);
const t = (shape: number[]) => ({ shape, data: normalArray(shape.reduce((a, b) => a * b, 1), 0.5, rng) });
const q = 'model.layers.0.self_attn.q_proj';
const o = 'model.layers.0.self_attn.o_proj';
const key = (m: string, part: string) => `base_model.model.${m}.${part}`;

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;
const adapter = (config: Record<string, unknown>, tensors: Record<string, { shape: number[]; data: Float32Array }>): LoadedAdapter & { tensors: Tensors } => ({
  dir: '/adapters/test',
  config: { peft_type: 'LORA', target_modules: ['q_proj', 'o_proj'], ...config },
  tensors: new Map(Object.entries(tensors)) as Tensors,
});

const twoModules = (config: Record<string, unknown>, rq = 4, ro = 2) =>
  adapter(config, {
    [key(q, 'lora_A.weight')]: t([rq, 16]),
    [key(q, 'lora_B.weight')]: t([8, rq]),
    [key(o, 'lora_A.weight')]: t([ro, 8]),
    [key(o, 'lora_B.weight')]: t([16, ro]),
  });

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('merge and unmerge', () => {
  it('scales: α/r, rsLoRA α/√r, rank_pattern and alpha_pattern per module', () => {
    const plain = loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 } }));
    expect(plain.modules.map((m) => [m.module, m.r, m.scale])).toEqual([[q, 4, 2], [o, 2, 4]]);
    const rs = loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, use_rslora: true, rank_pattern: { o_proj: 2 }, alpha_pattern: { o_proj: 3 } }));
    expect(rs.modules.map((m) => m.scale)).toEqual([8 / 2, 3 / Math.SQRT2]);
  });

  it('W + s·B·A, then back to W within float32 rounding; replaced tensors come back exactly; DoRA through its record', () => {
    const a = twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 }, use_rslora: true });
    a.tensors.set(key('model.layers.0.self_attn.q_proj', 'base_layer.bias'), t([8]));
    const weights = loraAdapterWeights(a);
    expect(weights.replaced.map((r) => r.name)).toEqual([`${q}.bias`]);
    const base = new Map([[`${q}.weight`, t([8, 16]).data], [`${o}.weight`, t([16, 8]).data], [`${q}.bias`, t([8]).data], ['model.norm.weight', t([16]).data]]);
    const { weights: merged, record } = mergeWeights(base, weights);
    const qm = weights.modules[0]!;
    const expected = base.get(`${q}.weight`)!.map((w, i) => w + deltaWeight(qm)[i]!);
    expect(maxDiff(merged.get(`${q}.weight`)!, expected)).toBe(0);
    expect(merged.get('model.norm.weight')).toBe(base.get('model.norm.weight'));
    const back = unmergeWeights(merged, weights, record);
    for (const [k, v] of base) expect(maxDiff(back.get(k)!, v), k).toBeLessThanOrEqual(1e-6);
    expect(back.get(`${q}.bias`)).toBe(base.get(`${q}.bias`));

    const dora = { ...qm, magnitude: Float32Array.from({ length: 8 }, (_, i) => 0.5 + i / 10) };
    const w = base.get(`${q}.weight`)!;
    const { values, norms } = mergeModule(w, dora);
    for (let r = 0; r < 8; r++) {
      const row = values.subarray(r * 16, r * 16 + 16);
      expect(Math.hypot(...row)).toBeCloseTo(dora.magnitude[r]!, 5); // each row rescaled to its magnitude
    }
    expect(maxDiff(unmergeModule(values, dora, norms), w)).toBeLessThanOrEqual(1e-6);
    expect(() => unmergeModule(values, dora)).toThrow(/needs the row norms/);
  });

  it('typed errors name the adapter and tensor', () => {
    const missing = twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 } });
    missing.tensors.delete(key(o, 'lora_B.weight'));
    expect(() => loraAdapterWeights(missing)).toThrow(`/adapters/test: module '${o}' has no lora_B tensor`);
    expect(() => loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8 }))).toThrow(`'${o}' has rank 2, adapter_config.json implies 4`);
    expect(() => loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, init_lora_weights: 'pissa', rank_pattern: { o_proj: 2 } }))).toThrow(/residual base/);
    expect(() => loraAdapterWeights({ ...twoModules({ r: 4, lora_alpha: 8 }), config: { peft_type: 'VERA' } })).toThrow(/'VERA' cannot be merged/);
    const odd = twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 } });
    odd.tensors.set('base_model.model.model.layers.0.mlp.lora_X', t([1]));
    expect(() => loraAdapterWeights(odd)).toThrow(/lora_X' is a LoRA part this version cannot merge/);
    const weights = loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 } }));
    expect(() => mergeWeights(new Map([[`${q}.weight`, new Float32Array(128)]]), weights)).toThrow(`changes '${o}.weight', which the base model does not have`);
    expect(() => mergeWeights(new Map([[`${q}.weight`, new Float32Array(5)], [`${o}.weight`, new Float32Array(128)]]), weights)).toThrow(`'${q}.weight' has 5 values`);
  });
});

describe('llama.cpp LoRA scales', () => {
  const delta = (m: { a: Float32Array; b: Float32Array; r: number; inFeatures: number; outFeatures: number }, scale: number) => deltaWeight({ ...m, scale });
  it('one alpha per file: rsLoRA goes into the alpha, per-module patterns into B', () => {
    const rs = loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, use_rslora: true }, 4, 4));
    const out = llamaCppLora(rs);
    expect(out.alpha).toBeCloseTo(16, 5); // α·√r, so that llama.cpp's alpha/r is α/√r
    out.modules.forEach((m, i) => expect(m.b).toBe(rs.modules[i]!.b)); // B untouched
    const patterns = loraAdapterWeights(twoModules({ r: 4, lora_alpha: 8, rank_pattern: { o_proj: 2 }, alpha_pattern: { o_proj: 6 } }));
    const folded = llamaCppLora(patterns);
    expect(folded.alpha).toBe(8);
    folded.modules.forEach((m, i) => {
      const want = deltaWeight(patterns.modules[i]!);
      expect(maxDiff(delta(m, folded.alpha / m.r), want)).toBeLessThanOrEqual(1e-6 * Math.max(...want.map(Math.abs)));
    });
  });
});

describe('Ollama Modelfile', () => {
  const QWEN25 = `{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`;
  it('ChatML: Go template, the built-in default system prompt, stops', () => {
    expect(defaultSystemPrompt(QWEN25)).toBe('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.');
    const mf = ollamaModelfile({ from: './qwen.gguf', chatTemplate: QWEN25, stopTokens: ['<|im_end|>', '<|endoftext|>'] });
    expect(mf.family).toBe('chatml');
    expect(mf.text.startsWith('FROM ./qwen.gguf\nTEMPLATE """{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n')).toBe(true);
    expect(mf.text.endsWith('SYSTEM """You are Qwen, created by Alibaba Cloud. You are a helpful assistant."""\nPARAMETER stop "<|im_end|>"\nPARAMETER stop "<|endoftext|>"\n')).toBe(true);
  });

  it('Llama 3 headers; other templates get no TEMPLATE and a warning', () => {
    const llama3 = ollamaModelfile({ from: './m.gguf', chatTemplate: "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}", stopTokens: ['<|eot_id|>'] });
    expect(llama3.family).toBe('llama3');
    expect(llama3.text).toContain('{{ .Content }}<|eot_id|>');
    expect(llama3.stops).toEqual(['<|eot_id|>']);
    const other = ollamaModelfile({ from: './m.gguf', chatTemplate: '[INST] {{ messages[0].content }} [/INST]', stopTokens: ['</s>'] });
    expect(chatFamily('[INST]')).toBeUndefined();
    expect(other.text).toBe('FROM ./m.gguf\nPARAMETER stop "</s>"\n');
    expect(other.warnings[0]).toMatch(/neither ChatML nor Llama 3/);
  });
});
