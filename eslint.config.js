// @ts-check
// ESLint 9 flat config. Syntax-only (no type-aware rules): `tsc --noEmit` already type-checks, and this
// keeps `eslint .` to a few seconds.
//
// The layering rules below are the architecture of DESIGN.md ("Layout") written as data: a table of
// layer → layers it must never import, and a table of packages only one place may import. They generate
// the `no-restricted-imports` blocks, one per layer.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Files ESLint lints. */
const SOURCES = ['**/*.{ts,tsx,mts,cts,js,mjs,cjs}'];

/**
 * Who imports whom, top to bottom, never back up:
 *
 *   renderer → preload (window.api) | app, server, cli → service → worker → train, generate → peft, models → engine;
 *   store beside engine at the bottom.
 *
 * Each row: a layer (its folder), the layers (folders) it may never import, those it may import types from
 * only (`import type`), and why. Peers never import each other: shared code moves down a layer.
 */
const LAYERS = [
  {
    layer: 'main/engine',
    forbids: ['main/store', 'main/models', 'main/peft', 'main/generate', 'main/train', 'main/worker',
      'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'the engine is the bottom layer (IR, autodiff, ONNX, optimizers); it knows no model, method, store or app',
  },
  {
    layer: 'main/store',
    forbids: ['main/engine', 'main/models', 'main/peft', 'main/generate', 'main/train', 'main/worker',
      'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'the store (SQLite) sits beside the engine at the bottom and imports nothing above it',
  },
  {
    layer: 'main/models',
    forbids: ['main/peft', 'main/store', 'main/generate', 'main/train', 'main/worker',
      'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'a model stands on the engine alone and never imports a PEFT method',
  },
  {
    layer: 'main/peft',
    forbids: ['main/models', 'main/store', 'main/generate', 'main/train', 'main/worker',
      'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'a PEFT method rewrites IR graphs by (HF) node names; it stands on the engine alone and never imports a model',
  },
  {
    layer: 'main/generate',
    forbids: ['main/train', 'main/worker', 'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'generation stands on peft, models, engine and store; it is a peer of train and knows no worker or app',
  },
  {
    layer: 'main/train',
    forbids: ['main/generate', 'main/worker', 'main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'training stands on peft, models, engine and store; it is a peer of generate and knows no worker or app',
  },
  {
    layer: 'main/worker',
    forbids: ['main/service', 'main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'worker_thread entry points serve the service, never the other way up',
  },
  {
    layer: 'main/service',
    forbids: ['main/app', 'main/cli', 'main/server', 'preload', 'renderer'],
    because: 'the service is the transport-agnostic app API; electron, the CLI and the server wrap it',
  },
  {
    layer: 'main/app',
    forbids: ['main/cli', 'main/server', 'preload', 'renderer'],
    because: 'the electron main process wires the service to IPC and nothing else',
  },
  {
    layer: 'main/cli',
    forbids: ['main/app', 'preload', 'renderer'],
    because: 'the CLI runs under plain Node on the service (and starts the server for `serve`)',
  },
  {
    layer: 'main/server',
    forbids: ['main/app', 'main/cli', 'preload', 'renderer'],
    because: 'the server exposes the same service over WebSocket; it knows neither electron nor the CLI',
  },
  {
    layer: 'preload',
    forbids: ['main/engine', 'main/store', 'main/models', 'main/peft', 'main/generate', 'main/train',
      'main/worker', 'main/app', 'main/cli', 'main/server', 'renderer'],
    typesOnly: ['main/service'],
    because: 'preload is a thin contextBridge exposing the typed window.api, nothing else',
  },
  {
    layer: 'renderer',
    forbids: ['main/engine', 'main/store', 'main/models', 'main/peft', 'main/generate', 'main/train', 'main/worker',
      'main/app', 'main/cli', 'main/server'],
    typesOnly: ['main/service'],
    forbidsRoot: 'main',
    noNodeBuiltins: true,
    because: 'the renderer is a sandboxed web page: it reaches the app only through window.api (types via the shared contract)',
  },
];

/** Packages only some files may import (`owners`: globs). Everywhere else, importing them is an error. */
const OWNED_PACKAGES = [
  {
    packages: ['onnxruntime-node', 'onnxruntime-common'],
    owners: ['main/engine/onnx/runtime*.ts'],
    message:
      'only main/engine/onnx/runtime*.ts may import onnxruntime: use Session and friends from main/engine/onnx/runtime.ts',
  },
  {
    packages: ['electron'],
    owners: ['main/app/**', 'preload/**'],
    message:
      'only main/app/ (electron main) and preload/ (contextBridge) may import electron: engine, service, worker, CLI, server and tests run under plain Node',
  },
];

// ---------------------------------------------------------------------------------------------------------
// Generation. Flat config does not merge the options of one rule across blocks (the last block wins), so the
// tree is partitioned into regions — one block per layer, one per owner file inside a layer, and one for the
// rest (tests, bench, configs) — and each region's block carries every restriction that applies to it.

const escape = (/** @type {string} */ s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A relative import that climbs out of the importing layer into `target` ('main/models', 'renderer', 'main').
 * Import strings, not resolved paths, are matched: `../models/x.ts`, `../../models`, `../../../main/models`.
 */
const reachesFolder = (/** @type {string} */ target) => {
  const inMain = target.startsWith('main/');
  const tail = inMain ? target.slice('main/'.length) : target;
  return `^(?:\\.\\./)+${inMain ? '(?:main/)?' : ''}${escape(tail)}(?:/|$)`;
};

const packagePattern = (/** @type {{ packages: string[], message: string }} */ owned) => ({
  regex: `^(?:${owned.packages.map(escape).join('|')})(?:/.*)?$`,
  caseSensitive: true,
  message: owned.message + '.',
});

const nodeBuiltinsPattern = (/** @type {string} */ layer, /** @type {string} */ because) => ({
  regex: `^(?:node:.*|(?:${builtinModules.filter((m) => !m.startsWith('_')).map(escape).join('|')})(?:/.*)?)$`,
  caseSensitive: true,
  message: `${layer} may not import Node builtins: ${because}.`,
});

/** The `no-restricted-imports` patterns for one region. */
const patternsFor = (/** @type {typeof LAYERS[number] | undefined} */ row, /** @type {string} */ glob) => [
  ...OWNED_PACKAGES.filter((o) => !o.owners.includes(glob)).map(packagePattern),
  ...(row?.forbids ?? []).map((target) => ({
    regex: reachesFolder(target),
    caseSensitive: true,
    message: `${row?.layer} may not import ${target}: ${row?.because} (DESIGN.md, "Layout").`,
  })),
  ...(row?.typesOnly ?? []).map((target) => ({
    regex: reachesFolder(target),
    caseSensitive: true,
    allowTypeImports: true,
    message: `${row?.layer} may import only types from ${target} (\`import type\`): ${row?.because} (DESIGN.md, "Layout").`,
  })),
  // `../main` itself (its index), which no folder pattern above names.
  ...(row?.forbidsRoot
    ? [{ regex: `^(?:\\.\\./)+${escape(row.forbidsRoot)}/?$`, caseSensitive: true, message: `${row.layer} may not import ${row.forbidsRoot}: ${row.because} (DESIGN.md, "Layout").` }]
    : []),
  ...(row?.noNodeBuiltins ? [nodeBuiltinsPattern(row.layer, row.because)] : []),
];

const layerGlob = (/** @type {string} */ layer) => `${layer}/**`;

/** Owner globs that sit inside a layer (not a whole layer): they get a region of their own. */
const ownerFiles = OWNED_PACKAGES.flatMap((o) => o.owners).filter((g) => !LAYERS.some((r) => g === layerGlob(r.layer)));
const rowOf = (/** @type {string} */ glob) => LAYERS.find((r) => glob.startsWith(`${r.layer}/`));

/** @type {import('eslint').Linter.Config[]} */
const layering = [
  {
    name: 'layering/rest',
    files: SOURCES,
    ignores: LAYERS.map((r) => layerGlob(r.layer)),
    rules: { 'no-restricted-imports': ['error', { patterns: patternsFor(undefined, '') }] },
  },
  ...LAYERS.map((row) => ({
    name: `layering/${row.layer}`,
    files: [layerGlob(row.layer)],
    ignores: ownerFiles.filter((g) => rowOf(g) === row),
    rules: { 'no-restricted-imports': ['error', { patterns: patternsFor(row, layerGlob(row.layer)) }] },
  })),
  ...ownerFiles.map((glob) => ({
    name: `layering/${glob}`,
    files: [glob],
    rules: { 'no-restricted-imports': ['error', { patterns: patternsFor(rowOf(glob), glob) }] },
  })),
];

// ---------------------------------------------------------------------------------------------------------

export default defineConfig(
  {
    name: 'ignores',
    // Build outputs, installs, scratch work, caches.
    ignores: ['node_modules/', 'dist/', 'out/', '.scratch/', 'coverage/', '.cache/', '.whl/'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    name: 'globals',
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { ...globals.node } },
  },
  {
    name: 'globals/renderer',
    files: ['renderer/**', 'preload/**'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    name: 'style',
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  ...layering,
);
