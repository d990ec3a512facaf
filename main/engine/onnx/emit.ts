import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
// Importing the IR's index registers the whole op set, which any graph given here may use.
import { getOp, normDim, onnxDtypeCode, type EmitCtx, type Graph, type Node } from '../ir/index.ts';
import type { AttrValue, Attrs, DType, Dim, InitializerData, Shape, TensorType, TypedArray } from '../ir/types.ts';
import { prune } from './prune.ts';

type NodeInit = MessageInitShape<typeof NodeProtoSchema>;

export const OPSET = 21;
const IR_VERSION = 10n;

export interface EmitOptions {
  readonly graphName?: string;
  /** Location written for an external initializer's file (relative to where the model file will live). */
  readonly externalLocation?: (file: string) => string;
  /** Write value_info for intermediate values (types for tools and checks). Default true. */
  readonly valueInfo?: boolean;
}

export interface EmittedModel {
  readonly proto: ModelProto;
  readonly bytes: Uint8Array;
  /** Files that external initializers point into. */
  readonly externalFiles: readonly string[];
}

export class EmitError extends Error {
  override readonly name = 'EmitError';
}

const tensorType = (t: TensorType): ReturnType<typeof create<typeof TypeProtoSchema>> =>
  create(TypeProtoSchema, {
    value: {
      case: 'tensorType',
      value: create(TypeProto_TensorSchema, {
        elemType: onnxDtypeCode(t.dtype),
        shape: create(TensorShapeProtoSchema, {
          dim: t.shape.map((d) =>
            create(TensorShapeProto_DimensionSchema, {
              value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
            }),
          ),
        }),
      }),
    },
  });

const valueInfo = (name: string, t: TensorType): ValueInfoProto => create(ValueInfoProtoSchema, { name, type: tensorType(t) });

const bytesOf = (data: TypedArray): Uint8Array<ArrayBuffer> =>
  new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);

const tensorProto = (name: string, t: TensorType, init: InitializerData, location: (f: string) => string): TensorProto => {
  const dims = t.shape.map((d) => {
    if (typeof d !== 'number') throw new EmitError(`initializer '${name}' has a symbolic dim '${d}'`);
    return BigInt(d);
  });
  const base = { name, dims, dataType: onnxDtypeCode(t.dtype) };
  if (init.kind === 'inline') return create(TensorProtoSchema, { ...base, rawData: bytesOf(init.data) });
  const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
  return create(TensorProtoSchema, {
    ...base,
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      entry('location', location(init.file)),
      entry('offset', String(init.offset)),
      entry('length', String(init.length)),
    ],
  });
};

const attribute = (name: string, v: AttrValue, floats: readonly string[]): AttributeProto => {
  const T = AttributeProto_AttributeType;
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === 'boolean') return create(AttributeProtoSchema, { name, type: T.INT, i: v ? 1n : 0n });
  if (typeof v === 'number') {
    return floats.includes(name)
      ? create(AttributeProtoSchema, { name, type: T.FLOAT, f: v })
      : create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) });
  }
  if (v.length > 0 && typeof v[0] === 'string') {
    return create(AttributeProtoSchema, {
      name,
      type: T.STRINGS,
      strings: (v as readonly string[]).map((s) => new TextEncoder().encode(s)),
    });
  }
  const nums = v as readonly number[];
  return floats.includes(name)
    ? create(AttributeProtoSchema, { name, type: T.FLOATS, floats: [...nums] })
    : create(AttributeProtoSchema, { name, type: T.INTS, ints: nums.map((n) => BigInt(n)) });
};

/** Emits one ONNX model (opset 21) for a graph; unused nodes and initializers are pruned first. */
export const emitOnnx = (input: Graph, o: EmitOptions = {}): EmittedModel => {
  const graph = prune(input);
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const names = new Set([...graph.values.values()].map((v) => v.name));
  const fresh = (hint: string): string => {
    let n = hint;
    for (let i = 1; names.has(n); i++) n = `${hint}_${i}`;
    names.add(n);
    return n;
  };
  const constCache = new Map<string, string>();
  const constant = (key: string, hint: string, make: (name: string) => TensorProto): string => {
    let name = constCache.get(key);
    if (!name) {
      name = fresh(hint);
      constCache.set(key, name);
      initializers.push(make(name));
    }
    return name;
  };
  const int64s = (values: readonly number[]): string => {
    for (const v of values) {
      if (!Number.isSafeInteger(v)) throw new EmitError(`int64 constant ${v} is not a safe integer (node attribute out of range)`);
    }
    return int64Const(values);
  };
  const int64Const = (values: readonly number[]): string =>
    constant(`i64:${values.join(',')}`, `const.i64.[${values.join(',')}]`, (name) =>
      create(TensorProtoSchema, {
        name,
        dims: [BigInt(values.length)],
        dataType: onnxDtypeCode('int64'),
        rawData: bytesOf(new BigInt64Array(values.map((v) => BigInt(v)))),
      }),
    );
  const scalar = (value: number, dtype: DType): string =>
    constant(`s:${dtype}:${value}`, `const.${dtype}.${value}`, (name) =>
      create(TensorProtoSchema, { name, dims: [], dataType: onnxDtypeCode(dtype), rawData: scalarBytes(value, dtype) }),
    );
  const pushNode = (n: NodeInit): void => {
    nodes.push(create(NodeProtoSchema, n));
  };
  const dims = new SymbolResolver(graph, { int64s, fresh, pushNode });

  for (const node of graph.nodes) {
    const def = getOp(node.op);
    const ctx: EmitCtx = {
      node,
      inputs: node.inputs.map((i) => graph.value(i).name),
      outputs: node.outputs.map((i) => graph.value(i).name),
      inputTypes: node.inputs.map((i) => graph.value(i).type),
      outputTypes: node.outputs.map((i) => graph.value(i).type),
      add: (opType, ins, outs, attrs = {}, opts = {}) =>
        pushNode({
          name: fresh(`${node.name}/${opType}`),
          opType,
          domain: opts.domain ?? '',
          input: [...ins],
          output: [...outs],
          attribute: Object.entries(attrs)
            .filter((e): e is [string, AttrValue] => e[1] !== undefined)
            .map(([k, v]) => attribute(k, v, opts.floats ?? [])),
        }),
      tmp: (hint) => fresh(`${node.name}/${hint}`),
      int64s,
      scalar,
      shape: (d) => dims.shape(d),
    };
    if (def.emit) def.emit(ctx);
    else emitDefault(ctx, node, def.onnxType ?? def.type, def.irOnlyAttrs ?? [], def.floatAttrs ?? [], def.domain);
  }

  const location = o.externalLocation ?? ((f: string) => f);
  const externalFiles = new Set<string>();
  for (const [id, init] of graph.initializers) {
    const v = graph.value(id);
    if (init.kind === 'external') externalFiles.add(init.file);
    initializers.push(tensorProto(v.name, v.type, init, location));
  }
  const isBoundary = new Set([...graph.inputs, ...graph.outputs, ...graph.initializers.keys()]);
  const proto = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: 'peft-studio',
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET) }),
      create(OperatorSetIdProtoSchema, { domain: 'com.microsoft', version: 1n }),
    ],
    graph: create(GraphProtoSchema, {
      name: o.graphName ?? 'peft_studio',
      node: nodes,
      initializer: initializers,
      input: graph.inputs.map((id) => valueInfo(graph.value(id).name, graph.value(id).type)),
      output: graph.outputs.map((id) => valueInfo(graph.value(id).name, graph.value(id).type)),
      valueInfo:
        o.valueInfo === false
          ? []
          : [...graph.values.values()].filter((v) => !isBoundary.has(v.id)).map((v) => valueInfo(v.name, v.type)),
    }),
  });
  return { proto, bytes: toBinary(ModelProtoSchema, proto), externalFiles: [...externalFiles] };
};

const emitDefault = (
  e: EmitCtx,
  node: Node,
  opType: string,
  irOnly: readonly string[],
  floats: readonly string[],
  domain: string | undefined,
): void => {
  const attrs: Record<string, AttrValue> = {};
  for (const [k, v] of Object.entries(node.attrs as Attrs)) if (v !== undefined && !irOnly.includes(k)) attrs[k] = v;
  e.add(opType, e.inputs, e.outputs, attrs, { floats, ...(domain ? { domain } : {}) });
};

const scalarBytes = (value: number, dtype: DType): Uint8Array<ArrayBuffer> => {
  switch (dtype) {
    case 'float32':
      return bytesOf(new Float32Array([value]));
    case 'float64':
      return bytesOf(new Float64Array([value]));
    case 'float16':
      return bytesOf(new Uint16Array([float16Bits(value)]));
    case 'int64':
      return bytesOf(new BigInt64Array([BigInt(value)]));
    case 'int32':
      return bytesOf(new Int32Array([value]));
    case 'bool':
    case 'uint8':
      return new Uint8Array([value]);
    default:
      throw new EmitError(`no scalar constant of dtype ${dtype}`);
  }
};

/** IEEE 754 binary16 bits of a number (round to nearest even). */
export const float16Bits = (value: number): number => {
  const f32 = new Float32Array([value]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
};

interface ResolverDeps {
  int64s(values: readonly number[]): string;
  fresh(hint: string): string;
  pushNode(n: NodeInit): void;
}

/** Turns (possibly symbolic) dims into int64 tensors, reading symbols from the graph inputs' shapes. */
class SymbolResolver {
  private readonly source = new Map<string, { input: string; axis: number }>();
  private readonly cache = new Map<string, string>();

  constructor(
    graph: Graph,
    private readonly deps: ResolverDeps,
  ) {
    for (const id of graph.inputs) {
      const v = graph.value(id);
      v.type.shape.forEach((d, axis) => {
        if (typeof d === 'string' && !this.source.has(d)) this.source.set(d, { input: v.name, axis });
      });
    }
  }

  shape(dims: Shape): string {
    if (dims.every((d) => typeof d === 'number')) return this.deps.int64s(dims as number[]);
    const key = dims.map((d) => normDim(d)).join(',');
    const hit = this.cache.get(key);
    if (hit) return hit;
    const parts = dims.map((d) => (typeof d === 'number' ? this.deps.int64s([d]) : this.dim(d)));
    const out = this.node('Concat', parts, 'shape', [attribute('axis', 0, [])]);
    this.cache.set(key, out);
    return out;
  }

  /** A 1-element int64 tensor holding a symbolic dim such as `batch*seq` or `2*(seq-1)`. */
  private dim(d: Dim): string {
    const key = `dim:${normDim(d)}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let out: string | undefined;
    for (const factor of String(normDim(d)).split('*')) {
      const term = /^\d+$/.test(factor) ? this.deps.int64s([Number(factor)]) : this.atom(factor);
      out = out === undefined ? term : this.node('Mul', [out, term], 'dim');
    }
    this.cache.set(key, out!);
    return out!;
  }

  private atom(sym: string): string {
    const sum = /^\(([^()]+\+[^()]+)\)$/.exec(sym);
    if (sum) {
      const parts = sum[1]!.split('+').map((p) => this.dim(p));
      return parts.slice(1).reduce((acc, p) => this.node('Add', [acc, p], 'dim'), parts[0]!);
    }
    const diff = /^\((.+)-(\d+)\)$/.exec(sym);
    if (diff) return this.node('Sub', [this.dim(diff[1]!), this.deps.int64s([Number(diff[2])])], 'dim');
    const src = this.source.get(sym);
    if (!src) throw new EmitError(`symbolic dim '${sym}' is not a dim of any graph input`);
    const T = AttributeProto_AttributeType;
    return this.node('Shape', [src.input], `dim.${sym}`, [
      create(AttributeProtoSchema, { name: 'start', type: T.INT, i: BigInt(src.axis) }),
      create(AttributeProtoSchema, { name: 'end', type: T.INT, i: BigInt(src.axis + 1) }),
    ]);
  }

  private node(opType: string, input: string[], hint: string, attribute: AttributeProto[] = []): string {
    const out = this.deps.fresh(`shape/${hint}`);
    this.deps.pushNode({ name: out, opType, domain: '', input, output: [out], attribute });
    return out;
  }
}
