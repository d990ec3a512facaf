// Payload schemas shared by every area's contract file (api-contract.ts and its *-contract.ts fragments).
import * as v from 'valibot';

export const path = v.pipe(v.string(), v.minLength(1, 'must be a non-empty path'));
export const id = v.pipe(v.number(), v.integer('must be an integer'), v.minValue(1, 'must be a positive id'));
export const positiveInt = v.pipe(v.number(), v.integer('must be an integer'), v.minValue(1, 'must be at least 1'));
export const nonNegativeInt = v.pipe(v.number(), v.integer('must be an integer'), v.minValue(0, 'must be at least 0'));
