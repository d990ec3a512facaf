/**
 * Static check that an emitted ONNX model only uses operators (and element types) for which
 * onnxruntime's CUDAExecutionProvider registers a kernel, per the documented kernel table
 * (data in cuda-ops.json, transcribed from onnxruntime's docs/OperatorKernels.md).
 */
import type { AttributeProto, ModelProto, NodeProto, TypeProto, ValueInfoProto } from 'onnx-buf';
import { TensorProto_DataType } from 'onnx-buf';
import cudaTable from './cuda-ops.json' with { type: 'json' };

interface Param {
  readonly name: string;
  /** A type-constraint name (e.g. "T") or a literal "tensor(int64)". */
  readonly type: string;
}
interface Signature {
  readonly inputs: readonly Param[];
  readonly outputs: readonly Param[];
}
export interface CudaKernelRange {
  readonly sinceVersion: number;
  /** null: open-ended ("N+" in the table). */
  readonly untilVersion: number | null;
  readonly typeConstraints: Readonly<Record<string, readonly string[] | undefined>>;
}
export interface CudaOp {
  readonly domain: string;
  readonly op: string;
  readonly signatures: readonly Signature[];
  readonly versions: readonly CudaKernelRange[];
}
interface CudaTable {
  readonly source: string;
  readonly ops: readonly CudaOp[];
}

const table: CudaTable = cudaTable;

/** Where the CUDA kernel table came from (repository, file, commit), for messages. */
export const cudaOpsSource: string = table.source;

export type CudaSupportIssueKind =
  | 'no-opset-import' // the node's domain has no opset import in the model
  | 'missing-op' // no CUDA kernel for (domain, op) at any version
  | 'opset-range' // CUDA kernels exist, but none covers the model's opset for the domain
  | 'type' // a tensor's element type is not in the kernel's type constraint
  | 'unknown-type'; // the element type that the op's main constraint binds could not be determined

export interface CudaSupportIssue {
  readonly kind: CudaSupportIssueKind;
  readonly node: string;
  readonly opType: string;
  readonly domain: string;
  readonly opset: number | null;
  /** Offending tensor (type / unknown-type issues). */
  readonly tensor?: string;
  /** Offending element type name, e.g. "float16" (type issues). */
  readonly type?: string;
  readonly constraint?: string;
  readonly allowed?: readonly string[];
  readonly message: string;
}

const D = TensorProto_DataType;
const TYPE_NAMES: Readonly<Record<number, string>> = {
  [D.FLOAT]: 'float', [D.UINT8]: 'uint8', [D.INT8]: 'int8', [D.UINT16]: 'uint16',
  [D.INT16]: 'int16', [D.INT32]: 'int32', [D.INT64]: 'int64', [D.STRING]: 'string',
  [D.BOOL]: 'bool', [D.FLOAT16]: 'float16', [D.DOUBLE]: 'double', [D.UINT32]: 'uint32',
  [D.UINT64]: 'uint64', [D.COMPLEX64]: 'complex64', [D.COMPLEX128]: 'complex128', [D.BFLOAT16]: 'bfloat16',
  [D.FLOAT8E4M3FN]: 'float8e4m3fn', [D.FLOAT8E4M3FNUZ]: 'float8e4m3fnuz',
  [D.FLOAT8E5M2]: 'float8e5m2', [D.FLOAT8E5M2FNUZ]: 'float8e5m2fnuz',
  [D.UINT4]: 'uint4', [D.INT4]: 'int4', [D.FLOAT4E2M1]: 'float4e2m1', [D.FLOAT8E8M0]: 'float8e8m0',
  [D.UINT2]: 'uint2', [D.INT2]: 'int2',
};

/** The kernel table's name for an ONNX TensorProto.DataType code ("float", "int64", ...). */
export const onnxTypeName = (code: number): string => TYPE_NAMES[code] ?? `dtype(${code})`;

/** "" and "ai.onnx" are the same (default) domain. */
const normDomain = (d: string): string => (d === '' || d === 'ai.onnx' ? 'ai.onnx' : d);

const OPS = new Map(table.ops.map((o) => [`${o.domain}::${o.op}`, o]));

/** The table's entry for an op, if CUDA implements it at any version. */
export const cudaOp = (domain: string, op: string): CudaOp | undefined => OPS.get(`${normDomain(domain)}::${op}`);

/** The CUDA kernel range covering `opset` (the latest one when ranges overlap). */
export const cudaKernelFor = (op: CudaOp, opset: number): CudaKernelRange | undefined =>
  op.versions
    .filter((v) => v.sinceVersion <= opset && (v.untilVersion === null || opset <= v.untilVersion))
    .sort((a, b) => b.sinceVersion - a.sinceVersion)[0];

/** Ops that onnxruntime resolves while loading the graph (Constant becomes an initializer); no EP runs them. */
const LOAD_TIME_OPS = new Set(['ai.onnx::Constant']);

const LITERAL = /^tensor\((\w+)\)$/;

const typeOf = (t: TypeProto | undefined): string | undefined => {
  if (t?.value.case === 'tensorType') return t.value.value.elemType ? onnxTypeName(t.value.value.elemType) : undefined;
  if (t?.value.case === 'sequenceType') {
    const inner = typeOf(t.value.value.elemType);
    return inner === undefined ? undefined : `seq(${inner})`;
  }
  return undefined;
};

const attr = (n: NodeProto, name: string): AttributeProto | undefined => n.attribute.find((a) => a.name === name);

/** Output element types fixed by an attribute (or an input) rather than by the op's type constraints. */
const specialOutput = (n: NodeProto, env: ReadonlyMap<string, string>): string | undefined => {
  const code = (name: string): string | undefined => {
    const a = attr(n, name);
    return a ? onnxTypeName(Number(a.i)) : undefined;
  };
  switch (n.opType) {
    case 'Constant': {
      for (const a of n.attribute) {
        if (a.name === 'value' && a.t) return onnxTypeName(a.t.dataType);
        if (a.name === 'value_float' || a.name === 'value_floats') return 'float';
        if (a.name === 'value_int' || a.name === 'value_ints') return 'int64';
        if (a.name === 'value_string' || a.name === 'value_strings') return 'string';
      }
      return undefined;
    }
    case 'Cast':
      return code('to');
    case 'CastLike':
      return env.get(n.input[1] ?? '');
    case 'ConstantOfShape': {
      const t = attr(n, 'value')?.t;
      return t ? onnxTypeName(t.dataType) : 'float';
    }
    case 'RandomNormal':
    case 'RandomUniform':
      return code('dtype') ?? 'float';
    case 'EyeLike':
    case 'RandomNormalLike':
    case 'RandomUniformLike':
      return code('dtype') ?? env.get(n.input[0] ?? '');
    default:
      return undefined;
  }
};

interface Binding {
  readonly tensor: string;
  readonly param: Param;
  readonly isInput: boolean;
}

/** Binds tensor names to params by position; extra names bind to the last (variadic) param. Empty names are skipped. */
const bind = (params: readonly Param[], names: readonly string[], isInput: boolean): Binding[] =>
  params.length === 0
    ? []
    : names.flatMap((tensor, i) =>
        tensor === '' ? [] : [{ tensor, param: params[Math.min(i, params.length - 1)]!, isInput }],
      );

/** The table's alternative signature that best matches this kernel range and node. */
const pickSignature = (op: CudaOp, range: CudaKernelRange, n: NodeProto): Signature | undefined => {
  let best: Signature | undefined;
  let bestScore = -Infinity;
  for (const sig of op.signatures) {
    const params = [...sig.inputs, ...sig.outputs];
    const unlisted = params.filter((p) => !LITERAL.test(p.type) && range.typeConstraints[p.type] === undefined).length;
    const short = (sig.inputs.length < n.input.length ? 1 : 0) + (sig.outputs.length < n.output.length ? 1 : 0);
    const score = -10 * unlisted - short;
    if (score > bestScore) [best, bestScore] = [sig, score];
  }
  return best;
};

const allowedFor = (param: Param, range: CudaKernelRange): readonly string[] | undefined => {
  const lit = LITERAL.exec(param.type);
  return lit ? [lit[1]!] : range.typeConstraints[param.type];
};

/** Types every value of the main graph (inputs, initializers, value_info, outputs). */
const initialTypes = (model: ModelProto): Map<string, string> => {
  const env = new Map<string, string>();
  const g = model.graph;
  if (!g) return env;
  const add = (v: ValueInfoProto): void => {
    const t = typeOf(v.type);
    if (t !== undefined) env.set(v.name, t);
  };
  [...g.input, ...g.valueInfo, ...g.output].forEach(add);
  for (const init of g.initializer) if (init.dataType) env.set(init.name, onnxTypeName(init.dataType));
  return env;
};

/**
 * Every node of the model's main graph whose (domain, op) has no CUDAExecutionProvider kernel at the
 * model's opset for that domain, or whose tensors have element types outside the kernel's type constraints.
 * Pure: reads the model only.
 */
export const checkCudaSupport = (model: ModelProto): CudaSupportIssue[] => {
  const opsets = new Map<string, number>();
  for (const o of model.opsetImport) opsets.set(normDomain(o.domain), Number(o.version));
  const env = initialTypes(model);
  const issues: CudaSupportIssue[] = [];

  (model.graph?.node ?? []).forEach((n, index) => {
    const domain = normDomain(n.domain);
    const opset = opsets.get(domain) ?? null;
    const nodeName = n.name || `#${index}`;
    const where = `node '${nodeName}' (${domain}::${n.opType}, opset ${opset ?? '?'})`;
    const issue = (kind: CudaSupportIssueKind, what: string, extra: Partial<CudaSupportIssue> = {}): void => {
      const message = `${where}: ${what} [${cudaOpsSource}]`;
      issues.push({ kind, node: nodeName, opType: n.opType, domain, opset, ...extra, message });
    };
    const op = cudaOp(domain, n.opType);
    const range = op && opset !== null ? cudaKernelFor(op, opset) : undefined;
    // For type inference only, an op outside its kernel ranges is read with its newest kernel.
    const typing = range ?? op?.versions[0];
    const sig = op && typing ? pickSignature(op, typing, n) : undefined;
    const bindings = sig ? [...bind(sig.inputs, n.input, true), ...bind(sig.outputs, n.output, false)] : [];

    // Types of this node's outputs, for its own checks and later nodes (value_info wins when present).
    const firstTyped = n.input.map((i) => env.get(i)).find((t) => t !== undefined);
    n.output.forEach((out, i) => {
      if (out === '' || env.has(out)) return;
      const t =
        (i === 0 ? specialOutput(n, env) : undefined) ??
        (typing ? fromConstraint(out, typing, bindings, env) : undefined) ??
        (i === 0 && !op ? firstTyped : undefined); // unknown op: assume elementwise
      if (t !== undefined) env.set(out, t);
    });

    if (!LOAD_TIME_OPS.has(`${domain}::${n.opType}`)) {
      if (opset === null) issue('no-opset-import', `the model imports no opset for domain '${domain}'`);
      else if (!op) issue('missing-op', 'CUDAExecutionProvider has no kernel for this op');
      else if (!range) {
        const have = op.versions.map(({ sinceVersion: a, untilVersion: b }) =>
          b === null ? `${a}+` : a === b ? `${a}` : `[${a}, ${b}]`,
        );
        issue('opset-range', `CUDAExecutionProvider has kernels only for opset ${have.join(', ')}`);
      } else checkTypes(range, bindings, env, issue);
    }
  });
  return issues;
};

type IssueFn = (kind: CudaSupportIssueKind, what: string, extra?: Partial<CudaSupportIssue>) => void;

const checkTypes = (
  range: CudaKernelRange,
  bindings: readonly Binding[],
  env: ReadonlyMap<string, string>,
  issue: IssueFn,
): void => {
  const seen = new Set<string>(); // one issue per (constraint, type) per node
  for (const b of bindings) {
    const allowed = allowedFor(b.param, range);
    const t = env.get(b.tensor);
    if (!allowed || t === undefined || allowed.includes(t) || seen.has(`${b.param.type}:${t}`)) continue;
    seen.add(`${b.param.type}:${t}`);
    const role = `${b.isInput ? 'input' : 'output'} '${b.param.name}'`;
    issue('type', `${role} '${b.tensor}' has type ${t}, not in ${b.param.type} = {${allowed.join(', ')}}`, {
      tensor: b.tensor,
      type: t,
      constraint: b.param.type,
      allowed,
    });
  }
  // The main constraint (that of the first input, else the first output) must be checkable.
  const main = bindings.find((b) => b.isInput) ?? bindings[0];
  if (!main || !allowedFor(main.param, range)) return;
  const same = bindings.filter((b) => b.param.type === main.param.type);
  if (same.every((b) => env.get(b.tensor) === undefined)) {
    issue('unknown-type', `cannot determine the type bound to ${main.param.type} (tensor '${main.tensor}')`, {
      tensor: main.tensor,
      constraint: main.param.type,
    });
  }
};

/** An output's type from its constraint: a literal, the type of an input with the same constraint, or a sole allowed type. */
const fromConstraint = (
  out: string,
  range: CudaKernelRange,
  bindings: readonly Binding[],
  env: ReadonlyMap<string, string>,
): string | undefined => {
  const b = bindings.find((x) => !x.isInput && x.tensor === out);
  if (!b) return undefined;
  const lit = LITERAL.exec(b.param.type);
  if (lit) return lit[1];
  const viaInput = bindings.find((x) => x.isInput && x.param.type === b.param.type && env.has(x.tensor));
  if (viaInput) return env.get(viaInput.tensor);
  const allowed = range.typeConstraints[b.param.type];
  return allowed?.length === 1 ? allowed[0] : undefined;
};
