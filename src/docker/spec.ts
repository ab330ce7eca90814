/**
 * How Docker finds the plugin: a spec file `/etc/docker/plugins/<name>.spec` holding the
 * plugin's URL (unix:///path or tcp://HOST:PORT), or a socket `/run/docker/plugins/<name>.sock`
 * (found without a spec file). `rhumb docker install-spec` writes the file (beside its
 * destination, then renamed into place); `remove-spec` removes it if it is ours.
 */
import { readFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type PluginAddress, parsePluginAddress, pluginUrl } from './server.js';

export const DEFAULT_SPEC_DIR = '/etc/docker/plugins';
export const DEFAULT_PLUGIN_NAME = 'rhumb';
export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/rhumb.sock';

/** Docker plugin names: what `docker network create -d NAME` takes. */
export function pluginNameProblem(name: string): string | undefined {
  return /^[a-z0-9][a-z0-9_.-]{0,62}$/.test(name) ? undefined : `plugin name must be 1-63 lower-case letters, digits, '_', '.' or '-': ${JSON.stringify(name)}`;
}

export function specPath(dir: string, name: string): string {
  const problem = pluginNameProblem(name);
  if (problem) throw new Error(problem);
  return join(dir, `${name}.spec`);
}

/** Writes <dir>/<name>.spec pointing Docker at the plugin's address. Returns the path. */
export async function installSpec(opts: { dir?: string; name?: string; address: string | PluginAddress }): Promise<string> {
  const addr = typeof opts.address === 'string' ? parsePluginAddress(opts.address) : opts.address;
  const dir = opts.dir ?? DEFAULT_SPEC_DIR;
  const path = specPath(dir, opts.name ?? DEFAULT_PLUGIN_NAME);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${pluginUrl(addr)}\n`, { mode: 0o644 });
  await rename(tmp, path);
  return path;
}

/** Removes the spec file when it names a unix:// or tcp:// URL (a file of another kind is left). */
export async function removeSpec(opts: { dir?: string; name?: string }): Promise<boolean> {
  const path = specPath(opts.dir ?? DEFAULT_SPEC_DIR, opts.name ?? DEFAULT_PLUGIN_NAME);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined || !/^(unix|tcp):\/\/\S+\s*$/.test(text)) return false;
  await rm(path, { force: true });
  return true;
}
