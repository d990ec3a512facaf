// The packaging ABI check on this machine's real binaries: better-sqlite3 here is built for Node's ABI (it can only
// be built for Node here), so packaging it for Electron 41 is refused with a message naming the module, its ABI and
// Electron's; onnxruntime-node's binary is N-API and passes.
import { createPackageWithOptions } from '@electron/asar';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkNodeModules, configuredElectronVersion } from '../../scripts/check-abi.ts';
import { addonAbiOf, checkAddons, checkPackedApp, electronAbi, NativeAbiError, packageOf } from '../../scripts/native-abi.ts';

const require = createRequire(import.meta.url);
const REPO = join(dirname(require.resolve('../../package.json')));
const SQLITE = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
const ORT = `node_modules/onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node`;
const addon = (display: string) => ({ display, bytes: readFileSync(join(REPO, display)) });
const ELECTRON = configuredElectronVersion();
const NODE_ABI = Number(process.versions.modules);

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(NativeAbiError);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('reading an addon’s ABI', () => {
  it('finds Node’s ABI in better-sqlite3 and N-API in onnxruntime-node', () => {
    expect(addonAbiOf(addon(SQLITE).bytes)).toEqual({ kind: 'node', abi: NODE_ABI });
    expect(addonAbiOf(addon(ORT).bytes)).toEqual({ kind: 'napi' });
    expect(addonAbiOf(Buffer.from('\0ELF…node_register_module_v145\0…'))).toEqual({ kind: 'node', abi: 145 });
    expect(addonAbiOf(Buffer.from('\0sqlite3_extension_init\0'))).toEqual({ kind: 'unknown' });
  });

  it('knows Electron’s ABI from node-abi, and the configured Electron is the one main is typed against', () => {
    expect(electronAbi('41.10.0')).toBe(145);
    expect(() => electronAbi('999.0.0')).toThrow(/cannot tell the NODE_MODULE_VERSION of Electron 999\.0\.0/);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(ELECTRON).toBe(pkg.devDependencies['electron-types']);
  });

  it('names the package an addon belongs to', () => {
    expect(packageOf('resources/app.asar.unpacked/node_modules/better-sqlite3/build/Release/x.node')).toBe('better-sqlite3');
    expect(packageOf('node_modules/a/node_modules/@scope/b/bin/x.node')).toBe('@scope/b');
  });
});

describe('the packaging check', () => {
  it('refuses this machine’s Node-ABI better-sqlite3 for Electron, naming the module, its ABI and Electron’s', () => {
    const message = refusal(() => checkAddons({ addons: [addon(SQLITE), addon(ORT)], electronVersion: ELECTRON }));
    expect(message).toContain(`refusing to package: 1 native addon will not load in Electron ${ELECTRON} (NODE_MODULE_VERSION 145)`);
    expect(message).toContain(`better-sqlite3: ${SQLITE} is built for NODE_MODULE_VERSION ${NODE_ABI} (Node ${process.versions.node.split('.')[0]})`);
    expect(message).toContain('needs 145');
    expect(message).toContain(`npx @electron/rebuild --version ${ELECTRON} --force --only better-sqlite3`);
    expect(message).not.toContain('onnxruntime');
  });

  it('accepts onnxruntime-node’s N-API binary, and an addon built for Electron’s ABI', () => {
    const verdicts = checkAddons({
      addons: [
        addon(ORT),
        { display: 'node_modules/x/x.node', bytes: Buffer.from('node_register_module_v145') },
        { display: 'node_modules/y/ext.node', bytes: Buffer.from('sqlite3_extension_init') },
      ],
      electronVersion: ELECTRON,
    });
    expect(verdicts.map((v) => [v.module, v.abi.kind, v.ok])).toEqual([['onnxruntime-node', 'napi', true], ['x', 'node', true], ['y', 'unknown', true]]);
    expect(() => checkAddons({ addons: [{ display: 'node_modules/x/x.node', bytes: Buffer.from('node_register_module_v144') }], electronVersion: ELECTRON })).toThrow(/x: .* NODE_MODULE_VERSION 144/);
  });

  it('checks the production dependencies in node_modules (npm run check:abi)', () => {
    expect(refusal(() => checkNodeModules(REPO, ELECTRON))).toMatch(/better-sqlite3: node_modules\/better-sqlite3\/build\/Release\/better_sqlite3\.node is built for NODE_MODULE_VERSION/);
  }, 60_000);
});

describe('checking a packed app', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-abi-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pack = async (name: string, addonFile: string, unpack: boolean): Promise<string> => {
    const app = join(dir, name, 'app');
    mkdirSync(join(app, 'node_modules', 'native-thing'), { recursive: true });
    writeFileSync(join(app, 'package.json'), '{"name":"x","main":"main.js"}');
    copyFileSync(join(REPO, addonFile), join(app, 'node_modules', 'native-thing', 'binding.node'));
    const appOutDir = join(dir, name, 'linux-unpacked');
    mkdirSync(join(appOutDir, 'resources'), { recursive: true });
    await createPackageWithOptions(app, join(appOutDir, 'resources', 'app.asar'), unpack ? { unpack: '*.node' } : {});
    return appOutDir;
  };

  it('reads the ABI of the addons in app.asar.unpacked', async () => {
    const ok = await pack('napi', ORT, true);
    expect(checkPackedApp({ appOutDir: ok, electronVersion: ELECTRON }).verdicts).toEqual([
      { display: 'resources/app.asar.unpacked/node_modules/native-thing/binding.node', module: 'native-thing', abi: { kind: 'napi' }, ok: true },
    ]);
    const wrong = await pack('node-abi', SQLITE, true);
    expect(refusal(() => checkPackedApp({ appOutDir: wrong, electronVersion: ELECTRON }))).toContain(`native-thing: resources/app.asar.unpacked/node_modules/native-thing/binding.node is built for NODE_MODULE_VERSION ${NODE_ABI}`);
  });

  it('refuses an addon left inside app.asar, where Electron cannot load it', async () => {
    const packed = await pack('inside', ORT, false);
    expect(refusal(() => checkPackedApp({ appOutDir: packed, electronVersion: ELECTRON }))).toMatch(/native-thing \(node_modules\/native-thing\/binding\.node\) is inside app\.asar.*add it to asarUnpack/);
  });
});
