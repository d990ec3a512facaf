// The shell: views switch from the sidebar and with Ctrl+1…7; app.info from the real service shows in the footer.
import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/App.svelte';
import { setApi } from '../../renderer/lib/api.ts';
import { AppState, VIEWS } from '../../renderer/lib/state/app.svelte.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

describe('app shell', () => {
  let service: ServiceApi;
  beforeEach(() => {
    service = serviceApi();
    setApi(service);
  });
  afterEach(() => {
    setApi(undefined);
    service.close();
  });

  it('loads app.info from the service', async () => {
    const app = new AppState();
    await app.load();
    expect(app.info?.host).toBe('serve');
    expect(app.info?.dataDir).toBe(service.dir);
    expect(app.connectionError).toBeUndefined();
  });

  it('switches views from the sidebar and with Ctrl+number', async () => {
    const app = new AppState();
    render(App, { app });
    expect(await screen.findByText(service.dir)).toBeTruthy();
    await fireEvent.click(screen.getByTestId('nav-chat'));
    expect(app.view).toBe('chat');
    expect(screen.getByTestId('nav-chat').getAttribute('aria-current')).toBe('page');
    for (const v of VIEWS) {
      await fireEvent.keyDown(window, { key: v.key, ctrlKey: true });
      expect(app.view).toBe(v.id);
      expect(screen.getByTestId(`view-${v.id}`)).toBeTruthy();
    }
    await fireEvent.keyDown(window, { key: '2' });
    expect(app.view).toBe('chat');
  });

  it('says when the service cannot be reached', async () => {
    setApi({ ...service, request: () => Promise.reject(new Error('connection refused')) });
    const app = new AppState();
    render(App, { app });
    expect((await screen.findByRole('alert')).textContent).toContain('connection refused');
  });
});
