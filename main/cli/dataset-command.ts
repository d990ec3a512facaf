import { openModel } from '../models/open-model.ts';
import { formatProblem, inspectDataset, type DatasetFormat } from '../train/dataset/index.ts';

/** `dataset inspect FILE`: the format, rows, token statistics and every problem as FILE:LINE: message. Exit 0 when usable, 2 when not. */
export const runDatasetInspect = async (file: string | undefined, a: { format?: string | undefined; model?: string | undefined; json?: boolean | undefined }): Promise<number> => {
  if (!file) {
    console.error('peft-studio dataset inspect: give the dataset file');
    return 2;
  }
  const tokenizer = a.model ? openModel(a.model).tokenizer : undefined;
  const r = await inspectDataset(file, { ...(a.format ? { format: a.format as DatasetFormat } : {}), ...(tokenizer ? { tokenizer } : {}) });
  if (a.json) {
    console.log(JSON.stringify(r));
  } else {
    console.log(`${r.file}: ${r.usable ? 'usable' : 'NOT usable'}; format ${r.format ?? 'unknown'} (${r.evidence}); ${r.rows} rows`);
    if (r.tokens) console.log(`tokens: ${JSON.stringify(r.tokens)}`);
    for (const p of r.problems) console.log(formatProblem(p));
  }
  return r.usable ? 0 : 2;
};
