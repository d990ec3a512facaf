// LoRA's options on a one-layer graph, without the Python oracle: the rewrites are pure, PiSSA/OLoRA leave
// residual + s·B·A = W, the trainable tensors carry PEFT's names and start from the base tensors, and bad configs
// fail naming the field (tests/peft/lora-variants-oracle.test.ts proves equality with PEFT).
import { describe, expect, it } from 'vitest';
import { GraphBuilder, mul, reduceSum, type Graph } from '../../main/engine/ir/index.ts';
import { readInitializer } from '../../main/engine/io/initializer.ts';
import { linear } from '../../main/engine/nn/linear.ts';
import { PeftError } from '../../main/peft/errors.ts';
import { inlineData } from '../../main/peft/frozen-weights.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { savedKey } from '../../main/peft/peft-io.ts';
import { uniform } from '../helpers/random.ts';

const OUT = 5;
const IN = 6;
const WEIGHT = Float32Array.from(uniform(OUT * IN, -1, 1, 1));
const BIAS = Float32Array.from(uniform(OUT, -1, 1, 2));
const OTHER_WEIGHT = Float32Array.from(uniform(3 * OUT, -1, 1, 3));
const OTHER_BIAS = Float32Array.from(uniform(3, -1, 1, 4));

/** x (rows, 6) → layer.proj (5 ← 6) → layer.other (3 ← 5), both with a bias → loss = Σ y². */
const oneLayer = (): Graph => {
  const g = new GraphBuilder();
  const param = (name: string, shape: number[], data: Float32Array) => g.initializer(name, 'float32', shape, { kind: 'inline', data });
  const x = g.input('x', 'float32', ['rows', IN]);
  const h = linear(x, param('layer.proj.weight', [OUT, IN], WEIGHT), param('layer.proj.bias', [OUT], BIAS), 'layer.proj');
  const y = linear(h, param('layer.other.weight', [3, OUT], OTHER_WEIGHT), param('layer.other.bias', [3], OTHER_BIAS), 'layer.other');
  g.output(reduceSum(mul(y, y), [0, 1], { keepdims: false }), 'loss');
  return g.build();
};

const readers = (graph: Graph, name: string) => graph.nodes.filter((n) => n.inputs.includes(graph.idOf(name)));

const config = (raw: Record<string, unknown>) => parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['proj'], ...raw }, 'test').config;

/** residual + s·B·A, row-major (out, in). */
const recombined = (residual: Float32Array, a: Float32Array, b: Float32Array, r: number, scale: number): Float64Array =>
  Float64Array.from(residual, (v, idx) => {
    const [o, i] = [Math.floor(idx / IN), idx % IN];
    let sum = v;
    for (let k = 0; k < r; k++) sum += scale * b[o * r + k]! * a[k * IN + i]!;
    return sum;
  });

describe('LoRA inits from the base weight (PiSSA, OLoRA)', () => {
  for (const init of ['pissa', 'pissa_niter_3', 'olora'] as const) {
    it(`${init}: a new graph whose weight is the residual, residual + s·B·A = W; the input graph is untouched`, () => {
      const graph = oneLayer();
      const before = graph.initializers.get(graph.idOf('layer.proj.weight'));
      const adapted = applyLora(graph, config({ init_lora_weights: init }));
      expect(graph.initializers.get(graph.idOf('layer.proj.weight'))).toBe(before);
      expect(readInitializer(graph, 'layer.proj.weight')).toEqual(WEIGHT);
      expect(adapted.graph.idOf('layer.proj.weight')).toBe(graph.idOf('layer.proj.weight'));
      expect(adapted.graph.nodes.some((n) => n.name === 'layer.proj')).toBe(true);
      const residual = readInitializer(adapted.graph, 'layer.proj.weight');
      const [a, b] = adapted.params.map((p) => p.data);
      const back = recombined(residual, a!, b!, 2, 2);
      back.forEach((v, i) => expect(Math.abs(v - WEIGHT[i]!)).toBeLessThan(1e-6));
      expect(Math.max(...residual.map((v, i) => Math.abs(v - WEIGHT[i]!)))).toBeGreaterThan(0.1);
      if (init === 'olora') expect(a![IN]).toBe(0); // A = R's first rows: upper trapezoidal
    });
  }

  it('stores the residual in the checkpoint dtype, rounded as torch rounds (bf16 / f16: nearest even)', () => {
    const bits = (values: number[], dtype: 'bfloat16' | 'float16'): number[] => {
      const stored = inlineData(values, dtype);
      return stored.kind === 'inline' ? Array.from(stored.data as Uint16Array) : [];
    };
    expect(bits([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5], 'bfloat16')).toEqual([0x3f80, 0x3f82, 0xc020]);
    expect(bits([1 + 2 ** -11, 65520, 2 ** -24, -0], 'float16')).toEqual([0x3c00, 0x7c00, 0x0001, 0x8000]);
  });

  it('fails naming the module when r exceeds the weight rank bound', () => {
    expect(() => applyLora(oneLayer(), config({ r: 6, init_lora_weights: 'pissa' }))).toThrow(/r=6 exceeds min\(out, in\)=5 of 'layer.proj'/);
  });
});

describe('DoRA, trainable biases, modules_to_save', () => {
  it("DoRA adds a magnitude under PEFT's key, initialised to the row norms of W + s·B·A", () => {
    const adapted = applyLora(oneLayer(), config({ use_dora: true }));
    const magnitude = adapted.params.find((p) => p.role === 'lora_magnitude_vector')!;
    expect(magnitude.name).toBe('base_model.model.layer.proj.lora_magnitude_vector.default.weight');
    expect(savedKey(magnitude.name, 'default')).toBe('base_model.model.layer.proj.lora_magnitude_vector');
    // PEFT's default init has B = 0: the norms are W's.
    for (let o = 0; o < OUT; o++) {
      const norm = Math.hypot(...WEIGHT.slice(o * IN, (o + 1) * IN));
      expect(magnitude.data[o]).toBeCloseTo(norm, 6);
    }
    expect(adapted.graph.nodes.some((n) => n.op === 'StopGradient')).toBe(true);
  });

  it("bias='lora_only' trains the adapted module's bias under `base_layer.bias`, starting from the checkpoint", () => {
    const adapted = applyLora(oneLayer(), config({ bias: 'lora_only' }));
    const bias = adapted.params.find((p) => p.role === 'bias')!;
    expect(bias.name).toBe('base_model.model.layer.proj.base_layer.bias');
    expect(bias.data).toEqual(BIAS);
    expect(adapted.graph.inputs.map((id) => adapted.graph.value(id).name)).toContain(bias.name);
  });

  it("bias='all' also trains the biases of modules LoRA leaves alone, under `<module>.bias`", () => {
    const adapted = applyLora(oneLayer(), config({ bias: 'all' }));
    const biases = adapted.params.filter((p) => p.role === 'bias');
    expect(biases.map((p) => p.name)).toEqual(['base_model.model.layer.proj.base_layer.bias', 'base_model.model.layer.other.bias']);
    expect(biases[1]!.data).toEqual(OTHER_BIAS);
    expect(readers(adapted.graph, 'layer.other.bias')).toEqual([]);
  });

  it("modules_to_save trains a copy under PEFT's key, saved under the module's own key", () => {
    const adapted = applyLora(oneLayer(), config({ modules_to_save: ['other'] }), { adapterName: 'mine' });
    const copies = adapted.params.filter((p) => p.role === 'modules_to_save');
    expect(copies.map((p) => [p.name, savedKey(p.name, 'mine')])).toEqual([
      ['base_model.model.layer.other.modules_to_save.mine.weight', 'base_model.model.layer.other.weight'],
      ['base_model.model.layer.other.modules_to_save.mine.bias', 'base_model.model.layer.other.bias'],
    ]);
    expect(copies.map((p) => p.data)).toEqual([OTHER_WEIGHT, OTHER_BIAS]);
    expect(readers(adapted.graph, 'layer.other.weight')).toEqual([]);
    expect(adapted.modules.has('layer.other')).toBe(false);
  });
});

describe('config validation names the field', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ init_lora_weights: 'pissa_niter_x' }, /init_lora_weights="pissa_niter_x"/],
    [{ init_lora_weights: 'loftq' }, /init_lora_weights="loftq"/],
    [{ modules_to_save: 'lm_head' }, /modules_to_save="lm_head" must be a list/],
    [{ use_dora: 'yes' }, /use_dora="yes"/],
    [{ lora_bias: true }, /lora_bias=true/],
    [{ bias: 'some' }, /bias="some"/],
  ];
  for (const [raw, message] of bad) {
    it(JSON.stringify(raw), () => {
      expect(() => config(raw)).toThrow(PeftError);
      expect(() => config(raw)).toThrow(message);
    });
  }

  it('accepts pissa_niter_<n>', () => {
    expect(config({ init_lora_weights: 'pissa_niter_16' }).init_lora_weights).toBe('pissa_niter_16');
  });

  it('modules_to_save naming no module of the model fails naming the entry', () => {
    expect(() => applyLora(oneLayer(), config({ modules_to_save: ['classifier'] }))).toThrow(/modules_to_save: 'classifier' matches no module/);
  });
});
