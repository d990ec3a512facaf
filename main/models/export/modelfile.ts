// An Ollama Modelfile for an exported GGUF: FROM the file, the chat template rewritten from Jinja to Ollama's Go
// template for the families it can be recognised in (ChatML: SmolLM2, Qwen, ...; Llama 3 headers), the template's
// built-in default system prompt as SYSTEM, and a stop parameter for each end-of-turn token. Ollama hands a
// template .System (the system message, or SYSTEM's default) and .Messages (every message).
import { ExportError } from './errors.ts';

export type ChatFamily = 'chatml' | 'llama3';

export interface ModelfileOptions {
  /** As FROM writes it, relative to the Modelfile: './model.gguf'. */
  readonly from: string;
  /** The Jinja chat template (tokenizer.chat_template). */
  readonly chatTemplate?: string;
  /** Texts of the tokens that end a turn (eos, eot): each becomes a stop parameter. */
  readonly stopTokens?: readonly string[];
}

export interface OllamaModelfile {
  readonly text: string;
  readonly family: ChatFamily | undefined;
  readonly system: string | undefined;
  readonly stops: readonly string[];
  /** What could not be carried over (an unrecognised template). */
  readonly warnings: readonly string[];
}

const CHATML = `{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}`;

const LLAMA3 = `{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}`;

const FAMILIES: Readonly<Record<ChatFamily, { readonly template: string; readonly endOfTurn: string; readonly test: (t: string) => boolean }>> = {
  chatml: { template: CHATML, endOfTurn: '<|im_end|>', test: (t) => t.includes('<|im_start|>') && t.includes('<|im_end|>') },
  llama3: { template: LLAMA3, endOfTurn: '<|eot_id|>', test: (t) => t.includes('<|start_header_id|>') && t.includes('<|eot_id|>') },
};

/** Which known family a Jinja chat template renders, if any. */
export const chatFamily = (template: string): ChatFamily | undefined =>
  (Object.keys(FAMILIES) as ChatFamily[]).find((f) => FAMILIES[f].test(template));

/**
 * A default system prompt written into a ChatML template as a string literal ('<|im_start|>system\n…<|im_end|>'),
 * as SmolLM2's and Qwen2.5's templates have for conversations without a system message.
 */
export const defaultSystemPrompt = (template: string): string | undefined => {
  for (const m of template.matchAll(/<\|im_start\|>system(?:\n|\\n)([\s\S]*?)<\|im_end\|>/g)) {
    const text = m[1]!;
    if (text.length > 0 && !/['"{}]|\+/.test(text)) return text.replace(/\\n/g, '\n');
  }
  return undefined;
};

const quoted = (s: string, what: string): string => {
  if (s.includes('"')) throw new ExportError(`Modelfile: the ${what} ${JSON.stringify(s)} contains a double quote`);
  return `"${s}"`;
};

const tripleQuoted = (s: string, what: string): string => {
  if (s.includes('"""')) throw new ExportError(`Modelfile: the ${what} contains """, which a Modelfile cannot quote`);
  return `"""${s}"""`;
};

export const ollamaModelfile = (o: ModelfileOptions): OllamaModelfile => {
  const warnings: string[] = [];
  const template = o.chatTemplate;
  const family = template ? chatFamily(template) : undefined;
  if (!template) warnings.push('the model has no chat template: Ollama will send prompts as they are');
  else if (!family) warnings.push('the chat template is neither ChatML nor Llama 3: write TEMPLATE by hand (Ollama falls back to the raw prompt)');
  const system = family === 'chatml' ? defaultSystemPrompt(template!) : undefined;
  const stops = [...new Set([...(family ? [FAMILIES[family].endOfTurn] : []), ...(o.stopTokens ?? [])])].filter((s) => s.length > 0);
  const lines = [`FROM ${o.from}`];
  if (family) lines.push(`TEMPLATE ${tripleQuoted(FAMILIES[family].template, 'template')}`);
  if (system !== undefined) lines.push(`SYSTEM ${tripleQuoted(system, 'system prompt')}`);
  for (const s of stops) lines.push(`PARAMETER stop ${quoted(s, 'stop token')}`);
  return { text: `${lines.join('\n')}\n`, family, system, stops, warnings };
};
