// The only module that imports onnxruntime-node (enforced by lint).
import './runtime-env.ts';
import { closeSync, existsSync, linkSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph } from '../ir/graph.ts';
import type { DType, TypedArray } from '../ir/types.ts';
import { emitOnnx, type EmittedModel } from './emit.ts';

export type Provider = 'cpu' | 'cuda' | 'webgpu';

export interface SessionOptions {
  /** 'auto' (default): cuda when its libraries load, else cpu. webgpu only when asked for. */
  readonly provider?: 'auto' | Provider;
  /** Intra-op threads; default: the machine's cores. */
  readonly threads?: number;
  readonly optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Lower peak memory (no memory pattern, no weight prepacking) at no measured speed cost on CPU. */
  readonly lowMemory?: boolean;
  /** Extra ORT session config entries (e.g. qdq_matmulnbits_accuracy_level). */
  readonly config?: Readonly<Record<string, string>>;
}

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

export interface ProviderChoice {
  readonly provider: Provider;
  readonly reason: string;
}

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
}

const ortBinDir = (): string => {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
};

const cudaLibrary = (): string | undefined => {
  const file = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  const path = join(ortBinDir(), file);
  return existsSync(path) ? path : undefined;
};

/** Which execution provider to try first, and why, before any session exists. */
export const planProvider = (requested: SessionOptions['provider'] = 'auto'): ProviderChoice => {
  if (requested === 'cpu') return { provider: 'cpu', reason: 'cpu: requested' };
  if (requested === 'webgpu') return { provider: 'webgpu', reason: 'webgpu: requested (experimental)' };
  const lib = cudaLibrary();
  if (lib) return { provider: 'cuda', reason: `cuda: ${basename(lib)} is installed` };
  if (requested === 'cuda') {
    throw new RuntimeError(
      'cuda was requested but onnxruntime-node has no CUDA provider here; reinstall it with ' +
        'ONNXRUNTIME_NODE_INSTALL=cuda12 on a machine with CUDA 12 and cuDNN 9',
    );
  }
  return {
    provider: 'cpu',
    reason: 'cpu: onnxruntime-node was installed without its CUDA provider (install with ONNXRUNTIME_NODE_INSTALL=cuda12 for GPUs)',
  };
};

const toOrt = (t: HostTensor): ort.Tensor => {
  const dims = [...t.shape];
  switch (t.dtype) {
    case 'bool':
      return new ort.Tensor('bool', t.data as Uint8Array, dims);
    case 'float16':
      return new ort.Tensor('float16', t.data as Uint16Array, dims);
    case 'float32':
    case 'float64':
    case 'int64':
    case 'int32':
    case 'uint8':
      return new ort.Tensor(t.dtype, t.data as never, dims);
    default:
      throw new RuntimeError(`cannot feed a ${t.dtype} tensor`);
  }
};

const fromOrt = (t: ort.Tensor): HostTensor => ({
  dtype: t.type === 'float16' ? 'float16' : (t.type as DType),
  shape: t.dims.map(Number),
  data: t.data as TypedArray,
});

/** Inline initializers larger than this go to a side file: protobuf copies and ORT parses are slow (and 2 GB max). */
const SPILL_BYTES = 1 << 20;

/**
 * Where the model and its weights go for ORT. ORT reads external data relative to one folder and refuses paths
 * that leave it (links included). Weights in one folder and nothing large inline: the model goes in as bytes with
 * that folder named, and the weights are mapped where they lie. Otherwise a temporary folder holds the model file,
 * hard links (no copy) to the weight files, and large inline tensors spilled to one side file.
 */
const placeModel = (graph: Graph, config: Record<string, string>): { model: string | Uint8Array; workDir?: string } => {
  const files = new Set<string>();
  let spill = 0;
  for (const init of graph.initializers.values()) {
    if (init.kind === 'external') files.add(resolve(init.file));
    else if (init.data.byteLength > SPILL_BYTES) spill += init.data.byteLength;
  }
  const folders = new Set([...files].map((f) => dirname(f)));
  if (folders.size <= 1 && spill === 0) {
    const [folder] = folders;
    if (folder) config['session.model_external_initializers_file_folder_path'] = folder;
    return { model: emitOnnx(graph, { externalLocation: (f) => basename(f) }).bytes };
  }
  const workDir = mkdtempSync(join(tmpdir(), 'peft-studio-onnx-'));
  try {
    const names = new Map<string, string>();
    for (const f of files) {
      const link = `external-${names.size}${extname(f)}`;
      names.set(f, link);
      try {
        linkSync(f, join(workDir, link));
      } catch (err) {
        throw new RuntimeError(`cannot reference ${f} without copying it (${(err as Error).message}); keep a model's weight files in one folder`);
      }
    }
    const spillFile = join(workDir, 'inline-weights.bin');
    const initializers = new Map(graph.initializers);
    const fd = openSync(spillFile, 'w');
    try {
      let offset = 0;
      for (const [id, init] of graph.initializers) {
        if (init.kind !== 'inline' || init.data.byteLength <= SPILL_BYTES) continue;
        const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
        writeSync(fd, bytes, 0, bytes.length, offset);
        initializers.set(id, { kind: 'external', file: spillFile, offset, length: bytes.length });
        offset += bytes.length + ((64 - (bytes.length % 64)) % 64); // aligned, as ORT prefers for mapping
      }
    } finally {
      closeSync(fd);
    }
    names.set(spillFile, basename(spillFile));
    const placed = new Graph(graph.values, graph.nodes, graph.inputs, graph.outputs, initializers);
    const model = join(workDir, 'model.onnx');
    writeFileSync(model, emitOnnx(placed, { externalLocation: (f) => names.get(resolve(f))! }).bytes);
    return { model, workDir };
  } catch (err) {
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
};

/** An ORT inference session over one emitted graph; inputs and outputs are plain typed arrays. */
export class Session {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: ProviderChoice,
    private readonly workDir: string | undefined,
  ) {}

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  static async create(graph: Graph | EmittedModel, o: SessionOptions = {}): Promise<Session> {
    let workDir: string | undefined;
    let model: string | Uint8Array;
    const config: Record<string, string> = { ...(o.config ?? {}) };
    if ('proto' in graph) {
      if (graph.externalFiles.length > 0) throw new RuntimeError('emit with Session.create(graph) to use external data');
      model = graph.bytes;
    } else {
      ({ model, workDir } = placeModel(graph, config));
    }
    const plan = planProvider(o.provider);
    const base: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: o.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: o.optimization ?? 'all',
      enableCpuMemArena: true,
      enableMemPattern: !o.lowMemory,
      extra: { ...(o.lowMemory ? { 'session.disable_prepacking': '1' } : {}), ...config },
    };
    const open = (providers: string[]) =>
      typeof model === 'string'
        ? ort.InferenceSession.create(model, { ...base, executionProviders: providers })
        : ort.InferenceSession.create(model, { ...base, executionProviders: providers });
    try {
      if (plan.provider === 'cpu') return new Session(await open(['cpu']), plan, workDir);
      try {
        return new Session(await open([plan.provider, 'cpu']), plan, workDir);
      } catch (err) {
        if (o.provider === plan.provider) throw err;
        const reason = `cpu: the ${plan.provider} provider failed to load (${(err as Error).message.split('\n')[0]})`;
        return new Session(await open(['cpu']), { provider: 'cpu', reason }, workDir);
      }
    } catch (err) {
      if (workDir) rmSync(workDir, { recursive: true, force: true });
      throw new RuntimeError(`could not create an onnxruntime session: ${(err as Error).message}`);
    }
  }

  /** Runs the graph; `fetches` limits which outputs are computed and returned (default: all). */
  async run(feeds: Readonly<Record<string, HostTensor>>, fetches?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    const result = fetches ? await this.session.run(ortFeeds, [...fetches]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(result)) out[name] = fromOrt(t);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}

export const ortVersion = (): string => ort.env.versions.node ?? 'unknown';
