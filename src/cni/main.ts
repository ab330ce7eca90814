/**
 * The rhumb CNI plugin's entry point: what the runtime execs (through the launcher that
 * `rhumb cni install` writes, or bin/cni/rhumb). Reads the configuration on stdin and the
 * CNI_* environment, prints the result or the error object on stdout (nothing else goes
 * there: it is the protocol), and exits non-zero on error. It loads only the plugin's own
 * modules and node:http, so it starts about as fast as Node does.
 */
import { run } from './plugin.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

let stdin = '';
try {
  stdin = await readStdin();
} catch (err) {
  process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: 'reading stdin failed', details: (err as Error).message }));
  process.exit(1);
}
const { stdout, exitCode } = await run(process.env, stdin);
process.exitCode = exitCode;
if (stdout) process.stdout.write(stdout);
