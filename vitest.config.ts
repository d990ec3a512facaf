import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

// ORT sessions are CPU-heavy; two files at a time keeps a 2-core machine responsive.
const shared = { testTimeout: 120_000, hookTimeout: 120_000 };

export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      {
        // The engine, models, methods, trainer, store, service, CLI, server, Electron main and preload (plain Node).
        test: { ...shared, name: 'node', include: ['tests/**/*.test.ts'], exclude: ['tests/renderer/**', 'tests/e2e/**'] },
      },
      {
        // The renderer's state classes and views (Svelte 5 in jsdom).
        plugins: [svelte(), svelteTesting()],
        test: { ...shared, name: 'renderer', include: ['tests/renderer/**/*.test.ts'], environment: 'jsdom', setupFiles: ['tests/renderer/helpers/node-realm.ts'] },
      },
      {
        // The built renderer in Debian Chromium (playwright-core) against `peft-studio serve` on a tiny model.
        test: { ...shared, name: 'e2e', include: ['tests/e2e/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 300_000 },
      },
    ],
  },
});
