// The app's bundles built for a test into a scratch folder inside the repository (under node_modules/.cache), so
// that the bundled service worker resolves its native modules from the repository's node_modules, as the packaged
// app resolves them from its own.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, type BuiltApp } from '../../scripts/build-app.ts';

const SCRATCH = fileURLToPath(new URL('../../node_modules/.cache/peft-studio-app-tests/', import.meta.url));

export const buildAppForTest = async (): Promise<BuiltApp & { remove(): void }> => {
  mkdirSync(SCRATCH, { recursive: true });
  const outDir = mkdtempSync(join(SCRATCH, 'dist-'));
  const built = await buildApp({ outDir });
  return { ...built, remove: () => rmSync(outDir, { recursive: true, force: true }) };
};
