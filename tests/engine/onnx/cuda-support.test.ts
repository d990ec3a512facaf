import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  checkCudaSupport,
  cudaKernelFor,
  cudaOp,
  cudaOpsSource,
  onnxTypeName,
} from '../../../main/engine/onnx/cuda-support.ts';

const DT = TensorProto_DataType;

const tensorType = (elemType: TensorProto_DataType) =>
  create(TypeProtoSchema, { value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType }) } });

/** A value_info; without elemType it carries no type. */
const value = (name: string, elemType?: TensorProto_DataType): ValueInfoProto =>
  create(ValueInfoProtoSchema, { name, ...(elemType === undefined ? {} : { type: tensorType(elemType) }) });

interface NodeExtra {
  domain?: string;
  attribute?: AttributeProto[];
}

const node = (opType: string, input: string[], output: string[], extra: NodeExtra = {}): NodeProto =>
  create(NodeProtoSchema, { name: `${opType}_${output[0] ?? 'x'}`, opType, input, output, ...extra });

const intAttr = (name: string, i: number): AttributeProto =>
  create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });

interface ModelSpec {
  nodes: NodeProto[];
  inputs?: ValueInfoProto[];
  outputs?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  initializers?: { name: string; dataType: TensorProto_DataType }[];
  opset?: number;
  msOpset?: number | null;
}

const model = (s: ModelSpec): ModelProto =>
  create(ModelProtoSchema, {
    irVersion: 10n,
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(s.opset ?? 21) }),
      ...(s.msOpset === null
        ? []
        : [create(OperatorSetIdProtoSchema, { domain: 'com.microsoft', version: BigInt(s.msOpset ?? 1) })]),
    ],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: s.nodes,
      input: s.inputs ?? [],
      output: s.outputs ?? [],
      valueInfo: s.valueInfo ?? [],
      initializer: (s.initializers ?? []).map((i) =>
        create(TensorProtoSchema, { name: i.name, dataType: i.dataType, dims: [2n, 2n] }),
      ),
    }),
  });

describe('cuda-ops table', () => {
  it('records its source and holds the CUDA ops of both domains', () => {
    expect(cudaOpsSource).toMatch(/microsoft\/onnxruntime .*OperatorKernels\.md @ [0-9a-f]{40}/);
    expect(cudaOp('', 'MatMul')).toBeDefined();
    expect(cudaOp('ai.onnx', 'MatMul')).toBe(cudaOp('', 'MatMul'));
    expect(cudaOp('com.microsoft', 'FusedMatMul')).toBeDefined();
    expect(cudaOp('', 'FusedMatMul')).toBeUndefined();
    const matmul = cudaOp('', 'MatMul')!;
    expect(cudaKernelFor(matmul, 21)?.typeConstraints['T']).toEqual(['bfloat16', 'double', 'float', 'float16']);
    expect(cudaKernelFor(matmul, 10)).toMatchObject({ sinceVersion: 9, untilVersion: 12 });
  });

  it('maps ONNX element type codes to the table names', () => {
    expect(onnxTypeName(DT.FLOAT)).toBe('float');
    expect(onnxTypeName(DT.FLOAT16)).toBe('float16');
    expect(onnxTypeName(DT.BFLOAT16)).toBe('bfloat16');
    expect(onnxTypeName(DT.INT64)).toBe('int64');
    expect(onnxTypeName(DT.BOOL)).toBe('bool');
    expect(onnxTypeName(DT.INT4)).toBe('int4');
    expect(onnxTypeName(DT.UINT4)).toBe('uint4');
    expect(onnxTypeName(DT.FLOAT8E4M3FN)).toBe('float8e4m3fn');
  });
});

describe('checkCudaSupport', () => {
  it('accepts MatMul on float32 at opset 21', () => {
    const m = model({
      nodes: [node('MatMul', ['a', 'w'], ['y'])],
      inputs: [value('a', DT.FLOAT)],
      initializers: [{ name: 'w', dataType: DT.FLOAT }],
      outputs: [value('y', DT.FLOAT)],
    });
    expect(checkCudaSupport(m)).toEqual([]);
  });

  it('reports an op that CUDA lacks, naming node, op, opset and source', () => {
    const m = model({ nodes: [node('Det', ['a'], ['y'])], inputs: [value('a', DT.FLOAT)], outputs: [value('y', DT.FLOAT)] });
    const issues = checkCudaSupport(m);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ kind: 'missing-op', node: 'Det_y', opType: 'Det', domain: 'ai.onnx', opset: 21 });
    expect(issues[0]!.message).toContain('Det');
    expect(issues[0]!.message).toContain(cudaOpsSource);
  });

  it('reports a tensor type that the op kernel does not list', () => {
    const m = model({
      nodes: [node('MatMul', ['a', 'b'], ['y'])],
      inputs: [value('a', DT.INT32), value('b', DT.INT32)],
      outputs: [value('y', DT.INT32)],
    });
    const issues = checkCudaSupport(m);
    expect(issues.length).toBeGreaterThan(0);
    expect(issues.every((i) => i.kind === 'type' && i.type === 'int32' && i.constraint === 'T')).toBe(true);
    expect(issues[0]).toMatchObject({
      opType: 'MatMul',
      opset: 21,
      tensor: 'a',
      allowed: ['bfloat16', 'double', 'float', 'float16'],
    });
  });

  it('reports an opset outside every kernel range', () => {
    // Gelu joined ai.onnx at opset 20; the CUDA kernel is 20+.
    const at18 = model({ nodes: [node('Gelu', ['a'], ['y'])], inputs: [value('a', DT.FLOAT)], opset: 18 });
    expect(checkCudaSupport(at18)).toEqual([expect.objectContaining({ kind: 'opset-range', opType: 'Gelu', opset: 18 })]);
    const at21 = model({ nodes: [node('Gelu', ['a'], ['y'])], inputs: [value('a', DT.FLOAT)], opset: 21 });
    expect(checkCudaSupport(at21)).toEqual([]);
    // Upsample has CUDA kernels for opsets 7-9 only.
    const up = model({
      nodes: [node('Upsample', ['a', 's'], ['y'])],
      inputs: [value('a', DT.FLOAT), value('s', DT.FLOAT)],
      opset: 10,
    });
    expect(checkCudaSupport(up)[0]?.message).toMatch(/opset 9, \[7, 8\]/);
  });

  it('checks com.microsoft ops against the com.microsoft opset import', () => {
    const fused = (msOpset: number | null): ModelProto =>
      model({
        nodes: [node('FusedMatMul', ['a', 'b'], ['y'], { domain: 'com.microsoft' })],
        inputs: [value('a', DT.FLOAT16), value('b', DT.FLOAT16)],
        msOpset,
      });
    expect(checkCudaSupport(fused(1))).toEqual([]);
    expect(checkCudaSupport(fused(null))).toEqual([
      expect.objectContaining({ kind: 'no-opset-import', domain: 'com.microsoft' }),
    ]);
  });

  it('propagates types through untyped intermediates', () => {
    // Cast fixes int32; Relu passes T through; MatMul then sees int32 although nothing declares it.
    const m = model({
      nodes: [
        node('Cast', ['a'], ['c'], { attribute: [intAttr('to', DT.INT32)] }),
        node('Relu', ['c'], ['r']),
        node('MatMul', ['r', 'r'], ['y']),
      ],
      inputs: [value('a', DT.FLOAT)],
    });
    const issues = checkCudaSupport(m);
    expect(issues.map((i) => [i.kind, i.opType, i.type])).toContainEqual(['type', 'Relu', 'int32']);
    expect(issues.map((i) => [i.kind, i.opType, i.type])).toContainEqual(['type', 'MatMul', 'int32']);
  });

  it("checks a Cast's target type against the Cast kernel", () => {
    const m = model({
      nodes: [node('Cast', ['a'], ['c'], { attribute: [intAttr('to', DT.STRING)] })],
      inputs: [value('a', DT.FLOAT)],
    });
    expect(checkCudaSupport(m)).toEqual([
      expect.objectContaining({ kind: 'type', opType: 'Cast', tensor: 'c', type: 'string', constraint: 'T2' }),
    ]);
  });

  it('types fixed outputs (Shape → int64, Equal → bool) and variadic inputs', () => {
    const m = model({
      nodes: [
        node('Shape', ['a'], ['s']),
        node('Equal', ['s', 's'], ['e']),
        node('Where', ['e', 'a', 'a'], ['w']),
        node('Sum', ['s', 's', 's'], ['sum']),
      ],
      inputs: [value('a', DT.FLOAT16)],
    });
    // Sum's CUDA kernel has no int64 (one issue per constraint and type); Shape, Equal and Where are fine.
    expect(checkCudaSupport(m)).toEqual([
      expect.objectContaining({ kind: 'type', opType: 'Sum', tensor: 's', type: 'int64', constraint: 'T' }),
    ]);
  });

  it('reports an unknown type only where the main constraint cannot be checked', () => {
    const m = model({ nodes: [node('Relu', ['a'], ['y']), node('Constant', [], ['k'])], inputs: [value('a')] });
    expect(checkCudaSupport(m)).toEqual([
      expect.objectContaining({ kind: 'unknown-type', opType: 'Relu', tensor: 'a', constraint: 'T' }),
    ]);
  });

  it('does not report Constant nodes (onnxruntime folds them into initializers)', () => {
    const t = create(TensorProtoSchema, { name: 'k', dataType: DT.INT64, dims: [1n] });
    const m = model({
      nodes: [
        node('Constant', [], ['k'], {
          attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t })],
        }),
        node('Reshape', ['a', 'k'], ['y']),
      ],
      inputs: [value('a', DT.BFLOAT16)],
    });
    expect(checkCudaSupport(m)).toEqual([]);
  });
});
