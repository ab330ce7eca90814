/** `rhumb cni install|uninstall`: the CNI plugin into (or out of) a runtime's plugin directory. */
import type { Command } from 'commander';
import { DEFAULT_CNI_BIN_DIR, PLUGIN_NAME, installPlugin, uninstallPlugin } from '../cni/install.js';

export function registerCniCommands(program: Command): void {
  const cni = program.command('cni').description('the rhumb CNI plugin (Kubernetes, containerd, CRI-O, Podman)');
  cni
    .command('install')
    .description(`install the plugin as ${PLUGIN_NAME} into a CNI bin directory`)
    .option('--dir <dir>', 'CNI plugin directory', DEFAULT_CNI_BIN_DIR)
    .option('--name <name>', 'file name (the "type" in the network configuration)', PLUGIN_NAME)
    .option('--force', 'replace a file of that name that is not a rhumb launcher')
    .action(async (f: { dir: string; name: string; force?: boolean }) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(f.name)) throw new Error('--name must be a plain file name');
      const path = await installPlugin({ dir: f.dir, name: f.name, force: f.force === true });
      process.stdout.write(`installed ${path}\n`);
    });
  cni
    .command('uninstall')
    .description('remove the plugin installed by `rhumb cni install`')
    .option('--dir <dir>', 'CNI plugin directory', DEFAULT_CNI_BIN_DIR)
    .option('--name <name>', 'file name', PLUGIN_NAME)
    .action(async (f: { dir: string; name: string }) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(f.name)) throw new Error('--name must be a plain file name');
      const removed = await uninstallPlugin({ dir: f.dir, name: f.name });
      process.stdout.write(removed ? `removed ${f.dir}/${f.name}\n` : `nothing at ${f.dir}/${f.name}\n`);
    });
}
