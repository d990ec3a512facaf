/**
 * Loads a Hugging Face tokenizer folder the way transformers' AutoTokenizer.from_pretrained does for a fast
 * tokenizer: tokenizer.json, tokenizer_config.json, special_tokens_map.json (its entries override the config's),
 * and chat_template.jinja / additional_chat_templates/*.jinja (they override the config's chat_template).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { TokenizerError } from './errors.ts';
import type { TokenizerConfigJson, TokenizerJson } from './formats.ts';
import { Tokenizer } from './tokenizer.ts';

/** Reads and parses one JSON file; the error names the file and says what is wrong with it. */
export const readJsonFile = (file: string): unknown => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenizerError(`cannot read ${file}: ${(err as Error).message}`, file);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new TokenizerError(`${file} is not valid JSON: ${(err as Error).message}`, file);
  }
};

const readJsonObject = (file: string): Record<string, unknown> => {
  const value = readJsonFile(file);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenizerError(`${file} must hold a JSON object`, file);
  }
  return value as Record<string, unknown>;
};

/** The config transformers ends up with: tokenizer_config.json, special_tokens_map.json, chat template files. */
export const readTokenizerConfig = (dir: string): TokenizerConfigJson => {
  const configFile = join(dir, 'tokenizer_config.json');
  // A folder without tokenizer_config.json is valid (transformers then uses defaults).
  const config: TokenizerConfigJson = existsSync(configFile) ? { ...readJsonObject(configFile) } : {};

  const mapFile = join(dir, 'special_tokens_map.json');
  if (existsSync(mapFile)) {
    for (const [key, value] of Object.entries(readJsonObject(mapFile))) {
      if (key === 'additional_special_tokens' && Array.isArray(value)) {
        // transformers appends the map's extra tokens to the config's, without duplicates.
        const merged = [...(config.additional_special_tokens ?? [])];
        const seen = new Set(merged.map((v) => JSON.stringify(v)));
        for (const v of value) if (!seen.has(JSON.stringify(v))) merged.push(v as string);
        config.additional_special_tokens = merged;
      } else {
        config[key] = value;
      }
    }
  }

  const templates = readChatTemplateFiles(dir);
  if (templates) config.chat_template = templates;
  return config;
};

/** chat_template.jinja (the default) and additional_chat_templates/NAME.jinja, or undefined when there are none. */
const readChatTemplateFiles = (dir: string): string | Record<string, string> | undefined => {
  const templates: Record<string, string> = {};
  const main = join(dir, 'chat_template.jinja');
  if (existsSync(main)) templates.default = readText(main);
  const extraDir = join(dir, 'additional_chat_templates');
  if (existsSync(extraDir) && statSync(extraDir).isDirectory()) {
    for (const name of readdirSync(extraDir).sort()) {
      if (name.endsWith('.jinja')) templates[basename(name, '.jinja')] = readText(join(extraDir, name));
    }
  }
  const names = Object.keys(templates);
  if (names.length === 0) return undefined;
  if (names.length === 1 && templates.default !== undefined) return templates.default;
  return templates;
};

const readText = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenizerError(`cannot read ${file}: ${(err as Error).message}`, file);
  }
};

/** Loads the tokenizer of a Hugging Face model folder. Throws TokenizerError naming the missing or broken file. */
export const loadTokenizerFromFolder = (dir: string): Tokenizer => {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new TokenizerError(`${dir} is not a folder`, dir);
  }
  const tokenizerFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerFile)) {
    const hint = existsSync(join(dir, 'tokenizer.model'))
      ? ' (it has a SentencePiece tokenizer.model, which is not supported: convert it to tokenizer.json)'
      : '';
    throw new TokenizerError(`${dir} has no tokenizer.json${hint}`, dir);
  }
  const tokenizerJson = readJsonObject(tokenizerFile);
  if (!tokenizerJson.model || typeof tokenizerJson.model !== 'object') {
    throw new TokenizerError(`${tokenizerFile} is not a tokenizer.json: it has no "model" object`, tokenizerFile);
  }
  const config = readTokenizerConfig(dir);
  return new Tokenizer(tokenizerJson as TokenizerJson, config, { source: tokenizerFile });
};
