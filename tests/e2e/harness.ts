// What the end-to-end test stands on: the renderer built as shipped, `peft-studio serve` started as a user starts it
// (a child process on a free port, its own history database), and Debian's Chromium driven by playwright-core.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = join(import.meta.dirname, '..', '..');
/** Screenshots of each view land here (CI keeps the folder as the run's artifacts). */
export const SCREENSHOT_DIR = process.env.PEFT_STUDIO_SCREENSHOTS ?? join(ROOT, 'out', 'e2e-screenshots');

/** Debian's chromium (apt-get install chromium; .ci/run installs it), or CHROMIUM_PATH. */
export const chromiumPath = (): string | undefined =>
  [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && existsSync(p));

/** Builds the renderer as shipped, into its own folder (the packaging test rebuilds dist/ at the same time). */
export const buildRenderer = (outDir: string): string => {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn', '--outDir', outDir, '--emptyOutDir'], { cwd: ROOT, stdio: 'inherit' });
  return outDir;
};

export interface Served {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the server wrote to stderr (shown when a step fails). */
  readonly log: string[];
  stop(): Promise<void>;
}

export const startServe = async (o: { db: string; renderer: string }): Promise<Served> => {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'peft-studio.mjs'), 'serve', '--json', '--port', '0', '--db', o.db, '--renderer', o.renderer], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stderr!.on('data', (c: Buffer) => log.push(c.toString()));
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) before listening:\n${log.join('')}`)));
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
  });
  return {
    url,
    child,
    log,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
};

export const launchChromium = async (executablePath: string): Promise<Browser> =>
  chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

export const screenshot = async (page: Page, name: string): Promise<void> => {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
};

/** Drops files on an element the way a user's drag-and-drop does: a DataTransfer holding File objects. */
export const dropFiles = async (page: Page, selector: string, files: readonly { name: string; content: string; type?: string }[]): Promise<void> => {
  const dataTransfer = await page.evaluateHandle((list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([f.content], f.name, { type: f.type ?? 'application/octet-stream' }));
    return dt;
  }, files);
  await page.dispatchEvent(selector, 'dragenter', { dataTransfer });
  await page.dispatchEvent(selector, 'dragover', { dataTransfer });
  await page.dispatchEvent(selector, 'drop', { dataTransfer });
};
