// window.api for renderer tests, backed by the REAL service: an ApiServer connection over a real store (and, where a
// test gives one, a tiny model on disk), with no transport in between. Messages still go through JSON, as over IPC
// or WebSocket, so a result that would not survive the wire fails here too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiMethod, ApiResults, ResponseMessage } from '../../../main/service/api-contract.ts';
import { ApiServer } from '../../../main/service/api-server.ts';
import type { ApiRequestOptions, PeftStudioApi } from '../../../main/service/window-api.ts';
import { openStore, type Store } from '../../../main/store/index.ts';
import { newRequestId } from '../../../renderer/lib/api.ts';
import { PendingRequests } from '../../../renderer/lib/pending-requests.ts';

export interface ServiceApi extends PeftStudioApi {
  readonly store: Store;
  /** A scratch folder removed by close(). */
  readonly dir: string;
  /** Every request sent, in order (method and params), for tests that check what a view asked for. */
  readonly sent: { method: string; params: unknown }[];
  close(): void;
}

export const serviceApi = (): ServiceApi => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-renderer-'));
  const store = openStore(join(dir, 'studio.db'));
  const server = new ApiServer({ store, host: 'serve' });
  const pending = new PendingRequests();
  const connection = server.connect((raw) => pending.deliver(JSON.parse(JSON.stringify(raw)) as ResponseMessage));
  const sent: { method: string; params: unknown }[] = [];
  return {
    host: 'serve',
    store,
    dir,
    sent,
    request<M extends ApiMethod>(method: M, params: unknown, options: ApiRequestOptions<M> = {}): Promise<ApiResults[M]> {
      const id = options.id ?? newRequestId(method);
      sent.push({ method, params });
      const settled = pending.add(id, method, options.onEvent);
      void connection.receive(JSON.stringify({ id, method, params }));
      return settled;
    },
    pathForFile: () => null,
    pickPath: async () => null,
    close: () => {
      connection.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};
