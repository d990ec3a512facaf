// QLoRA (Dettmers et al. 2023): LoRA — or any method here that leaves the base linears' Gemm in place — over a
// frozen 4-bit base (NF4 with optional double quantization, or int4 blocks), embeddings and norms kept float.
// The method is applied first and the base quantized after: the rewrite finds the base Gemm by its module name
// either way, and a PiSSA/OLoRA residual is then what gets quantized, as QPiSSA does. A base already 4-bit (GGUF
// Q4 blocks through MatMulNBits) needs no quantizeBase: LoRA adapts MatMulNBits nodes directly.
import type { Graph } from '../engine/ir/index.ts';
import { quantizeBase, type QuantizeBaseOptions, type QuantizedModule } from '../engine/quant/quantize-base.ts';
import { applyLora } from './lora.ts';
import type { LoraConfig } from './lora-config.ts';
import type { AdaptedGraph, ApplyOptions, PeftMethod } from './method.ts';

export type { QuantizeBaseOptions, QuantScheme, QuantizedModule } from '../engine/quant/quantize-base.ts';

export interface QuantizedAdaptedGraph extends AdaptedGraph {
  /** The base linears now held in 4 bits, with their sizes. */
  readonly quantized: readonly QuantizedModule[];
}

/** Applies `method` and then quantizes the frozen base linears it left in place. */
export const applyWithQuantizedBase = <C>(
  method: Pick<PeftMethod<C & { readonly peft_type: string }>, 'apply'>,
  graph: Graph,
  config: C & { readonly peft_type: string },
  quant: QuantizeBaseOptions,
  o: ApplyOptions = {},
): QuantizedAdaptedGraph => {
  const adapted = method.apply(graph, config, o);
  const base = quantizeBase(adapted.graph, quant);
  return { ...adapted, graph: base.graph, quantized: base.modules };
};

/** QLoRA: LoRA over a 4-bit base. */
export const applyQlora = (graph: Graph, config: LoraConfig, quant: QuantizeBaseOptions, o: ApplyOptions = {}): QuantizedAdaptedGraph =>
  applyWithQuantizedBase({ apply: applyLora }, graph, config, quant, o);

/** `method` with a 4-bit base: same config, saved keys and optimizer groups (PEFT has no separate peft_type). */
export const withQuantizedBase = <C extends { readonly peft_type: string }>(method: PeftMethod<C>, quant: QuantizeBaseOptions): PeftMethod<C> => ({
  ...method,
  label: `${method.label} (${quant.scheme}${quant.doubleQuant ? ', double-quantized' : ''} base)`,
  apply: (graph, config, o) => applyWithQuantizedBase(method, graph, config, quant, o),
});
