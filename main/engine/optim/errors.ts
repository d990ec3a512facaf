export type OptimizerErrorCode = 'invalid-config' | 'invalid-gradient' | 'invalid-state';

export class OptimizerError extends Error {
  override readonly name = 'OptimizerError';
  readonly code: OptimizerErrorCode;
  /** The parameter (or state tensor's parameter) the problem is about, when there is one. */
  readonly tensor?: string;

  constructor(code: OptimizerErrorCode, message: string, tensor?: string) {
    super(message);
    this.code = code;
    if (tensor !== undefined) this.tensor = tensor;
  }
}

export interface NumberRange {
  readonly min?: number;
  /** Exclusive upper bound. */
  readonly below?: number;
  readonly integer?: boolean;
}

/** Configs and state dicts arrive from JSON, so their numbers are checked at runtime, not only by TypeScript. */
export function checkNumber(
  value: unknown,
  what: string,
  range: NumberRange = {},
  code: OptimizerErrorCode = 'invalid-config',
  tensor?: string,
): number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (range.min === undefined || value >= range.min) &&
    (range.below === undefined || value < range.below) &&
    (!range.integer || Number.isInteger(value));
  if (!ok) {
    throw new OptimizerError(code, `${what} must be ${describeRange(range)}, got ${String(value)}`, tensor);
  }
  return value as number;
}

function describeRange(range: NumberRange): string {
  const parts = [range.integer ? 'an integer' : 'a finite number'];
  if (range.min !== undefined) parts.push(`>= ${range.min}`);
  if (range.below !== undefined) parts.push(`< ${range.below}`);
  return parts.join(' ');
}
