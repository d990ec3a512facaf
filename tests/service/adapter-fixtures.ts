// Shared by the eval / merge / export / compare tests: a small chat dataset, LoRA adapters with random non-zero
// tensors written by our PEFT writer, and short real training runs recorded in a store.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHfFolder } from '../../main/models/hf-folder.ts';
import { applyLora } from '../../main/peft/lora.ts';
import { parseLoraConfig } from '../../main/peft/lora-config.ts';
import { saveAdapter } from '../../main/peft/peft-io.ts';
import { parseRunConfig } from '../../main/service/run-config.ts';
import { trainRun, type RunOutcome } from '../../main/service/train-run.ts';
import type { Store } from '../../main/store/index.ts';
import { buildTrainingGraph } from '../../main/train/train-graph.ts';

export const writeChatDataset = (dir: string, rows = 24, name = 'chat.jsonl'): string => {
  const file = join(dir, name);
  const records = Array.from({ length: rows }, (_, i) => ({
    messages: [
      { role: 'user', content: `What is ${i} plus ${i + 3}?` },
      { role: 'assistant', content: `${i} plus ${i + 3} is ${2 * i + 3}.` },
    ],
  }));
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

/** A LoRA adapter for `modelDir` whose A and B are both random (init_lora_weights=false), saved in PEFT's format. */
export const randomAdapter = (modelDir: string, out: string, fields: Record<string, unknown> = {}, seed = 1): string => {
  const raw = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], ...fields, init_lora_weights: false };
  const { config } = parseLoraConfig(raw, 'test adapter');
  const adapted = applyLora(buildTrainingGraph(openHfFolder(modelDir)), config, { seed });
  saveAdapter(out, { ...raw, init_lora_weights: true, base_model_name_or_path: modelDir }, adapted.params);
  return out;
};

/** A few real optimizer steps through the service, recorded in `store` (run, metrics, adapter). */
export const trainTinyRun = (store: Store, o: { model: string; dataset: string; output: string; name: string; r: number; lr: number; steps: number }): Promise<RunOutcome> =>
  trainRun(
    parseRunConfig(
      {
        name: o.name,
        model: o.model,
        dataset: { path: o.dataset, evalFraction: 0.25 },
        method: { peft_type: 'LORA', r: o.r, lora_alpha: 2 * o.r, target_modules: ['q_proj', 'v_proj'] },
        training: { microBatchSize: 4, maxSteps: o.steps, lr: o.lr, evalEvery: o.steps, checkpointEvery: 1000, maxLength: 64, session: { threads: 1 } },
        output: o.output,
      },
      'test config',
    ),
    store,
  );
