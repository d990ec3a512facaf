/**
 * Bytes → text for dataset files: strict UTF-8 (a fatal TextDecoder, so a Latin-1 or binary file is reported,
 * never silently turned into U+FFFD), a leading BOM dropped, UTF-16 files recognised by their BOM.
 */

const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

export const hasUtf8Bom = (bytes: Uint8Array): boolean =>
  bytes.length >= 3 && bytes[0] === UTF8_BOM[0] && bytes[1] === UTF8_BOM[1] && bytes[2] === UTF8_BOM[2];

/** "UTF-16 LE" / "UTF-16 BE" when the bytes start with a UTF-16 byte-order mark. */
export const utf16Bom = (bytes: Uint8Array): string | undefined => {
  if (bytes.length < 2) return undefined;
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return 'UTF-16 LE';
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return 'UTF-16 BE';
  return undefined;
};

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `bytes`, or undefined when they are not valid UTF-8. */
export const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
};

export interface InvalidUtf8Lines {
  /** 1-based line numbers holding bytes that are not UTF-8, the first `limit` of them. */
  readonly lines: readonly number[];
  readonly total: number;
}

/** Which lines of a file are not valid UTF-8 (called only once the whole-file decode failed). */
export const findInvalidUtf8Lines = (bytes: Uint8Array, limit = 20): InvalidUtf8Lines => {
  const lines: number[] = [];
  let total = 0;
  let line = 1;
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    if (decodeUtf8(bytes.subarray(start, end)) === undefined) {
      total++;
      if (lines.length < limit) lines.push(line);
    }
    start = end + 1;
    line++;
  }
  return { lines, total };
};

/** The message for bytes that are not UTF-8. */
export const NOT_UTF8 =
  'not valid UTF-8 text (bytes of another encoding, e.g. Latin-1 or Windows-1252, or binary data); save the file as UTF-8';

/** 1-based line of a 0-based character offset in `text`. */
export const lineAt = (text: string, offset: number): number => {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf('\n'); i >= 0 && i < end; i = text.indexOf('\n', i + 1)) line++;
  return line;
};

/** MiB with one decimal, for messages about sizes. */
export const formatMiB = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
