/**
 * One source value → one normalised record (chat messages or raw text), or the reasons it cannot be: missing or
 * empty fields, wrong types, unknown roles, a conversation with no assistant turn. Messages name the field
 * (`messages[2].content`) so the user can find it in the line the problem points at.
 */
import { describeType } from './problems.ts';
import { FORMAT_SIGNATURES, type ChatRecord, type ChatRole, type ChatTurn, type DatasetFormat, type DatasetRecord } from './records.ts';

export interface Normalized {
  readonly record?: DatasetRecord;
  readonly errors: string[];
  readonly warnings: string[];
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const OPENAI_ROLES: Readonly<Record<string, ChatRole>> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
  tool: 'tool',
  function: 'tool',
};

const SHAREGPT_ROLES: Readonly<Record<string, ChatRole>> = {
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  model: 'assistant',
  chatgpt: 'assistant',
  function_call: 'assistant',
  tool: 'tool',
  observation: 'tool',
  function_response: 'tool',
};

/** CSV cells hold nested lists as JSON text: parse those that look like a list. */
const listFromCell = (value: unknown): unknown => {
  if (typeof value !== 'string' || !value.trimStart().startsWith('[')) return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
};

/** Text of an OpenAI content value: a string, or a list of {type: 'text', text} parts. */
const contentText = (content: unknown, field: string, errors: string[]): string | undefined => {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts: string[] = [];
    for (const [k, part] of content.entries()) {
      if (isObject(part) && part.type === 'text' && typeof part.text === 'string') texts.push(part.text);
      else {
        const kind = isObject(part) && typeof part.type === 'string' ? `a "${part.type}" part` : describeType(part);
        errors.push(`${field}[${k}] is ${kind}; only text parts ({"type": "text", "text": ...}) are supported`);
        return undefined;
      }
    }
    return texts.join('');
  }
  errors.push(`${field} must be text, got ${describeType(content)}`);
  return undefined;
};

/**
 * A list of messages (OpenAI {role, content} or ShareGPT {from, value}; either style in either list) checked
 * and mapped to ChatTurns. `field` names the list in messages.
 */
export const normalizeMessages = (list: unknown, field: string, style: 'openai' | 'sharegpt', errors: string[], warnings: string[]): ChatTurn[] | undefined => {
  list = listFromCell(list);
  if (!Array.isArray(list)) {
    errors.push(`${field} must be a list of messages, got ${describeType(list)}`);
    return undefined;
  }
  if (list.length === 0) {
    errors.push(`${field} is an empty list`);
    return undefined;
  }
  const turns: ChatTurn[] = [];
  const before = errors.length;
  list.forEach((m: unknown, k) => {
    const at = `${field}[${k}]`;
    if (!isObject(m)) {
      errors.push(`${at} must be an object with ${style === 'openai' ? 'role and content' : 'from and value'}, got ${describeType(m)}`);
      return;
    }
    // Either item style in either list: {role, content} or {from, value}.
    const usesFrom = !('role' in m) && ('from' in m || style === 'sharegpt');
    const roleKey = usesFrom ? 'from' : 'role';
    const contentKey = usesFrom ? 'value' : 'content';
    const rawRole = m[roleKey];
    if (rawRole === undefined) {
      errors.push(`${at} has no "${roleKey}" field`);
      return;
    }
    if (typeof rawRole !== 'string') {
      errors.push(`${at}.${roleKey} must be text, got ${describeType(rawRole)}`);
      return;
    }
    const table = roleKey === 'from' ? SHAREGPT_ROLES : OPENAI_ROLES;
    const role = table[rawRole.trim().toLowerCase()];
    if (!role) {
      const known = roleKey === 'from' ? 'human, gpt, system, tool' : 'system, user, assistant, tool';
      errors.push(`${at}.${roleKey} "${rawRole}" is not a known role (expected ${known})`);
      return;
    }
    const hasToolCalls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
    const rawContent = m[contentKey];
    if (rawContent === undefined && !hasToolCalls) {
      errors.push(`${at} has no "${contentKey}" field`);
      return;
    }
    let content = '';
    if (rawContent !== undefined && rawContent !== null) {
      const text = contentText(rawContent, `${at}.${contentKey}`, errors);
      if (text === undefined) return;
      content = text;
    } else if (!hasToolCalls) {
      errors.push(`${at}.${contentKey} is null`);
      return;
    }
    if (content.trim() === '' && !hasToolCalls) {
      if (role === 'system') {
        warnings.push(`${at} is an empty system prompt (left out)`);
        return;
      }
      errors.push(role === 'assistant' ? `${at} is an empty assistant turn (nothing to train on)` : `${at}.${contentKey} is empty`);
      return;
    }
    const turn: ChatTurn = { role, content };
    if (hasToolCalls) turn.tool_calls = m.tool_calls;
    if (typeof m.tool_call_id === 'string') turn.tool_call_id = m.tool_call_id;
    if (typeof m.name === 'string') turn.name = m.name;
    if (typeof m.reasoning_content === 'string') turn.reasoning_content = m.reasoning_content;
    turns.push(turn);
  });
  return errors.length > before ? undefined : turns;
};

/** A string field: required or optional, never of another type; `undefined` when absent (optional) or wrong. */
const textField = (value: Obj, names: readonly string[], required: boolean, errors: string[], what: string): string | undefined => {
  const name = names.find((n) => n in value);
  if (name === undefined) {
    if (required) errors.push(`no "${names[0]}" field (${what})`);
    return undefined;
  }
  const v = value[name];
  if (v === null && !required) return undefined;
  if (typeof v !== 'string') {
    errors.push(`"${name}" must be text, got ${describeType(v)}`);
    return undefined;
  }
  if (required && v.trim() === '') {
    errors.push(`"${name}" is empty`);
    return undefined;
  }
  return v;
};

/** The assistant's text of a flat format ("output", "completion"): present, text, not empty. */
const answerField = (value: Obj, names: readonly string[], errors: string[], what: string): string | undefined => {
  const name = names.find((n) => n in value);
  if (name === undefined) {
    errors.push(`no "${names[0]}" field (${what})`);
    return undefined;
  }
  const v = value[name];
  if (typeof v !== 'string') errors.push(v === null ? `"${name}" is null: an empty assistant turn (nothing to train on)` : `"${name}" must be text, got ${describeType(v)}`);
  else if (v.trim() === '') errors.push(`"${name}" is empty: an empty assistant turn (nothing to train on)`);
  else return v;
  return undefined;
};

const chat = (line: number, messages: ChatTurn[]): ChatRecord => ({ kind: 'chat', line, messages });

const withSystem = (system: string | undefined, turns: ChatTurn[]): ChatTurn[] =>
  system !== undefined && system.trim() !== '' ? [{ role: 'system', content: system }, ...turns] : turns;

const normalizeAlpaca = (v: Obj, line: number, errors: string[]): ChatRecord | undefined => {
  const what = FORMAT_SIGNATURES.alpaca;
  const instruction = textField(v, ['instruction'], true, errors, what);
  const input = textField(v, ['input', 'context'], false, errors, what);
  const output = answerField(v, ['output', 'response'], errors, what);
  const system = textField(v, ['system'], false, errors, what);
  if (errors.length || instruction === undefined || output === undefined) return undefined;
  const user = input !== undefined && input.trim() !== '' ? `${instruction}\n\n${input}` : instruction;
  return chat(line, withSystem(system, [{ role: 'user', content: user }, { role: 'assistant', content: output }]));
};

const normalizePromptCompletion = (v: Obj, line: number, errors: string[], warnings: string[]): ChatRecord | undefined => {
  const prompt = listFromCell(v.prompt);
  const completion = listFromCell(v.completion);
  if (Array.isArray(prompt) || Array.isArray(completion)) {
    const p = normalizeMessages(prompt, 'prompt', 'openai', errors, warnings);
    const c = normalizeMessages(completion, 'completion', 'openai', errors, warnings);
    return p && c ? chat(line, [...p, ...c]) : undefined;
  }
  const what = FORMAT_SIGNATURES['prompt-completion'];
  const promptText = textField(v, ['prompt'], true, errors, what);
  const completionText = answerField(v, ['completion'], errors, what);
  const system = textField(v, ['system'], false, errors, what);
  if (errors.length || promptText === undefined || completionText === undefined) return undefined;
  return chat(line, withSystem(system, [{ role: 'user', content: promptText }, { role: 'assistant', content: completionText }]));
};

/** Conversation-level checks: an assistant turn to train on; user turns left after the last one. */
const checkConversation = (record: ChatRecord, errors: string[], warnings: string[]): ChatRecord | undefined => {
  const lastAssistant = record.messages.map((m) => m.role).lastIndexOf('assistant');
  if (lastAssistant < 0) {
    errors.push('the conversation has no assistant turn: nothing to train on');
    return undefined;
  }
  const trailing = record.messages.length - 1 - lastAssistant;
  if (trailing > 0 && record.messages.slice(lastAssistant + 1).some((m) => m.role === 'user')) {
    warnings.push(`the conversation ends with ${trailing} message${trailing === 1 ? '' : 's'} after the last assistant turn (not trained)`);
  }
  return record;
};

/** Normalises one source value as `format`. */
export const normalizeValue = (value: unknown, format: DatasetFormat, line: number): Normalized => {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!isObject(value)) {
    errors.push(`a record must be an object with fields (${FORMAT_SIGNATURES[format]}), got ${describeType(value)}`);
    return { errors, warnings };
  }
  let record: DatasetRecord | undefined;
  switch (format) {
    case 'openai':
    case 'sharegpt': {
      const field = format === 'openai' ? 'messages' : 'conversations';
      if (!(field in value)) {
        errors.push(`no "${field}" field (${FORMAT_SIGNATURES[format]})`);
        break;
      }
      const turns = normalizeMessages(value[field], field, format, errors, warnings);
      if (turns) {
        const system = format === 'sharegpt' ? textField(value, ['system'], false, errors, FORMAT_SIGNATURES.sharegpt) : undefined;
        record = chat(line, turns[0]?.role === 'system' ? turns : withSystem(system, turns));
      }
      break;
    }
    case 'alpaca':
      record = normalizeAlpaca(value, line, errors);
      break;
    case 'prompt-completion':
      record = normalizePromptCompletion(value, line, errors, warnings);
      break;
    case 'text': {
      const text = textField(value, ['text'], true, errors, FORMAT_SIGNATURES.text);
      if (text !== undefined) record = { kind: 'text', line, text };
      break;
    }
  }
  if (record?.kind === 'chat') record = checkConversation(record, errors, warnings);
  if (!record && errors.length === 0) errors.push(`the record has none of the fields of ${FORMAT_SIGNATURES[format]}`);
  return errors.length ? { errors, warnings } : { record, errors, warnings };
};
