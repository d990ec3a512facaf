// Every migration, in order. A new one is a new file NNNN_name.ts (next id) added at the end of this list.
import type { Migration } from '../migrate.ts';
import { migration as models } from './0001_models.ts';
import { migration as datasets } from './0002_datasets.ts';
import { migration as runs } from './0003_runs.ts';
import { migration as metrics } from './0004_metrics.ts';
import { migration as checkpoints } from './0005_checkpoints.ts';
import { migration as adapters } from './0006_adapters.ts';
import { migration as sweeps } from './0007_sweeps.ts';
import { migration as chat } from './0008_chat.ts';

export const MIGRATIONS: readonly Migration[] = [models, datasets, runs, metrics, checkpoints, adapters, sweeps, chat];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.length;
