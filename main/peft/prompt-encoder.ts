// The reparameterisations of P-tuning (PEFT's PromptEncoder: an MLP, or a bidirectional LSTM then an MLP) and of
// prefix tuning (PrefixEncoder's transform), written twice: in the IR, so gradients flow through them while training,
// and in JS, because PEFT saves their output (prompt_embeddings) rather than their weights. They run on V rows only,
// so the JS copy is cheap and keeps saving synchronous; the tests hold both to PEFT's values.
import { type GraphBuilder, type Tensor, add, concat, gemm, mul, sigmoid, split, tanh } from '../engine/ir/index.ts';
import { dropout } from '../engine/ir/ops/random.ts';
import { uniformArray } from '../engine/random.ts';
import { SEED_INPUT, STEP_INPUT } from '../engine/train-step.ts';
import { trainable } from './virtual-tokens.ts';
import type { TrainableTensor } from './method.ts';

/** Looks a tensor up by its part name (`mlp_head.0.weight`, `lstm_head.weight_ih_l0`, ...). */
export type PartsIr = (part: string) => Tensor;
export type PartsJs = (part: string) => Float32Array;

/** nn.Linear(in, out)'s default init, weight and bias U(±1/√in), under `<prefix>.weight` / `<prefix>.bias`. */
export const linearTensors = (key: (part: string) => string, prefix: string, inF: number, outF: number, rng: () => number): TrainableTensor[] => {
  const bound = 1 / Math.sqrt(inF);
  return [
    trainable(key(`${prefix}.weight`), [outF, inF], uniformArray(outF * inF, bound, rng), `${prefix}.weight`),
    trainable(key(`${prefix}.bias`), [outF], uniformArray(outF, bound, rng), `${prefix}.bias`),
  ];
};

/** x (N, in) → x·Wᵀ + b (N, out) */
export const linearIr = (x: Tensor, parts: PartsIr, prefix: string): Tensor =>
  gemm(x, parts(`${prefix}.weight`), parts(`${prefix}.bias`), { transB: true, name: prefix });

export const linearJs = (x: Float32Array, rows: number, parts: PartsJs, prefix: string): Float32Array => {
  const w = parts(`${prefix}.weight`);
  const b = parts(`${prefix}.bias`);
  const outF = b.length;
  const inF = w.length / outF;
  const y = new Float32Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b[o]!;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = s;
    }
  }
  return y;
};

export const reluJs = (x: Float32Array): Float32Array => x.map((v) => Math.max(0, v));
const sigmoidJs = (v: number): number => 1 / (1 + Math.exp(-v));

// --- LSTM (torch.nn.LSTM, batch_first, bidirectional; gates in torch's order i, f, g, o) ---

export interface LstmShape {
  readonly input: number;
  readonly hidden: number;
  readonly layers: number;
}

const directions = ['', '_reverse'] as const;

/** torch's parameter names and init (every tensor U(±1/√hidden)) for `lstm_head`. */
export const lstmTensors = (key: (part: string) => string, s: LstmShape, rng: () => number): TrainableTensor[] => {
  const bound = 1 / Math.sqrt(s.hidden);
  const G = 4 * s.hidden;
  const out: TrainableTensor[] = [];
  for (let l = 0; l < s.layers; l++) {
    const inF = l === 0 ? s.input : 2 * s.hidden;
    for (const d of directions) {
      const t = (name: string, shape: number[]) => {
        const part = `lstm_head.${name}_l${l}${d}`;
        out.push(trainable(key(part), shape, uniformArray(shape.reduce((a, b) => a * b, 1), bound, rng), part));
      };
      t('weight_ih', [G, inF]);
      t('weight_hh', [G, s.hidden]);
      t('bias_ih', [G]);
      t('bias_hh', [G]);
    }
  }
  return out;
};

/** The step's dropout seed inputs, declared once per graph. */
const rngInput = (g: GraphBuilder, name: string): Tensor => {
  try {
    return g.tensorByName(name);
  } catch {
    return g.input(name, 'int64', []);
  }
};

/** x (V, in) → (V, 2·hidden): both directions' hidden states, layer by layer; `dropout` between layers, as torch. */
export const lstmIr = (g: GraphBuilder, x: Tensor, parts: PartsIr, s: LstmShape, dropoutP: number): Tensor => {
  const V = Number(x.shape[0]);
  const H = s.hidden;
  let input = x;
  for (let l = 0; l < s.layers; l++) {
    const outs = directions.map((d) => {
      const p = (name: string) => parts(`lstm_head.${name}_l${l}${d}`);
      const projected = gemm(input, p('weight_ih'), p('bias_ih'), { transB: true, name: `lstm_head.input_l${l}${d}` }); // (V, 4H)
      const steps = split(projected, Array<number>(V).fill(1), 0, `lstm_head.steps_l${l}${d}`); // V × (1, 4H)
      const hs: Tensor[] = Array<Tensor>(V);
      let h: Tensor | undefined;
      let c: Tensor | undefined;
      for (let k = 0; k < V; k++) {
        const t = d === '' ? k : V - 1 - k;
        const gates = h ? add(steps[t]!, gemm(h, p('weight_hh'), p('bias_hh'), { transB: true })) : add(steps[t]!, p('bias_hh')); // (1, 4H)
        const [i, f, cand, o] = split(gates, [H, H, H, H], 1);
        const ig = mul(sigmoid(i!), tanh(cand!));
        c = c ? add(mul(sigmoid(f!), c), ig) : ig; // (1, H)
        h = mul(sigmoid(o!), tanh(c)); // (1, H)
        hs[t] = h;
      }
      return concat(hs, 0); // (V, H)
    });
    input = concat(outs, 1, `lstm_head.output_l${l}`); // (V, 2H)
    if (dropoutP > 0 && l < s.layers - 1) input = dropout(input, dropoutP, { seed: rngInput(g, SEED_INPUT), step: rngInput(g, STEP_INPUT), name: `lstm_head.dropout_l${l}` });
  }
  return input;
};

/** The same in JS (no dropout: PEFT saves the encoder's output as the eval-mode model computes it). */
export const lstmJs = (x: Float32Array, V: number, parts: PartsJs, s: LstmShape): Float32Array => {
  const H = s.hidden;
  let input = x;
  for (let l = 0; l < s.layers; l++) {
    const inF = l === 0 ? s.input : 2 * H;
    const out = new Float32Array(V * 2 * H);
    directions.forEach((d, dir) => {
      const p = (name: string) => parts(`lstm_head.${name}_l${l}${d}`);
      const [wih, whh, bih, bhh] = [p('weight_ih'), p('weight_hh'), p('bias_ih'), p('bias_hh')];
      const h = new Float64Array(H);
      const c = new Float64Array(H);
      for (let k = 0; k < V; k++) {
        const t = dir === 0 ? k : V - 1 - k;
        const gates = new Float64Array(4 * H);
        for (let r = 0; r < 4 * H; r++) {
          let sum = bih[r]! + bhh[r]!;
          for (let i = 0; i < inF; i++) sum += wih[r * inF + i]! * input[t * inF + i]!;
          for (let j = 0; j < H; j++) sum += whh[r * H + j]! * h[j]!;
          gates[r] = sum;
        }
        for (let j = 0; j < H; j++) {
          c[j] = sigmoidJs(gates[H + j]!) * c[j]! + sigmoidJs(gates[j]!) * Math.tanh(gates[2 * H + j]!);
          h[j] = sigmoidJs(gates[3 * H + j]!) * Math.tanh(c[j]!);
          out[t * 2 * H + dir * H + j] = h[j]!;
        }
      }
    });
    input = out;
  }
  return input;
};
