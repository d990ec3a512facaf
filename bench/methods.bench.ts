// bench:methods — every method trained on SmolLM2-135M-Instruct with the demo dataset, the same number of steps,
// micro-batch 4, one table: trainable parameters, step time, peak RSS, eval loss. Then gradient checkpointing's
// memory saving (LoRA, sequence 512; goal ≥ 40%). LongLoRA's S²-Attn vs full attention is bench:longlora.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoSplit } from '../main/service/demo-data.ts';
import type { MethodRefusal, MethodResult } from './methods-child.ts';
import { METHOD_CASES, RECOMPUTE_BATCH, RECOMPUTE_SEQ } from './methods-cases.ts';
import type { RecomputeResult } from './recompute-child.ts';
import { ensureF32Folder } from './train-setup.ts';
import { runChild } from './train.bench.ts';
import { median } from './stats.ts';

const STEPS = Number(process.env.BENCH_METHOD_STEPS ?? 12);
/** BENCH_ONLY=table or =checkpointing runs one part. */
const only = process.env.BENCH_ONLY;
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const GIB = 2 ** 30;
const tsx = (script: string, args: readonly string[]) => [...process.execArgv, join(import.meta.dirname, script), ...args];

const main = async (): Promise<void> => {
  const started = performance.now();
  const modelDir = ensureF32Folder();
  const work = mkdtempSync(join(tmpdir(), 'peft-bench-methods-'));
  const dataset = join(work, 'state-capitals.jsonl');
  writeFileSync(dataset, demoSplit().train.map((messages) => JSON.stringify({ messages })).join('\n') + '\n');
  console.log(`bench:methods — SmolLM2-135M-Instruct (float32), demo dataset (${dataset}), ${STEPS} steps each, micro-batch 4, ${threads} threads`);
  const header = `${'method'.padEnd(30)}${'trainable'.padStart(13)}${'step (median)'.padStart(15)}${'peak RSS'.padStart(11)}${'train loss'.padStart(19)}${'eval loss'.padStart(11)}`;
  const lines = [header];
  try {
    for (const [i, c] of only === 'checkpointing' ? [] : METHOD_CASES.entries()) {
      console.error(`bench:methods: ${c.label}…`);
      const r = runChild<MethodResult | MethodRefusal>(process.execPath, tsx('methods-child.ts', [work, modelDir, dataset, String(i), String(STEPS), String(threads)]));
      if (!r.result) {
        lines.push(`${c.label.padEnd(30)}  failed (exit ${r.exitCode}; its error is above)`);
        continue;
      }
      if ('refused' in r.result) {
        lines.push(`${c.label.padEnd(30)}  n/a: ${r.result.refused}`);
        continue;
      }
      const m = r.result;
      lines.push(
        `${m.label.padEnd(30)}${m.trainable.toLocaleString('en-US').padStart(13)}${`${median(m.stepSeconds.slice(1)).toFixed(2)} s`.padStart(15)}` +
          `${`${(m.peakRssBytes / GIB).toFixed(2)} G`.padStart(11)}${`${m.firstLoss.toFixed(3)} → ${m.lastLoss.toFixed(3)}`.padStart(19)}${m.evalLoss.toFixed(4).padStart(11)}`,
      );
    }
    if (only !== 'checkpointing') console.log(lines.join('\n'));
    if (only === 'table') return;

    console.log(`\nGradient checkpointing: LoRA r=16 all-linear, micro-batch ${RECOMPUTE_BATCH} × ${RECOMPUTE_SEQ}`);
    const gc = (mode: 'off' | 'on') => {
      console.error(`bench:methods: recompute ${mode}…`);
      const r = runChild<RecomputeResult>(process.execPath, tsx('recompute-child.ts', [modelDir, mode, String(threads)]));
      if (!r.result) throw new Error(`recompute ${mode} failed (exit ${r.exitCode})`);
      return r.result;
    };
    const off = gc('off');
    const on = gc('on');
    for (const r of [off, on]) {
      console.log(`  recompute ${r.recompute ? 'on ' : 'off'}: peak RSS ${(r.peakRssBytes / GIB).toFixed(2)} GiB (ready ${(r.readyRssBytes / GIB).toFixed(2)} GiB), step ${r.stepSeconds.toFixed(1)} s, loss ${r.loss.toFixed(5)}`);
    }
    const saving = 1 - on.peakRssBytes / off.peakRssBytes;
    console.log(`  peak-memory saving ${(100 * saving).toFixed(0)}% (goal ≥ 40%: ${saving >= 0.4 ? 'met' : 'MISSED'}); step time ×${(on.stepSeconds / off.stepSeconds).toFixed(2)}; same loss: ${on.loss === off.loss}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\nbench:methods took ${((performance.now() - started) / 1000).toFixed(0)} s`);
};

await main();
