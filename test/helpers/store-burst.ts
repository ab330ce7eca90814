/**
 * Child process for test/integration/store-durability.test.ts: opens a LevelStore and
 * commits multi-key batches as fast as it can until killed, printing each acknowledged
 * commit. Usage: node --import tsx test/helpers/store-burst.ts <dir> <namespace> [workers]
 *
 * Batch n writes <ns>/obj/<n> and its index <ns>/idx/<n>; every 5th batch also deletes the
 * object and index of n-3, so a batch mixes puts and deletes. After a crash an object must
 * never exist without its index, or the other way round.
 */
import { LevelStore } from '../../src/store/leveldb.js';

const [dir, ns, workersArg] = process.argv.slice(2);
if (!dir || !ns) {
  process.stderr.write('usage: store-burst.ts <dir> <namespace> [workers]\n');
  process.exit(2);
}
const workers = Number(workersArg ?? 8);

const store = await LevelStore.open(dir, { sync: true });
process.stdout.write('ready\n');

let next = 1;
async function worker(): Promise<void> {
  for (;;) {
    const n = next++;
    const ops: Array<{ type: 'put'; key: string; value: string } | { type: 'del'; key: string }> = [
      { type: 'put', key: `${ns}/obj/${n}`, value: JSON.stringify({ n }) },
      { type: 'put', key: `${ns}/idx/${n}`, value: `${ns}/obj/${n}` },
    ];
    if (n % 5 === 0) ops.push({ type: 'del', key: `${ns}/obj/${n - 3}` }, { type: 'del', key: `${ns}/idx/${n - 3}` });
    const r = await store.commit({ preconditions: [{ key: `${ns}/obj/${n}`, absent: true }], ops });
    if (!r.ok) throw new Error(`batch ${n} unexpectedly failed its precondition`);
    // stdout to a pipe is synchronous on Linux: once written, the parent can count on it.
    process.stdout.write(`ack ${r.revision} ${n}\n`);
  }
}
await Promise.all(Array.from({ length: workers }, () => worker()));
