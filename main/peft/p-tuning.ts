// P-tuning (Liu et al., 2021, "GPT Understands, Too") with HF PEFT's (0.17) config and keys: V virtual token
// embeddings go through PEFT's PromptEncoder — an MLP (Linear, ReLU, Linear, ReLU, Linear), or a bidirectional LSTM
// followed by an MLP (Linear, ReLU, Linear) — and the result is prepended to every row's embeddings. The embedding
// and the encoder train; PEFT saves only the encoder's output (prompt_embeddings (V, C)), which is what it then loads
// (in inference mode), so a saved P-tuning adapter runs like a prompt-tuning one.
import { type Graph, type Tensor, relu } from '../engine/ir/index.ts';
import { createRng, normalArray } from '../engine/random.ts';
import { fieldChecker } from './config-fields.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, ApplyOptions, ParsedConfig, TrainableTensor } from './method.ts';
import { type LstmShape, linearIr, linearJs, linearTensors, lstmIr, lstmJs, lstmTensors, reluJs } from './prompt-encoder.ts';
import {
  type PromptLearningFields, type PromptLearningMethod, type PromptModelDims, type VirtualTokenSpec,
  checkPromptLearningFields, promptEncoderKey, savedCommonFields, substituteVirtualTokens, trainable, writePromptEmbeddings,
} from './virtual-tokens.ts';

export interface PTuningConfig extends PromptLearningFields {
  readonly peft_type: 'P_TUNING';
  readonly encoder_reparameterization_type: 'MLP' | 'LSTM';
  /** null: the model's hidden size (PEFT fills token_dim in). */
  readonly encoder_hidden_size?: number | null;
  /** LSTM layers; PEFT's MLP always has its 3 linears and ignores this (with a warning) when it is not 2. */
  readonly encoder_num_layers: number;
  /** Between LSTM layers, while training (torch.nn.LSTM's dropout). */
  readonly encoder_dropout: number;
}

const DEFAULTS = { encoder_reparameterization_type: 'MLP', encoder_num_layers: 2, encoder_dropout: 0 } as const;

export const parsePTuningConfig = (raw: Readonly<Record<string, unknown>>, where: string): ParsedConfig<PTuningConfig> => {
  const c = { ...DEFAULTS, ...raw } as PTuningConfig & Record<string, unknown>;
  const fail = fieldChecker(c, where);
  if (c.peft_type !== 'P_TUNING') fail('peft_type', "is not 'P_TUNING'");
  const warnings = checkPromptLearningFields(c, fail, [...Object.keys(DEFAULTS), 'encoder_hidden_size'], where);
  if (c.encoder_reparameterization_type !== 'MLP' && c.encoder_reparameterization_type !== 'LSTM') {
    fail('encoder_reparameterization_type', "must be 'MLP' or 'LSTM'");
  }
  const h = c.encoder_hidden_size;
  if (h !== undefined && h !== null && !(Number.isInteger(h) && h > 0)) fail('encoder_hidden_size', 'must be a positive integer or null');
  if (!(Number.isInteger(c.encoder_num_layers) && c.encoder_num_layers > 0)) fail('encoder_num_layers', 'must be a positive integer');
  if (!(typeof c.encoder_dropout === 'number' && c.encoder_dropout >= 0 && c.encoder_dropout < 1)) fail('encoder_dropout', 'must be in [0, 1)');
  if (c.encoder_reparameterization_type === 'MLP' && c.encoder_num_layers !== 2) {
    warnings.push(`${where}: encoder_num_layers=${c.encoder_num_layers} is ignored for the MLP encoder (exactly 2 hidden layers), as in PEFT`);
  }
  return { config: c, warnings };
};

export const pTuningVirtualTokens = (c: PTuningConfig): VirtualTokenSpec => ({ kind: 'embeddings', count: c.num_virtual_tokens });

const lstmShape = (c: PTuningConfig, C: number): LstmShape => ({ input: C, hidden: c.encoder_hidden_size ?? C, layers: c.encoder_num_layers });

/** The encoder's tensors (PEFT's names under prompt_encoder.<adapter>.) with nn.Embedding / nn.Linear / nn.LSTM inits. */
const encoderTensors = (c: PTuningConfig, C: number, adapter: string, rng: () => number): TrainableTensor[] => {
  const key = (part: string) => promptEncoderKey(adapter, part);
  const H = c.encoder_hidden_size ?? C;
  const V = c.num_virtual_tokens;
  const embedding = trainable(key('embedding.weight'), [V, C], normalArray(V * C, 1, rng), 'embedding.weight');
  if (c.encoder_reparameterization_type === 'MLP') {
    return [embedding, ...linearTensors(key, 'mlp_head.0', C, H, rng), ...linearTensors(key, 'mlp_head.2', H, H, rng), ...linearTensors(key, 'mlp_head.4', H, C, rng)];
  }
  return [embedding, ...lstmTensors(key, lstmShape(c, C), rng), ...linearTensors(key, 'mlp_head.0', 2 * H, 2 * H, rng), ...linearTensors(key, 'mlp_head.2', 2 * H, C, rng)];
};

export const applyPTuning = (graph: Graph, config: PTuningConfig, o: ApplyOptions = {}): AdaptedGraph => {
  const adapter = o.adapterName ?? 'default';
  const V = config.num_virtual_tokens;
  let params: TrainableTensor[] = [];
  let hidden = 0;
  const adapted = substituteVirtualTokens(graph, 'embeddings', 'P_TUNING', (g, shape) => {
    const C = shape.at(-1)!;
    hidden = config.encoder_hidden_size ?? C;
    if (shape.length !== 2 || shape[0] !== V) throw new PeftError(`P_TUNING with num_virtual_tokens=${V} needs virtual embeddings [${V}, ${C}]; the graph was built with [${shape.join(', ')}]`);
    if ((config.token_dim ?? C) !== C) throw new PeftError(`P_TUNING: token_dim=${config.token_dim}, but this model's hidden size is ${C} (a config for another base model?)`);
    params = encoderTensors(config, C, adapter, createRng(o.seed ?? 0));
    const inputs = new Map(params.map((p) => [p.role, g.input(p.name, 'float32', p.shape)]));
    const parts = (part: string): Tensor => inputs.get(part)!;
    return g.scope(`prompt_encoder.${adapter}`, () => {
      const x = parts('embedding.weight'); // (V, C)
      if (config.encoder_reparameterization_type === 'MLP') {
        const h1 = relu(linearIr(x, parts, 'mlp_head.0')); // (V, H)
        return linearIr(relu(linearIr(h1, parts, 'mlp_head.2')), parts, 'mlp_head.4'); // (V, C)
      }
      const states = lstmIr(g, x, parts, lstmShape(config, C), config.encoder_dropout); // (V, 2H)
      return linearIr(relu(linearIr(states, parts, 'mlp_head.0')), parts, 'mlp_head.2'); // (V, C)
    });
  });
  return { graph: adapted, params, modules: new Map([['prompt_encoder', { num_virtual_tokens: V, encoder_hidden_size: hidden }]]) };
};

/** What PEFT saves: the encoder's output for the V virtual tokens, (V, C). */
export const pTuningPromptEmbeddings = (config: PTuningConfig, params: readonly TrainableTensor[], adapter = 'default'): { shape: number[]; data: Float32Array } => {
  const byPart = new Map(params.map((p) => [p.name.slice(promptEncoderKey(adapter, '').length), p.data]));
  const parts = (part: string): Float32Array => {
    const d = byPart.get(part);
    if (!d) throw new PeftError(`P_TUNING save: tensor '${promptEncoderKey(adapter, part)}' is missing`);
    return d;
  };
  const V = config.num_virtual_tokens;
  const x = parts('embedding.weight');
  const C = x.length / V;
  let out: Float32Array;
  if (config.encoder_reparameterization_type === 'MLP') {
    out = linearJs(reluJs(linearJs(reluJs(linearJs(x, V, parts, 'mlp_head.0')), V, parts, 'mlp_head.2')), V, parts, 'mlp_head.4');
  } else {
    out = linearJs(reluJs(linearJs(lstmJs(x, V, parts, lstmShape(config, C)), V, parts, 'mlp_head.0')), V, parts, 'mlp_head.2');
  }
  return { shape: [V, C], data: out };
};

export const savedPTuningConfig = (c: PTuningConfig, dims: PromptModelDims): Record<string, unknown> => ({
  ...savedCommonFields(c, { token_dim: dims.hiddenSize, num_attention_heads: dims.numHeads, num_layers: dims.numLayers }),
  peft_type: 'P_TUNING',
  encoder_dropout: c.encoder_dropout,
  encoder_hidden_size: c.encoder_hidden_size ?? dims.hiddenSize,
  encoder_num_layers: c.encoder_num_layers,
  encoder_reparameterization_type: c.encoder_reparameterization_type,
});

/** Writes the adapter as PEFT's save_pretrained does: the config and the encoder's output as prompt_embeddings. */
export const savePTuningAdapter = (dir: string, config: PTuningConfig, params: readonly TrainableTensor[], dims: PromptModelDims, o: ApplyOptions = {}): void =>
  writePromptEmbeddings(dir, savedPTuningConfig(config, dims), pTuningPromptEmbeddings(config, params, o.adapterName ?? 'default'));

export const pTuningMethod: PromptLearningMethod<PTuningConfig> = {
  peftType: 'P_TUNING',
  label: 'P-tuning',
  parseConfig: parsePTuningConfig,
  apply: applyPTuning,
  // Nothing is saved under its own key: the encoder's output is (pTuningPromptEmbeddings).
  savedKey: (key) => key,
  saveAdapter: (dir, config, params, dims, o) => void savePTuningAdapter(dir, config, params, dims, o),
  virtualTokens: pTuningVirtualTokens,
};
