/**
 * The kernel backend alone, inside a lab's node namespace, for
 * test/netns/kernel-plumbing.test.ts: JSON lines {"id","op","args"} on stdin (op: start,
 * plumb, unplumb, stage, activate, isStaged, vnets, plumbedMacs), {"id","ok","result"|"error"} on stdout.
 *
 * PATH is emptied first: attaching and detaching must not start `ip`, `nft` or anything
 * else (the native plumbing does it all from this process).
 */
process.env.PATH = '';
const { KernelBackend } = await import('../../src/agent/kernel/backend.js');
const { createInterface } = await import('node:readline');

const backend = new KernelBackend();
const say = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const logs: string[] = [];

const ops: Record<string, (...args: never[]) => unknown> = {
  start: (underlayIp: string) => backend.start({ underlayIp, onMiss: () => undefined, log: (m: string) => void logs.push(m) }),
  plumb: (p: Parameters<typeof backend.plumb>[0]) => backend.plumb(p),
  unplumb: (mac: string, vnet: number, opts?: { deferTeardown?: boolean }) => backend.unplumb(mac, vnet, opts),
  stage: (p: Parameters<typeof backend.stage>[0]) => backend.stage(p),
  activate: (mac: string) => backend.activate(mac),
  isStaged: (mac: string) => backend.isStaged(mac),
  vnets: () => backend.vnets(),
  plumbedMacs: () => backend.plumbedMacs(),
  logs: () => logs,
};

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: never[] };
  Promise.resolve()
    .then(() => ops[op]!(...args))
    .then(
      (result) => say({ id, ok: true, result: result ?? null }),
      (err: Error) => say({ id, ok: false, error: { name: err.name, message: err.message } }),
    );
});
process.stdin.on('end', () => {
  backend.close();
  process.exit(0);
});
say({ ready: true });
