// The renderer project's setup file (vitest.config.ts), so every renderer test can run the real engine. Vitest's
// jsdom environment replaces the global typed-array constructors with jsdom's (another realm), while arrays that V8 or a native addon makes (onnxruntime's outputs, a
// Buffer's bytes) come from Node's own intrinsics; onnxruntime then refuses its own outputs fed back as inputs ("A
// float32 tensor's data must be type of Float32Array"). Putting Node's constructors back makes both one realm again.
import v8 from 'node:v8';

const TYPED_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
] as const;

const global = globalThis as unknown as Record<string, new (n: number) => ArrayBufferView>;
for (const name of TYPED_ARRAYS) {
  // A deserialized value is built from this context's intrinsics: Node's own constructor.
  const intrinsic = (v8.deserialize(v8.serialize(new global[name]!(1))) as ArrayBufferView).constructor as new (n: number) => ArrayBufferView;
  if (global[name] !== intrinsic) global[name] = intrinsic;
}
