// Every export lands atomically: written under a temporary name beside its destination, then renamed over it, so
// a crash or a full disk leaves either nothing or the whole file, and never a half-written one under the real name.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ExportError } from './errors.ts';

const tempName = (path: string): string => `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** Sequential writes to a file descriptor, with the byte count (for checks against a planned layout). */
export class FileSink {
  written = 0;
  constructor(
    private readonly fd: number,
    readonly path: string,
  ) {}

  write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
    this.written += bytes.length;
  }

  zeros(n: number): void {
    if (n > 0) this.write(new Uint8Array(n));
  }
}

/** Refuses destinations that would overwrite one of the inputs (or a folder the user has). */
export const guardDestination = (dest: string, inputs: readonly string[], o: { overwrite?: boolean } = {}): void => {
  const target = resolve(dest);
  for (const input of inputs) {
    const src = resolve(input);
    if (target === src || target.startsWith(`${src}/`) || src.startsWith(`${target}/`)) {
      throw new ExportError(`refusing to write ${dest}: it would overwrite or sit inside the input ${input}`, dest);
    }
  }
  if (!existsSync(target)) return;
  if (statSync(target).isDirectory()) {
    if (readdirSync(target).length > 0) throw new ExportError(`refusing to write ${dest}: the folder exists and is not empty`, dest);
  } else if (!o.overwrite) {
    throw new ExportError(`refusing to write ${dest}: the file exists (pass overwrite to replace it)`, dest);
  }
};

/** Writes `path` through `fill` into a temporary file, then renames it into place. */
export const writeFileAtomic = (path: string, fill: (sink: FileSink) => void): void => {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = tempName(path);
  const fd = openSync(tmp, 'w');
  try {
    fill(new FileSink(fd, path));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    if (existsSync(tmp)) unlinkSync(tmp);
    throw err instanceof ExportError ? err : new ExportError(`${path}: ${(err as Error).message}`, path);
  }
};

/** Builds a folder under a temporary name, then renames it into place (an existing empty folder is replaced). */
export const writeFolderAtomic = (dir: string, fill: (tmpDir: string) => void): void => {
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempName(target);
  mkdirSync(tmp);
  try {
    fill(tmp);
    if (existsSync(target)) rmdirSync(target); // guardDestination allowed only an empty one
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err instanceof ExportError ? err : new ExportError(`${dir}: ${(err as Error).message}`, dir);
  }
};
