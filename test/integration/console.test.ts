/**
 * The console's server side through a real controller process on loopback: the static
 * pages and their headers, the agents' report route (and its bad input), the snapshot,
 * the server-sent event stream following a REST write, a controller that stops with a
 * stream open, and --no-ui.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type ClientRequest, type IncomingMessage, get as httpGet } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { http, type RunningController, startControllerProcess } from '../helpers/processes.js';

const NODE = randomUUID();

function report(over: Record<string, unknown> = {}) {
  return {
    node: NODE,
    underlay_ip: '198.18.9.1',
    backend: 'kernel',
    sent_at: Date.now(),
    vnets: [],
    nics: 0,
    probes: [{ address: '198.18.9.2', state: 'up', sent: 10, received: 9, lost: 1, last_rtt_ms: 0.25 }],
    shootdowns: [{ id: randomUUID(), type: 'vl3', vnet: 5, target: '10.0.0.9', committed_at: 1000, applied_at: 1007 }],
    ...over,
  };
}

/**
 * Reads server-sent events over its own connection (node:http, no pool: fetch's pool may
 * keep a spare idle connection that would hold a server's close for its own reasons).
 */
class EventReader {
  private buf = '';
  private chunks: string[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  status = 0;
  contentType = '';

  constructor(private readonly req: ClientRequest) {}

  static open(base: string): Promise<EventReader> {
    return new Promise((resolve, reject) => {
      const req = httpGet(`${base}/ui/api/events`, { agent: false });
      const reader = new EventReader(req);
      req.once('error', reject);
      req.once('response', (res: IncomingMessage) => {
        reader.status = res.statusCode ?? 0;
        reader.contentType = String(res.headers['content-type']);
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          reader.chunks.push(d);
          reader.wake?.();
        });
        res.once('close', () => {
          reader.ended = true;
          reader.wake?.();
        });
        resolve(reader);
      });
    });
  }

  close(): void {
    this.req.destroy();
  }

  async next<T>(match: (data: T) => boolean, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      this.buf += this.chunks.splice(0).join('');
      let sep: number;
      while ((sep = this.buf.indexOf('\n\n')) >= 0) {
        const block = this.buf.slice(0, sep);
        this.buf = this.buf.slice(sep + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (/^event: snapshot$/m.test(block) && data && match(JSON.parse(data) as T)) return JSON.parse(data) as T;
      }
      if (this.ended) throw new Error('the event stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for an event');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, left);
      });
    }
  }
}

interface Snapshot {
  nodes: Array<{ uuid: string; agent: string; peers: Array<{ address: string; loss?: number; last_rtt_ms?: number }> }>;
  networks: Array<{ uuid: string; name: string }>;
  shootdowns: Array<{ target: string; latency_ms?: number }>;
}

describe('console routes', () => {
  let ctl: RunningController;
  before(async () => {
    ctl = await startControllerProcess();
  });
  after(async () => {
    await ctl?.stop();
  });

  it('serves the page at /ui/ with a strict content security policy; /ui redirects there', async () => {
    const redirect = await fetch(`${ctl.restUrl}/ui`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/ui/');
    const page = await http(ctl.restUrl, 'GET', '/ui/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
    assert.doesNotMatch(page.headers.get('content-security-policy')!, /unsafe-inline/);
    assert.match(String(page.body), /<script type="module" src="app.js">/);
    const js = await http(ctl.restUrl, 'GET', '/ui/render.js');
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type')!, /javascript/);
    assert.doesNotMatch(String(js.body), /innerHTML/, 'tenant data is never parsed as HTML');
  });

  it('serves only its own files', async () => {
    for (const path of ['/ui/nope.js', '/ui/..%2Fpackage.json', '/ui/server.ts']) {
      const r = await http(ctl.restUrl, 'GET', path);
      assert.equal(r.status, 404, path);
    }
  });

  it('takes agents\' reports and shows their health, loss and shootdown latency in the snapshot', async () => {
    const r = await http(ctl.restUrl, 'POST', `/nodes/${NODE}/report`, report());
    assert.equal(r.status, 204, JSON.stringify(r.body));
    const snap = (await http(ctl.restUrl, 'GET', '/ui/api/snapshot')).body as Snapshot;
    const node = snap.nodes.find((n) => n.uuid === NODE)!;
    assert.equal(node.agent, 'up');
    assert.deepEqual(node.peers, [{ address: '198.18.9.2', state: 'up', last_rtt_ms: 0.25, loss: 0.1 }]);
    assert.equal(snap.shootdowns[0]!.target, '10.0.0.9');
    assert.equal(snap.shootdowns[0]!.latency_ms, 7);
  });

  it('refuses a bad report with the reason, and keeps the last good one', async () => {
    const r = await http(ctl.restUrl, 'POST', `/nodes/${NODE}/report`, report({ probes: [{ address: 'x', state: 'sideways', sent: 1, received: 1, lost: 0 }] }));
    assert.equal(r.status, 422);
    assert.match(r.body.message, /probes\[0\]\.state/);
    const wrongNode = await http(ctl.restUrl, 'POST', `/nodes/not-a-uuid/report`, report());
    assert.equal(wrongNode.status, 422);
    const snap = (await http(ctl.restUrl, 'GET', '/ui/api/snapshot')).body as Snapshot;
    assert.equal(snap.nodes.find((n) => n.uuid === NODE)!.peers[0]!.address, '198.18.9.2');
  });

  it('streams a snapshot on connect and a new one after a REST write', async () => {
    const events = await EventReader.open(ctl.restUrl);
    try {
      assert.equal(events.status, 200);
      assert.match(events.contentType, /^text\/event-stream/);
      await events.next<Snapshot>(() => true, 5000);
      const owner = randomUUID();
      await http(ctl.restUrl, 'POST', `/fabrics/${owner}/vlans`, { vlan_id: 4, name: 'v' });
      const net = await http(ctl.restUrl, 'POST', `/fabrics/${owner}/vlans/4/networks`, { name: 'streamed', subnet: '10.4.0.0/24', provision_start_ip: '10.4.0.10', provision_end_ip: '10.4.0.20' });
      assert.equal(net.status, 200, JSON.stringify(net.body));
      const snap = await events.next<Snapshot>((s) => s.networks.some((n) => n.uuid === net.body.uuid), 5000);
      assert.equal(snap.networks.find((n) => n.uuid === net.body.uuid)!.name, 'streamed');
    } finally {
      events.close();
    }
  });

  it('stops promptly while a browser holds an event stream open', async () => {
    const events = await EventReader.open(ctl.restUrl);
    await events.next<Snapshot>(() => true, 5000);
    await ctl.stop();
    // stop() sends SIGKILL after 5 s: a held shutdown would leave no exit code.
    assert.equal(ctl.proc.exitCode, 0, 'exited by itself, not killed after the grace time');
    await assert.rejects(events.next(() => true, 1000), /ended/, 'the stream was closed by the server');
  });
});

describe('controller --no-ui', () => {
  let ctl: RunningController;
  before(async () => {
    ctl = await startControllerProcess({ args: ['--no-ui'] });
  });
  after(async () => {
    await ctl?.stop();
  });

  it('serves no console, still takes agents\' reports', async () => {
    assert.ok(!ctl.stdout.some((l) => /console/.test(l)));
    for (const path of ['/ui/', '/ui/app.js', '/ui/api/snapshot', '/ui/api/events']) assert.equal((await http(ctl.restUrl, 'GET', path)).status, 404, path);
    assert.equal((await http(ctl.restUrl, 'POST', `/nodes/${NODE}/report`, report())).status, 204);
  });
});
