/**
 * The agent API's unix socket: created 0600 (root only), a stale socket from a dead agent
 * replaced, a live one or a file that is not a socket refused; the shared client reaches it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { AgentUnreachableError, agentRequest } from '../../src/agent/address.js';
import { AGENT_SOCKET_MODE, listenAgentApi } from '../../src/agent/api.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-agent-sock-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function app() {
  const a = Fastify();
  a.get('/status', async () => ({ ok: true }));
  return a;
}

describe('agent API on a unix socket', () => {
  it('is created with mode 0600 in a new directory and answers through agentRequest', async () => {
    const path = join(dir, 'sub', 'agent.sock');
    const a = app();
    try {
      assert.deepEqual(await listenAgentApi(a, { socketPath: path }), { socketPath: path });
      const st = await stat(path);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, AGENT_SOCKET_MODE);
      const r = await agentRequest({ socketPath: path }, 'GET', '/status');
      assert.deepEqual(r, { status: 200, body: { ok: true } });
    } finally {
      await a.close();
    }
    await assert.rejects(stat(path), /ENOENT/, 'closing removes the socket');
    await assert.rejects(agentRequest({ socketPath: path }, 'GET', '/status', undefined, 2000), AgentUnreachableError);
  });

  it('replaces a stale socket, refuses a live one and a regular file', async () => {
    const path = join(dir, 'stale.sock');
    // A socket file nobody serves any more (its server closed without unlinking).
    const old = createServer();
    await new Promise<void>((r) => old.listen(path, r));
    // Simulate a crash: the fd goes, the file stays.
    (old as unknown as { _handle: { close(): void } | null })._handle?.close();
    const a = app();
    const b = app();
    try {
      await listenAgentApi(a, { socketPath: path });
      assert.equal((await agentRequest({ socketPath: path }, 'GET', '/status')).status, 200);
      await assert.rejects(listenAgentApi(b, { socketPath: path }), /another process serves/);
      assert.equal((await agentRequest({ socketPath: path }, 'GET', '/status')).status, 200, 'the live agent is untouched');
    } finally {
      await a.close();
      await b.close();
    }
    const file = join(dir, 'plain');
    await writeFile(file, 'x');
    const c = app();
    try {
      await assert.rejects(listenAgentApi(c, { socketPath: file }), /not a socket/);
    } finally {
      await c.close();
    }
  });
});
