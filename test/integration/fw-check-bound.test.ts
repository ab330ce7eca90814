/**
 * Issue 17 item 4: every rule write runs `nft -c` as root. 100 concurrent writes must
 * never run more than the checker's bound at once, and all checks share one namespace
 * (none is created per check). Observed from outside: `nft` on PATH is a wrapper that
 * logs its start, its network namespace and its end around the real nft.
 *
 * Needs root, nft and unshare (skips otherwise).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NftChecker, sharedChecker } from '../../src/fw/nft-check.js';
import { vm } from '../helpers/fw-fixtures.js';
import { startTestNapi, type TestNapi } from '../helpers/napi.js';
import { makeTempDir } from '../helpers/processes.js';

function skipReason(): string | false {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (nft -c, unshare)';
  for (const tool of ['nft', 'unshare', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool}`;
    }
  }
  return false;
}

interface Run {
  pid: string;
  ns: string;
}

/** Parses the wrapper's log: the most runs alive at once, and every run's namespace. */
function analyse(log: string): { peak: number; runs: Run[] } {
  let alive = 0;
  let peak = 0;
  const runs: Run[] = [];
  for (const line of log.split('\n').filter(Boolean)) {
    const [what, pid, ns] = line.split(' ');
    if (what === '+') {
      alive++;
      peak = Math.max(peak, alive);
      runs.push({ pid: pid!, ns: ns! });
    } else if (what === '-') alive--;
  }
  return { peak, runs };
}

const skip = skipReason();

describe('nft -c on rule writes: bounded and in one reusable namespace', { skip, timeout: 120_000 }, () => {
  let dir = '';
  let log = '';
  let savedPath: string | undefined;
  let napi: TestNapi | undefined;

  before(async () => {
    dir = await makeTempDir('nftcheck');
    log = join(dir, 'runs.log');
    const realNft = execFileSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8' }).trim();
    // Each run lasts at least 50 ms, so runs that are allowed to overlap do.
    await writeFile(
      join(dir, 'nft'),
      `#!/bin/sh\necho "+ $$ $(readlink /proc/self/ns/net)" >> ${log}\nsleep 0.05\n${realNft} "$@"\nrc=$?\necho "- $$" >> ${log}\nexit $rc\n`,
    );
    await chmod(join(dir, 'nft'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${dir}:${savedPath ?? ''}`;
  });

  after(async () => {
    process.env.PATH = savedPath;
    await napi?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('100 concurrent rule writes: every write checked, never more than the bound at once, one namespace', async () => {
    napi = await startTestNapi();
    await writeFile(log, '');
    const writes = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        napi!.call('POST', '/rules', { rule: `FROM any TO vm ${vm(100 + i)} ALLOW tcp PORT ${1000 + i}`, owner_uuid: 'aaaaaaaa-0000-4000-8000-00000000000a', enabled: true }),
      ),
    );
    assert.deepEqual(writes.filter((w) => w.status !== 202).map((w) => [w.status, w.body]), []);
    const { peak, runs } = analyse(await readFile(log, 'utf8'));
    assert.ok(runs.length >= 100, `every write was checked (${runs.length} nft runs)`);
    const bound = sharedChecker().maxConcurrent;
    assert.ok(peak <= bound, `at most ${bound} nft -c at once, saw ${peak}`);
    const spaces = new Set(runs.map((r) => r.ns));
    assert.equal(spaces.size, 1, `one check namespace for all checks, saw ${spaces.size}`);
    assert.notEqual([...spaces][0], await readlink('/proc/self/ns/net'), 'not the controller\'s own namespace');
  });

  it('a checker queues beyond its bound, in order, and rejects what nft rejects', async () => {
    const checker = new NftChecker({ maxConcurrent: 3 });
    try {
      await writeFile(log, '');
      const ok = 'table inet rhumb_check_probe\ndelete table inet rhumb_check_probe\ntable inet rhumb_check_probe {\n\tchain input {\n\t\ttcp dport 80 accept\n\t}\n}\n';
      const bad = ok.replace('dport 80', 'dport 70000');
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => checker.check(i % 10 === 9 ? bad : ok)));
      assert.deepEqual(results.map((r) => r.ok), Array.from({ length: 30 }, (_, i) => i % 10 !== 9));
      assert.ok(results.every((r) => r.skipped === undefined));
      assert.match(results[9]!.error ?? '', /70000|out of range|Error/);
      const { peak, runs } = analyse(await readFile(log, 'utf8'));
      assert.equal(runs.length, 30);
      assert.ok(peak <= 3, `at most 3 at once, saw ${peak}`);
      assert.ok(peak >= 2, `the bound is used, saw ${peak}`);
      assert.equal(checker.peak, 3);
      assert.equal(checker.queued, 0);
      assert.equal(new Set(runs.map((r) => r.ns)).size, 1);
    } finally {
      checker.close();
    }
  });
});
