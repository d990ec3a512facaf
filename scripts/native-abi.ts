// Which Node ABI a native addon (.node) was built for, and the packaging check built on it: every addon packed into
// the app must load in Electron's Node. An addon built with the plain V8/Node API exports node_register_module_v<N>,
// N being the NODE_MODULE_VERSION it was compiled against, and loads only where that number matches; an N-API addon
// exports napi_register_module_v1 and loads in any Node or Electron. A rebuild "for Electron" can silently produce
// a binary for the Node that ran it (no Electron headers at hand), so the binaries themselves are read, never the
// build's word. The symbol names are plain strings in ELF, PE and Mach-O files alike, so one byte search covers every
// platform's binary.
import { getRawHeader } from '@electron/asar';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';

const require = createRequire(import.meta.url);
/** node-abi (no type declarations): the NODE_MODULE_VERSION of each Node and Electron release. */
const nodeAbi = require('node-abi') as {
  getAbi(target: string, runtime: 'node' | 'electron'): string;
  allTargets: readonly { readonly runtime: string; readonly target: string; readonly abi: string }[];
};

export type AddonAbi =
  | { readonly kind: 'napi' }
  | { readonly kind: 'node'; readonly abi: number }
  /** Neither symbol: not a Node addon (e.g. a SQLite extension named .node). */
  | { readonly kind: 'unknown' };

export const addonAbiOf = (bytes: Uint8Array): AddonAbi => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  // Node tries node_register_module_v<its own N> first and falls back to N-API, so an addon with both loads anywhere.
  if (text.includes('napi_register_module_v1')) return { kind: 'napi' };
  const match = /node_register_module_v(\d+)/.exec(text);
  return match ? { kind: 'node', abi: Number(match[1]) } : { kind: 'unknown' };
};

export class NativeAbiError extends Error {
  override readonly name = 'NativeAbiError';
}

/** Electron's NODE_MODULE_VERSION (145 for Electron 41). */
export const electronAbi = (electronVersion: string): number => {
  try {
    return Number(nodeAbi.getAbi(electronVersion, 'electron'));
  } catch (err) {
    throw new NativeAbiError(`cannot tell the NODE_MODULE_VERSION of Electron ${electronVersion}: ${(err as Error).message} (update the node-abi devDependency)`);
  }
};

/** "Node 20" / "Electron 41": who uses an ABI number, for the message. */
const runtimesOf = (abi: number): string => {
  const names = new Set(nodeAbi.allTargets.filter((t) => Number(t.abi) === abi).map((t) => `${t.runtime === 'node' ? 'Node' : 'Electron'} ${t.target.split('.')[0]}`));
  return names.size > 0 ? [...names].join(', ') : 'no known release';
};

/** The package an addon belongs to: the last node_modules/<name> (or @scope/name) in its path. */
export const packageOf = (path: string): string => {
  const parts = path.split(/[\\/]/);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return path;
  const name = parts[at + 1]!;
  return name.startsWith('@') && parts[at + 2] ? `${name}/${parts[at + 2]}` : name;
};

export interface AddonFile {
  /** Shown in messages (relative to the app or the repository). */
  readonly display: string;
  readonly bytes: Uint8Array;
}

export interface AddonVerdict {
  readonly display: string;
  readonly module: string;
  readonly abi: AddonAbi;
  readonly ok: boolean;
}

/** Checks each addon against Electron's ABI; throws NativeAbiError naming every mismatch (module, its ABI, Electron's). */
export const checkAddons = (o: { readonly addons: readonly AddonFile[]; readonly electronVersion: string }): AddonVerdict[] => {
  const expected = electronAbi(o.electronVersion);
  const verdicts = o.addons.map((a): AddonVerdict => {
    const abi = addonAbiOf(a.bytes);
    return { display: a.display, module: packageOf(a.display), abi, ok: abi.kind !== 'node' || abi.abi === expected };
  });
  const wrong = verdicts.filter((v) => !v.ok);
  if (wrong.length > 0) {
    const modules = [...new Set(wrong.map((v) => v.module))];
    const lines = wrong.map((v) => {
      const abi = (v.abi as { abi: number }).abi;
      return `  - ${v.module}: ${v.display} is built for NODE_MODULE_VERSION ${abi} (${runtimesOf(abi)}), Electron ${o.electronVersion} needs ${expected}`;
    });
    throw new NativeAbiError([
      `refusing to package: ${wrong.length} native addon${wrong.length === 1 ? '' : 's'} will not load in Electron ${o.electronVersion} (NODE_MODULE_VERSION ${expected}):`,
      ...lines,
      `Rebuild ${modules.length === 1 ? 'it' : 'them'} for Electron, where Electron's headers can be downloaded, then package again:`,
      `  npx @electron/rebuild --version ${o.electronVersion} --force --only ${modules.join(',')}`,
    ].join('\n'));
  }
  return verdicts;
};

/** Every *.node file under a folder. */
export const findAddons = (dir: string): string[] =>
  (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile() && e.name.endsWith('.node'))
    .map((e) => join(e.parentPath, e.name))
    .sort();

/** Every file path inside an asar archive, with whether electron-builder unpacked it. */
const asarFiles = (archive: string): { path: string; unpacked: boolean }[] => {
  const out: { path: string; unpacked: boolean }[] = [];
  type Node = { files?: Record<string, Node>; unpacked?: boolean };
  const walk = (node: Node, prefix: string) => {
    for (const [name, child] of Object.entries(node.files ?? {})) {
      const path = prefix ? `${prefix}/${name}` : name;
      if (child.files) walk(child, path);
      else out.push({ path, unpacked: !!child.unpacked });
    }
  };
  walk(getRawHeader(archive).header as Node, '');
  return out;
};

export interface PackedAppCheck {
  readonly verdicts: readonly AddonVerdict[];
  readonly archives: readonly string[];
}

/**
 * The afterPack check: finds each app.asar under a packed app (resources/ on Linux and Windows, the .app bundle's
 * Contents/Resources on macOS), refuses an addon left inside the archive (Electron cannot dlopen from it), and
 * checks the ABI of every addon in app.asar.unpacked.
 */
export const checkPackedApp = (o: { readonly appOutDir: string; readonly electronVersion: string }): PackedAppCheck => {
  const archives = (readdirSync(o.appOutDir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile() && e.name === 'app.asar')
    .map((e) => join(e.parentPath, e.name));
  if (archives.length === 0) throw new NativeAbiError(`no app.asar under ${o.appOutDir}: nothing to check (is "asar" turned off in electron-builder.yml?)`);
  const addons: AddonFile[] = [];
  for (const archive of archives) {
    const packed = asarFiles(archive).filter((f) => f.path.endsWith('.node') && !f.unpacked);
    if (packed.length > 0) {
      throw new NativeAbiError(`refusing to package: ${packed.map((f) => `${packageOf(f.path)} (${f.path})`).join(', ')} ${packed.length === 1 ? 'is' : 'are'} inside app.asar, where Electron cannot load a native addon: add ${packed.length === 1 ? 'it' : 'them'} to asarUnpack in electron-builder.yml`);
    }
    const unpacked = `${archive}.unpacked`;
    let files: string[] = [];
    try {
      files = findAddons(unpacked);
    } catch {
      // No unpacked folder: no addons.
    }
    for (const file of files) addons.push({ display: relative(o.appOutDir, file).split(sep).join('/'), bytes: readFileSync(file) });
  }
  return { verdicts: checkAddons({ addons, electronVersion: o.electronVersion }), archives };
};
