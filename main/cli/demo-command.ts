import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DemoError, runDemo, type DemoEvent } from '../service/demo.ts';
import { progressLine } from './progress.ts';

export interface DemoArgs {
  readonly model?: string | undefined;
  readonly out?: string | undefined;
  readonly steps?: string | undefined;
  readonly threads?: string | undefined;
  readonly json?: boolean | undefined;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s).replace(/\n/g, ' ');

export const runDemoCommand = async (a: DemoArgs): Promise<number> => {
  const outputDir = a.out ?? join(tmpdir(), `peft-studio-demo-${Date.now()}`);
  const steps = a.steps ? Number(a.steps) : undefined;
  if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) {
    console.error(`peft-studio demo: --steps must be a positive integer, got '${a.steps}'`);
    return 2;
  }
  const onEvent = (e: DemoEvent): void => {
    if (a.json) {
      console.log(JSON.stringify(e));
      return;
    }
    if (e.type === 'stage') console.log(e.message);
    else if (e.type === 'step') process.stdout.write(`\r${progressLine(e)}${e.step === e.totalSteps ? '\n' : ''}`);
    else if (e.type === 'eval') process.stdout.write(`\n  eval loss ${e.loss.toFixed(4)} (perplexity ${e.perplexity.toFixed(2)}) at step ${e.step}\n`);
    else if (e.type === 'answer') {
      const mark = (ok: boolean) => (ok ? '✓' : '·');
      console.log(`\n  Q: ${e.answer.question}\n    base    ${mark(e.answer.baseFollows)} ${clip(e.answer.base, 100)}\n    adapter ${mark(e.answer.adapterFollows)} ${clip(e.answer.adapter, 100)}`);
    }
  };
  try {
    const r = await runDemo({ outputDir, ...(a.model ? { modelPath: a.model } : {}), ...(steps ? { steps } : {}), ...(a.threads ? { threads: Number(a.threads) } : {}), onEvent });
    const pct = (x: number) => `${Math.round(x * 100)}%`;
    const summary = `\nanswers in the trained format (one JSON object): base ${pct(r.baseFollowRate)}, adapter ${pct(r.adapterFollowRate)} of ${r.answers.length} held-out questions\neval loss ${r.firstEvalLoss.toFixed(4)} → ${r.lastEvalLoss.toFixed(4)}; adapter (PEFT format): ${r.adapterDir}`;
    if (a.json) console.log(JSON.stringify({ type: 'result', ...r }));
    else console.log(summary);
    return 0;
  } catch (err) {
    if (err instanceof DemoError) {
      console.error(`peft-studio demo: ${err.message}`);
      return 2;
    }
    throw err;
  }
};
