/**
 * Runs the C tests of the fast path's packet functions, built by native/test/Makefile into
 * a temporary directory with AddressSanitizer and UndefinedBehaviorSanitizer (any report
 * aborts the program: -fno-sanitize-recover=all, halt_on_error):
 * - test_vxlan: VXLAN encap/decap, checksums, ARP/ND/ICMP answers, TSO/USO segmentation,
 *   coalescing, on crafted frames;
 * - test_hostile: hostile frames (TCP data offsets below 5, headers longer than the frame,
 *   lying IP lengths, every truncation of valid frames) in buffers of exactly their length;
 * - test_engine: the forwarding engine's data path without sockets or threads (fabric
 *   VLANs, the per-NIC miss share, the underlay peer check);
 * - fuzz_frames: a fixed-seed mutation fuzz loop through the engine (decap, coalescing,
 *   segmentation) and the packet functions;
 * - test_io: the engine's sending (segments around the payload in place, UDP_SEGMENT) and
 *   receiving (the per-batch decap shortcut) through real sockets on loopback;
 * - test_names: the interface names and namespace paths the native plumbing accepts.
 * - fuzz_link: link dump messages (the vxlan source address a restarted agent reads back),
 *   well-formed, truncated and mutated.
 * - fuzz_nflog: logged packets (flow logs: the payload is an instance's packet), well-formed,
 *   truncated and mutated.
 * - test_svp: the SVP frames the native front end answers (classification, CRC, answers
 *   from tables laid out as table.ts lays them out) and hostile byte streams.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const dir = join(fileURLToPath(new URL('../..', import.meta.url)), 'native/test');
const out = mkdtempSync(join(tmpdir(), 'rhumb-ctest-'));
after(() => rmSync(out, { recursive: true, force: true }));

const SANITIZER_ENV = {
  ASAN_OPTIONS: 'halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=86',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=87',
};

before(() => {
  // The nine programs build independently: one per core.
  execFileSync('make', ['-s', `-j${availableParallelism()}`, '-C', dir, `OUT=${out}`], { stdio: 'pipe' });
});

/** Runs one C test program; fails on a non-zero exit or any sanitizer output. Returns its checks count. */
function runC(name: string, env: Record<string, string> = {}): number {
  const r = spawnSync(join(out, name), { encoding: 'utf8', env: { ...process.env, ...SANITIZER_ENV, ...env }, timeout: 120_000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  assert.doesNotMatch(text, /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/, `${name}: sanitizer report:\n${text}`);
  assert.equal(r.status, 0, `${name} failed (status ${r.status}, signal ${r.signal}):\n${text}`);
  const m = /(\d+) checks, (\d+) failed/.exec(text);
  assert.ok(m, text);
  assert.equal(Number(m[2]), 0, text);
  return Number(m[1]);
}

test('C unit tests of vxlan.c pass (built with ASan/UBSan)', () => {
  assert.ok(runC('test_vxlan') >= 80, 'expected the full set of checks');
});

test('hostile frames: bad TCP data offsets, oversize headers, every truncation (ASan/UBSan)', () => {
  assert.ok(runC('test_hostile') >= 20, 'expected the full set of checks');
});

test('the forwarding engine on crafted frames: VLANs, miss share per NIC, underlay peers (ASan/UBSan)', () => {
  assert.ok(runC('test_engine') >= 25, 'expected the full set of checks');
});

test('the engine through real sockets: zero-copy segments with and without UDP_SEGMENT, tagged; decap shortcut verdicts (ASan/UBSan)', () => {
  assert.ok(runC('test_io') >= 22, 'expected the full set of checks');
});

test('the native plumbing refuses the names and paths the agent refuses (ASan/UBSan)', () => {
  assert.ok(runC('test_names') >= 45, 'expected the full set of checks');
});

test('link dump messages decode, and truncated or mutated ones never read outside the message (ASan/UBSan)', () => {
  assert.ok(runC('fuzz_link') >= 4, 'expected the decode checks');
});

test('logged packets decode to the flow log\'s fields, and hostile ones never read outside the message (ASan/UBSan)', () => {
  assert.ok(runC('fuzz_nflog') >= 10, 'expected the decode checks');
});

test('SVP in C: which frames are answered natively, CRC, VL2/VL3/PING answers, hostile streams (ASan/UBSan)', () => {
  assert.ok(runC('test_svp') >= 60, 'expected the full set of checks');
});

test('hostile-frame fuzz loop through decap, coalescing and segmentation (ASan/UBSan)', () => {
  runC('fuzz_frames', { RHUMB_FUZZ_SEED: '0x5eed1', RHUMB_FUZZ_ITERS: '50000' });
  runC('fuzz_frames', { RHUMB_FUZZ_SEED: '0x5eed2', RHUMB_FUZZ_ITERS: '50000' });
});
