/**
 * Which files of a repo to fetch. Patterns follow huggingface_hub's allow_patterns: Python fnmatch, case
 * sensitive, where `*` also matches `/` (so `*.json` matches `sub/a.json`), and a pattern ending in `/` means
 * the whole folder.
 */

/** What loading a model for training or chat needs besides the weights. */
export const MODEL_SIDE_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'special_tokens_map.json',
] as const;

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** The default allowPatterns as patterns (what `downloadRepo` documents; weights are narrowed further there). */
export const DEFAULT_MODEL_PATTERNS: readonly string[] = [...MODEL_SIDE_FILES, '*.safetensors', SAFETENSORS_INDEX];

function fnmatchToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2); // a `]` right after `[` (or `[!`) is a literal member
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      body = body.startsWith('!') ? `^${body.slice(1)}` : body;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function matchesAny(file: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => fnmatchToRegExp(p.endsWith('/') ? `${p}*` : p).test(file));
}

export const filterFiles = (files: readonly string[], patterns: readonly string[]): string[] =>
  files.filter((f) => matchesAny(f, patterns));

/**
 * The default selection, in two steps because `*.safetensors` alone over-fetches: Mistral repos carry the same
 * weights twice (consolidated.safetensors and model-0000x-of-0000y.safetensors), and some repos keep variants in
 * subfolders. Step 1: the side files, the index, and — when there is no index — the top-level weights. Step 2
 * (`shardsFromIndex`) adds exactly the shards the index's weight_map names.
 */
export function defaultSelection(files: readonly string[]): { files: string[]; needsIndex: boolean } {
  const side = files.filter((f) => (MODEL_SIDE_FILES as readonly string[]).includes(f));
  if (files.includes(SAFETENSORS_INDEX)) return { files: [...side, SAFETENSORS_INDEX], needsIndex: true };
  const single = files.includes('model.safetensors')
    ? ['model.safetensors']
    : files.filter((f) => !f.includes('/') && f.endsWith('.safetensors'));
  return { files: [...side, ...single], needsIndex: false };
}

/** Shard filenames named by a safetensors index ({ weight_map: { tensor: file } }), deduplicated, in order. */
export function shardsFromIndex(indexJson: string): string[] {
  const index = JSON.parse(indexJson) as { weight_map?: Record<string, unknown> };
  const shards = Object.values(index.weight_map ?? {}).filter((v): v is string => typeof v === 'string');
  return [...new Set(shards)];
}
