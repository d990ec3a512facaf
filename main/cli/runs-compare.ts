import type { JsonValue } from '../store/index.ts';
import { compareRuns, type MetricPointAt } from '../service/compare-runs.ts';
import { openHistory } from './store-path.ts';

const text = (v: JsonValue | undefined): string => (v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
/** Long values keep their end (paths differ at the end). */
const clip = (s: string, n: number): string => (s.length > n ? `…${s.slice(s.length - n + 1)}` : s);
const point = (p: MetricPointAt | null | undefined): string => (p ? `${p.value.toPrecision(5)} @${p.step}` : '—');

/** `runs compare ID ID...`: the config fields that differ, then every metric's final (and best) value per run. */
export const runRunsCompare = (ids: readonly string[], a: { db?: string | undefined; json?: boolean | undefined }): number => {
  if (ids.length < 2) {
    console.error('peft-studio runs compare: give two or more run ids');
    return 2;
  }
  const bad = ids.find((id) => !/^\d+$/.test(id));
  if (bad !== undefined) {
    console.error(`peft-studio runs compare: '${bad}' is not a run id`);
    return 2;
  }
  const store = openHistory(a.db);
  try {
    const c = compareRuns(store, ids.map(Number));
    if (a.json) {
      console.log(JSON.stringify(c));
      return 0;
    }
    const rows: [string, string[]][] = [
      ['', c.runs.map((r) => `run ${r.id} ${r.name}`)],
      ['status', c.runs.map((r) => `${r.status} (${r.method})`)],
      ['dataset', c.runs.map((r) => r.dataset)],
      [`\nconfig: ${c.differences.length} field(s) differ, ${c.sameFields} the same`, []],
      ...c.differences.map((d): [string, string[]] => [`  ${d.field}`, d.values.map(text)]),
      ['\nmetrics: final value @step (best, where another step)', []],
      ...c.metrics.map((m): [string, string[]] => [
        `  ${m.name}`,
        m.final.map((f, i) => `${point(f)}${m.best?.[i] && m.best[i]!.step !== f?.step ? ` (${m.best[i]!.value.toPrecision(5)})` : ''}`),
      ]),
    ];
    const label = Math.min(40, Math.max(...rows.filter(([, cells]) => cells.length).map(([name]) => name.length))) + 2;
    const cell = Math.min(40, Math.max(...rows.flatMap(([, cells]) => cells.map((s) => s.length)))) + 2;
    for (const [name, cells] of rows) {
      console.log(cells.length ? `${clip(name, label - 2).padEnd(label)}${cells.map((s) => clip(s, cell - 2).padEnd(cell)).join('')}`.trimEnd() : name);
    }
    return 0;
  } finally {
    store.close();
  }
};
