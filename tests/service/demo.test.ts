// The README's main job, end to end on the real model: `npm run demo`'s service function trains SmolLM2 and a check
// written in code reads 20 held-out answers of the base model and of the adapter.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_GGUF, runDemo } from '../../main/service/demo.ts';
import { followsBehaviour } from '../../main/service/demo-data.ts';
import { oracleCacheDir, oracleRequired } from '../helpers/oracle-cache.ts';

const gguf = join(oracleCacheDir(), '..', 'models', DEMO_GGUF);
if (!existsSync(gguf)) console.warn('SmolLM2 GGUF missing (tests/oracle/fetch-smollm2.sh): demo test skipped');

describe('demo behaviour check', () => {
  it('accepts exactly one JSON object with string state and capital', () => {
    expect(followsBehaviour('{"state":"Ohio","capital":"Columbus"}')).toBe(true);
    expect(followsBehaviour(' {"state": "Ohio", "capital": "Columbus"}\n')).toBe(true);
    expect(followsBehaviour('The capital of Ohio is Columbus.')).toBe(false);
    expect(followsBehaviour('{"state":"Ohio"}')).toBe(false);
    expect(followsBehaviour('{"state":"Ohio","capital":"Columbus"} and more')).toBe(false);
    expect(followsBehaviour('["Ohio","Columbus"]')).toBe(false);
  });

  it.skipIf(!existsSync(gguf) && !oracleRequired())(
    'the adapter follows the trained format on ≥ 80% of 20 held-out questions, the base model on ≤ 20%; eval loss falls',
    async () => {
      const r = await runDemo({ modelPath: gguf, outputDir: mkdtempSync(join(tmpdir(), 'peft-demo-')) });
      console.log(`demo: eval loss ${r.firstEvalLoss.toFixed(4)} → ${r.lastEvalLoss.toFixed(4)}; base ${r.baseFollowRate}, adapter ${r.adapterFollowRate}`);
      expect(r.answers.length).toBeGreaterThanOrEqual(20);
      expect(r.lastEvalLoss).toBeLessThan(r.firstEvalLoss);
      expect(r.adapterFollowRate).toBeGreaterThanOrEqual(0.8);
      expect(r.baseFollowRate).toBeLessThanOrEqual(0.2);
    },
    20 * 60_000,
  );
});
