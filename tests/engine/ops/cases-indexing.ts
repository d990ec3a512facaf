// The VJP table for the indexing ops (static shapes; int64 inputs are data with fixed values).
import * as op from '../../../main/engine/ir/index.ts';
import type { VjpCase } from './gradcheck.ts';

const idx = (shape: number[], values: number[]) => ({ shape, kind: 'int64' as const, values });

// Every differentiable indexing op, static shapes; int64 inputs are data with fixed values.
export const indexingCases: VjpCase[] = [
  { name: 'Concat axis 0', inputs: [{ shape: [2, 3] }, { shape: [1, 3] }], build: (a, b) => op.concat([a, b], 0) },
  {
    name: 'Concat axis -1, three inputs',
    inputs: [{ shape: [2, 1] }, { shape: [2, 3] }, { shape: [2, 2] }],
    build: (a, b, c) => op.concat([a, b, c], -1),
  },
  { name: 'Concat same input twice', inputs: [{ shape: [3] }], build: (a) => op.concat([a, op.mul(a, a)], 0) },
  { name: 'Slice two axes, negative end', inputs: [{ shape: [4, 5] }], build: (x) => op.slice(x, { starts: [1, 0], ends: [3, -1] }) },
  {
    name: 'Slice negative start to the end',
    inputs: [{ shape: [2, 5, 3] }],
    build: (x) => op.slice(x, { starts: [-2], ends: [op.END], axes: [1] }),
  },
  { name: 'Slice past the end (clamped)', inputs: [{ shape: [3, 4] }], build: (x) => op.slice(x, { starts: [1], ends: [100], axes: [-1] }) },
  { name: 'Split, middle piece unused', inputs: [{ shape: [2, 6] }], build: (x) => {
    const [a, , c] = op.split(x, [1, 3, 2], 1);
    return op.concat([c!, a!], 1);
  } },
  { name: 'Split one piece', inputs: [{ shape: [4, 2] }], build: (x) => op.split(x, [3, 1], 0)[0]! },
  { name: 'Pad constant', inputs: [{ shape: [2, 3] }], build: (x) => op.pad(x, [1, 0, 0, 2], 0.5) },
  { name: 'Gather axis 0, repeated indices', inputs: [{ shape: [5, 3] }, idx([4], [0, 2, 2, 4])], build: (d, i) => op.gather(d, i!, 0) },
  {
    name: 'Gather axis 1, 2-D negative indices',
    inputs: [{ shape: [2, 4, 3] }, idx([2, 2], [3, 0, -1, 3])],
    build: (d, i) => op.gather(d, i!, 1),
  },
  { name: 'Gather scalar index, last axis', inputs: [{ shape: [3, 4] }, idx([], [2])], build: (d, i) => op.gather(d, i!, -1) },
  {
    name: 'GatherElements axis 1',
    inputs: [{ shape: [3, 4] }, idx([3, 2], [0, 3, 1, 1, 3, -4])],
    build: (d, i) => op.gatherElements(d, i!, 1),
  },
  {
    name: 'ScatterElements add axis 0, duplicates',
    inputs: [{ shape: [3, 4] }, idx([2, 4], [0, 2, 2, 1, 0, 2, 1, 1]), { shape: [2, 4] }],
    build: (d, i, u) => op.scatterElementsAdd(d, i!, u!, 0),
  },
  {
    name: 'ScatterND add rows, duplicates',
    inputs: [{ shape: [4, 3] }, idx([3, 1], [1, 3, 1]), { shape: [3, 3] }],
    build: (d, i, u) => op.scatterNDAdd(d, i!, u!),
  },
  {
    name: 'ScatterND add elements',
    inputs: [{ shape: [3, 4] }, idx([2, 2], [0, 1, 2, 3]), { shape: [2] }],
    build: (d, i, u) => op.scatterNDAdd(d, i!, u!),
  },
  { name: 'GatherND', inputs: [{ shape: [3, 4, 2] }, idx([3, 2], [0, 1, 2, 3, 0, 1])], build: (d, i) => op.gatherND(d, i!) },
];
