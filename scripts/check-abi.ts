// `npm run check:abi [-- FOLDER...]`: the packaging ABI check (native-abi.ts) on its own, before spending minutes on
// a package. Without a folder it checks the native addons of the production dependencies in node_modules (run it
// after `npx @electron/rebuild`); given a packed app's folder (e.g. out/linux-unpacked) it checks that package as
// the afterPack hook does. The Electron version is electron-builder.yml's electronVersion.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { checkAddons, checkPackedApp, findAddons, NativeAbiError, type AddonVerdict } from './native-abi.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));

export const configuredElectronVersion = (root = REPO): string => {
  const config = parse(readFileSync(join(root, 'electron-builder.yml'), 'utf8')) as { electronVersion?: unknown };
  if (typeof config.electronVersion !== 'string') throw new NativeAbiError('electron-builder.yml has no electronVersion');
  return config.electronVersion;
};

/** The folders of the production dependencies (what electron-builder packs), from npm. */
const productionPackageDirs = (root: string): string[] =>
  execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .filter((line) => line.includes(`${sep}node_modules${sep}`));

/** node-gyp's intermediate copies (build/Release/obj.target/…) are never loaded. */
const isIntermediate = (path: string) => /[\\/]obj(?:\.target)?[\\/]/.test(path);

export const checkNodeModules = (root: string, electronVersion: string): AddonVerdict[] => {
  const files = new Set<string>();
  for (const dir of productionPackageDirs(root)) {
    for (const file of findAddons(dir)) if (!isIntermediate(file) && !relative(dir, file).includes('node_modules')) files.add(file);
  }
  const addons = [...files].map((file) => ({ display: relative(root, file).split(sep).join('/'), bytes: readFileSync(file) }));
  return checkAddons({ addons, electronVersion });
};

const report = (verdicts: readonly AddonVerdict[]) => {
  for (const v of verdicts) console.log(`  ok ${v.display}: ${v.abi.kind === 'napi' ? 'N-API (any ABI)' : v.abi.kind === 'node' ? `ABI ${v.abi.abi}` : 'not a Node addon, skipped'}`);
};

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const electronVersion = configuredElectronVersion();
    const folders = process.argv.slice(2);
    if (folders.length === 0) report(checkNodeModules(REPO, electronVersion));
    for (const folder of folders) report(checkPackedApp({ appOutDir: resolve(folder), electronVersion }).verdicts);
    console.log(`every native addon loads in Electron ${electronVersion}`);
  } catch (err) {
    if (!(err instanceof NativeAbiError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}
