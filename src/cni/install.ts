/**
 * `rhumb cni install`: puts the plugin where runtimes look for it (default /opt/cni/bin,
 * containerd's and CRI-O's default, also on Podman's list) as a small launcher named
 * `rhumb` that runs this checkout's compiled plugin with this Node. The file is written
 * beside its destination and renamed into place, so a runtime exec'ing the old one never
 * sees a half-written file (Podman does not retry "text file busy").
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const PLUGIN_NAME = 'rhumb';
/** Marks a file as one of our launchers (uninstall and reinstall touch nothing else). */
export const LAUNCHER_MARK = 'rhumb CNI plugin launcher';

/** The compiled plugin entry (dist/src/cni/main.js) next to this module. */
export function pluginEntry(): string {
  return fileURLToPath(new URL('./main.js', import.meta.url));
}

/** The launcher's text: Node runs the plugin entry; a broken install answers with a CNI error. */
export function launcherText(entry: string, nodePath: string): string {
  if (/\s/.test(nodePath)) throw new Error(`the Node path ${nodePath} has whitespace: a #! line cannot hold it`);
  const failure = JSON.stringify({ cniVersion: '1.0.0', code: 102, msg: 'the rhumb CNI plugin cannot start' });
  return [
    `#!${nodePath}`,
    `// ${LAUNCHER_MARK}, written by \`rhumb cni install\`: runs the compiled plugin below.`,
    `import(${JSON.stringify(pathToFileURL(entry).href)}).catch((err) => {`,
    `  const e = ${failure};`,
    `  e.details = String(err && err.message || err);`,
    `  process.stdout.write(JSON.stringify(e));`,
    `  process.exit(1);`,
    `});`,
    '',
  ].join('\n');
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface InstallOptions {
  dir?: string;
  name?: string;
  /** Replace a file of that name that is not a rhumb launcher. */
  force?: boolean;
  nodePath?: string;
  entry?: string;
}

/** Installs the launcher; returns its path. */
export async function installPlugin(o: InstallOptions = {}): Promise<string> {
  const dir = o.dir ?? DEFAULT_CNI_BIN_DIR;
  const path = join(dir, o.name ?? PLUGIN_NAME);
  const existing = await readIfExists(path);
  if (existing !== undefined && !existing.includes(LAUNCHER_MARK) && !o.force) {
    throw new Error(`${path} exists and is not a rhumb launcher (--force replaces it)`);
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${o.name ?? PLUGIN_NAME}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, launcherText(o.entry ?? pluginEntry(), o.nodePath ?? process.execPath), { mode: 0o755 });
    await chmod(tmp, 0o755);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return path;
}

/** Removes the launcher if it is ours; true when something was removed. */
export async function uninstallPlugin(o: { dir?: string; name?: string } = {}): Promise<boolean> {
  const path = join(o.dir ?? DEFAULT_CNI_BIN_DIR, o.name ?? PLUGIN_NAME);
  const existing = await readIfExists(path);
  if (existing === undefined) return false;
  if (!existing.includes(LAUNCHER_MARK)) throw new Error(`${path} is not a rhumb launcher: left alone`);
  await rm(path, { force: true });
  return true;
}
