import { serveApi, ServeError } from '../server/ws-server.ts';

export { ServeError };
import { openHistory } from './store-path.ts';

export interface ServeArgs {
  readonly host?: string | undefined;
  readonly port?: string | undefined;
  readonly token?: string | undefined;
  readonly db?: string | undefined;
  /** The built renderer to serve (default dist/renderer). */
  readonly renderer?: string | undefined;
  readonly json?: boolean | undefined;
}

/**
 * `serve`: the API over WebSocket until SIGINT or SIGTERM. Prints where it listens as its first line (JSON with
 * --json), so a test or a launcher can start it on port 0 and read the port.
 */
export const runServeCommand = async (a: ServeArgs): Promise<number> => {
  const port = a.port === undefined ? 0 : Number(a.port);
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new ServeError(`--port ${a.port} is not a port number (0 to 65535)`);
  const token = a.token ?? process.env.PEFT_STUDIO_TOKEN;
  const store = openHistory(a.db);
  try {
    const server = await serveApi({ store, ...(a.host !== undefined ? { host: a.host } : {}), port, ...(token !== undefined ? { token } : {}), ...(a.renderer !== undefined ? { rendererDir: a.renderer } : {}) });
    if (a.json) console.log(JSON.stringify({ type: 'listening', url: server.url, api: server.apiUrl, port: server.port, token: token !== undefined }));
    else console.log(`peft-studio serve: listening on ${server.url} (API ${server.apiUrl}${token !== undefined ? ', token required' : ''}); Ctrl-C stops`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    await server.close();
    return signal === 'SIGINT' ? 130 : 0;
  } finally {
    store.close();
  }
};
