// Main's handle on the service worker (api-worker.ts): post a message, hear its responses and its end, stop it.
import { Worker } from 'node:worker_threads';
import type { FromService, ServiceWorkerData, ToService } from './service-protocol.ts';

export interface ServicePort {
  post(message: ToService): void;
  onMessage(listener: (message: FromService) => void): void;
  /** The worker ended on its own (a crash, an uncaught error): why, in words. */
  onExit(listener: (reason: string) => void): void;
  /** Asks for a clean shutdown (work cancelled, store closed) and terminates the thread if it takes longer than graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServiceWorkerOptions extends ServiceWorkerData {
  /** The bundled worker (dist/main/app/api-worker.cjs). */
  readonly entry: string;
}

export const startServiceWorker = (o: ServiceWorkerOptions): ServicePort => {
  const data: ServiceWorkerData = { dbPath: o.dbPath };
  const worker = new Worker(o.entry, { workerData: data });
  let stopping = false;
  let lastError: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  worker.on('error', (err) => {
    lastError = err;
  });
  return {
    post: (message) => worker.postMessage(message),
    onMessage: (listener) => worker.on('message', listener),
    onExit: (listener) => {
      void exited.then((code) => {
        if (!stopping) listener(lastError ? `${lastError.name}: ${lastError.message}` : `it exited with code ${code}`);
      });
    },
    stop: async (graceMs = 10_000) => {
      if (stopping) return void (await exited);
      stopping = true;
      worker.postMessage({ type: 'shutdown' } satisfies ToService);
      const timer = setTimeout(() => void worker.terminate(), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
};
