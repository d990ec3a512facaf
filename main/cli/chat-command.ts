import { MAX_SIDE_BY_SIDE_ADAPTERS } from '../generate/side-by-side.ts';
import { chatSideBySide, type ChatSampling } from '../service/chat.ts';

export interface ChatArgs {
  readonly model?: string | undefined;
  readonly adapter?: string[] | undefined;
  readonly maxTokens?: string | undefined;
  readonly temperature?: string | undefined;
  readonly seed?: string | undefined;
  readonly system?: string | undefined;
  readonly json?: boolean | undefined;
}

/** A numeric option, or the error line naming it. */
const numberOption = (flag: string, text: string | undefined, ok: (n: number) => boolean, rule: string): number | string | undefined => {
  if (text === undefined) return undefined;
  const n = Number(text);
  return text.trim() !== '' && ok(n) ? n : `peft-studio chat: ${flag} must be ${rule}, got '${text}'`;
};

/**
 * One prompt, answered side by side by the base model and each adapter (any method; a fully fine-tuned model folder
 * too): plain LoRA adapters in one batched pass with the base, the others each with their own graph, all streaming
 * together. With --json every text piece is a line {column, text} as it comes, then each column's answer.
 */
export const runChatCommand = async (a: ChatArgs, prompt: string): Promise<number> => {
  const fail = (message: string): number => (console.error(message), 2);
  if (!a.model) return fail('peft-studio chat: --model PATH is required (an HF folder or a .gguf file)');
  const adapters = a.adapter ?? [];
  if (adapters.length > MAX_SIDE_BY_SIDE_ADAPTERS) return fail(`peft-studio chat: at most ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters side by side`);
  const maxNewTokens = numberOption('--max-tokens', a.maxTokens, (n) => Number.isInteger(n) && n >= 1, 'an integer ≥ 1');
  const temperature = numberOption('--temperature', a.temperature, (n) => n >= 0, 'a number ≥ 0');
  const seed = numberOption('--seed', a.seed, Number.isSafeInteger, 'an integer');
  for (const v of [maxNewTokens, temperature, seed]) if (typeof v === 'string') return fail(v);
  const sampling: ChatSampling = { maxNewTokens: (maxNewTokens as number | undefined) ?? 128, temperature: (temperature as number | undefined) ?? 0, seed: (seed as number | undefined) ?? 0 };

  const r = await chatSideBySide({
    model: a.model,
    adapters,
    prompt,
    ...(a.system ? { system: a.system } : {}),
    sampling,
    ...(a.json ? { onToken: (t: { label: string; text: string }) => console.log(JSON.stringify({ column: t.label, text: t.text })) } : {}),
  });
  for (const w of r.warnings) console.error(`warning: ${w}`);
  for (const c of r.columns) {
    const answer = c.text.trim();
    if (a.json) console.log(JSON.stringify({ column: c.label, peftType: c.peftType, pass: c.pass, finish: c.finish, tokens: c.tokens, answer }));
    else console.log(`── ${c.label}${c.peftType ? ` (${c.peftType})` : ''} ${'─'.repeat(Math.max(0, 60 - c.label.length))}\n${answer}\n`);
  }
  return 0;
};
