import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/peft-studio.mjs', ...args], { encoding: 'utf8', timeout: 60_000 });

describe('peft-studio CLI', () => {
  it('prints usage and exits 0 for help', () => {
    const r = cli('help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/usage: peft-studio <command>/);
    expect(r.stdout).toMatch(/exit codes: 0 ok, 1 failure, 2 unusable input, 130 interrupted/);
  });

  it('exits 2 with a clear message for an unknown command or missing arguments', () => {
    const unknown = cli('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const noModel = cli('chat', 'hello');
    expect(noModel.status).toBe(2);
    expect(noModel.stderr).toMatch(/--model PATH is required/);
    const badSteps = cli('demo', '--steps', 'many');
    expect(badSteps.status).toBe(2);
    expect(badSteps.stderr).toMatch(/--steps must be a positive integer, got 'many'/);
  });

  it('names a missing model file', () => {
    const r = cli('chat', '--model', '/nonexistent/model.gguf', 'hello');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\/nonexistent\/model\.gguf does not exist/);
  });
});
