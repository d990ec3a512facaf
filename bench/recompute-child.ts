// bench:methods' gradient-checkpointing measurement, one setting per fresh child process: LoRA r=16 on every linear
// layer of SmolLM2, micro-batch 4 × 512 tokens, with or without recomputing each decoder block in the backward pass.
// Usage: tsx bench/recompute-child.ts MODEL_DIR on|off THREADS
import { TrainStep } from '../main/engine/train-step.ts';
import { openHfFolder } from '../main/models/hf-folder.ts';
import { applyLora } from '../main/peft/lora.ts';
import { parseLoraConfig } from '../main/peft/lora-config.ts';
import { packMicroBatch, withNormalizer } from '../main/train/batch.ts';
import { buildTrainingGraph } from '../main/train/train-graph.ts';
import { RECOMPUTE_BATCH, RECOMPUTE_SEQ } from './methods-cases.ts';

export interface RecomputeResult {
  readonly recompute: boolean;
  readonly readyRssBytes: number;
  readonly peakRssBytes: number;
  readonly stepSeconds: number;
  readonly loss: number;
}


const [modelDir, mode, threads] = process.argv.slice(2);
if (!threads) throw new Error('usage: recompute-child.ts MODEL_DIR on|off THREADS');
const model = openHfFolder(modelDir!);
const { config } = parseLoraConfig({ r: 16, lora_alpha: 32, target_modules: 'all-linear', init_lora_weights: false }, 'bench');
const adapted = applyLora(buildTrainingGraph(model), config, { seed: 1 });
const step = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'adamw' }, lr: 1e-4, recompute: mode === 'on', session: { threads: Number(threads) } });
const readyRssBytes = process.memoryUsage().rss;
const ids = Array.from({ length: RECOMPUTE_SEQ }, (_, i) => ((i * 7919) % 40000) + 10);
const batch = packMicroBatch(Array.from({ length: RECOMPUTE_BATCH }, () => [{ inputIds: ids, labels: ids }]));
const feeds = withNormalizer(batch, batch.targets);
const first = await step.step(feeds); // warm-up
const t0 = performance.now();
await step.step(feeds);
const result: RecomputeResult = {
  recompute: mode === 'on', readyRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, stepSeconds: (performance.now() - t0) / 1000, loss: first.loss,
};
await step.release();
console.log(JSON.stringify(result));
