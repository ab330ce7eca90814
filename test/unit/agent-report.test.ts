/**
 * The agent's node reports: the commit time read from a UUIDv7 event id, the journal of
 * applied shootdowns (bounded, given back when a report fails), and the reporter's
 * HTTP exchange with a controller stand-in on loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { v4 as uuidv4, v7 as uuidv7 } from 'uuid';
import { type NodeReport, NodeReporter, ShootdownJournal, uuidv7Millis } from '../../src/agent/report.js';
import type { ClientLogEntry } from '../../src/svp/client.js';

const NODE = '11111111-2222-4333-8444-555555555555';

describe('uuidv7Millis', () => {
  it('reads the millisecond timestamp of a UUIDv7', () => {
    const ms = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    assert.equal(uuidv7Millis(uuidv7({ msecs: ms })), ms);
  });
  it('is undefined for other UUID versions and for garbage', () => {
    assert.equal(uuidv7Millis(uuidv4()), undefined);
    assert.equal(uuidv7Millis('not-a-uuid'), undefined);
    assert.equal(uuidv7Millis(''), undefined);
  });
});

function vl3(id: string, ip = '10.0.0.5'): ClientLogEntry {
  return { type: 'vl3', id, ip, vlan: 0, vnetId: 42 };
}

describe('ShootdownJournal', () => {
  it('records target, vnet, commit and apply times, and observes the latency', async () => {
    const registry = new Registry();
    const j = new ShootdownJournal(registry);
    const committed = 1_700_000_000_000;
    j.record(vl3(uuidv7({ msecs: committed })), committed + 7);
    j.record({ type: 'vl2', id: uuidv4(), mac: '90:b8:d0:00:00:01', vnetId: 42 }, committed + 9);
    const [a, b] = j.take();
    assert.deepEqual({ ...a, id: undefined }, { id: undefined, type: 'vl3', vnet: 42, target: '10.0.0.5', committed_at: committed, applied_at: committed + 7 });
    assert.equal(b!.committed_at, undefined, 'no commit time from a non-v7 id');
    assert.equal(b!.target, '90:b8:d0:00:00:01');
    assert.equal(j.size, 0);
    const text = await registry.metrics();
    assert.match(text, /rhumb_agent_shootdown_latency_seconds_count 1\b/);
    assert.match(text, /rhumb_agent_shootdown_latency_seconds_bucket\{le="0.01"\} 1\b/);
    assert.match(text, /rhumb_agent_shootdown_latency_seconds_bucket\{le="0.005"\} 0\b/);
  });

  it('keeps the newest entries when full, and requeued ones go first', () => {
    const j = new ShootdownJournal(new Registry(), 3);
    for (let i = 0; i < 5; i++) j.record(vl3(uuidv4(), `10.0.0.${i}`), i);
    assert.deepEqual(j.take().map((r) => r.target), ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    j.record(vl3(uuidv4(), '10.0.0.9'), 9);
    j.requeue([{ id: 'x', type: 'vl3', vnet: 1, target: '10.0.0.8', applied_at: 8 }]);
    assert.deepEqual(j.take().map((r) => r.target), ['10.0.0.8', '10.0.0.9']);
  });
});

describe('NodeReporter', () => {
  let server: Server;
  const received: Array<{ url: string; body: NodeReport }> = [];
  let status = 204;

  after(() => new Promise<void>((r) => server.close(() => r())));

  async function start(): Promise<string> {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ url: req.url!, body: JSON.parse(body) as NodeReport });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async function until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('posts the node report; a poke sends the applied shootdowns without waiting for the interval; a refused report keeps them', async () => {
    const url = await start();
    const journal = new ShootdownJournal(new Registry());
    const reporter = new NodeReporter({
      controllerUrl: url,
      nodeUuid: NODE,
      intervalMs: 60_000,
      minGapMs: 10,
      journal,
      snapshot: () => ({ node: NODE, underlay_ip: '198.18.0.1', backend: 'kernel', vnets: [42], nics: 1, probes: [{ address: '198.18.0.2', state: 'up', sent: 3, received: 3, lost: 0, last_rtt_ms: 0.2 }] }),
    });
    try {
      reporter.start();
      await until(() => received.length === 1, 'the first report');
      assert.equal(received[0]!.url, `/nodes/${NODE}/report`);
      assert.deepEqual(received[0]!.body.probes, [{ address: '198.18.0.2', state: 'up', sent: 3, received: 3, lost: 0, last_rtt_ms: 0.2 }]);
      assert.deepEqual(received[0]!.body.shootdowns, []);

      status = 503;
      journal.record(vl3(uuidv7(), '10.0.0.7'), Date.now());
      reporter.poke();
      await until(() => received.length === 2, 'the poked report');
      assert.deepEqual(received[1]!.body.shootdowns.map((s) => s.target), ['10.0.0.7']);
      // Refused: the shootdown stays for the next report.
      await until(() => journal.size === 1, 'the refused shootdown back in the journal');

      status = 204;
      journal.record(vl3(uuidv7(), '10.0.0.8'), Date.now());
      reporter.poke();
      await until(() => received.length === 3, 'the next report');
      assert.deepEqual(received[2]!.body.shootdowns.map((s) => s.target), ['10.0.0.7', '10.0.0.8']);
      assert.equal(journal.size, 0);
    } finally {
      reporter.stop();
    }
  });
});
