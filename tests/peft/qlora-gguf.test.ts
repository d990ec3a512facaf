import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrainStep } from '../../main/engine/train-step.ts';
import { buildLossGraph } from '../../main/models/causal-lm.ts';
import { openGgufModelQ4 } from '../../main/models/gguf/quantized.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { oracleCacheDir, oracleRequired } from '../helpers/oracle-cache.ts';

const gguf = join(oracleCacheDir(), '..', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
if (!existsSync(gguf)) console.warn('SmolLM2 GGUF missing (tests/oracle/fetch-smollm2.sh): QLoRA-on-GGUF test skipped');

describe.skipIf(!existsSync(gguf) && !oracleRequired())('QLoRA on a GGUF’s own Q4_1 blocks', () => {
  it('SmolLM2: LoRA on every linear (MatMulNBits over the Q4_1 blocks) trains, the loss falls over 3 steps', async () => {
    const model = openGgufModelQ4(gguf);
    const { config } = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'all-linear' }, 'test');
    const adapted = applyLora(buildLossGraph(model), config);
    expect(adapted.modules.size).toBe(210);
    expect(adapted.graph.nodes.filter((nd) => nd.op === 'MatMulNBits')).toHaveLength(210);
    const ids = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 1073, 314, 260, 3458, 282, 2365, 30];
    const i64 = (v: readonly number[]) => ({ dtype: 'int64' as const, shape: [1, v.length], data: BigInt64Array.from(v, BigInt) });
    const batch = { input_ids: i64(ids), position_ids: i64(ids.map((_, i) => i)), labels: i64(ids) };
    const params = adapted.params.map((p) => ({ name: p.name, data: Float32Array.from(p.data) }));
    const trainer = await TrainStep.create({ graph: adapted.graph, params, optimizer: { kind: 'adamw' }, lr: 2e-3, session: { threads: 2 } });
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push((await trainer.step(batch)).loss);
    await trainer.release();
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[1]!).toBeLessThan(losses[0]!);
    expect(losses[2]!).toBeLessThan(losses[1]!);
  });
});
