// `peft-studio serve`: the API dispatcher over WebSocket (path /api, one JSON message per frame), plus the built
// renderer (dist/renderer) at /, so a browser gets the same app the desktop shell shows. It listens on loopback unless a token is set, since whoever reaches the socket can read and write
// files as this user: with a token, every connection must present it (`?token=T` or `Authorization: Bearer T`).
// Without one, upgrades that carry a foreign Origin or Host are refused, so a web page open in the user's
// browser cannot drive the engine (cross-site WebSocket hijacking, DNS rebinding).
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiServer } from '../service/api-server.ts';
import type { Store } from '../store/index.ts';
import { serveStatic } from './static-files.ts';

export const API_PATH = '/api';

export class ServeError extends Error {
  override readonly name = 'ServeError';
}

export interface ServeOptions {
  readonly store: Store;
  /** Default 127.0.0.1; any other than a loopback address needs a token. */
  readonly host?: string;
  /** Default 0: a free port (see the returned port). */
  readonly port?: number;
  readonly token?: string;
  /** The built renderer to serve at / (default dist/renderer of this checkout or package). */
  readonly rendererDir?: string;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** http://host:port/ — the status page. */
  readonly url: string;
  /** ws://host:port/api */
  readonly apiUrl: string;
  close(): Promise<void>;
}

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

const sameToken = (given: string, expected: string): boolean => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

const presentedToken = (req: IncomingMessage, url: URL): string | undefined => {
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  return bearer ?? url.searchParams.get('token') ?? undefined;
};

export const DEFAULT_RENDERER_DIR = fileURLToPath(new URL('../../dist/renderer', import.meta.url));

/** What / shows when the renderer has not been built (a source checkout before `npm run build:renderer`). */
const statusPage = (apiUrl: string, tokenRequired: boolean, rendererDir: string): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PEFT Studio</title></head>
<body>
<h1>PEFT Studio is serving its API</h1>
<p>The web interface is not built: there is no <code>${rendererDir}/index.html</code>. Run <code>npm run build:renderer</code>
and reload. Clients can use the WebSocket API at <code>${apiUrl}</code>${tokenRequired ? ' with <code>?token=…</code>' : ''}:
one JSON request per message, <code>{"id", "method", "params"}</code> (main/service/api-contract.ts).</p>
</body></html>
`;

/** Why an upgrade is refused, or undefined to accept it. */
const refusal = (req: IncomingMessage, url: URL, o: { token?: string; hostPort: string }): [number, string] | undefined => {
  if (url.pathname !== API_PATH) return [404, `the API is at ${API_PATH}`];
  if (o.token !== undefined) {
    const given = presentedToken(req, url);
    if (given === undefined) return [401, 'this server needs a token: connect with ?token=T or Authorization: Bearer T'];
    if (!sameToken(given, o.token)) return [401, 'wrong token'];
    return undefined;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${o.hostPort}`) return [403, `origin ${origin} may not use this server`];
  const hostHeader = req.headers.host ?? '';
  if (!isLoopback(hostHeader.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''))) return [403, `host ${hostHeader} is not this loopback server`];
  return undefined;
};

const refuse = (socket: Socket, [status, reason]: [number, string]) => {
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${reason}\n`);
};

export const serveApi = async (o: ServeOptions): Promise<RunningServer> => {
  const host = o.host ?? '127.0.0.1';
  if (o.token !== undefined && o.token.length === 0) throw new ServeError('--token must not be empty');
  if (!isLoopback(host) && o.token === undefined) {
    throw new ServeError(`refusing to serve on ${host}, which is not a loopback address, without a token: anyone who reaches it could train, read and write files as you. Give --token T (clients then connect with ?token=T), or serve on 127.0.0.1`);
  }
  const api = new ApiServer({ store: o.store });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  let hostPort = '';
  let apiUrl = '';
  const rendererDir = o.rendererDir ?? DEFAULT_RENDERER_DIR;
  const http: Server = createServer((req, res) => {
    if (serveStatic(req, res, rendererDir)) return;
    if (req.method === 'GET' && (req.url === '/' || req.url?.startsWith('/?'))) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': "default-src 'none'" });
      res.end(statusPage(apiUrl, o.token !== undefined, rendererDir));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  });
  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', `http://${hostPort}`);
    const refused = refusal(req, url, { ...(o.token !== undefined ? { token: o.token } : {}), hostPort });
    if (refused) return refuse(socket as Socket, refused);
    wss.handleUpgrade(req, socket, head, (ws) => connect(ws));
  });
  const connect = (ws: WebSocket) => {
    const connection = api.connect((message) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    });
    ws.on('message', (data, isBinary) => {
      void connection.receive(isBinary ? data : data.toString());
    });
    ws.on('close', () => connection.close());
    ws.on('error', () => connection.close());
  };

  await new Promise<void>((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) => reject(new ServeError(`cannot listen on ${host}:${o.port ?? 0}: ${err.message}`)));
    http.listen(o.port ?? 0, host, () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  apiUrl = `ws://${hostPort}${API_PATH}`;
  return {
    host,
    port,
    url: `http://${hostPort}/`,
    apiUrl,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
};
