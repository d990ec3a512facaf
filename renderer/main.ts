// The renderer's entry: find window.api (the preload's in the desktop app; in a browser on `peft-studio serve`,
// a WebSocket bridge to the page's own server), then mount the app.
import { mount } from 'svelte';
import App from './App.svelte';
import { setApi } from './lib/api.ts';
import { apiUrlForPage, connectWebSocketApi } from './lib/ws-bridge.ts';
import './styles.css';

const start = async () => {
  if (!window.api && location.protocol.startsWith('http')) {
    try {
      setApi(await connectWebSocketApi({ url: apiUrlForPage(location) }));
    } catch (err) {
      console.error(err);
    }
  }
  mount(App, { target: document.getElementById('app')! });
};

void start();
