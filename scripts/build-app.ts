// `npm run build:app`: bundles Electron's main, the service worker and the preload with esbuild (a dependency of
// tsx and vite, already installed) into dist/, where package.json's "main" and electron-builder's `files` expect them:
//   dist/main/app/main.js         ESM (package.json "type": "module"), the main process
//   dist/main/app/api-worker.cjs  CommonJS: worker_threads load it from inside app.asar, which Electron's asar
//                                 support serves to require() (ESM loading from an archive is not relied on)
//   dist/preload/index.cjs        CommonJS: a sandboxed preload can neither be ESM nor require anything but electron
//   dist/icon.png                 the window icon (resources/ is electron-builder's build folder, left out of the app)
// Native modules stay external (they are loaded from app.asar.unpacked at run time), and so does electron.
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild';
import { copyFile, rm } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));

/**
 * Packages left out of the bundles and loaded from node_modules at run time: electron itself, the native modules
 * (their .node binaries cannot be bundled), and onnxruntime-common, which onnxruntime-node loads itself: a second,
 * bundled copy would register its backends on a registry that onnxruntime-node never sees.
 */
export const RUNTIME_EXTERNALS = ['electron', 'better-sqlite3', 'onnxruntime-node', 'onnxruntime-common'] as const;

/** The natively compiled packages: the service worker loads them; main never should. */
export const NATIVE_MODULES = ['better-sqlite3', 'onnxruntime-node'] as const;

/**
 * Main imports the contract (api-contract.ts) for its envelope schema, and the contract reaches the store's module
 * graph for a few constants; nothing main runs uses the native modules behind it. Declaring them free of side
 * effects lets esbuild drop those imports, so main never loads a native binary (build() checks that it does not).
 */
const importedForTypesOnly = (packages: readonly string[]): Plugin => ({
  name: 'native-modules-unused-in-main',
  setup(b) {
    const filter = new RegExp(`^(?:${packages.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, external: true, sideEffects: false }));
  },
});

export interface BuildAppOptions {
  /** Default the repository root. */
  readonly root?: string;
  /** Default <root>/dist. */
  readonly outDir?: string;
}

export interface BuiltApp {
  readonly main: string;
  readonly worker: string;
  readonly preload: string;
  readonly icon: string;
  /** Bare module names each bundle still imports at run time. */
  readonly imports: { readonly main: string[]; readonly worker: string[]; readonly preload: string[] };
}

const externalImports = (meta: Metafile): string[] =>
  [...new Set(Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external && !isBuiltin(i.path)).map((i) => i.path)))].sort();

export const buildApp = async (o: BuildAppOptions = {}): Promise<BuiltApp> => {
  const root = o.root ?? REPO;
  const outDir = o.outDir ?? join(root, 'dist');
  const common: BuildOptions = {
    absWorkingDir: root,
    bundle: true,
    metafile: true,
    logLevel: 'warning',
    // Readable stack traces in error reports: names kept, nothing minified.
    keepNames: true,
    legalComments: 'none',
  };
  // Bundles left from an earlier layout would be packed too (electron-builder takes dist/**).
  await Promise.all(['main', 'preload'].map((dir) => rm(join(outDir, dir), { recursive: true, force: true })));
  const node: BuildOptions = { ...common, platform: 'node', target: 'node22', external: [...RUNTIME_EXTERNALS] };
  const [main, worker, preload] = await Promise.all([
    build({
      ...node,
      plugins: [importedForTypesOnly(NATIVE_MODULES)],
      entryPoints: { 'main/app/main': 'main/app/main.ts' },
      outdir: outDir,
      format: 'esm',
      // CommonJS packages bundled into an ES module still call require() for Node builtins.
      banner: { js: "import { createRequire as __peftCreateRequire } from 'node:module'; const require = __peftCreateRequire(import.meta.url);" },
    }),
    build({
      ...node,
      entryPoints: { 'main/app/api-worker': 'main/app/api-worker.ts' },
      outdir: outDir,
      format: 'cjs',
      outExtension: { '.js': '.cjs' },
      // The service resolves packages relative to its own file (createRequire(import.meta.url)).
      define: { 'import.meta.url': '__peftImportMetaUrl', 'import.meta.dirname': '__dirname', 'import.meta.filename': '__filename' },
      banner: { js: "const __peftImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    }),
    build({
      ...common,
      entryPoints: { 'preload/index': 'preload/index.ts' },
      outdir: outDir,
      platform: 'browser',
      target: 'es2022',
      format: 'cjs',
      outExtension: { '.js': '.cjs' },
      external: ['electron'],
    }),
  ]);
  await copyFile(join(root, 'resources', 'icon.png'), join(outDir, 'icon.png'));
  const imports = { main: externalImports(main.metafile!), worker: externalImports(worker.metafile!), preload: externalImports(preload.metafile!) };
  const strayInMain = imports.main.filter((m) => m !== 'electron');
  if (strayInMain.length > 0) throw new Error(`dist/main/app/main.js would load ${strayInMain.join(', ')} at start: main must stay thin (the service worker owns the native modules)`);
  if (imports.preload.some((m) => m !== 'electron')) throw new Error(`dist/preload/index.cjs requires ${imports.preload.join(', ')}: a sandboxed preload may require only electron`);
  return {
    main: join(outDir, 'main', 'app', 'main.js'),
    worker: join(outDir, 'main', 'app', 'api-worker.cjs'),
    preload: join(outDir, 'preload', 'index.cjs'),
    icon: join(outDir, 'icon.png'),
    imports,
  };
};

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const built = await buildApp();
  console.log(`built ${[built.main, built.worker, built.preload].map((p) => p.slice(REPO.length + 1)).join(', ')} in ${Date.now() - started} ms`);
  console.log(`run-time imports: main ${built.imports.main.join(', ') || '-'}; worker ${built.imports.worker.join(', ') || '-'}; preload ${built.imports.preload.join(', ') || '-'}`);
}
