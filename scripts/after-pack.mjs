// electron-builder's afterPack hook (electron-builder.yml): runs once the app is copied into its package (app.asar
// and app.asar.unpacked written, nothing signed or wrapped into an installer yet) and refuses the package when a
// native addon in it would not load in the Electron it ships with. The check itself is scripts/native-abi.ts.
import { tsImport } from 'tsx/esm/api';

/** @param {{ appOutDir: string, electronPlatformName: string, packager: { config: { electronVersion?: string | null }, info: { framework: { version: string } } } }} context */
export default async function afterPack(context) {
  const { checkPackedApp } = await tsImport('./native-abi.ts', import.meta.url);
  const electronVersion = context.packager.config.electronVersion ?? context.packager.info.framework.version;
  const { verdicts } = checkPackedApp({ appOutDir: context.appOutDir, electronVersion });
  const described = verdicts
    .filter((v) => v.abi.kind !== 'unknown')
    .map((v) => `${v.module} ${v.abi.kind === 'napi' ? 'N-API' : `ABI ${v.abi.abi}`}`);
  console.log(`  • native addons load in Electron ${electronVersion} (${context.electronPlatformName}): ${[...new Set(described)].join(', ') || 'none packed'}`);
}
