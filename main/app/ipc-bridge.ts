// Main's half of window.api: renderer IPC in, the service worker's responses out. Main validates each message's
// envelope against the contract (REQUEST_MESSAGE) before anything runs, answers a malformed one with a
// 'bad-request' error instead of throwing, and forwards the rest tagged with the sender's connection; the
// dispatcher in the worker validates the payload (params) the same way. One connection per renderer (WebContents):
// closing or reloading its page closes the connection, which cancels its long work. The native file dialog is its
// own channel with its own schema. Electron objects come in as parameters (main.ts passes the real ones, tests
// fakes).
import type { OpenDialogOptions } from 'electron';
import * as v from 'valibot';
import { REQUEST_MESSAGE, type ApiError, type ResponseMessage } from '../service/api-contract.ts';
import type { PickPathOptions } from '../service/window-api.ts';
import { IPC_CHANNELS } from './ipc-channels.ts';
import { isTrustedFrame, type SenderFrame } from './security.ts';
import type { ServicePort } from './service-host.ts';
import type { FromService } from './service-protocol.ts';

/** The parts of a WebContents the bridge uses. */
export interface BridgeSender {
  readonly id: number;
  send(channel: string, payload: unknown): void;
  isDestroyed(): boolean;
  once(event: 'destroyed', listener: () => void): unknown;
  on(event: 'render-process-gone', listener: () => void): unknown;
  on(event: 'did-start-navigation', listener: (details: { isMainFrame: boolean; isSameDocument: boolean }) => void): unknown;
}

/** An IpcMainEvent / IpcMainInvokeEvent as the bridge reads it. */
export interface BridgeEvent {
  readonly sender: BridgeSender;
  readonly senderFrame: SenderFrame | null;
}

export interface IpcMainLike {
  on(channel: string, listener: (event: BridgeEvent, payload: unknown) => void): unknown;
  handle(channel: string, listener: (event: BridgeEvent, payload: unknown) => unknown): void;
}

export type PickPathReply = { readonly ok: true; readonly path: string | null } | { readonly ok: false; readonly error: ApiError };

export interface IpcBridgeOptions {
  /** Starts the service worker; called on the first request, and again after the worker died. */
  readonly startService: () => ServicePort;
  /** dialog.showOpenDialog on the sender's window. */
  readonly showOpenDialog: (sender: BridgeSender, options: OpenDialogOptions) => Promise<{ canceled: boolean; filePaths: string[] }>;
  readonly log?: (line: string) => void;
}

const extension = v.pipe(v.string(), v.regex(/^(?:\*|[A-Za-z0-9_-]{1,16})$/, 'must be a file extension without the dot (or *)'));

/** PickPathOptions (window-api.ts) as a schema: the dialog is driven only by checked fields. */
export const PICK_PATH_OPTIONS = v.strictObject({
  kind: v.picklist(['file', 'folder']),
  title: v.optional(v.pipe(v.string(), v.maxLength(200))),
  filters: v.optional(v.pipe(
    v.array(v.strictObject({ name: v.pipe(v.string(), v.maxLength(100)), extensions: v.pipe(v.array(extension), v.minLength(1), v.maxLength(20)) })),
    v.maxLength(20),
  )),
});
// The schema accepts exactly what the renderer's type allows (a compile error if they drift apart).
const _schemaMatchesType: [v.InferOutput<typeof PICK_PATH_OPTIONS>] extends [PickPathOptions] ? true : never = true;
void _schemaMatchesType;

/** A malformed envelope or dialog request, worded like the dispatcher's 'bad-request' (field as a dot path). */
const badRequest = (issues: readonly v.BaseIssue<unknown>[], prefix: string): ApiError => {
  const path = v.getDotPath(issues[0]!);
  const field = [prefix, path].filter(Boolean).join('.') || '(message)';
  return { code: 'bad-request', field, message: `${field}: ${issues[0]!.message}` };
};

interface Connection {
  readonly sender: BridgeSender;
  /** Request ids sent to the service and not yet answered with a result or error. */
  readonly pending: Set<string>;
}

export class IpcBridge {
  private service: ServicePort | undefined;
  private readonly connections = new Map<number, Connection>();
  private readonly log: (line: string) => void;

  constructor(private readonly o: IpcBridgeOptions) {
    this.log = o.log ?? (() => {});
  }

  listen(ipc: IpcMainLike): void {
    ipc.on(IPC_CHANNELS.request, (event, payload) => this.request(event, payload));
    ipc.handle(IPC_CHANNELS.pickPath, (event, payload) => this.pickPath(event, payload));
  }

  /** Shuts the service down (its work cancelled, the store closed). */
  async stop(): Promise<void> {
    const service = this.service;
    this.service = undefined;
    await service?.stop();
  }

  private request(event: BridgeEvent, payload: unknown): void {
    if (!isTrustedFrame(event.senderFrame)) return this.log(`ignored an API message from ${event.senderFrame?.url ?? 'a closed frame'}: not the app's page`);
    const { sender } = event;
    const reply = (message: ResponseMessage) => {
      if (!sender.isDestroyed()) sender.send(IPC_CHANNELS.response, JSON.stringify(message));
    };
    const parsed = v.safeParse(REQUEST_MESSAGE, payload);
    if (!parsed.success) {
      const maybeId = (payload as { id?: unknown } | null)?.id;
      return reply({ id: typeof maybeId === 'string' && maybeId !== '' ? maybeId : null, type: 'error', error: badRequest(parsed.issues, '') });
    }
    const message = parsed.output;
    const connection = this.connectionOf(sender);
    if (connection.pending.has(message.id)) {
      return reply({ id: message.id, type: 'error', error: { code: 'bad-request', field: 'id', message: `id: request ${message.id} is still running; give each request its own id` } });
    }
    connection.pending.add(message.id);
    this.serviceNow().post({ type: 'request', conn: sender.id, message });
  }

  private async pickPath(event: BridgeEvent, payload: unknown): Promise<PickPathReply> {
    if (!isTrustedFrame(event.senderFrame)) return { ok: false, error: { code: 'bad-request', message: 'pickPath: only the app page may open a dialog' } };
    const parsed = v.safeParse(PICK_PATH_OPTIONS, payload);
    if (!parsed.success) return { ok: false, error: badRequest(parsed.issues, 'options') };
    const o = parsed.output;
    const result = await this.o.showOpenDialog(event.sender, {
      ...(o.title !== undefined ? { title: o.title } : {}),
      properties: [o.kind === 'folder' ? 'openDirectory' : 'openFile'],
      ...(o.filters ? { filters: o.filters.map((f) => ({ name: f.name, extensions: [...f.extensions] })) } : {}),
    });
    return { ok: true, path: result.canceled ? null : (result.filePaths[0] ?? null) };
  }

  private connectionOf(sender: BridgeSender): Connection {
    let connection = this.connections.get(sender.id);
    if (connection) return connection;
    connection = { sender, pending: new Set() };
    this.connections.set(sender.id, connection);
    const close = () => this.close(sender.id);
    sender.once('destroyed', close);
    sender.on('render-process-gone', close);
    // A reload starts a new page that knows none of the old one's requests.
    sender.on('did-start-navigation', (details) => {
      if (details.isMainFrame && !details.isSameDocument) close();
    });
    return connection;
  }

  /** The window closed, crashed or reloaded: its long work is cancelled and nothing more is sent to it. */
  private close(conn: number): void {
    if (!this.connections.delete(conn)) return;
    this.service?.post({ type: 'close', conn });
  }

  private serviceNow(): ServicePort {
    if (this.service) return this.service;
    const service = this.o.startService();
    service.onMessage((message) => this.route(message));
    service.onExit((reason) => this.serviceDied(service, reason));
    this.service = service;
    return service;
  }

  private route(message: FromService): void {
    const connection = this.connections.get(message.conn);
    if (!connection) return;
    if (message.final && message.id !== null) connection.pending.delete(message.id);
    if (!connection.sender.isDestroyed()) connection.sender.send(IPC_CHANNELS.response, message.json);
  }

  /** The worker crashed: every open request is answered with an error, and the next request starts a new worker. */
  private serviceDied(service: ServicePort, reason: string): void {
    if (this.service !== service) return;
    this.service = undefined;
    this.log(`the service worker stopped: ${reason}`);
    for (const connection of this.connections.values()) {
      for (const id of connection.pending) {
        const message: ResponseMessage = { id, type: 'error', error: { code: 'failed', message: `the PEFT Studio service stopped (${reason}) before request ${id} finished; it restarts on the next request: try again` } };
        if (!connection.sender.isDestroyed()) connection.sender.send(IPC_CHANNELS.response, JSON.stringify(message));
      }
      connection.pending.clear();
    }
  }
}
