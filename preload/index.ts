// The preload of the app's window (sandboxed: bundled to CommonJS by scripts/build-app.ts, and it may require only
// electron). It exposes window.api and nothing else.
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { createWindowApi, exposeWindowApi } from './window-api.ts';

exposeWindowApi(contextBridge, createWindowApi({ ipc: ipcRenderer, webUtils }));
