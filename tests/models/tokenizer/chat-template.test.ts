/** Chat template selection, variables and errors (parity with transformers is in oracle-parity.test.ts). */
import { describe, expect, it } from 'vitest';
import {
  applyChatTemplate,
  chatTemplatesOf,
  hasChatTemplate,
  renderChatTemplateText,
  selectChatTemplate,
} from '../../../main/models/tokenizer/chat-template.ts';
import { ChatTemplateError } from '../../../main/models/tokenizer/errors.ts';
import { Tokenizer } from '../../../main/models/tokenizer/tokenizer.ts';
import { qwen3 } from './helpers.ts';
import { tinyTokenizerJson } from './tiny-tokenizer.ts';

const tiny = (config: Record<string, unknown>): Tokenizer => new Tokenizer(tinyTokenizerJson() as never, config, { source: 'tiny/tokenizer.json' });
const user = [{ role: 'user', content: 'Hi' }];

describe('chat templates', () => {
  it('fails clearly when the model has no chat template', () => {
    const tok = tiny({});
    expect(hasChatTemplate(tok)).toBe(false);
    expect(() => applyChatTemplate(tok, user)).toThrow(ChatTemplateError);
    expect(() => applyChatTemplate(tok, user)).toThrow(/tiny\/tokenizer\.json has no chat template .*probably a base model/);
  });

  it('reads a list of named templates and picks default, tool_use with tools, or the one asked for', () => {
    const config = {
      chat_template: [
        { name: 'default', template: 'D' },
        { name: 'tool_use', template: 'T{{ tools | length }}' },
        { name: 'rag', template: 'R' },
      ],
    };
    expect(chatTemplatesOf(config)).toEqual({ default: 'D', tool_use: 'T{{ tools | length }}', rag: 'R' });
    const tok = tiny(config);
    expect(applyChatTemplate(tok, user)).toBe('D');
    expect(applyChatTemplate(tok, user, { tools: [{ type: 'function' }] })).toBe('T1');
    expect(applyChatTemplate(tok, user, { templateName: 'rag' })).toBe('R');
    expect(() => applyChatTemplate(tok, user, { templateName: 'nope' })).toThrow(/no chat template named 'nope' \(it has: default, rag, tool_use\)/);
    expect(() => selectChatTemplate({ a: 'x' }, { source: 's' })).toThrow(/no chat template named 'default'/);
  });

  it('passes the special tokens, add_generation_prompt, tools=None and extra variables', () => {
    const tok = tiny({
      bos_token: '<|im_start|>',
      eos_token: { content: '<|im_end|>', special: true },
      chat_template:
        "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|{{ documents is none }}|{{ flag | default('unset') }}",
    });
    expect(applyChatTemplate(tok, user)).toBe('<|im_start|>|<|im_end|>|false|true|true|unset');
    expect(applyChatTemplate(tok, user, { addGenerationPrompt: true, extra: { flag: 'on' } })).toBe(
      '<|im_start|>|<|im_end|>|true|true|true|on',
    );
  });

  it('trims blocks and strips their leading whitespace, as transformers configures jinja2', () => {
    const template = '{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}';
    expect(renderChatTemplateText(template, [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], {})).toBe('[a]\n[b]\n');
  });

  it("renders {% generation %} blocks (transformers' assistant-mask tag) as their body", () => {
    const template = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}";
    expect(renderChatTemplateText(template, [{ role: 'assistant', content: 'x' }], {})).toBe('x');
  });

  it('turns raise_exception and syntax errors into ChatTemplateError', () => {
    const tok = tiny({ chat_template: "{{ raise_exception('Conversation roles must alternate') }}" });
    expect(() => applyChatTemplate(tok, user)).toThrow(/rendering the chat template failed: Conversation roles must alternate/);
    expect(() => renderChatTemplateText('{% for %}', user, {}, {}, 'broken.jinja')).toThrow(ChatTemplateError);
    expect(() => renderChatTemplateText('{% for %}', user, {}, {}, 'broken.jinja')).toThrow(/broken\.jinja: the chat template does not parse/);
  });

  it("renders Qwen3's thinking switch (enable_thinking=false adds an empty think block)", () => {
    const out = applyChatTemplate(qwen3(), user, { addGenerationPrompt: true, extra: { enable_thinking: false } });
    expect(out).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });
});
