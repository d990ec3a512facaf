// Importing this module registers the whole op set.
export * from './elementwise.ts';
export * from './shape-ops.ts';
export * from './matmul.ts';
export * from './reduce.ts';
export { lift, scalarLike } from './helpers.ts';
export { getOp, registeredOps, type OpDef, type EmitCtx, type VjpCtx, type InferCtx } from './registry.ts';
export * from './indexing.ts';
export * from './random.ts';
export * from './quant.ts';
export * from './stop-gradient.ts';
