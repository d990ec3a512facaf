import type { Graph } from './graph.ts';
import { shapeStr } from './shape.ts';
import type { AttrValue } from './types.ts';

const fmtAttr = (v: AttrValue): string => (Array.isArray(v) ? `[${v.join(',')}]` : String(v));

/** A readable listing of a graph: inputs, initializers, one line per node with its output types, outputs. */
export const dumpGraph = (graph: Graph): string => {
  const ty = (id: number): string => {
    const v = graph.value(id);
    return `${v.type.dtype}${shapeStr(v.type.shape)}`;
  };
  const lines: string[] = [];
  for (const id of graph.inputs) lines.push(`input  %${graph.value(id).name}: ${ty(id)}`);
  for (const [id, init] of graph.initializers) {
    const where = init.kind === 'external' ? ` @ ${init.file}+${init.offset} (${init.length} B)` : '';
    lines.push(`init   %${graph.value(id).name}: ${ty(id)}${where}`);
  }
  for (const n of graph.nodes) {
    const outs = n.outputs.map((o) => `%${graph.value(o).name}`).join(', ');
    const ins = n.inputs.map((i) => `%${graph.value(i).name}`).join(', ');
    const attrs = Object.entries(n.attrs)
      .filter((e): e is [string, AttrValue] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${fmtAttr(v)}`);
    const types = n.outputs.map(ty).join(', ');
    const block = n.block ? `  [${n.block}]` : '';
    lines.push(`${outs} = ${n.op}(${ins})${attrs.length ? ` {${attrs.join(', ')}}` : ''}  # ${types}${block}`);
  }
  for (const id of graph.outputs) lines.push(`output %${graph.value(id).name}: ${ty(id)}`);
  return lines.join('\n');
};
