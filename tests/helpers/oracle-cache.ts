import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where the oracle's generated artefacts live (tests/oracle/*.py write them; .ci/run creates them). */
export const oracleCacheDir = (): string =>
  join(process.env.PEFT_STUDIO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'peft-studio'), 'oracle');

export const tinyModelDir = (name: string): string | undefined => {
  const dir = join(oracleCacheDir(), 'tiny', name);
  return existsSync(join(dir, 'reference.json')) ? dir : undefined;
};

/** CI sets PEFT_REQUIRE_ORACLE=1: there a missing oracle artefact fails the test instead of skipping it. */
export const oracleRequired = (): boolean => process.env.PEFT_REQUIRE_ORACLE === '1';
