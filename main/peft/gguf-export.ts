// The weight side of exporting a LoRA adapter for llama.cpp: llama.cpp has ONE adapter.lora.alpha per file and
// scales each module by alpha / rank, so rsLoRA (α/√r) and per-module rank_pattern / alpha_pattern scales are
// folded into B where they differ from that. DoRA and trained base tensors have no place in a llama.cpp adapter
// (export a merged model instead). File format, names and the Q/K permutation live in models/export/gguf-lora.ts.
import { PeftError } from './errors.ts';
import type { LoraAdapterWeights, LoraModule } from './merge.ts';

export interface LlamaCppLora {
  readonly alpha: number;
  /** A as PEFT has it; B times s_module / (alpha / r_module) where those differ. */
  readonly modules: readonly LoraModule[];
}

export const llamaCppLora = (adapter: LoraAdapterWeights): LlamaCppLora => {
  const dora = adapter.modules.find((m) => m.magnitude);
  if (dora) throw new PeftError(`${adapter.source}: '${dora.module}' is DoRA, which llama.cpp adapters cannot express; export a merged model`);
  const extra = adapter.replaced[0];
  if (extra) {
    throw new PeftError(`${adapter.source}: the adapter trains '${extra.name}' itself (bias / modules_to_save); llama.cpp adapters hold LoRA pairs only — export a merged model`);
  }
  if (adapter.modules.length === 0) throw new PeftError(`${adapter.source}: the adapter has no LoRA modules`);
  const { config } = adapter;
  const uniform = new Set(adapter.modules.map((m) => `${m.r}/${m.alpha}`)).size === 1;
  const first = adapter.modules[0]!;
  // With one rank and alpha everywhere the file's alpha carries the scale exactly and B stays bit-identical.
  const [alphaOf, rankOf] = uniform ? [first.alpha, first.r] : [config.lora_alpha, config.r];
  const alpha = config.use_rslora ? alphaOf * Math.sqrt(rankOf) : alphaOf;
  const fileAlpha = Math.fround(alpha);
  const modules = adapter.modules.map((m) => {
    const factor = m.scale / (fileAlpha / m.r);
    if (Math.abs(factor - 1) < 1e-7) return m;
    return { ...m, b: Float32Array.from(m.b, (v) => v * factor), scale: fileAlpha / m.r };
  });
  return { alpha: fileAlpha, modules };
};
