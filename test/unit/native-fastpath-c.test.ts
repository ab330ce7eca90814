/**
 * Runs the C unit tests of the fast path's packet functions (native/test/test_vxlan.c:
 * VXLAN encap/decap, checksums, ARP/ND/ICMP answers, TSO/USO segmentation, coalescing),
 * built with the sanitizers by native/test/Makefile into a temporary directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const dir = join(fileURLToPath(new URL('../..', import.meta.url)), 'native/test');
const out = mkdtempSync(join(tmpdir(), 'rhumb-ctest-'));
after(() => rmSync(out, { recursive: true, force: true }));

test('C unit tests of vxlan.c pass (built with ASan/UBSan)', () => {
  execFileSync('make', ['-s', '-C', dir, `OUT=${out}`], { stdio: 'pipe' });
  let text: string;
  try {
    text = execFileSync(join(out, 'test_vxlan'), { encoding: 'utf8' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    assert.fail(`C tests failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  const m = /(\d+) checks, (\d+) failed/.exec(text);
  assert.ok(m, text);
  assert.equal(Number(m[2]), 0, text);
  assert.ok(Number(m[1]) >= 80, `expected the full set of checks, got ${m[1]}`);
});
