/**
 * renewableRestFetch: the agent's fetch to the controller over a pool of its own, which
 * renew() drops (requests in flight on it fail at once), so requests after it open new
 * connections: what the agent does when an address of its node is gone. A request that
 * fails otherwise keeps its own error.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ConnectionsRenewedError, renewableRestFetch } from '../../src/security/http-client.js';

let server: http.Server;
let base = '';
/** The client port of each request, in order. */
const ports: number[] = [];
const auth: string[] = [];
let heldSeen: () => void = () => {};
const held: http.ServerResponse[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    auth.push(req.headers.authorization ?? '');
    ports.push(req.socket.remotePort ?? 0);
    if (req.url === '/slow') {
      held.push(res); // answered never: the test renews while it waits
      heldSeen();
      return;
    }
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const res of held) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

test('renew() drops the connections: a request in flight on one fails at once, and the next requests use new ones', async () => {
  const f = renewableRestFetch({ token: 'node-token' });
  assert.equal(await (await f.fetch(`${base}/`)).text(), 'ok');
  const seen = new Promise<void>((r) => (heldSeen = r));
  const slow = f.fetch(`${base}/slow`);
  await seen;
  const before = new Set(ports);
  f.renew();
  await assert.rejects(slow, ConnectionsRenewedError);

  assert.equal(await (await f.fetch(`${base}/`)).text(), 'ok');
  assert.ok(!before.has(ports.at(-1)!), `the request after renew() came from port ${ports.at(-1)}, one the dropped connections used (${[...before].join(', ')})`);
  assert.ok(auth.every((a) => a === 'Bearer node-token'), 'every request carries the token');
});

test('a request that fails without a renewal keeps its own error (not ConnectionsRenewedError)', async () => {
  const f = renewableRestFetch();
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const err = await f.fetch(`http://127.0.0.1:${port}/`).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof Error && !(err instanceof ConnectionsRenewedError), `got ${String(err)}`);
});
