// Non-zero adapters of every method, each built by the method's own rewrite on a graph the test chooses (the logits
// graph for generation, the training graph for evaluation) and saved by the method's own save function. Each case
// returns that rewritten graph and its feeds: the reference the folder, opened through method-adapter.ts, must match.
import { join } from 'node:path';
import type { Graph } from '../../main/engine/ir/index.ts';
import type { HostTensor } from '../../main/engine/onnx/runtime.ts';
import { createRng, normalArray } from '../../main/engine/random.ts';
import type { LoadedModel } from '../../main/models/hf-folder.ts';
import { applyAdalora, parseAdaloraConfig, rankPatternKey, saveAdaloraAdapter } from '../../main/peft/adalora.ts';
import { applyAdapterFusion, saveAdapterFusion } from '../../main/peft/adapter-fusion.ts';
import { saveTensorAdapter } from '../../main/peft/base-tensor-io.ts';
import { applyBitfit, parseBitfitConfig } from '../../main/peft/bitfit.ts';
import { applyBottleneck, saveBottleneckAdapter } from '../../main/peft/bottleneck.ts';
import { parseBottleneckConfig } from '../../main/peft/bottleneck-config.ts';
import { parseAdapterFusionConfig } from '../../main/peft/bottleneck-fusion-config.ts';
import { applyDeltaLora, DeltaLoraUpdater, parseDeltaLoraConfig, saveDeltaLoraAdapter } from '../../main/peft/delta-lora.ts';
import { applyFull } from '../../main/peft/full-finetune.ts';
import { applyIa3, saveIa3Adapter } from '../../main/peft/ia3.ts';
import { parseIa3Config } from '../../main/peft/ia3-config.ts';
import { applyLongLora, saveLongLoraAdapter } from '../../main/peft/longlora.ts';
import { parseLongLoraConfig } from '../../main/peft/longlora-config.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { applyLoraDrop, parseLoraDropConfig, saveLoraDropAdapter } from '../../main/peft/lora-drop.ts';
import type { AdaptedGraph, TrainableTensor } from '../../main/peft/method.ts';
import { saveAdapter } from '../../main/peft/peft-io.ts';
import { applySelective, parseSelectiveConfig } from '../../main/peft/selective.ts';
import { applyVera, parseVeraConfig, saveVeraAdapter } from '../../main/peft/vera.ts';
import { saveFullModel } from '../../main/train/full-model.ts';

export interface MadeAdapter {
  readonly dir: string;
  /** The peft_type the folder opens as (Delta-LoRA and LoRA-drop save plain LoRA folders). */
  readonly opensAs: string;
  /** The method's rewrite of the given graph, in its inference form, and everything it must be fed beyond the batch. */
  readonly graph: Graph;
  readonly params: readonly TrainableTensor[];
  readonly feeds: Readonly<Record<string, HostTensor>>;
}

export interface MakeContext {
  readonly model: LoadedModel;
  readonly modelDir: string;
  /** The graph the method's rewrite is applied to (logits graph, training graph). */
  readonly graph: Graph;
  /** Where to save (a fresh folder per case). */
  readonly dir: string;
}

export interface MethodCase {
  readonly name: string;
  readonly model: 'llama3' | 'qwen2';
  readonly make: (c: MakeContext) => MadeAdapter;
}

/** Every value moved by N(0, std): random adapters a training run could have left, B matrices included. */
export const perturbed = (params: readonly TrainableTensor[], seed: number, std: number): TrainableTensor[] => {
  const rng = createRng(seed);
  return params.map((p) => {
    const noise = normalArray(p.data.length, std, rng);
    return { ...p, data: Float32Array.from(p.data, (v, i) => v + noise[i]!) };
  });
};

export const feedsOf = (params: readonly TrainableTensor[]): Record<string, HostTensor> =>
  Object.fromEntries(params.map((p) => [p.name, { dtype: 'float32' as const, shape: p.shape, data: p.data }]));

const made = (dir: string, opensAs: string, adapted: AdaptedGraph, params: readonly TrainableTensor[], extra: Record<string, HostTensor> = {}): MadeAdapter =>
  ({ dir, opensAs, graph: adapted.graph, params, feeds: { ...feedsOf(params), ...extra } });

const LORA_RAW = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };

export const METHOD_CASES: readonly MethodCase[] = [
  {
    name: 'LORA',
    model: 'llama3',
    make: ({ graph, dir, modelDir }) => {
      const { config } = parseLoraConfig(LORA_RAW, 'case');
      const adapted = applyLora(graph, config);
      const params = perturbed(adapted.params, 1, 0.5);
      saveAdapter(dir, { ...LORA_RAW, base_model_name_or_path: modelDir }, params);
      return made(dir, 'LORA', adapted, params);
    },
  },
  {
    name: 'LORA (DoRA, rsLoRA, dropout)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const raw = { ...LORA_RAW, use_dora: true, use_rslora: true, lora_dropout: 0.3 };
      const { config } = parseLoraConfig(raw, 'case');
      const adapted = applyLora(graph, { ...config, lora_dropout: 0 });
      const params = perturbed(adapted.params, 2, 0.5);
      saveAdapter(dir, raw, params);
      return made(dir, 'LORA', adapted, params);
    },
  },
  {
    name: 'ADALORA',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config } = parseAdaloraConfig({ peft_type: 'ADALORA', init_r: 4, target_r: 2, total_step: 10, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, 'case');
      const adapted = applyAdalora(graph, config);
      const params = perturbed(adapted.params, 3, 0.2);
      // The allocator's pruning: some triplets dropped (E zeroed), saved cut to the kept ones.
      const keep = [true, false, true, true];
      const rankPattern = Object.fromEntries(adapted.params.filter((p) => p.role === 'lora_E').map((p) => [rankPatternKey(p.module), keep]));
      for (const p of params.filter((t) => t.role === 'lora_E')) for (const [i, kept] of keep.entries()) if (!kept) p.data[i] = 0;
      saveAdaloraAdapter(dir, config, params, { rankPattern, modules: adapted.modules });
      return made(dir, 'ADALORA', adapted, params);
    },
  },
  {
    name: 'VERA',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config } = parseVeraConfig({ peft_type: 'VERA', r: 4, target_modules: ['q_proj', 'v_proj'], save_projection: true, vera_dropout: 0.2 }, 'case');
      const adapted = applyVera(graph, { ...config, vera_dropout: 0 });
      const params = perturbed(adapted.params, 4, 0.8);
      saveVeraAdapter(dir, config, { params, frozen: adapted.frozen ?? [] });
      return made(dir, 'VERA', adapted, params);
    },
  },
  {
    name: 'DELTA_LORA (W moved)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config } = parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'up_proj'], delta_lora_start_step: 0, delta_lora_lambda: 0.5 }, 'case');
      const adapted = applyDeltaLora(graph, config);
      const params = perturbed(adapted.params, 5, 0.5);
      const updater = new DeltaLoraUpdater({ ...adapted, params }, config);
      // Two optimizer steps: W starts moving after step 0 (K), so the save is the rank-2r form.
      const rng = createRng(6);
      for (const step of [0, 1]) {
        for (const p of params) {
          const update = normalArray(p.data.length, 0.3, rng);
          p.data.forEach((v, i) => (p.data[i] = v + update[i]!));
        }
        updater.afterOptimizerStep(step);
      }
      saveDeltaLoraAdapter(dir, updater, params);
      return made(dir, 'LORA', adapted, params, updater.feeds());
    },
  },
  {
    name: 'LORA_DROP (shared pair)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const shared = ['model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.v_proj'];
      const { config } = parseLoraDropConfig({ peft_type: 'LORA_DROP', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], shared_modules: shared }, 'case');
      const adapted = applyLoraDrop(graph, config);
      const params = perturbed(adapted.params, 7, 0.5);
      saveLoraDropAdapter(dir, config, params);
      return made(dir, 'LORA', adapted, params);
    },
  },
  {
    name: 'LONGLORA (RoPE interpolation, trained norms)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const raw = { peft_type: 'LONGLORA', r: 4, lora_alpha: 8, model_max_length: 16, trainable_params: ['norm'], rope_scaling: { type: 'linear', factor: 2 } };
      const { config } = parseLongLoraConfig(raw, 'case');
      const adapted = applyLongLora(graph, { ...config, lora_dropout: 0 }, { attention: 'full' });
      const params = perturbed(adapted.params, 8, 0.5);
      saveLongLoraAdapter(dir, config, params);
      return made(dir, 'LONGLORA', adapted, params);
    },
  },
  {
    name: 'IA3',
    model: 'llama3',
    make: ({ graph, dir, model }) => {
      const { config } = parseIa3Config({ peft_type: 'IA3', target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] }, 'case');
      const options = { modelType: model.config.modelType };
      const adapted = applyIa3(graph, config, options);
      const params = perturbed(adapted.params, 9, 0.8);
      saveIa3Adapter(dir, config, params, options);
      return made(dir, 'IA3', adapted, params);
    },
  },
  {
    name: 'BOTTLENECK (Houlsby)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', architecture: 'houlsby', reduction_factor: 4 }, 'case');
      const adapted = applyBottleneck(graph, config);
      const params = perturbed(adapted.params, 10, 0.02);
      saveBottleneckAdapter(dir, config, params);
      return made(dir, 'BOTTLENECK', adapted, params);
    },
  },
  {
    name: 'ADAPTER_FUSION',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config: pfeiffer } = parseBottleneckConfig({ peft_type: 'BOTTLENECK', reduction_factor: 4 }, 'case');
      const paths = { a: join(dir, 'a'), b: join(dir, 'b') };
      saveBottleneckAdapter(paths.a, pfeiffer, perturbed(applyBottleneck(graph, pfeiffer).params, 11, 0.05));
      saveBottleneckAdapter(paths.b, pfeiffer, perturbed(applyBottleneck(graph, pfeiffer).params, 12, 0.05));
      const raw = { peft_type: 'ADAPTER_FUSION', adapters: ['a', 'b'], adapter_paths: paths, dropout_prob: 0.1 };
      const { config } = parseAdapterFusionConfig(raw, 'case');
      const adapted = applyAdapterFusion(graph, config, { inference: true });
      const params = perturbed(adapted.params, 13, 0.1);
      const fusion = join(dir, 'fusion');
      saveAdapterFusion(fusion, config, { params, frozen: adapted.frozen ?? [] });
      return made(fusion, 'ADAPTER_FUSION', adapted, params);
    },
  },
  {
    name: 'BITFIT',
    model: 'qwen2',
    make: ({ graph, dir }) => {
      const { config } = parseBitfitConfig({ peft_type: 'BITFIT' }, 'case');
      const adapted = applyBitfit(graph, config);
      const params = perturbed(adapted.params, 14, 0.5);
      saveTensorAdapter(dir, config, params);
      return made(dir, 'BITFIT', adapted, params);
    },
  },
  {
    name: 'SELECTIVE (norms)',
    model: 'llama3',
    make: ({ graph, dir }) => {
      const { config } = parseSelectiveConfig({ peft_type: 'SELECTIVE', parameters: ['norm'] }, 'case');
      const adapted = applySelective(graph, config);
      const params = perturbed(adapted.params, 15, 0.5);
      saveTensorAdapter(dir, config, params);
      return made(dir, 'SELECTIVE', adapted, params);
    },
  },
  {
    name: 'FULL (a model folder)',
    model: 'llama3',
    make: ({ graph, dir, modelDir }) => {
      const adapted = applyFull(graph);
      const params = perturbed(adapted.params, 16, 0.05);
      saveFullModel({ base: modelDir, out: dir, params, dtype: 'float32' });
      return made(dir, 'FULL', adapted, params);
    },
  },
];
