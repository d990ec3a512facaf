import { describe, it } from 'vitest';
import { coreCases } from './cases-core.ts';
import { checkVjp } from './gradcheck.ts';

describe('VJP of each op (float64 vs finite differences, float32 vs float64)', () => {
  for (const c of coreCases) it(c.name, () => checkVjp(c));
});
