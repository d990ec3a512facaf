// The shared batched pass of side-by-side chat: the base model's generation graph with K LoRA serving slots
// (peft/serving.ts). A slot's A/B matrices and scales are graph inputs and its rank dims are symbolic, so putting
// another LoRA adapter in a slot — of any rank — swaps tensors only: no new graph, no new ORT session. A new graph
// is needed only when an adapter adapts a module the graph has no branch for, or when every slot is taken.
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { LoadedModel } from '../models/hf-folder.ts';
import { parseLoraConfig, type LoraConfig } from '../peft/lora-config.ts';
import type { TargetConfig } from '../peft/targets.ts';
import { ADAPTER_CONFIG, loadAdapterFiles, type LoadedAdapter } from '../peft/peft-io.ts';
import { adapterPeftType } from './method-adapter.ts';
import { MultiAdapterGenerator } from './multi-adapter.ts';

/** A LoRA adapter that serving slots answer exactly as LoRA's rewrite does. */
export interface ServableLora {
  readonly dir: string;
  readonly loaded: LoadedAdapter;
  readonly config: LoraConfig;
  /** The linear modules its saved tensors adapt ('model.layers.0.self_attn.q_proj', ...). */
  readonly modules: readonly string[];
}

const LORA_TENSOR = /^base_model\.model\.(.+)\.lora_[AB]\.weight$/;

/**
 * The LoRA folder as slots serve it; undefined for anything slots cannot serve (another method, DoRA, trained
 * biases, modules_to_save, PiSSA/OLoRA residuals). A folder that is no adapter at all is a PeftError naming it.
 */
export const servableLora = (dir: string): ServableLora | undefined => {
  if (adapterPeftType(dir) !== 'LORA') return undefined;
  const loaded = loadAdapterFiles(dir);
  const { config } = parseLoraConfig(loaded.config, `${dir}/${ADAPTER_CONFIG}`);
  const init = config.init_lora_weights;
  const residual = init === 'pissa' || init === 'olora' || (typeof init === 'string' && init.startsWith('pissa_niter_'));
  if (config.bias !== 'none' || config.use_dora || (config.modules_to_save?.length ?? 0) > 0 || residual) return undefined;
  const modules = new Set<string>();
  for (const key of loaded.tensors.keys()) {
    const hit = LORA_TENSOR.exec(key);
    if (hit) modules.add(hit[1]!);
  }
  return { dir, loaded, config, modules: [...modules] };
};

export interface SlotPassOptions {
  /** Slots in the graph (≥ the adapters given). */
  readonly slots: number;
  /** The adapters the graph must have branches for (each config's target modules). */
  readonly adapters: readonly ServableLora[];
  /** More target sets to give branches (a rebuilt graph keeps its predecessor's, so switching back needs none). */
  readonly targets?: readonly TargetConfig[];
  readonly session: SessionOptions;
}

export class SlotPass {
  private constructor(
    readonly generator: MultiAdapterGenerator,
    /** The target sets it was built for. */
    readonly targets: readonly TargetConfig[],
    /** Modules with a branch per slot. */
    private readonly served: ReadonlySet<string>,
  ) {}

  static async create(base: LoadedModel, o: SlotPassOptions): Promise<SlotPass> {
    const targets = [...(o.targets ?? []), ...o.adapters.map((a) => a.config)];
    // Slots stay empty here (a chat view keeps spare ones): rank-1 zeros rather than rank-0 matrices, which only
    // ORT's CPU Gemm is known to take; both add exactly nothing.
    const generator = await MultiAdapterGenerator.create(base, { slots: o.slots, targets, session: o.session, emptySlotRank: 1 });
    return new SlotPass(generator, targets, new Set(generator.serving!.modules.map((m) => m.name)));
  }

  get slots(): number {
    return this.generator.serving!.slots;
  }

  /** The modules `lora` adapts that this graph has no branch for (empty: it fits). */
  missing(lora: ServableLora): string[] {
    return lora.modules.filter((m) => !this.served.has(m));
  }

  /** Puts `lora` in `slot` (validated first: a bad adapter leaves the slot as it was). */
  load(slot: number, lora: ServableLora): void {
    this.generator.loadAdapter(slot, lora.loaded, lora.config, lora.dir);
  }

  clear(slot: number): void {
    this.generator.clearSlot(slot);
  }

  release(): Promise<void> {
    return this.generator.release();
  }
}
