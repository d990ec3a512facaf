import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { openStore, type Store } from '../store/index.ts';

/** The run history: --db PATH, else $PEFT_STUDIO_DB, else the user's data folder. */
export const openHistory = (db?: string): Store => {
  const path = db ?? process.env.PEFT_STUDIO_DB ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'peft-studio', 'history.db');
  mkdirSync(dirname(path), { recursive: true });
  return openStore(path);
};
