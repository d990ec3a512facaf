// `npm run demo`: SmolLM2-135M-Instruct learns to answer US-capital questions as one JSON object, with LoRA on the
// CPU in a few minutes; then the base model and the adapter answer 20 held-out questions side by side, in one
// batched generation pass, and a check written in code says how many answers follow the trained format.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MultiAdapterGenerator } from '../generate/multi-adapter.ts';
import { downloadRepo } from '../models/hub/download.ts';
import { openModel, type OpenedModel } from '../models/open-model.ts';
import { applyChatTemplate } from '../models/tokenizer/index.ts';
import { applyLora } from '../peft/lora.ts';
import { parseLoraConfig } from '../peft/lora-config.ts';
import { loadAdapterFiles, saveAdapter } from '../peft/peft-io.ts';
import { tokenizeConversation, type ChatTurn } from '../train/dataset/index.ts';
import { buildTrainingGraph } from '../train/train-graph.ts';
import { Trainer, type TrainerEvent } from '../train/trainer.ts';
import { demoSplit, followsBehaviour } from './demo-data.ts';

export const DEMO_MODEL_REPO = 'HuggingFaceTB/SmolLM2-135M-Instruct';
export const DEMO_GGUF = 'SmolLM2-135M-Instruct.Q4_1.gguf';

export interface DemoOptions {
  /** An HF folder or GGUF; default: the local model cache, else the Hugging Face Hub. */
  readonly modelPath?: string;
  readonly outputDir: string;
  readonly steps?: number;
  readonly threads?: number;
  readonly onEvent?: (e: DemoEvent) => void;
}

export interface DemoAnswer {
  readonly question: string;
  readonly base: string;
  readonly adapter: string;
  readonly baseFollows: boolean;
  readonly adapterFollows: boolean;
}

export type DemoEvent =
  | { readonly type: 'stage'; readonly message: string }
  | TrainerEvent
  | { readonly type: 'answer'; readonly answer: DemoAnswer };

export interface DemoResult {
  readonly modelPath: string;
  readonly adapterDir: string;
  readonly firstEvalLoss: number;
  readonly lastEvalLoss: number;
  readonly answers: readonly DemoAnswer[];
  readonly baseFollowRate: number;
  readonly adapterFollowRate: number;
}

export class DemoError extends Error {
  override readonly name = 'DemoError';
}

const cacheRoot = (): string => process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio');

/** The local cache first (the GGUF the developer/CI script fetches), else a download from the Hub. */
export const resolveDemoModel = async (explicit?: string): Promise<string> => {
  if (explicit) return explicit;
  const cached = join(cacheRoot(), 'models', DEMO_GGUF);
  if (existsSync(cached)) return cached;
  try {
    return await downloadRepo({ repo: DEMO_MODEL_REPO });
  } catch (err) {
    throw new DemoError(
      `${DEMO_MODEL_REPO} is neither in the local cache (${cached}) nor downloadable from the Hugging Face Hub (${(err as Error).message}). ` +
        'Developers and CI fill the cache with tests/oracle/fetch-smollm2.sh.',
    );
  }
};

export const runDemo = async (o: DemoOptions): Promise<DemoResult> => {
  const say = (message: string) => o.onEvent?.({ type: 'stage', message });
  const modelPath = await resolveDemoModel(o.modelPath);
  say(`model: ${modelPath}`);
  const opened: OpenedModel = openModel(modelPath);
  const data = demoSplit();
  mkdirSync(o.outputDir, { recursive: true });
  writeFileSync(join(o.outputDir, 'state-capitals.jsonl'), data.train.map((messages) => JSON.stringify({ messages })).join('\n') + '\n');
  say(`dataset: ${data.train.length} training conversations, ${data.eval.length} eval, ${data.heldOut.length} held-out questions (${join(o.outputDir, 'state-capitals.jsonl')})`);

  const loraRaw = { peft_type: 'LORA', r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear', task_type: 'CAUSAL_LM', base_model_name_or_path: DEMO_MODEL_REPO };
  const { config } = parseLoraConfig(loraRaw, 'demo LoRA config');
  const adapted = applyLora(buildTrainingGraph(opened.model), config, { seed: 1 });
  const tokenize = (messages: (typeof data.train)[number]) =>
    tokenizeConversation(opened.tokenizer, { kind: 'chat', line: 0, messages: messages as readonly ChatTurn[] });
  const session = o.threads ? { threads: o.threads } : {};
  const trainer = await Trainer.create({
    graph: adapted.graph,
    params: adapted.params,
    train: data.train.map(tokenize),
    eval: data.eval.map(tokenize),
    hyper: { microBatchSize: 4, gradientAccumulation: 1, maxSteps: o.steps ?? 40, lr: 2e-3, schedule: 'cosine', warmupSteps: 4, maxGradNorm: 1, maxLength: 256, packing: true, evalEvery: 10, seed: 7, session },
    outputDir: o.outputDir,
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
  const firstEvalLoss = await trainer.evaluate();
  say(`eval loss before training: ${firstEvalLoss.toFixed(4)}`);
  const result = await trainer.run();
  const lastEvalLoss = await trainer.evaluate();
  const adapterDir = join(o.outputDir, 'adapter');
  saveAdapter(adapterDir, loraRaw, trainer.trainables);
  await trainer.release();
  trainer.clearCheckpoints();
  say(`trained ${result.steps} steps; eval loss ${firstEvalLoss.toFixed(4)} → ${lastEvalLoss.toFixed(4)}; adapter saved to ${adapterDir}`);

  // Base and adapter side by side: one batch, each question twice (slot none = base, slot 0 = the adapter).
  const generator = await MultiAdapterGenerator.create(opened.model, { slots: 1, targets: [config], session });
  generator.loadAdapter(0, loadAdapterFiles(adapterDir), config, 'demo');
  const prompts = data.heldOut.map((p) =>
    opened.tokenizer.encode(applyChatTemplate(opened.tokenizer, [{ role: 'user', content: p.question }], { addGenerationPrompt: true }), { addSpecialTokens: false }),
  );
  const decoders = prompts.flatMap(() => [opened.tokenizer.createStreamDecoder({ skipSpecialTokens: true }), opened.tokenizer.createStreamDecoder({ skipSpecialTokens: true })]);
  const rows = prompts.flatMap((ids, i) => [
    { promptIds: ids, slot: null, decode: (id: number) => decoders[2 * i]!.push(id) },
    { promptIds: ids, slot: 0, decode: (id: number) => decoders[2 * i + 1]!.push(id) },
  ]);
  const texts = rows.map(() => '');
  for await (const e of generator.generate(rows, { maxNewTokens: 40, eosTokenIds: opened.stopTokenIds })) {
    if (e.kind === 'token') texts[e.row] += e.text;
  }
  await generator.release();
  const answers = data.heldOut.map((p, i): DemoAnswer => {
    const base = (texts[2 * i]! + decoders[2 * i]!.flush()).trim();
    const adapter = (texts[2 * i + 1]! + decoders[2 * i + 1]!.flush()).trim();
    const answer = { question: p.question, base, adapter, baseFollows: followsBehaviour(base), adapterFollows: followsBehaviour(adapter) };
    o.onEvent?.({ type: 'answer', answer });
    return answer;
  });
  const rate = (k: 'baseFollows' | 'adapterFollows') => answers.filter((a) => a[k]).length / answers.length;
  return { modelPath, adapterDir, firstEvalLoss, lastEvalLoss, answers, baseFollowRate: rate('baseFollows'), adapterFollowRate: rate('adapterFollows') };
};
