// Electron main: the one file that touches electron's runtime objects. It registers the app:// scheme, hardens
// every session and page, opens the window, and wires window.api's IPC to the service worker. Everything with logic
// in it lives in modules that take electron objects as parameters (security.ts, app-protocol.ts, ipc-bridge.ts).
import { app, BrowserWindow, dialog, ipcMain, protocol, session, type WebContents } from 'electron';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_SCHEME_PRIVILEGES, rendererResponder } from './app-protocol.ts';
import { IpcBridge } from './ipc-bridge.ts';
import { APP_ENTRY_URL, APP_SCHEME } from './origin.ts';
import { hardenSession, hardenWebContents, windowWebPreferences, type Refusal } from './security.ts';
import { startServiceWorker } from './service-host.ts';
import { runSmokeCheck, SMOKE_ENV } from './smoke.ts';

// Bundled layout (scripts/build-app.ts): dist/main/app/{main.js, api-worker.cjs}, dist/preload/index.cjs, dist/icon.png,
// dist/renderer/.
const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', '..');

const logRefusal = (r: Refusal) => console.warn(`[security] refused ${r.what}: ${r.detail}`);

protocol.registerSchemesAsPrivileged([{ ...APP_SCHEME_PRIVILEGES, privileges: { ...APP_SCHEME_PRIVILEGES.privileges } }]);
app.enableSandbox();

// Every page, the window's and any devtools', is hardened as it is created.
app.on('web-contents-created', (_event, contents) => hardenWebContents(contents, logRefusal));

const bridge = new IpcBridge({
  startService: () => startServiceWorker({ entry: join(here, 'api-worker.cjs'), dbPath: join(app.getPath('userData'), 'history.db') }),
  showOpenDialog: (sender, options) => {
    const window = BrowserWindow.fromWebContents(sender as WebContents);
    return window ? dialog.showOpenDialog(window, options) : dialog.showOpenDialog(options);
  },
  log: (line) => console.warn(`[ipc] ${line}`),
});

const createWindow = (): BrowserWindow => {
  const window = new BrowserWindow({
    width: 1320,
    height: 860,
    minWidth: 900,
    minHeight: 600,
    show: false,
    title: 'PEFT Studio',
    // Windows and macOS take the icon from the executable; Linux window managers ask the window.
    ...(process.platform === 'linux' ? { icon: join(dist, 'icon.png') } : {}),
    webPreferences: windowWebPreferences({ preload: join(dist, 'preload', 'index.cjs'), devTools: !app.isPackaged }),
  });
  window.once('ready-to-show', () => window.show());
  void window.loadURL(APP_ENTRY_URL);
  return window;
};

/** The release workflow's run of the packaged app (smoke.ts): report, shut the service down, exit 0 or 1. */
const smokeCheck = async (window: BrowserWindow) => {
  const result = await runSmokeCheck(window.webContents, 120_000);
  console.log(`[smoke] ${result.ok ? 'ok' : 'FAILED'}: ${result.detail}`);
  await bridge.stop();
  app.exit(result.ok ? 0 : 1);
};

if (!app.requestSingleInstanceLock()) {
  // One app per user: a second one would train against the same history database.
  app.quit();
} else {
  app.on('second-instance', () => {
    const [window] = BrowserWindow.getAllWindows();
    if (window) {
      if (window.isMinimized()) window.restore();
      window.focus();
    }
  });

  void app.whenReady().then(() => {
    hardenSession(session.defaultSession, logRefusal);
    protocol.handle(APP_SCHEME, rendererResponder({ root: join(dist, 'renderer') }));
    bridge.listen(ipcMain);
    const window = createWindow();
    if (process.env[SMOKE_ENV] === '1') void smokeCheck(window);
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) createWindow();
    });
  });

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });

  // Quit waits for the service to cancel its work and close the store (the WAL checkpointed), once.
  let stopped = false;
  app.on('will-quit', (event) => {
    if (stopped) return;
    event.preventDefault();
    void bridge.stop().finally(() => {
      stopped = true;
      app.quit();
    });
  });
}
