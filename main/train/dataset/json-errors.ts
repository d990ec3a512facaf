/** V8's JSON.parse errors rewritten for people: what is wrong, and where (an offset in the parsed text). */

export interface JsonSyntaxProblem {
  readonly message: string;
  /** 0-based character offset in the parsed text, when V8 says where. */
  readonly offset?: number;
}

const lowerFirst = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);

/** Turns a JSON.parse SyntaxError into `broken JSON: ...` with an offset where known. */
export const describeJsonError = (err: unknown): JsonSyntaxProblem => {
  const raw = err instanceof Error ? err.message : String(err);
  const positioned = /^(.*?) (in|after) JSON at position (\d+)/s.exec(raw);
  if (positioned) {
    const what = lowerFirst(positioned[1]!);
    const message = positioned[2] === 'after' ? `${what} after the end of the JSON value (a missing comma?)` : what;
    return { message: `broken JSON: ${message}`, offset: Number(positioned[3]) };
  }
  const token = /^Unexpected token '(.+?)', /s.exec(raw);
  if (token) return { message: `broken JSON: unexpected ${JSON.stringify(token[1])} (not a JSON value)` };
  if (/Unexpected end of JSON input/.test(raw)) return { message: 'broken JSON: the text ends before the JSON value is complete' };
  return { message: `broken JSON: ${lowerFirst(raw.split('\n')[0]!.slice(0, 200))}` };
};

/** JSON.parse, or the problem it had. */
export const parseJson = (text: string): { ok: true; value: unknown } | { ok: false; problem: JsonSyntaxProblem } => {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, problem: describeJsonError(err) };
  }
};

/** 1-based column of `offset` in `text` (its distance from the previous newline). */
export const columnAt = (text: string, offset: number): number => offset - text.lastIndexOf('\n', offset - 1);
