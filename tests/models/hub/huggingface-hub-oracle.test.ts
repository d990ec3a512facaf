/**
 * Cross-check with the real huggingface_hub (from the oracle venv, tests/oracle/setup.sh):
 * 1. its try_to_load_from_cache finds what our downloader cached;
 * 2. its hf_hub_download, run against the same fake Hub, produces the same cache tree as ours (names, symlink
 *    targets, refs, bytes) — which also checks that the fake Hub speaks the protocol huggingface_hub expects.
 * Skipped with one loud line where the venv is missing (CI sets PEFT_REQUIRE_ORACLE=1 to fail instead).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from '../../../main/models/hub/download.ts';
import { PUBLIC_REPO, sha256Hex, startFakeHub, type FakeHub } from './fake-hub.ts';

const cacheRoot = process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio');
const python = join(cacheRoot, 'oracle-venv', 'bin', 'python');
const haveOracle = existsSync(python);
if (!haveOracle) {
  const line = `huggingface_hub oracle: ${python} not found (run tests/oracle/setup.sh) — cache-layout cross-check SKIPPED`;
  if (process.env.PEFT_REQUIRE_ORACLE === '1') throw new Error(line);
  console.warn(`\n*** ${line} ***\n`);
}

const FILES = ['config.json', 'model.safetensors', 'extra/notes.txt'];

function runPython(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, ['-c', script], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Every entry under `dir` (sorted): symlinks by target, files by sha256, so two caches compare as text. */
async function describeTree(dir: string, prefix = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    const info = await lstat(path);
    if (info.isSymbolicLink()) lines.push(`${rel} -> ${await readlink(path)}`);
    else if (info.isDirectory()) lines.push(`${rel}/`, ...(await describeTree(path, rel)));
    else lines.push(`${rel} sha256:${sha256Hex(await readFile(path))}`);
  }
  return lines;
}

describe.skipIf(!haveOracle)('huggingface_hub agrees with our cache', () => {
  let hub: FakeHub;
  let tmp: string;
  beforeAll(async () => {
    hub = await startFakeHub();
    tmp = await mkdtemp(join(tmpdir(), 'hub-oracle-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('builds the same tree as hf_hub_download, and try_to_load_from_cache finds our files', async () => {
    // Absolute CDN Locations: huggingface_hub follows relative ones during HEAD and then expects the Hub's
    // metadata headers on the CDN's answer, which only the real Hub's own relative redirects carry.
    hub.switches.cdn = 'absolute';
    const ours = join(tmp, 'ours');
    const theirs = join(tmp, 'theirs');
    const env = { HF_HOME: join(tmp, 'hf-home') };
    const paths: string[] = [];
    for (const filename of FILES) {
      paths.push(await downloadFile({ cacheDir: ours, endpoint: hub.endpoint, env, repo: PUBLIC_REPO, filename }));
    }

    const pyEnv = {
      HF_HOME: join(tmp, 'hf-home'),
      HF_ENDPOINT: hub.endpoint,
      HF_HUB_DISABLE_TELEMETRY: '1',
      HF_HUB_DISABLE_XET: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
    };
    const script = [
      'import json, sys',
      'from huggingface_hub import hf_hub_download, try_to_load_from_cache',
      `files = ${JSON.stringify(FILES)}`,
      `found = [try_to_load_from_cache(${JSON.stringify(PUBLIC_REPO)}, f, cache_dir=${JSON.stringify(ours)}) for f in files]`,
      `downloaded = [hf_hub_download(${JSON.stringify(PUBLIC_REPO)}, f, cache_dir=${JSON.stringify(theirs)}) for f in files]`,
      'print(json.dumps({"found": found, "downloaded": downloaded}))',
    ].join('\n');
    const out = JSON.parse((await runPython(script, pyEnv)).trim().split('\n').at(-1) ?? '{}') as {
      found: (string | null)[];
      downloaded: string[];
    };
    expect(out.found).toEqual(paths);

    const repoFolder = `models--${PUBLIC_REPO.replace('/', '--')}`;
    expect(await describeTree(join(ours, repoFolder))).toEqual(await describeTree(join(theirs, repoFolder)));
    expect(out.downloaded.map((p) => p.replace(theirs, ours))).toEqual(paths);
  });
});
