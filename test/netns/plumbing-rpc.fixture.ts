/**
 * A process inside a lab namespace that runs the native plumbing (src/dataplane/links.ts,
 * src/dataplane/nftables.ts) on request, for test/netns/plumbing-native.test.ts.
 *
 *   stdin:  JSON lines {"id":1,"op":"add","args":[spec]}   (op: a Links method, nftApply, nftList)
 *   stdout: {"ready":true}, then {"id":1,"ok":true,"result":…} or {"id":1,"ok":false,"error":{code,message,…}}
 *
 * PATH is emptied before anything runs: nothing this process does may start `ip`, `nft` or
 * any other program.
 */
process.env.PATH = '';
const { Links } = await import('../../src/dataplane/links.js');
const { nftApply, nftList } = await import('../../src/dataplane/nftables.js');
const { createInterface } = await import('node:readline');

type Op = (...args: unknown[]) => Promise<unknown>;
const ops: Record<string, Op> = {
  ...(Links as unknown as Record<string, Op>),
  nftApply: nftApply as Op,
  nftList: nftList as Op,
};
const say = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: unknown[] };
  const fn = ops[op];
  if (!fn) return say({ id, ok: false, error: { message: `no op ${op}` } });
  Promise.resolve()
    .then(() => fn(...args))
    .then(
      (result) => say({ id, ok: true, result: result ?? null }),
      (err: Error & { code?: string; errno?: number; syscall?: string }) =>
        say({ id, ok: false, error: { name: err.name, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message } }),
    );
});
say({ ready: true });
