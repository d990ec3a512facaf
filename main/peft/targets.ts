// Which modules a method adapts, exactly as HF PEFT decides it (check_target_module_exists, get_pattern_key).
import type { Graph, Node } from '../engine/ir/index.ts';

export interface TargetConfig {
  /** A list of names (exact or `.`-suffix), a regex (full match) or 'all-linear'. */
  readonly target_modules?: readonly string[] | string | null;
  readonly exclude_modules?: readonly string[] | string | null;
  readonly layers_to_transform?: readonly number[] | number | null;
  readonly layers_pattern?: readonly string[] | string | null;
  readonly modules_to_save?: readonly string[] | null;
}

/**
 * A linear layer in a model graph: a Gemm(transB) node — or MatMulNBits / MatMulBnb4 for a 4-bit base — named by its
 * HF module path and reading `<name>.weight`.
 */
export interface LinearModule {
  readonly name: string;
  readonly node: Node;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

const fullMatch = (pattern: string, key: string): boolean => new RegExp(`^(?:${pattern})$`).test(key);

/** The model's linear layers (in graph order). The LM head is marked so 'all-linear' can leave it out. */
export const linearModules = (graph: Graph): LinearModule[] => {
  const out: LinearModule[] = [];
  for (const node of graph.nodes) {
    const quantized = node.op === 'MatMulNBits' || node.op === 'MatMulBnb4';
    if (!quantized && (node.op !== 'Gemm' || !node.attrs.transB)) continue;
    const weight = graph.value(node.inputs[1]!);
    if (weight.name !== `${node.name}.weight` && node.name !== 'lm_head') continue;
    const [outFeatures, inFeatures] = quantized ? [Number(node.attrs.N), Number(node.attrs.K)] : (weight.type.shape as [number, number]);
    out.push({ name: node.name, node, inFeatures, outFeatures });
  }
  return out;
};

const isExcluded = (c: TargetConfig, key: string): boolean => {
  const ex = c.exclude_modules;
  if (ex) {
    if (typeof ex === 'string' ? fullMatch(ex, key) : ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`))) return true;
  }
  return (c.modules_to_save ?? []).some((m) => new RegExp(`(^|.*\\.)${m}($|\\..*)`).test(key));
};

const layerIndex = (c: TargetConfig, key: string): number | undefined => {
  const patterns = c.layers_pattern ? (typeof c.layers_pattern === 'string' ? [c.layers_pattern] : c.layers_pattern) : [];
  const regexes = patterns.length ? patterns.map((p) => new RegExp(`^.*\\.${p}\\.(\\d+)\\.`)) : [/^.*\.[^.]*\.(\d+)\./];
  for (const r of regexes) {
    const m = r.exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
};

/** Is the module `key` adapted under `c`? (`allLinear` = the names 'all-linear' expands to.) */
export const isTargeted = (c: TargetConfig, key: string, allLinear: readonly string[]): boolean => {
  if (isExcluded(c, key)) return false;
  const t = c.target_modules;
  if (t === undefined || t === null) return false;
  if (typeof t === 'string') {
    if (t.toLowerCase() === 'all-linear') return isTargeted({ ...c, target_modules: allLinear }, key, allLinear);
    return fullMatch(t, key);
  }
  if (t.includes(key)) return true;
  let found = t.some((s) => key.endsWith(`.${s}`));
  const layers = c.layers_to_transform;
  const usingLayers = layers !== undefined && layers !== null && (typeof layers === 'number' || layers.length > 0);
  if (found && usingLayers) {
    const idx = layerIndex(c, key);
    found = idx !== undefined && (typeof layers === 'number' ? idx === layers : layers.includes(idx));
  }
  return found;
};

/** The modules of `graph` a config adapts; 'all-linear' means every linear layer's last name but the LM head's. */
export const selectTargets = (graph: Graph, c: TargetConfig): LinearModule[] => {
  const linears = linearModules(graph);
  const allLinear = [...new Set(linears.filter((m) => m.name !== 'lm_head').map((m) => m.name.split('.').pop()!))];
  return linears.filter((m) => isTargeted(c, m.name, allLinear));
};

/** rank_pattern / alpha_pattern lookup: the first pattern matching the end of the module name, as PEFT does. */
export const patternValue = <T>(patterns: Readonly<Record<string, T>> | undefined | null, key: string, fallback: T): T => {
  for (const [pattern, value] of Object.entries(patterns ?? {})) {
    if (new RegExp(`^(.*\\.)?(${pattern})$`).test(key)) return value;
  }
  return fallback;
};
