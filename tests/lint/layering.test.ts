// The layering rules of eslint.config.js, checked against an independent statement of DESIGN.md ("Layout"):
// each forbidden import must fail with a no-restricted-imports error and each allowed one must pass.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
let eslint: ESLint;

beforeAll(() => {
  eslint = new ESLint({ cwd: root, overrideConfigFile: join(root, 'eslint.config.js') });
});

/** The no-restricted-imports messages for `code` linted as if it lived at `file` (repo-relative). */
const layeringErrors = async (code: string, file: string): Promise<string[]> => {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  expect(result, `no lint result for ${file}`).toBeDefined();
  return result!.messages
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal)
    .map((m) => `${m.severity === 2 ? 'error' : 'warning'}: ${m.message}`);
};

describe('onnxruntime-node is imported only by main/engine/onnx/runtime*.ts', () => {
  it.each([
    ["import * as ort from 'onnxruntime-node';", 'main/engine/ir/x.ts'],
    ["import * as ort from 'onnxruntime-node';", 'main/engine/onnx/emit.ts'],
    ["import { Tensor } from 'onnxruntime-common';", 'main/engine/onnx/tensor.ts'],
    ["import type { InferenceSession } from 'onnxruntime-node';", 'main/models/llama.ts'],
    ["import * as ort from 'onnxruntime-node';", 'main/train/trainer.ts'],
    ["export { InferenceSession } from 'onnxruntime-node';", 'main/worker/train.ts'],
    ["import * as ort from 'onnxruntime-node';", 'tests/engine/onnx/x.test.ts'],
    ["import * as ort from 'onnxruntime-node';", 'bench/x.bench.ts'],
    ["import * as ort from 'onnxruntime-node';", 'renderer/lib/x.ts'],
  ])('%s in %s → error', async (code, file) => {
    const errors = await layeringErrors(code, file);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: .*only main\/engine\/onnx\/runtime\*\.ts may import onnxruntime/);
  });

  it.each([
    ["import * as ort from 'onnxruntime-node';", 'main/engine/onnx/runtime.ts'],
    ["import type { Tensor } from 'onnxruntime-common';", 'main/engine/onnx/runtime.ts'],
    ["import * as ort from 'onnxruntime-node';", 'main/engine/onnx/runtime-cuda.ts'],
  ])('%s in %s → no layering error', async (code, file) => {
    expect(await layeringErrors(code, file)).toEqual([]);
  });

  it('runtime.ts still obeys the engine layer', async () => {
    const errors = await layeringErrors("import { llama } from '../../models/llama.ts';", 'main/engine/onnx/runtime.ts');
    expect(errors).toEqual([expect.stringMatching(/main\/engine may not import main\/models/)]);
  });
});

describe('electron is imported only by main/app and preload', () => {
  it.each([
    ["import { app } from 'electron';", 'main/train/x.ts'],
    ["import { ipcMain } from 'electron/main';", 'main/service/x.ts'],
    ["import { app } from 'electron';", 'main/engine/x.ts'],
    ["import { app } from 'electron';", 'main/cli/x.ts'],
    ["import { app } from 'electron';", 'main/server/x.ts'],
    ["import type { IpcRenderer } from 'electron';", 'renderer/lib/api.ts'],
    ["import { app } from 'electron';", 'tests/app/x.test.ts'],
  ])('%s in %s → error', async (code, file) => {
    const errors = await layeringErrors(code, file);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: .*only main\/app\/ \(electron main\) and preload\/ .* may import electron/);
  });

  it.each([
    ["import { app, BrowserWindow } from 'electron';", 'main/app/x.ts'],
    ["import { ipcMain } from 'electron/main';", 'main/app/ipc/wire.ts'],
    ["import { contextBridge, ipcRenderer } from 'electron';", 'preload/index.ts'],
  ])('%s in %s → fine', async (code, file) => {
    expect(await layeringErrors(code, file)).toEqual([]);
  });
});

describe('the renderer imports nothing from main/ but the contract types, and no Node builtins', () => {
  it.each([
    ["import { GraphBuilder } from '../main/engine/ir/index.ts';", 'renderer/x.ts'],
    ["import type { Graph } from '../../main/engine/ir/graph.ts';", 'renderer/lib/x.ts'],
    ["import { runs } from '../../../main/service/runs.ts';", 'renderer/lib/state/runs.svelte.ts'],
    ["export * from '../main';", 'renderer/x.ts'],
    ["import { readFileSync } from 'node:fs';", 'renderer/x.ts'],
    ["import { join } from 'path';", 'renderer/lib/x.ts'],
    ["import { promises } from 'fs/promises';", 'renderer/lib/x.ts'],
  ])('%s in %s → error', async (code, file) => {
    const errors = await layeringErrors(code, file);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: .*renderer may (not import (main|Node builtins)|import only types from main\/service)/);
  });

  it.each([
    ["import { mount } from 'svelte';", 'renderer/main.ts'],
    ["import { api } from './lib/api.ts';", 'renderer/main.ts'],
    ["import { Chart } from '../../lib/chart.ts';", 'renderer/views/runs/x.ts'],
    ["import type { Api } from '../preload/api.ts';", 'renderer/lib/api.ts'],
    ["import type { ApiResults } from '../../main/service/api-contract.ts';", 'renderer/lib/api.ts'],
  ])('%s in %s → fine', async (code, file) => {
    expect(await layeringErrors(code, file)).toEqual([]);
  });
});

describe('preload is a thin bridge', () => {
  it('may import types from main/service', async () => {
    expect(await layeringErrors("import type { Api } from '../main/service/api.ts';", 'preload/index.ts')).toEqual([]);
  });
  it.each([
    ["import { runs } from '../main/service/runs.ts';", /preload may import only types from main\/service/],
    ["import { GraphBuilder } from '../main/engine/ir/index.ts';", /preload may not import main\/engine/],
    ["import { x } from '../renderer/lib/x.ts';", /preload may not import renderer/],
  ])('%s → error', async (code, message) => {
    expect(await layeringErrors(code, 'preload/index.ts')).toEqual([expect.stringMatching(message)]);
  });
});

// Who may import whom inside main/, written from DESIGN.md independently of eslint.config.js:
// app, server, cli → service → worker → train, generate → peft, models → engine; store beside engine at the bottom.
const BELOW_WORKER = ['engine', 'store', 'models', 'peft', 'generate', 'train'];
const MAY_IMPORT: Record<string, readonly string[]> = {
  engine: [],
  store: [],
  models: ['engine'],
  peft: ['engine'],
  generate: ['engine', 'store', 'models', 'peft'],
  train: ['engine', 'store', 'models', 'peft'],
  worker: BELOW_WORKER,
  service: [...BELOW_WORKER, 'worker'],
  app: [...BELOW_WORKER, 'worker', 'service'],
  cli: [...BELOW_WORKER, 'worker', 'service', 'server'],
  server: [...BELOW_WORKER, 'worker', 'service'],
};
const MAIN_LAYERS = Object.keys(MAY_IMPORT);

describe.each(MAIN_LAYERS)('main/%s', (layer) => {
  const others = MAIN_LAYERS.filter((l) => l !== layer);
  const allowed = others.filter((l) => MAY_IMPORT[layer]!.includes(l));
  const forbidden = others.filter((l) => !MAY_IMPORT[layer]!.includes(l));

  if (forbidden.length > 0) {
    it.each(forbidden)('may not import main/%s', async (target) => {
      // Shallow, deep, via main/ and re-export forms all count.
      for (const [code, file] of [
        [`import { x } from '../${target}/index.ts';`, `main/${layer}/x.ts`],
        [`import type { X } from '../../../${target}/a/b.ts';`, `main/${layer}/one/two/x.ts`],
        [`import { x } from '../../../main/${target}/index.ts';`, `main/${layer}/one/x.ts`],
        [`export * from '../../${target}';`, `main/${layer}/one/x.ts`],
      ] as const) {
        const errors = await layeringErrors(code, file);
        expect(errors, `${code} in ${file}`).toEqual([
          expect.stringMatching(new RegExp(`^error: .*main/${layer} may not import main/${target}: `)),
        ]);
      }
    });
  }

  if (allowed.length > 0) {
    it.each(allowed)('may import main/%s', async (target) => {
      const code = `import { x } from '../../${target}/index.ts';`;
      expect(await layeringErrors(code, `main/${layer}/sub/x.ts`)).toEqual([]);
    });
  }

  it('may import within itself, and npm packages', async () => {
    const code = "import { a } from '../sibling/a.ts';\nimport { b } from './b.ts';\nimport { create } from '@bufbuild/protobuf';";
    expect(await layeringErrors(code, `main/${layer}/sub/x.ts`)).toEqual([]);
  });

  it.each(['preload', 'renderer'])('may not import %s', async (target) => {
    const errors = await layeringErrors(`import { x } from '../../../${target}/x.ts';`, `main/${layer}/sub/x.ts`);
    expect(errors).toEqual([expect.stringMatching(new RegExp(`main/${layer} may not import ${target}: `))]);
  });
});

describe('tests and benchmarks are not layered', () => {
  it.each(['tests/engine/x.test.ts', 'bench/x.bench.ts'])('%s may import any layer', async (file) => {
    const code = MAIN_LAYERS.map((l) => `import * as ${l} from '../../main/${l}/index.ts';`).join('\n');
    expect(await layeringErrors(code, file)).toEqual([]);
  });
});
