/**
 * `rhumb pki init DIR [--san ADDR…]` and `rhumb pki issue DIR --name NAME [--node UUID]`:
 * the deployment's CA and certificates (src/security/pki.ts, by the system's openssl).
 */
import type { Command } from 'commander';
import { pkiInit, pkiIssue } from '../security/pki.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description("make the deployment's CA and certificates (with openssl)");
  pki
    .command('init')
    .description('a CA and the controller certificate: DIR/ca.pem, ca-key.pem, server.pem, server-key.pem')
    .argument('<dir>', 'where the files go (made 0700; nothing existing is overwritten)')
    .option('--san <addr>', "an address or DNS name agents and clients use to reach the controller (repeatable, or comma separated; default: localhost, 127.0.0.1, ::1 and this host's name)", collect, [])
    .action(async (dir: string, f: { san: string[] }) => {
      const made = await pkiInit(dir, { sans: f.san });
      process.stdout.write(`${made.join('\n')}\n`);
    });
  pki
    .command('issue')
    .description("a client certificate signed by DIR's CA: DIR/NAME.pem, DIR/NAME-key.pem")
    .argument('<dir>', 'the directory of `pki init`')
    .requiredOption('--name <name>', 'file name and subject of the certificate')
    .option('--node <uuid>', "a node agent's certificate: it acts for this compute node only (otherwise: an operator's, admin)")
    .action(async (dir: string, f: { name: string; node?: string }) => {
      const made = await pkiIssue(dir, { name: f.name, ...(f.node ? { node: f.node } : {}) });
      process.stdout.write(`${made.join('\n')}\n`);
    });
}
