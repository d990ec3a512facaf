import { closeSync, openSync, readSync } from 'node:fs';
import type { Graph } from '../ir/index.ts';
import { halfToFloat } from './safetensors.ts';

/**
 * The values of a frozen initializer as float32, wherever they live (inline, or a range of a .safetensors file).
 * For methods that initialise from the base weights (PiSSA, OLoRA, DoRA's magnitude) and for merging.
 */
export const readInitializer = (graph: Graph, name: string): Float32Array => {
  const id = graph.idOf(name);
  const init = graph.initializers.get(id);
  if (!init) throw new Error(`'${name}' is not an initializer of this graph`);
  const { dtype, shape } = graph.value(id).type;
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  let bytes: Buffer;
  if (init.kind === 'inline') {
    if (dtype === 'float32') return Float32Array.from(init.data as Float32Array);
    bytes = Buffer.from(init.data.buffer, init.data.byteOffset, init.data.byteLength);
  } else {
    bytes = Buffer.alloc(init.length);
    const fd = openSync(init.file, 'r');
    try {
      readSync(fd, bytes, 0, init.length, init.offset);
    } finally {
      closeSync(fd);
    }
  }
  const out = new Float32Array(count);
  if (dtype === 'float32') for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(4 * i);
  else if (dtype === 'bfloat16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u32[i] = bytes.readUInt16LE(2 * i) << 16;
  } else if (dtype === 'float16') for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes.readUInt16LE(2 * i));
  else throw new Error(`initializer '${name}' has dtype ${dtype}, not a float`);
  return out;
};
