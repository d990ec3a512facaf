/**
 * Plain-text datasets (.txt): raw text for continued pre-training, one example per paragraph (blocks separated by
 * blank lines; the default) or per line.
 */
import type { SourceRow } from './read-json.ts';

export type TextSplit = 'paragraphs' | 'lines';

/** The examples of a text file as { text } rows, each at the line where it starts. */
export const readTextRows = (text: string, split: TextSplit): SourceRow[] => {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const rows: SourceRow[] = [];
  if (split === 'lines') {
    lines.forEach((l, i) => {
      if (l.trim() !== '') rows.push({ line: i + 1, value: { text: l } });
    });
    return rows;
  }
  let start = -1;
  let block: string[] = [];
  const flush = (): void => {
    if (block.length) rows.push({ line: start + 1, value: { text: block.join('\n') } });
    block = [];
  };
  lines.forEach((l, i) => {
    if (l.trim() === '') {
      flush();
      return;
    }
    if (block.length === 0) start = i;
    block.push(l);
  });
  flush();
  return rows;
};
