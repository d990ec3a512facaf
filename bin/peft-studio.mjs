#!/usr/bin/env node
// Runs the TypeScript CLI from source (tsx registers the loader); packaged builds run compiled JavaScript instead.
import { register } from 'tsx/esm/api';

register();
await import('../main/cli/peft-studio.ts');
