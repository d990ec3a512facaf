import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chat } from '../../main/generate/chat.ts';
import { Generator } from '../../main/generate/generator.ts';
import { openModel } from '../../main/models/open-model.ts';
import { oracleCacheDir, oracleRequired } from '../helpers/oracle-cache.ts';

const gguf = join(oracleCacheDir(), '..', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');

describe.skipIf(!existsSync(gguf) && !oracleRequired())('chat with SmolLM2 (GGUF)', () => {
  it('applies the chat template, streams text, stops at end of turn and at stop strings', async () => {
    const opened = openModel(gguf, { keepQuantized: true });
    expect(opened.format).toBe('gguf');
    const generator = await Generator.create(opened.model);
    const messages = [{ role: 'user', content: 'What is the capital of France? Answer in one sentence.' }];
    const pieces: string[] = [];
    for await (const piece of chat(generator, opened, messages, { maxNewTokens: 48 })) pieces.push(piece);
    const answer = pieces.join('');
    expect(pieces.length).toBeGreaterThan(1);
    expect(answer).toMatch(/Paris/);
    expect(answer).not.toMatch(/<\|im_end\|>|<\|im_start\|>/);
    const cut: string[] = [];
    for await (const piece of chat(generator, opened, messages, { maxNewTokens: 48, stopStrings: ['Paris'] })) cut.push(piece);
    expect(answer.startsWith(cut.join(''))).toBe(true);
    expect(cut.join('')).not.toMatch(/Paris/);
    await generator.release();
  });

  it('a wrong path gets a clear error', () => {
    expect(() => openModel('/nonexistent/model.gguf')).toThrow('/nonexistent/model.gguf does not exist');
    expect(() => openModel('package.json')).toThrow('package.json is neither a Hugging Face model folder nor a .gguf file');
  });
});
