/**
 * Token ids and assistant masks against transformers (tests/oracle/dataset_mask_ref.py): for SmolLM2's (GGUF)
 * and Qwen3's chat templates, our input_ids equal `apply_chat_template(tokenize=True)` and our assistant mask
 * equals transformers' `return_assistant_tokens_mask` over the model's template with {% generation %} tags.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../main/models/tokenizer/index.ts';
import { IGNORE_INDEX, tokenizeConversation, type ChatTurn } from '../../../main/train/dataset/index.ts';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { folderTokenizer, GOOD_DIR, hasFile, SMOLLM2_GGUF, smollm2Tokenizer, tinyDir } from './helpers.ts';

interface Conversation {
  readonly name: string;
  readonly messages: ChatTurn[];
}

interface Reference {
  readonly name: string;
  readonly input_ids: number[];
  readonly assistant_masks: number[];
  readonly method: string;
}

const conversations = (JSON.parse(readFileSync(join(GOOD_DIR, 'mask-conversations.json'), 'utf8')) as { conversations: Conversation[] }).conversations;

/** Cases kept out of the list above because the two sides tokenize them differently for a known reason. */
const DIVERGENT: Conversation[] = [
  {
    // @huggingface/jinja 0.5.11's str.lstrip('\n') / strip('\n') ignore their argument and strip all whitespace;
    // Qwen3's template calls content.lstrip('\n') on the last assistant turn.
    name: 'qwen3: leading spaces in the last assistant turn',
    messages: [
      { role: 'user', content: 'Indent this.' },
      { role: 'assistant', content: '    indented' },
    ],
  },
  {
    // transformers' GGUF loader ignores tokenizer.ggml.pre ('smollm' splits digits before GPT-2's regex), so for
    // "\n\n4" it gives Ċ Ċ 4 where SmolLM2's own tokenizer (and ours, and llama.cpp) give ĊĊ 4.
    name: 'smollm2: whitespace before a digit',
    messages: [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: 'It is\n\n4' },
    ],
  },
];

const ours = (tok: Tokenizer, c: Conversation): { ids: number[]; mask: number[] } => {
  const { inputIds, labels } = tokenizeConversation(tok, { kind: 'chat', line: 1, messages: c.messages });
  return { ids: inputIds, mask: labels.map((l) => (l === IGNORE_INDEX ? 0 : 1)) };
};

const maskedText = (tok: Tokenizer, ids: readonly number[], mask: readonly number[]): string => tok.decode(ids.filter((_, k) => mask[k] === 1));

describeOracle('assistant masks match transformers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-mask-oracle-'));
  const input = join(dir, 'conversations.json');
  writeFileSync(input, JSON.stringify({ conversations: [...conversations, ...DIVERGENT] }));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const models: [string, string, () => Tokenizer][] = [
    ['Qwen3 (tiny HF folder)', tinyDir('qwen3'), () => folderTokenizer(tinyDir('qwen3'))],
    ['SmolLM2-135M-Instruct (GGUF)', SMOLLM2_GGUF, smollm2Tokenizer],
  ];
  for (const [label, source, load] of models) {
    const present = hasFile(source) || process.env.PEFT_REQUIRE_ORACLE === '1';
    if (!present) console.warn(`${source} missing (tests/oracle/setup.sh, fetch-smollm2.sh) — SKIPPED: ${label} mask oracle`);
    (present ? describe : describe.skip)(label, () => {
      let refs: Reference[];
      let tok: Tokenizer;
      beforeAll(() => {
        refs = runOracle<{ results: Reference[] }>('dataset_mask_ref.py', [source, input]).results;
        tok = load();
      });

      it(`input_ids and assistant masks agree on all ${conversations.length} conversations`, () => {
        const disagreements = conversations.flatMap((c, k) => {
          const ref = refs[k]!;
          const mine = ours(tok, c);
          expect(ref.method).toBe('generation-tags');
          const out: string[] = [];
          if (JSON.stringify(mine.ids) !== JSON.stringify(ref.input_ids)) out.push(`${c.name}: input_ids differ`);
          if (JSON.stringify(mine.mask) !== JSON.stringify(ref.assistant_masks)) {
            out.push(`${c.name}: masks differ: ours ${JSON.stringify(maskedText(tok, mine.ids, mine.mask))}, ` + `transformers ${JSON.stringify(maskedText(tok, ref.input_ids, ref.assistant_masks))}`);
          }
          return out;
        });
        expect(disagreements).toEqual([]);
        // Every conversation trains something, and not everything.
        for (const ref of refs.slice(0, conversations.length)) {
          const trained = ref.assistant_masks.filter((m) => m === 1).length;
          expect(trained).toBeGreaterThan(0);
          expect(trained).toBeLessThan(ref.input_ids.length);
        }
      });

      it('known tokenization differences still mask the same text', () => {
        for (const [k, c] of DIVERGENT.entries()) {
          const ref = refs[conversations.length + k]!;
          const mine = ours(tok, c);
          const theirs = maskedText(tok, ref.input_ids, ref.assistant_masks);
          if (c.name.startsWith('qwen3') && label.startsWith('Qwen3')) {
            // The rendered texts differ (see DIVERGENT): the leading spaces are lost on our side.
            expect(maskedText(tok, mine.ids, mine.mask)).toBe(theirs.replace('    indented', 'indented'));
          } else {
            expect(maskedText(tok, mine.ids, mine.mask)).toBe(theirs);
          }
        }
      });
    });
  }
});
