/**
 * Chat templates rendered with @huggingface/jinja the way transformers' `apply_chat_template(messages,
 * tokenize=False, add_generation_prompt=...)` renders them with Python's jinja2:
 * - the same variables: messages, tools (None unless given), documents (None), add_generation_prompt, every set
 *   special token of the tokenizer (bos_token, eos_token, unk_token, pad_token, ..., additional_special_tokens),
 *   then the caller's extra kwargs (enable_thinking, ...), which override special tokens of the same name;
 * - the same globals raise_exception and strftime_now, and a tojson with Python's json.dumps layout (the JS
 *   library provides these);
 * - trim_blocks and lstrip_blocks on (the JS library always lexes that way, as transformers configures jinja2);
 * - the same choice among several named templates (get_chat_template).
 */
import { Template } from '@huggingface/jinja';
import { ChatTemplateError } from './errors.ts';
import { specialTokenContent, type NamedChatTemplate, type TokenizerConfigJson } from './formats.ts';
import type { Tokenizer } from './tokenizer.ts';

/** One chat message. `content` is usually a string; templates may read other fields (reasoning_content, tool_calls). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface RenderChatOptions {
  /** End with the opening of an assistant turn, for generation. Default false. */
  addGenerationPrompt?: boolean;
  /** Which named template to use when the model has several ('default', 'tool_use', ...). */
  templateName?: string;
  /** JSON-schema tool definitions; templates see `tools` as None when left out. */
  tools?: readonly unknown[];
  documents?: readonly unknown[];
  /** Extra template variables (transformers' **kwargs), e.g. { enable_thinking: false }. */
  extra?: Readonly<Record<string, unknown>>;
}

/** The templates a model declares: one, or several by name (tokenizer_config's list, or .jinja files). */
export type ChatTemplates = string | Readonly<Record<string, string>>;

/** Normalizes tokenizer_config.json's chat_template (string, list of {name, template}, or map) or undefined. */
export const chatTemplatesOf = (config: TokenizerConfigJson): ChatTemplates | undefined => {
  const value = config.chat_template;
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named: Record<string, string> = {};
    for (const entry of value as NamedChatTemplate[]) {
      if (entry && typeof entry.name === 'string' && typeof entry.template === 'string') named[entry.name] = entry.template;
    }
    return named;
  }
  return value;
};

/**
 * The template text to render, chosen like transformers' get_chat_template: a named one when asked for, else
 * 'tool_use' when tools are given and it exists, else 'default'.
 */
export const selectChatTemplate = (
  templates: ChatTemplates | undefined,
  options: { templateName?: string; hasTools?: boolean; source?: string } = {},
): string => {
  const source = options.source ?? 'the tokenizer';
  if (templates === undefined) {
    throw new ChatTemplateError(
      `${source} has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja, ` +
        `no tokenizer.chat_template in the GGUF); it is probably a base model, not a chat model`,
      source,
    );
  }
  if (typeof templates === 'string') {
    if (options.templateName !== undefined && options.templateName !== 'default') {
      throw new ChatTemplateError(`${source} has a single chat template, not one named '${options.templateName}'`, source);
    }
    return templates;
  }
  const names = Object.keys(templates).sort();
  const pick =
    options.templateName ?? (options.hasTools && templates.tool_use !== undefined ? 'tool_use' : 'default');
  const chosen = templates[pick];
  if (chosen === undefined) {
    throw new ChatTemplateError(
      `${source} has no chat template named '${pick}' (it has: ${names.join(', ')}); pass one of those names`,
      source,
    );
  }
  return chosen;
};

/**
 * transformers handles `{% generation %}...{% endgeneration %}` (marks assistant text for masks) with a jinja
 * extension; the JS library does not know the tag. It renders its body unchanged, so an always-true `if` block is
 * the same thing, with the same trim_blocks / lstrip_blocks behaviour around the tags.
 */
const replaceGenerationTags = (template: string): string =>
  template
    .replace(/\{%(-?)\s*generation\s*(-?)%\}/g, '{%$1 if true $2%}')
    .replace(/\{%(-?)\s*endgeneration\s*(-?)%\}/g, '{%$1 endif $2%}');

const compiled = new Map<string, Template>();

/** Parses a template once (per process); syntax errors become ChatTemplateError. */
const compile = (template: string, source: string): Template => {
  let parsed = compiled.get(template);
  if (!parsed) {
    try {
      parsed = new Template(replaceGenerationTags(template));
    } catch (err) {
      throw new ChatTemplateError(`${source}: the chat template does not parse: ${(err as Error).message}`, source);
    }
    compiled.set(template, parsed);
  }
  return parsed;
};

/** Variables transformers passes for the special tokens: each that is set, as its text. */
export const specialTokenVariables = (config: TokenizerConfigJson): Record<string, unknown> => {
  const vars: Record<string, unknown> = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
    const content = specialTokenContent(config[key] as never);
    if (content !== undefined) vars[key] = content;
  }
  if (Array.isArray(config.additional_special_tokens) && config.additional_special_tokens.length > 0) {
    vars.additional_special_tokens = config.additional_special_tokens.map((v) => specialTokenContent(v));
  }
  return vars;
};

/** Renders a template text with explicit variables for the special tokens. */
export const renderChatTemplateText = (
  template: string,
  messages: readonly ChatMessage[],
  specialTokens: Readonly<Record<string, unknown>>,
  options: RenderChatOptions = {},
  source = 'chat template',
): string => {
  const variables: Record<string, unknown> = {
    messages,
    tools: options.tools ?? null,
    documents: options.documents ?? null,
    add_generation_prompt: options.addGenerationPrompt ?? false,
    ...specialTokens,
    ...(options.extra ?? {}),
  };
  try {
    return compile(template, source).render(variables);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw err;
    throw new ChatTemplateError(`${source}: rendering the chat template failed: ${(err as Error).message}`, source);
  }
};

/** transformers' `tokenizer.apply_chat_template(messages, tokenize=False, ...)` for this tokenizer's template. */
export const applyChatTemplate = (
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: RenderChatOptions = {},
): string => {
  const template = selectChatTemplate(chatTemplatesOf(tokenizer.config), {
    ...(options.templateName !== undefined ? { templateName: options.templateName } : {}),
    hasTools: options.tools !== undefined,
    source: tokenizer.source,
  });
  return renderChatTemplateText(template, messages, specialTokenVariables(tokenizer.config), options, tokenizer.source);
};

/** Whether the tokenizer's model declares a chat template. */
export const hasChatTemplate = (tokenizer: Tokenizer): boolean => chatTemplatesOf(tokenizer.config) !== undefined;
