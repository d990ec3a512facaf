// The model an export starts from, HF folder or GGUF, seen the same way: config.json, its tensors under HF names in
// HF layout (read one at a time, on demand), the tokenizer files an HF folder needs, and what a GGUF needs.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { DType } from '../../engine/ir/index.ts';
import { parseModelConfig, type ModelConfig } from '../config.ts';
import { readJson } from '../hf-folder.ts';
import { readSafetensorsFolder } from '../safetensors.ts';
import { weightsFromSafetensors } from '../weights.ts';
import { ggufHfConfig, ROPE_FREQS_TENSOR } from '../gguf/config.ts';
import { readHfTensor } from '../gguf/load.ts';
import { hfShape, ggufToHfName } from '../gguf/names.ts';
import { openGguf, type GgufFile } from '../gguf/reader.ts';
import { tokenizerFilesFromGguf } from '../tokenizer/index.ts';
import { ExportError } from './errors.ts';
import { weightBytes, weightFloat32 } from './read-weights.ts';

export interface BaseTensor {
  /** HF name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** HF (numpy) shape. */
  readonly shape: readonly number[];
  /** How it is stored (GGUF tensors: 'float32', their dequantized values). */
  readonly dtype: DType;
  /** Values as float32, HF row order (GGUF q/k un-permuted). */
  readonly read: () => Float32Array;
  /** Stored bytes (HF safetensors tensors only): copied untouched when the output keeps the dtype. */
  readonly raw?: () => Uint8Array;
}

export interface ExportBase {
  readonly kind: 'hf' | 'gguf';
  readonly path: string;
  /** config.json as the folder has it, or as GGUF metadata implies it. */
  readonly hfConfig: Record<string, unknown>;
  readonly config: ModelConfig;
  readonly tensors: readonly BaseTensor[];
  /** HF folder: files copied into an exported folder as they are (tokenizer, generation config, license). */
  readonly copies: readonly { readonly from: string; readonly to: string }[];
  /** GGUF: tokenizer.json, tokenizer_config.json and generation_config.json made from the metadata. */
  readonly files: Readonly<Record<string, string>>;
  /** GGUF only. */
  readonly gguf?: GgufFile;
}

/** Files of an HF folder an exported folder keeps (weights and config.json are written anew). */
const KEPT_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'vocab.json', 'merges.txt', 'tokenizer.model', 'chat_template.jinja', 'chat_template.json',
];

const folderCopies = (dir: string): { from: string; to: string }[] => {
  const names = readdirSync(dir).filter((f) => KEPT_FILES.includes(f) || /^LICEN[CS]E/i.test(f) || f.endsWith('.jinja'));
  const copies = names.filter((f) => statSync(join(dir, f)).isFile()).map((f) => ({ from: join(dir, f), to: f }));
  const extra = join(dir, 'additional_chat_templates');
  if (existsSync(extra) && statSync(extra).isDirectory()) {
    for (const f of readdirSync(extra)) if (f.endsWith('.jinja')) copies.push({ from: join(extra, f), to: join('additional_chat_templates', f) });
  }
  return copies;
};

const openHfBase = (dir: string): ExportBase => {
  const configFile = join(dir, 'config.json');
  const hfConfig = readJson(configFile);
  const config = parseModelConfig(hfConfig, configFile);
  const store = weightsFromSafetensors(readSafetensorsFolder(dir));
  const tensors = [...store].map(([name, src]): BaseTensor => ({
    name,
    shape: src.shape,
    dtype: src.dtype,
    read: () => weightFloat32(src, name),
    raw: () => weightBytes(src, name),
  }));
  return { kind: 'hf', path: dir, hfConfig, config, tensors, copies: folderCopies(dir), files: {} };
};

const openGgufBase = (path: string): ExportBase => {
  const file = openGguf(path);
  const hfConfig = ggufHfConfig(file);
  const config = parseModelConfig(hfConfig, path);
  const tensors: BaseTensor[] = [];
  for (const t of file.tensors) {
    const name = ggufToHfName(t.name);
    if (!name) continue; // rope_freqs.weight and the like: carried by GGUF exports from the file itself
    tensors.push({
      name,
      shape: hfShape(t),
      dtype: 'float32',
      read: () => {
        const hf = readHfTensor(file, t, hfConfig);
        if (!hf) throw new ExportError(`${path}: tensor '${t.name}' has no Hugging Face counterpart`, path, t.name);
        return hf.data;
      },
    });
  }
  const { tokenizerJson, config: tokenizerConfig } = tokenizerFilesFromGguf(file.metadata, path);
  const generation: Record<string, unknown> = {};
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id']) if (hfConfig[k] !== undefined) generation[k] = hfConfig[k];
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  return {
    kind: 'gguf',
    path,
    hfConfig,
    config,
    tensors,
    copies: [],
    files: {
      'tokenizer.json': json(tokenizerJson),
      'tokenizer_config.json': json(tokenizerConfig),
      'generation_config.json': json(generation),
    },
    gguf: file,
  };
};

/** Opens an HF model folder or a .gguf file as the base of an export. */
export const openExportBase = (path: string): ExportBase => {
  if (!existsSync(path)) throw new ExportError(`${path} does not exist`, path);
  if (statSync(path).isDirectory()) return openHfBase(path);
  if (!path.toLowerCase().endsWith('.gguf')) throw new ExportError(`${path} is neither a Hugging Face model folder nor a .gguf file`, path);
  return openGgufBase(path);
};

/** A GGUF base's tensors that have no HF name but belong in a GGUF export (llama3 rope factors). */
export const ggufOnlyTensors = (base: ExportBase): string[] =>
  base.gguf ? base.gguf.tensors.filter((t) => t.name === ROPE_FREQS_TENSOR).map((t) => t.name) : [];

/** A readable label for the base (its folder or file name). */
export const baseLabel = (base: ExportBase): string => basename(base.path);
