export * from './types.ts';
export * from './shape.ts';
export * from './graph.ts';
export * from './ops/index.ts';
export { dumpGraph } from './dump.ts';
