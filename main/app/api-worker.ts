// The service's thread: the store (SQLite) and the ApiServer (and through it the engine) run here, never on
// Electron's main thread, so a training step or a long query cannot freeze the window. One ApiServer connection per
// renderer; a connection closed by main (its window closed or reloaded) cancels that window's long work.
import { parentPort, workerData } from 'node:worker_threads';
import type { ResponseMessage } from '../service/api-contract.ts';
import { ApiServer, type ApiConnection } from '../service/api-server.ts';
import { openStore, type Store } from '../store/index.ts';
import type { FromService, ServiceWorkerData, ToService } from './service-protocol.ts';

/** How long a shutdown waits for cancelled work to reach its next step boundary before closing the store anyway. */
const SHUTDOWN_GRACE_MS = 5_000;

const port = parentPort;
if (!port) throw new Error('api-worker runs as a worker_thread started by Electron main (service-host.ts)');

const { dbPath } = workerData as ServiceWorkerData;
let store: Store | undefined;
let server: ApiServer | undefined;
// When the store cannot be opened the worker stays up and answers every request with why, instead of exiting and
// being restarted into the same failure.
let unavailable: string | undefined;
try {
  store = openStore(dbPath);
  server = new ApiServer({ store, host: 'electron' });
} catch (err) {
  unavailable = `cannot open the history database ${dbPath}: ${(err as Error).message}. Close other PEFT Studio windows or free the disk, then restart the app.`;
}

const post = (conn: number, message: ResponseMessage) => {
  const reply: FromService = { type: 'response', conn, id: message.id, final: message.type !== 'event', json: JSON.stringify(message) };
  port.postMessage(reply);
};

const connections = new Map<number, ApiConnection>();
const connectionOf = (conn: number, api: ApiServer): ApiConnection => {
  let connection = connections.get(conn);
  if (!connection) {
    connection = api.connect((message) => post(conn, message));
    connections.set(conn, connection);
  }
  return connection;
};

const shutdown = async () => {
  for (const connection of connections.values()) connection.close();
  const deadline = Date.now() + SHUTDOWN_GRACE_MS;
  while ([...connections.values()].some((c) => c.running.length > 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  connections.clear();
  store?.close();
  port.close();
};

port.on('message', (message: ToService) => {
  switch (message.type) {
    case 'request':
      if (!server) return post(message.conn, { id: message.message.id, type: 'error', error: { code: 'failed', message: unavailable ?? 'the service is not running' } });
      void connectionOf(message.conn, server).receive(message.message);
      return;
    case 'close':
      connections.get(message.conn)?.close();
      connections.delete(message.conn);
      return;
    case 'shutdown':
      void shutdown();
      return;
  }
});
