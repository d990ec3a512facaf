// What the models, adapters requests of library-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import { copyAdapterFolder, importAdapter } from './library-adapters.ts';
import type { LIBRARY_REQUESTS } from './library-contract.ts';
import { downloadLibraryModel, openLibraryModel } from './library-models.ts';

export const LIBRARY_HANDLERS: AreaHandlers<keyof typeof LIBRARY_REQUESTS> = {
  'models.open': ({ store, params }) => openLibraryModel(store, { path: params.path }),
  'models.download': ({ store, params, emit, signal }) =>
    downloadLibraryModel(store, {
      repo: params.repo,
      signal,
      onEvent: emit,
      ...(params.revision ? { revision: params.revision } : {}),
      ...(params.include ? { include: params.include } : {}),
    }),
  'adapters.import': ({ store, params }) =>
    importAdapter(store, { path: params.path, ...(params.name ? { name: params.name } : {}), ...(params.model ? { model: params.model } : {}) }),
  'adapters.exportPeft': ({ params }) => copyAdapterFolder(params),
};
