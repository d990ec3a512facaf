// How each registered PEFT method trains and saves: its rewrite of the training graph, its part of the loop
// (optimizer groups, optimizer, step hooks, extra inputs, checkpoint state: MethodTraining) and its adapter folder,
// each written the way that method's own code in main/peft writes it (FULL: a whole HF model folder). LoRA's
// optimizer variants ride along: LoRA+ (B matrices at a larger lr) and LoRA-FA (A frozen, B updated by the LoRA-FA
// optimizer) leave a plain LoRA.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorFloat32, writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import type { Graph } from '../engine/ir/index.ts';
import type { ParamGroup } from '../engine/optim/index.ts';
import { applyAdalora, saveAdaloraAdapter, type AdaLoraConfig, type RankPattern } from '../peft/adalora.ts';
import { AdaLoraAllocator } from '../peft/adalora-allocator.ts';
import { saveTensorAdapter, type TensorAdapterConfig } from '../peft/base-tensor-io.ts';
import { applyAdapterFusion, saveAdapterFusion } from '../peft/adapter-fusion.ts';
import type { AdapterFusionConfig } from '../peft/bottleneck-fusion-config.ts';
import { applyBitfit, type BitfitConfig } from '../peft/bitfit.ts';
import { applyBottleneck, saveBottleneckAdapter } from '../peft/bottleneck.ts';
import type { BottleneckConfig } from '../peft/bottleneck-config.ts';
import { applyDeltaLora, DeltaLoraUpdater, saveDeltaLoraAdapter, type DeltaLoraConfig } from '../peft/delta-lora.ts';
import { PeftError } from '../peft/errors.ts';
import { applyFull, type FullConfig } from '../peft/full-finetune.ts';
import { applyIa3, saveIa3Adapter } from '../peft/ia3.ts';
import type { Ia3Config } from '../peft/ia3-config.ts';
import { applyLora } from '../peft/lora.ts';
import type { LoraConfig } from '../peft/lora-config.ts';
import { applyLoraDrop, saveLoraDropAdapter, type LoraDropConfig } from '../peft/lora-drop.ts';
import { createLoraFaOptimizer, freezeLoraA, loraFaAdapterTensors } from '../peft/lora-fa.ts';
import { loraPlusParamGroups, toParamGroups, type LoraPlusOptions } from '../peft/lora-plus.ts';
import type { AdaptedGraph, TrainableTensor } from '../peft/method.ts';
import { saveAdapter } from '../peft/peft-io.ts';
import { applySelective, type SelectiveConfig } from '../peft/selective.ts';
import { applyVera, saveVeraAdapter, type VeraConfig } from '../peft/vera.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import type { Tokenizer } from '../models/tokenizer/index.ts';
import { pTuningMethod } from '../peft/p-tuning.ts';
import { prefixTuningMethod } from '../peft/prefix-tuning.ts';
import { promptTuningMethod, type PromptTuningOptions } from '../peft/prompt-tuning.ts';
import type { PromptLearningMethod } from '../peft/virtual-tokens.ts';
import { saveFullModel } from './full-model.ts';
import { buildTrainingGraph } from './train-graph.ts';
import type { MethodTraining } from './trainer.ts';

/** A method's part of one training run, bound to the trainer's live tensors. */
export interface MethodRun extends MethodTraining {
  /** Writes the trained adapter in PEFT's format (adapter_config.json + adapter_model.safetensors, and any sidecar). */
  saveAdapter(dir: string): void;
}

export interface PreparedMethod {
  readonly peftType: string;
  /** What saveAdapter writes: a PEFT-style adapter folder, or (FULL) a whole Hugging Face model folder. */
  readonly saves: 'adapter' | 'model';
  /** The adapted training graph and its trainable tensors (initial values). */
  readonly graph: Graph;
  readonly params: readonly TrainableTensor[];
  /** For TrainerInit.method: called once with the tensors the trainer updates in place. */
  readonly bind: (live: readonly TrainableTensor[]) => MethodRun;
}

/** LoRA's optimizer variants (not adapter_config fields: PEFT has them as optimizer factories). */
export interface LoraOptimizerVariant {
  /** create_loraplus_optimizer's keyword arguments but lr (the run's). */
  readonly loraPlus?: Omit<LoraPlusOptions, 'lr'>;
  /** create_lorafa_optimizer: every lora_A frozen, B trained by the LoRA-FA optimizer. */
  readonly loraFa?: { readonly weightDecay?: number; readonly betas?: readonly [number, number] };
}

export interface PrepareMethodOptions extends LoraOptimizerVariant {
  readonly peftType: string;
  /** The method's parsed config (its parseConfig's result). */
  readonly config: { readonly peft_type: string };
  /** The base model: the method's training graph is built from it (prompt learning adds virtual tokens). */
  readonly model: LoadedModel;
  /** Its tokenizer (prompt tuning's TEXT init tokenizes the init text with it). */
  readonly tokenizer?: Tokenizer;
  readonly seed: number;
  /** The run's base learning rate (LoRA+ scales its groups from it). */
  readonly lr: number;
  /** The base model's path: base_model_name_or_path in the saved adapter_config.json; FULL copies the rest from it. */
  readonly baseModel: string;
}

/** What each method's entry gets: the options and, built on first use, the plain training graph. */
interface MethodInputs extends PrepareMethodOptions {
  readonly graph: Graph;
}

const STATE_JSON = 'method_state.json';
const STATE_TENSORS = 'method_state.safetensors';

/** A method's checkpoint state: JSON plus flat float32 tensors, next to the trainer's files. */
const writeMethodState = (dir: string, json: unknown, tensors: Readonly<Record<string, Float32Array>>): void => {
  const flat: Record<string, TensorToWrite> = {};
  for (const [k, v] of Object.entries(tensors)) flat[k] = { shape: [v.length], data: v };
  writeSafetensors(join(dir, STATE_TENSORS), flat);
  writeFileSync(join(dir, STATE_JSON), JSON.stringify(json));
};

const readMethodState = <J>(dir: string, what: string): { json: J; tensors: Map<string, Float32Array> } => {
  if (!existsSync(join(dir, STATE_JSON))) throw new PeftError(`checkpoint ${dir} has no ${STATE_JSON}: it was not written by a ${what} run`);
  return {
    json: JSON.parse(readFileSync(join(dir, STATE_JSON), 'utf8')) as J,
    tensors: new Map(readSafetensorsHeader(join(dir, STATE_TENSORS)).map((e) => [e.name, readTensorFloat32(e)])),
  };
};

const prefixed = (prefix: string, tensors: Map<string, Float32Array>): Record<string, Float32Array> =>
  Object.fromEntries([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));

const lora = (o: MethodInputs): PreparedMethod => {
  const config = o.config as LoraConfig;
  const adapted = applyLora(o.graph, config, { seed: o.seed });
  const fa = o.loraFa ? freezeLoraA(adapted) : undefined;
  const trained: AdaptedGraph = fa ?? adapted;
  return {
    peftType: 'LORA',
    saves: 'adapter',
    graph: trained.graph,
    params: trained.params,
    bind: (live) => {
      const groups = o.loraPlus ? toParamGroups(loraPlusParamGroups(live, { ...o.loraPlus, lr: o.lr }), live) : undefined;
      const settings = { ...(o.loraFa?.weightDecay !== undefined ? { weightDecay: o.loraFa.weightDecay } : {}), ...(o.loraFa?.betas ? { betas: o.loraFa.betas } : {}) };
      return {
        ...(groups ? { groups } : {}),
        ...(fa ? { optimizer: (g: readonly ParamGroup[]) => createLoraFaOptimizer(fa, config, settings, g.flatMap((x) => x.params), g) } : {}),
        saveAdapter: (dir) =>
          saveAdapter(dir, { ...config, base_model_name_or_path: o.baseModel }, fa ? loraFaAdapterTensors({ ...fa, params: live }) : live),
      };
    },
  };
};

interface AdaLoraState {
  readonly rankPattern: RankPattern | null;
}

const adalora = (o: MethodInputs): PreparedMethod => {
  const config = o.config as AdaLoraConfig;
  const adapted = applyAdalora(o.graph, config, { seed: o.seed });
  return {
    peftType: 'ADALORA',
    saves: 'adapter',
    graph: adapted.graph,
    params: adapted.params,
    bind: (live) => {
      const allocator = new AdaLoraAllocator(config, live);
      const current = new Map(live.map((p) => [p.name, p.data]));
      return {
        // PEFT: optimizer.step(); model.base_model.update_and_allocate(global_step) — masks lora_E in place.
        afterOptimizerStep: (step, grads) => void allocator.update(step, current, grads),
        checkpointState: {
          save: (dir) => {
            const s = allocator.state();
            const tensors = { ...Object.fromEntries(Object.entries(s.expAvgIpt).map(([k, v]) => [`ipt/${k}`, v])), ...Object.fromEntries(Object.entries(s.expAvgUnc).map(([k, v]) => [`unc/${k}`, v])) };
            writeMethodState(dir, { rankPattern: s.rankPattern } satisfies AdaLoraState, tensors);
          },
          load: (dir) => {
            const { json, tensors } = readMethodState<AdaLoraState>(dir, 'AdaLoRA');
            allocator.loadState({ expAvgIpt: prefixed('ipt/', tensors), expAvgUnc: prefixed('unc/', tensors), rankPattern: json.rankPattern });
          },
        },
        saveAdapter: (dir) =>
          saveAdaloraAdapter(dir, { ...config, base_model_name_or_path: o.baseModel }, live, { rankPattern: allocator.rankPattern, modules: adapted.modules }),
      };
    },
  };
};

interface DeltaLoraState {
  readonly step: number;
  readonly ratio: number;
}

const deltaLora = (o: MethodInputs): PreparedMethod => {
  const config = { ...(o.config as DeltaLoraConfig), base_model_name_or_path: o.baseModel };
  const adapted = applyDeltaLora(o.graph, config, { seed: o.seed });
  return {
    peftType: 'DELTA_LORA',
    saves: 'adapter',
    graph: adapted.graph,
    params: adapted.params,
    bind: (live) => {
      const updater = new DeltaLoraUpdater({ ...adapted, params: live }, config);
      return {
        afterOptimizerStep: updater.afterOptimizerStep,
        feeds: () => updater.feeds(),
        checkpointState: {
          save: (dir) => {
            const s = updater.state();
            writeMethodState(dir, { step: s.step, ratio: s.ratio } satisfies DeltaLoraState, s.start);
          },
          load: (dir) => {
            const { json, tensors } = readMethodState<DeltaLoraState>(dir, 'Delta-LoRA');
            updater.loadState({ ...json, start: Object.fromEntries(tensors) });
          },
        },
        saveAdapter: (dir) => saveDeltaLoraAdapter(dir, updater, live),
      };
    },
  };
};

const ia3Options = (o: MethodInputs) => ({ seed: o.seed, modelType: o.model.config.modelType });

/** A method with no optimizer or loop changes: its rewrite, and a save function over the trained tensors. */
const plain =
  <C extends { readonly peft_type: string }>(
    peftType: string,
    apply: (graph: Graph, config: C, o: MethodInputs) => AdaptedGraph,
    save: (dir: string, config: C, adapted: AdaptedGraph, o: MethodInputs) => void,
  ) =>
  (o: MethodInputs): PreparedMethod => {
    const config = { ...(o.config as C), base_model_name_or_path: o.baseModel };
    const adapted = apply(o.graph, config, o);
    return {
      peftType,
      saves: 'adapter',
      graph: adapted.graph,
      params: adapted.params,
      bind: (live) => ({ saveAdapter: (dir) => save(dir, config, { ...adapted, params: live }, o) }),
    };
  };

const full = (o: MethodInputs): PreparedMethod => {
  const config = o.config as FullConfig;
  const adapted = applyFull(o.graph);
  return {
    peftType: 'FULL',
    saves: 'model',
    graph: adapted.graph,
    params: adapted.params,
    bind: (live) => ({ saveAdapter: (dir) => void saveFullModel({ base: o.baseModel, out: dir, params: live, dtype: config.save_dtype }) }),
  };
};

/** Prompt tuning, P-tuning, prefix tuning: a training graph with virtual tokens; saved with the model's sizes, as PEFT saves. */
const promptLearning =
  <C extends { readonly peft_type: string }>(method: PromptLearningMethod<C, PromptTuningOptions>) =>
  (o: MethodInputs): PreparedMethod => {
    const config = { ...(o.config as C), base_model_name_or_path: o.baseModel };
    const graph = buildTrainingGraph(o.model, { virtualTokens: method.virtualTokens(config) });
    const init = config as { readonly prompt_tuning_init?: string; readonly prompt_tuning_init_text?: string | null };
    const text = init.prompt_tuning_init === 'TEXT' ? (init.prompt_tuning_init_text ?? undefined) : undefined;
    if (text !== undefined && !o.tokenizer) throw new PeftError(`${method.peftType}: prompt_tuning_init 'TEXT' needs the model's tokenizer`);
    const adapted = method.apply(graph, config, { seed: o.seed, ...(text !== undefined ? { initTokenIds: o.tokenizer!.encode(text) } : {}) });
    return {
      peftType: method.peftType,
      saves: 'adapter',
      graph: adapted.graph,
      params: adapted.params,
      bind: (live) => ({ saveAdapter: (dir) => method.saveAdapter(dir, config, live, o.model.config) }),
    };
  };

const PREPARE: Readonly<Record<string, (o: MethodInputs) => PreparedMethod>> = {
  LORA: lora,
  ADALORA: adalora,
  DELTA_LORA: deltaLora,
  VERA: plain<VeraConfig>('VERA', (g, c, o) => applyVera(g, c, { seed: o.seed }), (dir, c, a) => saveVeraAdapter(dir, c, { params: a.params, frozen: a.frozen ?? [] })),
  LORA_DROP: plain<LoraDropConfig>('LORA_DROP', (g, c, o) => applyLoraDrop(g, c, { seed: o.seed }), (dir, c, a) => saveLoraDropAdapter(dir, c, a.params)),
  // PEFT takes IA3's default target modules by the base's config.json model_type.
  IA3: plain<Ia3Config>('IA3', (g, c, o) => applyIa3(g, c, ia3Options(o)), (dir, c, a, o) => saveIa3Adapter(dir, c, a.params, ia3Options(o))),
  // BitFit and selective fine-tuning: the model's own tensors train; the adapter holds them under their HF names.
  BITFIT: plain<BitfitConfig>('BITFIT', (g, c, o) => applyBitfit(g, c, { seed: o.seed }), (dir, c, a) => saveTensorAdapter(dir, c as TensorAdapterConfig, a.params)),
  SELECTIVE: plain<SelectiveConfig>('SELECTIVE', (g, c) => applySelective(g, c), (dir, c, a) => saveTensorAdapter(dir, c as TensorAdapterConfig, a.params)),
  FULL: full,
  BOTTLENECK: plain<BottleneckConfig>('BOTTLENECK', (g, c, o) => applyBottleneck(g, c, { seed: o.seed }), (dir, c, a) => saveBottleneckAdapter(dir, c, a.params)),
  // Stage 2: the fused adapters (config.adapter_paths) are frozen inside the graph; only the fusion layers train.
  ADAPTER_FUSION: plain<AdapterFusionConfig>('ADAPTER_FUSION', (g, c, o) => applyAdapterFusion(g, c, { seed: o.seed }), (dir, c, a) => saveAdapterFusion(dir, c, a)),
  PROMPT_TUNING: promptLearning(promptTuningMethod),
  P_TUNING: promptLearning(pTuningMethod as PromptLearningMethod<{ readonly peft_type: string }, PromptTuningOptions>),
  PREFIX_TUNING: promptLearning(prefixTuningMethod as PromptLearningMethod<{ readonly peft_type: string }, PromptTuningOptions>),
};

/** The peft_types prepareMethod trains (every method in main/peft/registry.ts). */
export const TRAINABLE_METHODS: readonly string[] = Object.keys(PREPARE);

/** Applies the method to the training graph and says how it trains and saves. */
export const prepareMethod = (o: PrepareMethodOptions): PreparedMethod => {
  const prepare = PREPARE[o.peftType];
  if (!prepare) throw new PeftError(`peft_type '${o.peftType}' cannot be trained yet; these can: ${TRAINABLE_METHODS.join(', ')}`);
  if ((o.loraPlus || o.loraFa) && o.peftType !== 'LORA') throw new PeftError(`LoRA+ and LoRA-FA are LoRA optimizers; peft_type ${o.peftType} cannot use them`);
  let graph: Graph | undefined;
  return prepare({
    ...o,
    get graph() {
      return (graph ??= buildTrainingGraph(o.model));
    },
  });
};
