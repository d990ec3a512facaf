// The renderer's entry: find window.api (the preload's in the desktop app; in a browser on `peft-studio serve`,
// a WebSocket bridge to the page's own server), then mount the app.
import { mount } from 'svelte';
import App from './App.svelte';
import { apiUrlForPage, connectWebSocketApi } from './lib/ws-bridge.ts';
import './styles.css';

const start = async () => {
  if (!window.api && location.protocol.startsWith('http')) {
    try {
      const bridge = await connectWebSocketApi({ url: apiUrlForPage(location) });
      // The same shape the desktop preload exposes, and nothing more.
      window.api = Object.freeze({ host: bridge.host, request: bridge.request, pathForFile: bridge.pathForFile, pickPath: bridge.pickPath });
    } catch (err) {
      console.error(err);
    }
  }
  mount(App, { target: document.getElementById('app')! });
};

void start();
