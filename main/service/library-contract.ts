// The API contract's requests for models, adapters: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; library-handlers.ts implements them.
import * as v from 'valibot';
import type { CombinationType } from '../peft/weighted.ts';
import type { Adapter, Model } from '../store/index.ts';
import type { ModelDescription } from './api-contract.ts';
import { path } from './contract-schemas.ts';

// The renderer names these through the contract (it may import types from main/service only).
export type { Adapter, CombinationType, Model };

const hubRepo = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/, 'must be a Hugging Face repo id like org/name'));
const nonEmpty = v.pipe(v.string(), v.trim(), v.minLength(1, 'must not be empty'));

export const LIBRARY_REQUESTS = {
  /** Describes a model (HF folder or .gguf file) and records it in the model library (models.list). */
  'models.open': v.object({ path }),
  /**
   * Downloads a model from the Hugging Face Hub into the HF cache (streams ModelDownloadEvents; cancel with
   * jobs.cancel), then opens it like models.open. include: huggingface_hub allow_patterns (e.g. one .gguf file);
   * default the files a safetensors model needs.
   */
  'models.download': v.object({
    repo: hubRepo,
    revision: v.optional(nonEmpty),
    include: v.optional(v.array(nonEmpty)),
  }),
  /**
   * Checks a PEFT adapter folder (its config, its weights, and every tensor against the base model its config names,
   * or `model`) and records it in the adapter library.
   */
  'adapters.import': v.object({ path, name: v.optional(v.string()), model: v.optional(path) }),
  /** Copies an adapter's PEFT folder to `out` (a new or empty folder). */
  'adapters.exportPeft': v.object({ adapter: path, out: path }),
} as const;

/** The requests of this area that jobs.cancel stops (api-contract.ts's CANCELLABLE takes them in). */
export const LIBRARY_CANCELLABLE = ['models.download'] as const satisfies readonly (keyof typeof LIBRARY_REQUESTS)[];

export interface OpenedModelResult {
  /** What models.describe tells, for the absolute path it was opened from. */
  readonly description: ModelDescription;
  /** Its record in the model library; metadata.openedAt says when it was last opened (the recent list's order). */
  readonly model: Model;
}

export interface DownloadedModelResult extends OpenedModelResult {
  readonly repo: string;
  readonly revision: string;
  /** The snapshot folder in the Hugging Face cache (the model is this folder, or the .gguf file in it). */
  readonly snapshot: string;
}

export type ModelDownloadEvent =
  | { readonly type: 'stage'; readonly message: string }
  /** One file's bytes on disk so far (a resumed file starts at what it had); total when the Hub said. */
  | { readonly type: 'progress'; readonly file: string; readonly received: number; readonly total: number | null };

export interface ImportedAdapter {
  readonly adapter: Adapter;
  /** The base model the tensors were checked against; null when it could not be found on this machine. */
  readonly checkedAgainst: string | null;
  /** Config fields the method ignores, and why the tensors were not checked when they were not. */
  readonly warnings: readonly string[];
}

export interface CopiedAdapter {
  readonly dir: string;
  readonly files: readonly string[];
}

export interface LibraryResults {
  'models.open': OpenedModelResult;
  'models.download': DownloadedModelResult;
  'adapters.import': ImportedAdapter;
  'adapters.exportPeft': CopiedAdapter;
}

export interface LibraryEvents {
  'models.download': ModelDownloadEvent;
}
