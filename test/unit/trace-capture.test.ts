import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseDefaultInterface, linkTypeFromCap } from '../../src/agent/trace/capture.js';
import { decodePacket } from '../../src/agent/trace/decode.js';
import { formatTraceLine } from '../../src/cli/trace.js';

describe('trace capture helpers', () => {
  it('maps cap link type names, including SLL2 which cap does not name', () => {
    assert.equal(linkTypeFromCap('ETHERNET'), 'ethernet');
    assert.equal(linkTypeFromCap('LINKTYPE_LINUX_SLL'), 'linux_sll');
    assert.equal(linkTypeFromCap('Unknown linktype 276'), 'linux_sll2');
    assert.equal(linkTypeFromCap('RAW'), 'raw');
    assert.throws(() => linkTypeFromCap('IEEE802_11_RADIO'), /cannot decode link type IEEE802_11_RADIO/);
    assert.throws(() => linkTypeFromCap('Unknown linktype 1'), /cannot decode/);
  });

  it('defaults to the first non-loopback interface that is up, else any', () => {
    const lo = { name: 'lo', up: true, loopback: true };
    const down = { name: 'eth1', up: false, loopback: false };
    const eth0 = { name: 'eth0', up: true, loopback: false };
    assert.equal(chooseDefaultInterface([lo, down, eth0]), 'eth0');
    assert.equal(chooseDefaultInterface([lo, down]), 'any');
    assert.equal(chooseDefaultInterface([]), 'any');
  });

  it('formats text lines with a clock and JSON lines with the record', () => {
    const frame = Buffer.from('ffffffffffff02000ac8000108060001080006040001' + '02000ac80001' + '0ac80001' + '000000000000' + '0ac80002', 'hex');
    const { record, line } = decodePacket(frame);
    const p = { ts: Date.UTC(2026, 0, 2, 3, 4, 5, 678), iface: 'eth0', length: frame.length, record, line };
    assert.equal(formatTraceLine(p, false), '03:04:05.678 02:00:0a:c8:00:01 > ff:ff:ff:ff:ff:ff ARP who-has 10.200.0.2 tell 10.200.0.1');
    const json = JSON.parse(formatTraceLine(p, true));
    assert.equal(json.iface, 'eth0');
    assert.equal(json.line, line);
    assert.equal(json.arp.targetIp, '10.200.0.2');
  });
});
