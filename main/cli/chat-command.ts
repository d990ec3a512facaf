import { MultiAdapterGenerator } from '../generate/multi-adapter.ts';
import { openModel } from '../models/open-model.ts';
import { applyChatTemplate } from '../models/tokenizer/index.ts';
import { parseLoraConfig } from '../peft/lora-config.ts';
import { loadAdapterFiles } from '../peft/peft-io.ts';

export interface ChatArgs {
  readonly model?: string | undefined;
  readonly adapter?: string[] | undefined;
  readonly maxTokens?: string | undefined;
  readonly temperature?: string | undefined;
  readonly seed?: string | undefined;
  readonly system?: string | undefined;
  readonly json?: boolean | undefined;
}

/**
 * One prompt, answered by the base model and each adapter side by side in one batched generation pass; tokens
 * stream as they come (prefixed by their column), then the answers are printed in full.
 */
export const runChatCommand = async (a: ChatArgs, prompt: string): Promise<number> => {
  if (!a.model) {
    console.error('peft-studio chat: --model PATH is required (an HF folder or a .gguf file)');
    return 2;
  }
  const opened = openModel(a.model, { keepQuantized: true });
  const adapters = (a.adapter ?? []).map((dir) => {
    const files = loadAdapterFiles(dir);
    return { dir, files, config: parseLoraConfig(files.config, `${dir}/adapter_config.json`).config };
  });
  if (adapters.length > 4) {
    console.error('peft-studio chat: at most 4 adapters side by side');
    return 2;
  }
  const generator = await MultiAdapterGenerator.create(opened.model, { slots: Math.max(1, adapters.length), targets: adapters.map((x) => x.config) });
  adapters.forEach((x, i) => generator.loadAdapter(i, x.files, x.config, x.dir));
  const messages = [...(a.system ? [{ role: 'system', content: a.system }] : []), { role: 'user', content: prompt }];
  const ids = opened.tokenizer.encode(applyChatTemplate(opened.tokenizer, messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
  const labels = ['base', ...adapters.map((x) => x.dir)];
  const decoders = labels.map(() => opened.tokenizer.createStreamDecoder({ skipSpecialTokens: true }));
  const rows = labels.map((_, i) => ({ promptIds: ids, slot: i === 0 ? null : i - 1, decode: (id: number) => decoders[i]!.push(id) }));
  const texts = labels.map(() => '');
  const temperature = a.temperature ? Number(a.temperature) : 0;
  for await (const e of generator.generate(rows, { maxNewTokens: a.maxTokens ? Number(a.maxTokens) : 128, temperature, seed: a.seed ? Number(a.seed) : 0, eosTokenIds: opened.stopTokenIds })) {
    if (e.kind !== 'token' || !e.text) continue;
    texts[e.row] += e.text;
    if (a.json) console.log(JSON.stringify({ column: labels[e.row], text: e.text }));
  }
  await generator.release();
  labels.forEach((label, i) => {
    texts[i] += decoders[i]!.flush();
    if (a.json) console.log(JSON.stringify({ column: label, answer: texts[i]!.trim() }));
    else console.log(`── ${label} ${'─'.repeat(Math.max(0, 60 - label.length))}\n${texts[i]!.trim()}\n`);
  });
  return 0;
};
