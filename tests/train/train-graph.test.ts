import { describe, expect, it } from 'vitest';
import { Session } from '../../main/engine/onnx/runtime.ts';
import { buildLossGraph } from '../../main/models/causal-lm.ts';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { packMicroBatch, withNormalizer, type Example } from '../../main/train/batch.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';

const dir = tinyModelDir('qwen3');

const example = (ids: number[], promptLength: number): Example => ({
  inputIds: ids,
  labels: ids.map((id, i) => (i < promptLength ? -100 : id)),
});

describe.skipIf(!dir && !oracleRequired())('training graph: loss only where labels are, packed rows', () => {
  it('equals transformers-style loss on padded rows, and packing changes nothing', async () => {
    const model = openHfFolder(dir!);
    const a = example([791, 4062, 14198, 39935, 35308, 927, 279], 3);
    const b = example([7530, 2442, 38302, 12099, 25], 1);
    const train = await Session.create(buildTrainingGraph(model), { threads: 2 });
    const reference = await Session.create(buildLossGraph(model), { threads: 2 });
    const refLoss = async (ex: Example) => {
      const T = ex.inputIds.length;
      const i64 = (v: readonly number[]) => ({ dtype: 'int64' as const, shape: [1, T], data: BigInt64Array.from(v, BigInt) });
      const out = await reference.run({ input_ids: i64(ex.inputIds), position_ids: i64(ex.inputIds.map((_, i) => i)), labels: i64(ex.labels) });
      return Number(out.loss!.data[0]);
    };
    // transformers' loss is a per-example mean; weighting by target count gives the token mean of the pair.
    const [la, lb] = [await refLoss(a), await refLoss(b)];
    const [na, nb] = [a.labels.slice(1).filter((l) => l !== -100).length, b.labels.slice(1).filter((l) => l !== -100).length];
    const want = (la * na + lb * nb) / (na + nb);

    const separate = packMicroBatch([[a], [b]]); // two rows, the shorter one padded
    const packed = packMicroBatch([[a, b]]); // one row, two segments
    expect(separate.targets).toBe(na + nb);
    expect(packed.targets).toBe(na + nb);
    const loss = async (mb: typeof packed) => Number((await train.run(withNormalizer(mb, mb.targets))).loss!.data[0]);
    expect(await loss(separate)).toBeCloseTo(want, 5);
    expect(await loss(packed)).toBeCloseTo(want, 5);
    await Promise.all([train.release(), reference.release()]);
  });
});
