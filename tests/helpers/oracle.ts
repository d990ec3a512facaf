import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

/**
 * The Python oracle (tests only): a venv made by tests/oracle/setup.sh with torch, transformers, gguf, ...
 * Without it the oracle suites skip with one loud line, never silently; CI sets PEFT_REQUIRE_ORACLE=1 so that
 * there a missing venv fails instead.
 */

export const ORACLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'oracle');

const cacheDir = (): string =>
  process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio');

/** The oracle venv's python: $PEFT_ORACLE_PYTHON, else the one setup.sh creates; undefined when neither exists. */
export const oraclePython = (): string | undefined => {
  const fromEnv = process.env.PEFT_ORACLE_PYTHON;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  const venvPython = join(cacheDir(), 'oracle-venv', 'bin', 'python');
  return existsSync(venvPython) ? venvPython : undefined;
};

const required = (): boolean => process.env.PEFT_REQUIRE_ORACLE === '1';

let warned = false;
const warnSkipped = (): void => {
  if (warned) return;
  warned = true;
  console.warn('oracle venv missing: run tests/oracle/setup.sh — oracle tests skipped');
};

/**
 * `describe` when the oracle is available, `describe.skip` (with the warning above) when not. When CI requires
 * the oracle the suite runs anyway, and runOracle's failure says what is missing.
 */
export const describeOracle: typeof describe.skip = (() => {
  if (oraclePython() || required()) return describe;
  warnSkipped();
  return describe.skip;
})();

/**
 * Runs tests/oracle/<script> (or an absolute path) with the oracle python and parses the JSON it prints on
 * stdout. stderr passes through so Python errors show in the test log.
 */
export const runOracle = <T = unknown>(script: string, args: readonly string[] = [], options: { timeoutMs?: number } = {}): T => {
  const python = oraclePython();
  if (!python) throw new Error('oracle venv missing: run tests/oracle/setup.sh (or set PEFT_ORACLE_PYTHON)');
  const path = isAbsolute(script) ? script : join(ORACLE_DIR, script);
  const stdout = execFileSync(python, [path, ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    timeout: options.timeoutMs ?? 600_000,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONDONTWRITEBYTECODE: '1' },
  });
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new Error(`oracle ${script} printed no JSON; its stdout began: ${stdout.slice(0, 500)}`);
  }
};
