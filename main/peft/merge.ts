// Merging a LoRA adapter into its base weights and taking it out again, as PEFT's merge / unmerge do, on plain
// Float32Arrays keyed by Hugging Face tensor names (this layer never imports a model):
//   LoRA / rsLoRA, rank_pattern and alpha_pattern:  W' = W + s·B·A   (s = α/r, rsLoRA α/√r; per-module r and α)
//   DoRA:  W' = (m / ‖W + s·B·A‖_row) ⊙ (W + s·B·A); unmerging needs the row norms the merge used (MergeRecord)
//   trained base biases (bias='all'/'lora_only') and modules_to_save copies: the trained tensor replaces the base's.
import { PeftError } from './errors.ts';
import type { LoadedAdapter } from './peft-io.ts';
import { parseLoraConfig, pissaIterations, type LoraConfig } from './lora-config.ts';
import { patternValue } from './targets.ts';

/** One adapted linear module: W (out, in) gets s·B·A with A (r, in) and B (out, r). */
export interface LoraModule {
  /** HF module name, e.g. `model.layers.3.self_attn.q_proj`; its weight is `<module>.weight`. */
  readonly module: string;
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly a: Float32Array;
  readonly b: Float32Array;
  /** DoRA's magnitude (out,). */
  readonly magnitude?: Float32Array;
  /** The base weight PEFT saved with the adapter (`<module>.base_layer.weight`, when it saves embedding layers). */
  readonly baseWeight?: Float32Array;
}

/** A base tensor an adapter replaces outright (a trained bias, a modules_to_save copy), by HF tensor name. */
export interface ReplacedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** An adapter as weight math sees it: per-module A/B with their scales, plus the tensors it replaces. */
export interface LoraAdapterWeights {
  readonly config: LoraConfig;
  readonly modules: readonly LoraModule[];
  readonly replaced: readonly ReplacedTensor[];
  /** Where it came from (a folder), for messages. */
  readonly source: string;
  readonly warnings: readonly string[];
}

export interface AdapterReadOptions {
  /**
   * PiSSA / OLoRA adapters were trained against a residual base (W − s·B₀·A₀): merging them onto the original
   * checkpoint is wrong. Set this when the weights you merge into are that residual.
   */
  readonly residualBase?: boolean;
}

const PREFIX = 'base_model.model.';
const scaleOf = (config: LoraConfig, alpha: number, r: number): number => (config.use_rslora ? alpha / Math.sqrt(r) : alpha / r);

/**
 * Reads a PEFT LoRA adapter (adapter_config.json + tensors by saved key) into per-module A/B and replacements.
 * Every tensor must be accounted for; shapes are checked against each other and the rank the config implies.
 */
export const loraAdapterWeights = (loaded: LoadedAdapter, o: AdapterReadOptions = {}): LoraAdapterWeights => {
  const where = loaded.dir;
  if (loaded.config.peft_type !== 'LORA') {
    throw new PeftError(`${where}: peft_type '${String(loaded.config.peft_type)}' cannot be merged here (LoRA adapters only)`);
  }
  const { config, warnings } = parseLoraConfig(loaded.config, `${where}/adapter_config.json`);
  const init = config.init_lora_weights;
  if (!o.residualBase && (init === 'pissa' || init === 'olora' || pissaIterations(init) !== undefined)) {
    throw new PeftError(
      `${where}: init_lora_weights='${String(init)}' adapters are relative to a residual base, not the original checkpoint; ` +
        'merge them into that residual (residualBase) or convert the adapter to plain LoRA first',
    );
  }
  type Parts = { a?: Float32Array; aShape?: readonly number[]; b?: Float32Array; bShape?: readonly number[]; m?: Float32Array; w?: Float32Array };
  const parts = new Map<string, Parts>();
  const replaced: ReplacedTensor[] = [];
  for (const [key, t] of loaded.tensors) {
    if (!key.startsWith(PREFIX)) throw new PeftError(`${where}: tensor '${key}' is not a PEFT key (no '${PREFIX}' prefix)`);
    const rest = key.slice(PREFIX.length);
    const lora = /^(.+)\.(lora_A|lora_B)\.weight$/.exec(rest);
    const magnitude = /^(.+)\.lora_magnitude_vector$/.exec(rest);
    const baseLayer = /^(.+)\.base_layer\.weight$/.exec(rest);
    if (baseLayer) {
      // save_embedding_layers: the (possibly resized) base weight of an adapted LM head or embedding.
      parts.set(baseLayer[1]!, Object.assign(parts.get(baseLayer[1]!) ?? {}, { w: t.data }));
    } else if (lora) {
      const p = parts.get(lora[1]!) ?? {};
      if (lora[2] === 'lora_A') Object.assign(p, { a: t.data, aShape: t.shape });
      else Object.assign(p, { b: t.data, bShape: t.shape });
      parts.set(lora[1]!, p);
    } else if (magnitude) {
      const p = parts.get(magnitude[1]!) ?? {};
      parts.set(magnitude[1]!, Object.assign(p, { m: t.data }));
    } else if (/\.lora_(embedding_)?[A-Za-z_]+/.test(rest)) {
      throw new PeftError(`${where}: tensor '${key}' is a LoRA part this version cannot merge (embedding LoRA?)`);
    } else if (/\.(weight|bias)$/.test(rest)) {
      replaced.push({ name: rest.replace(/\.base_layer\.bias$/, '.bias'), shape: t.shape, data: t.data });
    } else {
      throw new PeftError(`${where}: tensor '${key}' is neither a LoRA matrix nor a base tensor`);
    }
  }
  const modules: LoraModule[] = [];
  for (const [module, p] of parts) {
    const miss = !p.a ? 'lora_A' : !p.b ? 'lora_B' : undefined;
    if (miss) throw new PeftError(`${where}: module '${module}' has no ${miss} tensor`);
    const [r, inFeatures] = p.aShape as [number, number];
    const [outFeatures, rB] = p.bShape as [number, number];
    if (p.aShape!.length !== 2 || p.bShape!.length !== 2 || rB !== r) {
      throw new PeftError(`${where}: '${module}': lora_A [${p.aShape!.join(', ')}] and lora_B [${p.bShape!.join(', ')}] do not pair up`);
    }
    const rank = patternValue(config.rank_pattern, module, config.r);
    if (rank !== r) throw new PeftError(`${where}: '${module}' has rank ${r}, adapter_config.json implies ${rank}`);
    if (p.m && p.m.length !== outFeatures) throw new PeftError(`${where}: '${module}.lora_magnitude_vector' has ${p.m.length} values, the module ${outFeatures} outputs`);
    if (config.use_dora && !p.m) throw new PeftError(`${where}: use_dora is set but '${module}' has no lora_magnitude_vector`);
    if (p.w && p.w.length !== outFeatures * inFeatures) throw new PeftError(`${where}: '${module}.base_layer.weight' does not fit lora_A/lora_B`);
    const alpha = patternValue(config.alpha_pattern, module, config.lora_alpha);
    modules.push({
      module, r, alpha, scale: scaleOf(config, alpha, r), inFeatures, outFeatures, a: p.a!, b: p.b!,
      ...(p.m ? { magnitude: p.m } : {}),
      ...(p.w ? { baseWeight: p.w } : {}),
    });
  }
  return { config, modules, replaced, source: where, warnings };
};

/** s·B·A (out, in) in float64 sums, rounded once to float32. */
export const deltaWeight = (m: Pick<LoraModule, 'a' | 'b' | 'r' | 'scale' | 'inFeatures' | 'outFeatures'>): Float32Array => {
  const { a, b, r, inFeatures: n, outFeatures: out } = m;
  const delta = new Float32Array(out * n);
  const row = new Float64Array(n);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k]!;
      if (bk === 0) continue;
      const ak = k * n;
      for (let i = 0; i < n; i++) row[i]! += bk * a[ak + i]!;
    }
    for (let i = 0; i < n; i++) delta[o * n + i] = m.scale * row[i]!;
  }
  return delta;
};

const checkWeight = (w: Float32Array, m: LoraModule): void => {
  if (w.length !== m.outFeatures * m.inFeatures) {
    throw new PeftError(`'${m.module}.weight' has ${w.length} values; the adapter needs (${m.outFeatures}, ${m.inFeatures})`);
  }
};

/** W + s·B·A (DoRA: rescaled by m/‖·‖ per row), as a new array; `norms` are the DoRA row norms it used. */
export const mergeModule = (w: Float32Array, m: LoraModule): { values: Float32Array; norms?: Float32Array } => {
  checkWeight(w, m);
  const delta = deltaWeight(m);
  const values = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) values[i] = w[i]! + delta[i]!;
  if (!m.magnitude) return { values };
  const n = m.inFeatures;
  const norms = new Float32Array(m.outFeatures);
  for (let o = 0; o < m.outFeatures; o++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[o * n + i]! ** 2;
    norms[o] = Math.sqrt(sum);
    const factor = Math.fround(m.magnitude[o]! / norms[o]!);
    for (let i = 0; i < n; i++) values[o * n + i] = factor * values[o * n + i]!;
  }
  return { values, norms };
};

/** The inverse of mergeModule: W' − s·B·A (DoRA: W'·‖·‖/m − s·B·A with the norms the merge used). */
export const unmergeModule = (merged: Float32Array, m: LoraModule, norms?: Float32Array): Float32Array => {
  checkWeight(merged, m);
  const delta = deltaWeight(m);
  const out = new Float32Array(merged.length);
  const n = m.inFeatures;
  if (m.magnitude && !norms) throw new PeftError(`'${m.module}': unmerging DoRA needs the row norms its merge used`);
  for (let o = 0; o < m.outFeatures; o++) {
    const factor = m.magnitude ? Math.fround(m.magnitude[o]! / norms![o]!) : 1;
    for (let i = 0; i < n; i++) out[o * n + i] = merged[o * n + i]! / factor - delta[o * n + i]!;
  }
  return out;
};

/** What a merge did that its unmerge needs: DoRA row norms, and the base values of replaced tensors. */
export interface MergeRecord {
  readonly doraNorms: ReadonlyMap<string, Float32Array>;
  readonly replacedBase: ReadonlyMap<string, Float32Array>;
}

/** Tensor name → what the adapter does to it. */
export type TensorChange = { readonly kind: 'lora'; readonly module: LoraModule } | { readonly kind: 'replace'; readonly tensor: ReplacedTensor };

/** Every base tensor the adapter changes, by HF tensor name. Two changes to one tensor are an error. */
export const adapterChanges = (adapter: LoraAdapterWeights): ReadonlyMap<string, TensorChange> => {
  const changes = new Map<string, TensorChange>();
  const put = (name: string, c: TensorChange): void => {
    if (changes.has(name)) throw new PeftError(`${adapter.source}: '${name}' is both LoRA-adapted and replaced by a trained copy`);
    changes.set(name, c);
  };
  for (const m of adapter.modules) put(`${m.module}.weight`, { kind: 'lora', module: m });
  for (const t of adapter.replaced) put(t.name, { kind: 'replace', tensor: t });
  return changes;
};

/**
 * One tensor after the merge, or undefined when the adapter leaves it as it is. `base` are its values as the
 * model has them (float32); a replaced tensor's shape is checked against them.
 */
export const mergedTensor = (change: TensorChange, name: string, base: Float32Array): { values: Float32Array; norms?: Float32Array } => {
  if (change.kind === 'lora') {
    const saved = change.module.baseWeight;
    if (saved && saved.length !== base.length) throw new PeftError(`'${name}': the adapter's saved base weight has ${saved.length} values, the model's ${base.length}`);
    return mergeModule(saved ?? base, change.module);
  }
  if (change.tensor.data.length !== base.length) {
    throw new PeftError(`'${name}': the adapter's trained copy has ${change.tensor.data.length} values, the base tensor ${base.length}`);
  }
  return { values: Float32Array.from(change.tensor.data) };
};

/** Merges an adapter into a set of base tensors; returns the changed tensors (new arrays) and the record. */
export const mergeWeights = (
  weights: ReadonlyMap<string, Float32Array>,
  adapter: LoraAdapterWeights,
): { weights: Map<string, Float32Array>; record: MergeRecord } => {
  const out = new Map(weights);
  const doraNorms = new Map<string, Float32Array>();
  const replacedBase = new Map<string, Float32Array>();
  for (const [name, change] of adapterChanges(adapter)) {
    const base = weights.get(name);
    if (!base) throw new PeftError(`${adapter.source}: the adapter changes '${name}', which the base model does not have`);
    const { values, norms } = mergedTensor(change, name, base);
    out.set(name, values);
    if (norms) doraNorms.set(name, norms);
    if (change.kind === 'replace') replacedBase.set(name, base);
  }
  return { weights: out, record: { doraNorms, replacedBase } };
};

/** Takes a merged adapter out again: the base tensors come back within float32 rounding (replaced ones exactly). */
export const unmergeWeights = (
  merged: ReadonlyMap<string, Float32Array>,
  adapter: LoraAdapterWeights,
  record: MergeRecord,
): Map<string, Float32Array> => {
  const out = new Map(merged);
  for (const [name, change] of adapterChanges(adapter)) {
    const values = merged.get(name);
    if (!values) throw new PeftError(`${adapter.source}: '${name}' is missing from the merged weights`);
    if (change.kind === 'replace') {
      const base = record.replacedBase.get(name);
      if (!base) throw new PeftError(`'${name}' was replaced by the adapter; its base values are not in the merge record`);
      out.set(name, base);
    } else {
      out.set(name, unmergeModule(values, change.module, record.doraNorms.get(name)));
    }
  }
  return out;
};
