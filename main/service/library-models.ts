// The model library behind the Models view: a model opened by path (an HF folder or a .gguf file) or downloaded from
// the Hugging Face Hub is described (describeModel) and recorded in the store, so that models.list offers it again
// later; metadata.openedAt orders the "recently opened" list.
import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve, sep } from 'node:path';
import { SafetensorsError } from '../engine/io/safetensors.ts';
import { ModelLoadError } from '../models/errors.ts';
import { openModel } from '../models/open-model.ts';
import { chatTemplatesOf } from '../models/tokenizer/index.ts';
import { downloadRepo, type DownloadProgress } from '../models/hub/download.ts';
import { matchesAny } from '../models/hub/patterns.ts';
import type { JsonObject, Model, Store } from '../store/index.ts';
import type { ModelDescription } from './api-contract.ts';
import type { ModelDownloadEvent, OpenedModelResult, DownloadedModelResult } from './library-contract.ts';

/** `~` and relative paths made absolute, so a model reopens from anywhere. */
export const absolutePath = (path: string): string => resolve(path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path);

/**
 * Bytes of the files a model is made of. Hugging Face cache snapshots are folders of symlinks into blobs/, so
 * links are followed (a plain readdir's isFile() says false for them).
 */
export const sizeOnDisk = (path: string): number => {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  let total = 0;
  for (const name of readdirSync(path)) {
    const entry = statSync(join(path, name), { throwIfNoEntry: false });
    if (entry?.isFile()) total += entry.size;
  }
  return total;
};

/** What models.describe tells about a model before anything is trained on it. */
export const describeModel = (path: string, keepQuantized = false): ModelDescription => {
  const opened = openModel(path, { keepQuantized });
  const { config, weights } = opened.model;
  let parameters = 0;
  for (const w of weights.values()) parameters += w.shape.reduce((n, d) => n * d, 1);
  return {
    path,
    format: opened.format,
    architecture: config.architecture,
    modelType: config.modelType,
    parameters,
    bytes: sizeOnDisk(path),
    contextLength: config.maxPositionEmbeddings,
    layers: config.numLayers,
    hiddenSize: config.hiddenSize,
    vocabSize: config.vocabSize,
    chatTemplate: chatTemplatesOf(opened.tokenizer.config) ?? null,
    stopTokenIds: opened.stopTokenIds,
  };
};

/** The Hub id of a Hugging Face cache snapshot (…/models--org--name/snapshots/<commit>), else undefined. */
const hubIdOf = (path: string): string | undefined => {
  const m = /(?:^|[/\\])models--([^/\\]+)[/\\]snapshots[/\\][^/\\]+(?:[/\\](.+))?$/.exec(path);
  if (!m) return undefined;
  const repo = m[1]!.split('--').join('/');
  return m[2] ? `${repo}/${m[2]}` : repo;
};

/** What the library shows for a model without opening it again (the list), besides name, format and size. */
const metadataOf = (d: ModelDescription, openedAt: number, extra: JsonObject): JsonObject => ({
  openedAt,
  modelType: d.modelType,
  bytes: d.bytes,
  contextLength: d.contextLength,
  layers: d.layers,
  hiddenSize: d.hiddenSize,
  vocabSize: d.vocabSize,
  ...extra,
});

/** Strictly after every earlier open, even within one millisecond: the recent list's order is the order of opening. */
const nextOpenedAt = (models: readonly Model[]): number => {
  const latest = Math.max(0, ...models.map((m) => Number(m.metadata?.['openedAt'] ?? 0)));
  return Math.max(Date.now(), latest + 1);
};

/** A weights file that does not read is the user's model at fault (a ModelLoadError, naming the file). */
const describeWithTypedErrors = (path: string): ModelDescription => {
  try {
    return describeModel(path);
  } catch (err) {
    throw err instanceof SafetensorsError ? new ModelLoadError(err.message, err.file) : err;
  }
};

export interface OpenModelOptions {
  readonly path: string;
  /** The library's name for it; default the Hub id of a cache snapshot, else the folder's or file's name. */
  readonly name?: string;
  /** More to keep in the library record (where it was downloaded from). */
  readonly metadata?: JsonObject;
}

/** Describes the model at `path` and records it (or, when the library has it, marks it opened now). */
export const openLibraryModel = (store: Store, o: OpenModelOptions): OpenedModelResult => {
  const path = absolutePath(o.path);
  const description = describeWithTypedErrors(path);
  const metadata = metadataOf(description, nextOpenedAt(store.models.list()), o.metadata ?? {});
  const known = store.models.findByPath(path);
  const model = known
    ? store.models.update(known.id, { ...(o.name ? { name: o.name } : {}), metadata: { ...(known.metadata ?? {}), ...metadata } })
    : store.models.add({
        name: o.name ?? hubIdOf(path) ?? basename(path),
        path,
        format: description.format,
        architecture: description.architecture,
        params: description.parameters,
        metadata,
      });
  return { description, model };
};

/** Files under `dir` (a snapshot keeps the repo's folders), relative to it, `/`-separated as the Hub names them. */
const filesUnder = (dir: string): string[] =>
  (readdirSync(dir, { recursive: true }) as string[]).map((f) => f.split(sep).join('/')).filter((f) => statSync(join(dir, f), { throwIfNoEntry: false })?.isFile());

/**
 * What of a downloaded snapshot is the model: the folder (it has config.json) or its one .gguf file. A snapshot
 * keeps earlier downloads of the same commit, so with include patterns only the files they match count.
 */
export const modelInSnapshot = (snapshot: string, repo: string, include?: readonly string[]): string => {
  const files = filesUnder(snapshot).filter((f) => !include?.length || matchesAny(f, include));
  if (files.includes('config.json')) return snapshot;
  const ggufs = files.filter((f) => f.toLowerCase().endsWith('.gguf'));
  if (ggufs.length === 1) return join(snapshot, ggufs[0]!);
  if (ggufs.length > 1) {
    throw new ModelLoadError(`${repo} gave ${ggufs.length} GGUF files (${ggufs.join(', ')}) in ${snapshot}: download again with include naming one of them`, snapshot);
  }
  throw new ModelLoadError(`${snapshot} (downloaded from ${repo}) has neither a config.json nor a .gguf file: it is not a model (check the include patterns)`, snapshot);
};

/**
 * At most one progress event per file every `everyMs`, its last state never lost: a suppressed update is sent when
 * the interval is over (a transfer that stalls still shows how far it got), and a finished file's at once.
 */
const progressThrottle = (everyMs: number, send: (p: DownloadProgress) => void) => {
  const lastSent = new Map<string, number>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const latest = new Map<string, DownloadProgress>();
  const flush = (file: string) => {
    clearTimeout(timers.get(file));
    timers.delete(file);
    const p = latest.get(file);
    latest.delete(file);
    if (!p) return;
    lastSent.set(file, Date.now());
    send(p);
  };
  return {
    push: (p: DownloadProgress) => {
      latest.set(p.file, p);
      const waited = Date.now() - (lastSent.get(p.file) ?? -Infinity);
      if (waited >= everyMs || (p.total !== null && p.received >= p.total)) flush(p.file);
      else if (!timers.has(p.file)) timers.set(p.file, setTimeout(() => flush(p.file), everyMs - waited));
    },
    /** Sends nothing more (the request's result or error comes next). */
    stop: () => {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      latest.clear();
    },
  };
};

export interface DownloadModelOptions {
  readonly repo: string;
  readonly revision?: string;
  /** huggingface_hub allow_patterns; default the files a safetensors model needs. */
  readonly include?: readonly string[];
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: ModelDownloadEvent) => void;
  /** Least time between two progress events of one file (its last always comes); default 100 ms. */
  readonly progressEveryMs?: number;
}

/**
 * Downloads a model from the Hugging Face Hub into the standard HF cache (HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN as
 * huggingface_hub reads them), then opens and records it like models.open.
 */
export const downloadLibraryModel = async (store: Store, o: DownloadModelOptions): Promise<DownloadedModelResult> => {
  const revision = o.revision ?? 'main';
  const say = (message: string) => o.onEvent?.({ type: 'stage', message });
  const throttle = progressThrottle(o.progressEveryMs ?? 100, (p) => o.onEvent?.({ type: 'progress', file: p.file, received: p.received, total: p.total }));
  say(`asking the Hub for ${o.repo} at ${revision}`);
  let snapshot: string;
  try {
    snapshot = await downloadRepo({
      repo: o.repo,
      revision,
      onProgress: throttle.push,
      ...(o.include?.length ? { allowPatterns: o.include } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } finally {
    throttle.stop();
  }
  const path = modelInSnapshot(snapshot, o.repo, o.include);
  say(`opening ${path}`);
  const name = revision === 'main' ? o.repo : `${o.repo}@${revision}`;
  return { repo: o.repo, revision, snapshot, ...openLibraryModel(store, { path, name, metadata: { repo: o.repo, revision } }) };
};
