/**
 * Flow logs: an NFLOG record of a logged rule becomes one JSON line (flowLine), the file
 * is rotated by size, and `fw log` filters lines by instance and rule.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlockedRepeats, FlowLog, flowLine } from '../../src/agent/flowlog.js';
import { flowLineMatches } from '../../src/cli/fw-log.js';
import type { NflogRecord } from '../../src/dataplane/nflog.js';
import { flowLogPrefix } from '../../src/fw/nft.js';
import { OWNER_A, ruid, vm } from '../helpers/fw-fixtures.js';

const NODE = 'c0000000-0000-4000-8000-000000000001';
const record = (over: Partial<NflogRecord> = {}): NflogRecord => ({
  prefix: flowLogPrefix({ rule_uuid: ruid(1), action: 'block', direction: 'out', instance: vm(2) }),
  family: 4, proto: 6, src: '10.0.0.2', dst: '10.0.0.9', sport: 40000, dport: 22, time: Date.UTC(2026, 0, 2, 3, 4, 5), ...over,
});

test('a logged rule\'s record becomes a line naming node, instance, owner, rule, action, direction, protocol, addresses and ports', () => {
  assert.deepEqual(flowLine(record(), NODE, (i) => (i === vm(2) ? OWNER_A : undefined)), {
    time: '2026-01-02T03:04:05.000Z', node: NODE, instance: vm(2), owner: OWNER_A, rule: ruid(1), action: 'block', direction: 'out',
    protocol: 'tcp', src: '10.0.0.2', dst: '10.0.0.9', sport: 40000, dport: 22,
  });
  const icmp = flowLine(record({ proto: 58, family: 6, src: 'fd00::2', dst: 'fd00::9', sport: undefined, dport: undefined }), NODE, () => undefined)!;
  assert.deepEqual([icmp.protocol, icmp.owner, 'dport' in icmp], ['icmp6', undefined, false]);
  assert.equal(flowLine(record({ prefix: 'something else' }), NODE, () => undefined), undefined);
});

test('fw log filters by instance and rule; lines that are not JSON never match', () => {
  const line = JSON.stringify(flowLine(record(), NODE, () => undefined));
  assert.equal(flowLineMatches(line, {}), true);
  assert.equal(flowLineMatches(line, { instance: vm(2).toUpperCase(), rule: ruid(1) }), true);
  assert.equal(flowLineMatches(line, { instance: vm(3) }), false);
  assert.equal(flowLineMatches(line, { rule: ruid(2) }), false);
  assert.equal(flowLineMatches('not json', {}), false);
});

test('the file is rotated past its size, keeping the newest older files', async () => {
  const dir = join(tmpdir(), `rhumb-flowlog-${process.pid}-${Date.now()}`);
  const path = join(dir, 'flows.jsonl');
  const log = new FlowLog({ path, node: NODE, ownerOf: () => undefined, maxBytes: 600, keep: 2, log: (m) => assert.fail(m) });
  try {
    const feed = (log as unknown as { onRecords(r: NflogRecord[]): void }).onRecords.bind(log);
    for (let i = 0; i < 12; i++) feed([record({ sport: 40000 + i })]);
    await log.flush();
    assert.deepEqual((await readdir(dir)).sort(), ['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    const all = [path, `${path}.1`, `${path}.2`];
    for (const f of all) assert.ok((await readFile(f, 'utf8')).length <= 600);
    const newest = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l).sport as number);
    assert.equal(newest.at(-1), 40011);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a blocked connection is one line, not one per retry; allowed ones, other ports and later attempts are lines of their own', () => {
  let now = 1_000_000;
  const r = new BlockedRepeats(30_000, 3, () => now);
  const line = (over: Partial<NflogRecord> = {}) => flowLine(record(over), NODE, () => undefined)!;
  assert.equal(r.repeats(line()), false, 'the first SYN');
  now += 1000;
  assert.equal(r.repeats(line()), true, 'its retransmission, 1 s later');
  now += 2000;
  assert.equal(r.repeats(line()), true, 'and 3 s later');
  assert.equal(r.repeats(line({ sport: 40001 })), false, 'another connection (another source port)');
  const allow = flowLine(record({ prefix: flowLogPrefix({ rule_uuid: ruid(1), action: 'allow', direction: 'out', instance: vm(2) }) }), NODE, () => undefined)!;
  assert.equal(r.repeats(allow), false);
  assert.equal(r.repeats(allow), false, 'allowed connections are logged once anyway (established traffic skips the rules)');
  now += 30_000;
  assert.equal(r.repeats(line()), false, 'past the window: a new attempt is a new line');
  // Bounded: with room for three, the oldest connections are forgotten first.
  for (const sport of [1, 2, 3, 4]) assert.equal(r.repeats(line({ sport })), false);
  assert.equal(r.repeats(line({ sport: 4 })), true);
  assert.equal(r.repeats(line({ sport: 1 })), false, 'forgotten to make room');
});
