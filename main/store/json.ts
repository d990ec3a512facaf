// JSON columns (run configs, environments, trial params, ...): what may go in, checked before it is written,
// so that a NaN or an undefined never turns silently into null or vanishes on the way to disk.
import { StoreError } from './errors.ts';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type JsonObject = { readonly [key: string]: JsonValue };

const checkValue = (value: unknown, path: string): void => {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new StoreError('invalid-input', `${path} is ${value}: JSON holds finite numbers only`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkValue(item, `${path}[${i}]`));
    return;
  }
  if (typeof value === 'object') {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new StoreError('invalid-input', `${path} is a ${value.constructor.name}, not a plain JSON object`);
    }
    for (const [key, item] of Object.entries(value)) checkValue(item, `${path}.${key}`);
    return;
  }
  throw new StoreError('invalid-input', `${path} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}: not JSON`);
};

/** Serializes `value` for a JSON column after checking that it round-trips exactly. `what` names it in errors. */
export const toJson = (value: JsonValue, what: string): string => {
  checkValue(value, what);
  return JSON.stringify(value);
};

/** Like toJson, and also requires a JSON object at the top. */
export const objectToJson = (value: JsonObject, what: string): string => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('invalid-input', `${what} must be a JSON object`);
  }
  return toJson(value, what);
};

/** Parses a JSON column the store wrote. A failure means the file was edited or damaged outside the app. */
export const fromJson = <T extends JsonValue = JsonValue>(text: string, what: string): T => {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new StoreError('integrity', `${what} holds invalid JSON: ${(error as Error).message}`, { cause: error });
  }
};

export const fromJsonOrNull = <T extends JsonValue = JsonValue>(text: string | null, what: string): T | null =>
  text === null ? null : fromJson<T>(text, what);
