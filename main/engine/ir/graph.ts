import { getOp } from './ops/registry.ts';
import { ShapeError } from './shape.ts';
import type { Attrs, DType, InitializerData, Shape, TensorType, TypedArray } from './types.ts';

export interface ValueInfo {
  readonly id: number;
  readonly name: string;
  readonly type: TensorType;
}

export interface Node {
  readonly id: number;
  readonly op: string;
  /** Hugging Face style path, e.g. `model.layers.3.self_attn.q_proj`. */
  readonly name: string;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly attrs: Attrs;
  /** Recomputation unit for gradient checkpointing, e.g. `model.layers.3`. */
  readonly block?: string;
}

export interface GraphWire {
  readonly values: ReadonlyMap<number, ValueInfo>;
  readonly nodes: readonly Node[];
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly initializers: ReadonlyMap<number, InitializerData>;
}

/** An immutable graph. Nodes are stored in a topological order (every input defined before use). */
export class Graph {
  readonly producer: ReadonlyMap<number, Node>;
  private readonly idByName: ReadonlyMap<string, number>;

  constructor(
    readonly values: ReadonlyMap<number, ValueInfo>,
    readonly nodes: readonly Node[],
    readonly inputs: readonly number[],
    readonly outputs: readonly number[],
    readonly initializers: ReadonlyMap<number, InitializerData>,
  ) {
    const producer = new Map<number, Node>();
    for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
    this.producer = producer;
    this.idByName = new Map([...values.values()].map((v) => [v.name, v.id]));
  }

  /** The graph's data as a structured-clone-safe object (to post to a worker). */
  toWire(): GraphWire {
    return { values: this.values, nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers: this.initializers };
  }

  static fromWire(w: GraphWire): Graph {
    return new Graph(w.values, w.nodes, w.inputs, w.outputs, w.initializers);
  }

  value(id: number): ValueInfo {
    const v = this.values.get(id);
    if (!v) throw new Error(`graph has no value #${id}`);
    return v;
  }

  idOf(name: string): number {
    const id = this.idByName.get(name);
    if (id === undefined) throw new Error(`graph has no value named '${name}'`);
    return id;
  }

  has(name: string): boolean {
    return this.idByName.has(name);
  }
}

/** A handle on a value while a graph is being built; op helpers take and return these. */
export class Tensor {
  constructor(
    readonly g: GraphBuilder,
    readonly id: number,
  ) {}
  get info(): ValueInfo {
    return this.g.info(this.id);
  }
  get type(): TensorType {
    return this.info.type;
  }
  get dtype(): DType {
    return this.info.type.dtype;
  }
  get shape(): Shape {
    return this.info.type.shape;
  }
  get rank(): number {
    return this.info.type.shape.length;
  }
  get name(): string {
    return this.info.name;
  }
}

export interface ApplyOptions {
  /** Node name relative to the current scope; defaults to the op type. */
  readonly name?: string;
}

export class GraphBuilder {
  private readonly values = new Map<number, ValueInfo>();
  private readonly nodes: Node[] = [];
  private readonly inputs: number[] = [];
  private readonly outputs: number[] = [];
  private readonly initializers = new Map<number, InitializerData>();
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly smallConstants = new Map<string, number>();
  private nextId = 0;
  private scopes: string[] = [];
  private currentBlock: string | undefined;

  static from(graph: Graph): GraphBuilder {
    const b = new GraphBuilder();
    for (const v of graph.values.values()) {
      b.values.set(v.id, v);
      b.valueNames.add(v.name);
    }
    for (const n of graph.nodes) b.nodeNames.add(n.name);
    b.nodes.push(...graph.nodes);
    b.inputs.push(...graph.inputs);
    b.outputs.push(...graph.outputs);
    for (const [id, init] of graph.initializers) b.initializers.set(id, init);
    b.nextId = Math.max(-1, ...graph.values.keys(), ...graph.nodes.map((n) => n.id)) + 1;
    return b;
  }

  info(id: number): ValueInfo {
    const v = this.values.get(id);
    if (!v) throw new Error(`builder has no value #${id}`);
    return v;
  }

  tensor(id: number): Tensor {
    this.info(id);
    return new Tensor(this, id);
  }

  /** True for values computed by a node (not a graph input or an initializer). */
  producesActivation(id: number): boolean {
    return !this.inputs.includes(id) && !this.initializers.has(id);
  }

  tensorByName(name: string): Tensor {
    for (const v of this.values.values()) if (v.name === name) return new Tensor(this, v.id);
    throw new Error(`builder has no value named '${name}'`);
  }

  /** A runtime input (batch data, trainable tensors, seed/step). */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    const t = this.newValue(name, { dtype, shape });
    this.inputs.push(t.id);
    return t;
  }

  /** A frozen tensor stored with the model (inline bytes or a range of an existing file). */
  initializer(name: string, dtype: DType, shape: Shape, data: InitializerData): Tensor {
    const t = this.newValue(name, { dtype, shape });
    this.initializers.set(t.id, data);
    return t;
  }

  /** An inline constant; small ones (scalars, short vectors) are shared by value across the graph. */
  constant(data: TypedArray, dtype: DType, shape: Shape = []): Tensor {
    const key = data.length <= 16 ? `${dtype}[${shape.join(',')}]:${Array.from(data as ArrayLike<number | bigint>).join(',')}` : undefined;
    const hit = key === undefined ? undefined : this.smallConstants.get(key);
    if (hit !== undefined) return new Tensor(this, hit);
    const t = this.newValue(this.uniqueName(this.scoped('const')), { dtype, shape });
    this.initializers.set(t.id, { kind: 'inline', data });
    if (key !== undefined) this.smallConstants.set(key, t.id);
    return t;
  }

  apply(op: string, inputs: readonly Tensor[], attrs: Attrs = {}, opts: ApplyOptions = {}): Tensor[] {
    const def = getOp(op);
    const name = this.uniqueName(this.scoped(opts.name ?? op));
    for (const x of inputs) {
      if (x.g !== this) throw new ShapeError(op, name, `input '${x.name}' belongs to another graph`);
    }
    const types = def.infer(
      inputs.map((x) => x.type),
      attrs,
      { op, node: name, fail: (detail: string): never => { throw new ShapeError(op, name, detail); } },
    );
    this.nodeNames.add(name);
    const outs = types.map((type, i) => this.newValue(types.length === 1 ? name : `${name}:${i}`, type));
    const node: Node = {
      id: this.nextId++,
      op,
      name,
      inputs: inputs.map((x) => x.id),
      outputs: outs.map((o) => o.id),
      attrs,
      ...(this.currentBlock !== undefined ? { block: this.currentBlock } : {}),
    };
    this.nodes.push(node);
    return outs;
  }

  apply1(op: string, inputs: readonly Tensor[], attrs: Attrs = {}, opts: ApplyOptions = {}): Tensor {
    return this.apply(op, inputs, attrs, opts)[0]!;
  }

  /** Marks a graph output. Outputs are named by their values; `name` renames through an Identity. */
  output(t: Tensor, name?: string): Tensor {
    const out = name === undefined || name === t.name ? t : this.withScopes([], () => this.apply1('Identity', [t], {}, { name }));
    if (name !== undefined && out.name !== name) throw new Error(`output name '${name}' is already used`);
    this.outputs.push(out.id);
    return out;
  }

  /** Names nodes created inside `fn` as `prefix.<name>`. */
  scope<T>(prefix: string, fn: () => T): T {
    return this.withScopes([...this.scopes, prefix], fn);
  }

  /** A named scope that is also a recomputation unit for gradient checkpointing. */
  block<T>(prefix: string, fn: () => T): T {
    const saved = this.currentBlock;
    this.currentBlock = [...this.scopes, prefix].join('.');
    try {
      return this.scope(prefix, fn);
    } finally {
      this.currentBlock = saved;
    }
  }

  /** Creates nodes tagged with a given block (used by the autodiff's recomputation). */
  inBlock<T>(block: string | undefined, fn: () => T): T {
    const saved = this.currentBlock;
    this.currentBlock = block;
    try {
      return fn();
    } finally {
      this.currentBlock = saved;
    }
  }

  build(): Graph {
    return new Graph(new Map(this.values), [...this.nodes], [...this.inputs], [...this.outputs], new Map(this.initializers));
  }

  private withScopes<T>(scopes: string[], fn: () => T): T {
    const saved = this.scopes;
    this.scopes = scopes;
    try {
      return fn();
    } finally {
      this.scopes = saved;
    }
  }

  private scoped(name: string): string {
    return [...this.scopes, name].join('.');
  }

  /** A name free both as a node name and as a value name (a node's single output takes its name). */
  private uniqueName(name: string): string {
    const taken = (n: string): boolean => this.nodeNames.has(n) || this.valueNames.has(n) || this.valueNames.has(`${n}:0`);
    let candidate = name;
    for (let i = 1; taken(candidate); i++) candidate = `${name}_${i}`;
    return candidate;
  }

  private newValue(name: string, type: TensorType): Tensor {
    if (this.valueNames.has(name)) throw new Error(`value name '${name}' is already used in this graph`);
    this.valueNames.add(name);
    const id = this.nextId++;
    this.values.set(id, { id, name, type });
    return new Tensor(this, id);
  }
}
