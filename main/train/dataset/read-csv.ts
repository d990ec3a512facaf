/**
 * CSV (RFC 4180) and TSV: fields separated by a delimiter, optionally in double quotes; a quote inside a quoted
 * field is doubled (""); quoted fields may hold delimiters and newlines. The first row names the columns.
 * Line numbers are physical lines: a record that spans lines (a quoted newline) is reported at the line where it
 * starts. Malformed quoting is an error naming the line: a quote that never closes, a stray quote inside an
 * unquoted field, text after a closing quote. CRLF inside a quoted value becomes LF.
 */
import type { SourceRow } from './read-json.ts';
import type { ProblemLog } from './problems.ts';

export interface CsvOptions {
  /** Field separator; default ',' (a .tsv file: tab). */
  readonly delimiter?: string;
}

/**
 * TSV files rarely quote: there a quote inside an unquoted field is just a character; a field that starts with
 * one is still read as quoted. CSV follows RFC 4180 strictly.
 */
const quotesInsideFieldsAllowed = (delimiter: string): boolean => delimiter === '\t';

interface CsvRecord {
  readonly line: number;
  readonly fields: string[];
}

/** Splits CSV text into records of raw fields; quoting problems go to `log`. */
export const parseCsvRecords = (text: string, log: ProblemLog, delimiter = ','): CsvRecord[] => {
  const records: CsvRecord[] = [];
  const d = delimiter.charCodeAt(0);
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const recordLine = line;
    const fields: string[] = [];
    let broken = false;
    for (;;) {
      // One field, starting at i.
      if (text.charCodeAt(i) === 0x22) {
        const quoteLine = line;
        let value = '';
        let j = i + 1;
        let closed = false;
        while (j < n) {
          const q = text.indexOf('"', j);
          if (q < 0) break;
          const chunk = text.slice(j, q);
          for (let k = chunk.indexOf('\n'); k >= 0; k = chunk.indexOf('\n', k + 1)) line++;
          value += chunk;
          if (text.charCodeAt(q + 1) === 0x22) {
            value += '"';
            j = q + 2;
            continue;
          }
          j = q + 1;
          closed = true;
          break;
        }
        if (!closed) {
          let lastLine = quoteLine;
          for (let k = text.indexOf('\n', i); k >= 0 && k < n - 1; k = text.indexOf('\n', k + 1)) lastLine++;
          log.error(
            quoteLine,
            `a quoted field opens here and is never closed (unbalanced quotes: lines ${quoteLine} to ${lastLine}, the rest of ` +
              'the file, would all be this one field)',
          );
          return records;
        }
        i = j;
        const after = text.charCodeAt(i);
        if (i < n && after !== d && after !== 0x0a && !(after === 0x0d && text.charCodeAt(i + 1) === 0x0a)) {
          if (!broken) log.error(line, `text after the closing quote of field ${fields.length + 1} (a quote inside a quoted field must be doubled: "")`);
          broken = true;
          while (i < n && text.charCodeAt(i) !== d && text.charCodeAt(i) !== 0x0a) i++;
        }
        // Excel on Windows writes CRLF inside quoted values too; examples use LF.
        fields.push(value.replace(/\r\n/g, '\n'));
      } else {
        let j = i;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === d || c === 0x0a) break;
          j++;
        }
        let value = text.slice(i, j);
        if (value.endsWith('\r') && (j >= n || text.charCodeAt(j) === 0x0a)) value = value.slice(0, -1);
        if (value.includes('"') && !broken && !quotesInsideFieldsAllowed(delimiter)) {
          log.error(line, `a quote inside unquoted field ${fields.length + 1} (quote the whole field and double the quote: "a ""b"" c")`);
          broken = true;
        }
        fields.push(value);
        i = j;
      }
      // After a field: a delimiter (another field follows), a newline or the end (the record ends).
      if (i < n && text.charCodeAt(i) === d) {
        i++;
        continue;
      }
      if (text.charCodeAt(i) === 0x0d) i++;
      if (i < n && text.charCodeAt(i) === 0x0a) {
        i++;
        line++;
      }
      break;
    }
    const blank = fields.length === 1 && fields[0] === '';
    if (!broken && !blank) records.push({ line: recordLine, fields });
  }
  return records;
};

/** The rows of a CSV text as objects keyed by the header's column names. */
export const readCsvRows = (text: string, log: ProblemLog, options: CsvOptions = {}): SourceRow[] => {
  const records = parseCsvRecords(text, log, options.delimiter ?? ',');
  const header = records.shift();
  if (!header) {
    if (log.errorCount === 0) log.error(1, 'the file is empty (not even a header row)');
    return [];
  }
  const names = header.fields.map((f) => f.trim());
  const seen = new Set<string>();
  for (const [k, name] of names.entries()) {
    if (name === '') log.error(header.line, `column ${k + 1} of the header row has no name`);
    else if (seen.has(name)) log.error(header.line, `the header row names column "${name}" twice`);
    seen.add(name);
  }
  if (records.length === 0 && log.errorCount === 0) log.error(header.line, 'the file has a header row but no data rows');
  const rows: SourceRow[] = [];
  for (const record of records) {
    if (record.fields.length !== names.length) {
      log.error(
        record.line,
        `this row has ${record.fields.length} field${record.fields.length === 1 ? '' : 's'}, the header has ${names.length} ` +
          '(an unquoted delimiter in a value? quote that value)',
      );
      continue;
    }
    const value: Record<string, string> = {};
    names.forEach((name, k) => (value[name] = record.fields[k]!));
    rows.push({ line: record.line, value });
  }
  return rows;
};
