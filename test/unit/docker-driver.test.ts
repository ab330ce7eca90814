/**
 * The Docker plugin's driver over its HTTP protocol, with a stand-in Docker Engine API
 * (a unix socket) and a recording controller: the handshake, what Docker is told when the
 * request is bad, when the Docker API or the controller is unreachable, when two
 * networks would share a pool; and that a refused network create leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NapiRequestError } from '../../src/agent/napi-client.js';
import type { WorkloadManager } from '../../src/agent/workloads.js';
import { DockerDriver } from '../../src/docker/driver.js';
import { DockerEngine } from '../../src/docker/engine.js';
import { OPT } from '../../src/docker/protocol.js';
import { Publisher } from '../../src/docker/publish.js';
import { PluginServer } from '../../src/docker/server.js';

const OWNER = '11111111-1111-4111-8111-111111111111';
const NODE = '22222222-2222-4222-8222-222222222222';
const NET_ID = 'a'.repeat(64);

/** A Docker Engine API answering GET /networks with `networks`. */
async function fakeDocker(dir: string, networks: () => unknown[]): Promise<{ server: Server; socket: string }> {
  const socket = join(dir, 'docker.sock');
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/networks')) return res.end(JSON.stringify(networks()));
    res.statusCode = 404;
    res.end(JSON.stringify({ message: 'page not found' }));
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return { server, socket };
}

type Call = [string, string, unknown];

/** A controller: records calls, answers from `answer` (throw to fail). */
function fakeController(answer: (method: string, path: string, body: unknown) => unknown) {
  const calls: Call[] = [];
  return {
    calls,
    api: {
      async request<T>(method: string, path: string, body?: unknown): Promise<T> {
        calls.push([method, path, body]);
        return answer(method, path, body) as T;
      },
      async getNic(): Promise<never> {
        throw new Error('not used');
      },
    },
  };
}

function post(socket: string, method: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const req = request({ socketPath: socket, method: 'POST', path: `/${method}` }, (res) => {
      let out = '';
      res.on('data', (d) => (out += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(out) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

const createNetworkBody = (subnet = '10.60.0.0/24', extra: Record<string, string> = {}) => ({
  NetworkID: NET_ID,
  Options: { [OPT.generic]: { owner: OWNER, ...extra } },
  IPv4Data: [{ AddressSpace: 'rhumb', Pool: subnet, Gateway: `${subnet.split('/')[0]!.replace(/0$/, '1')}/24` }],
  IPv6Data: [],
});

describe('Docker plugin driver (protocol level)', () => {
  let dir = '';
  let docker: { server: Server; socket: string };
  let dockerNets: unknown[] = [];
  const servers: PluginServer[] = [];

  async function plugin(api: ReturnType<typeof fakeController>['api'], engineSocket: string): Promise<string> {
    const driver = new DockerDriver({
      agent: { nodeUuid: NODE, underlayIp: '198.18.0.1', attachment: () => undefined },
      workloads: { list: () => [] } as unknown as WorkloadManager,
      api,
      engine: new DockerEngine({ socketPath: engineSocket }, 2000),
      publisher: new Publisher(),
      pluginName: 'rhumb',
    });
    const socket = join(dir, `plugin${servers.length}.sock`);
    servers.push(await PluginServer.listen({ socketPath: socket }, driver.handlers()));
    return socket;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rhumb-dkdrv-'));
    docker = await fakeDocker(dir, () => dockerNets);
  });
  after(async () => {
    for (const s of servers) await s.close();
    docker.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('handshake: both drivers, local scope, MAC before addresses; unknown methods 404, bad JSON 400', async () => {
    const sock = await plugin(fakeController(() => ({})).api, docker.socket);
    assert.deepEqual((await post(sock, 'Plugin.Activate', {})).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepEqual((await post(sock, 'NetworkDriver.GetCapabilities', {})).body, { Scope: 'local', ConnectivityScope: 'global' });
    assert.deepEqual((await post(sock, 'IpamDriver.GetCapabilities', {})).body, { RequiresMACAddress: true, RequiresRequestReplay: false });
    assert.equal((await post(sock, 'NetworkDriver.NoSuchThing', {})).status, 404);
    assert.equal((await post(sock, 'IpamDriver.RequestPool', '{nope')).status, 400);
    const bad = await post(sock, 'IpamDriver.RequestPool', { Pool: '' });
    assert.equal(bad.status, 200);
    assert.match(String(bad.body.Err), /--subnet/);
  });

  it('names the Docker API when it cannot be reached', async () => {
    const sock = await plugin(fakeController(() => ({})).api, join(dir, 'no-such-docker.sock'));
    const r = await post(sock, 'IpamDriver.RequestPool', { AddressSpace: 'rhumb', Pool: '10.60.0.0/24', Options: {} });
    assert.match(String(r.body.Err), /Docker Engine API at unix:\/\/.*no-such-docker\.sock is not reachable/);
  });

  it('refuses a second unqualified pool on one subnet, and says to give the IPAM driver the owner', async () => {
    const sock = await plugin(fakeController(() => ({})).api, docker.socket);
    dockerNets = [{ Id: 'b'.repeat(64), Name: 'neta', Driver: 'rhumb', IPAM: { Driver: 'rhumb', Options: {}, Config: [{ Subnet: '10.60.0.0/24' }] }, Options: { owner: OWNER } }];
    const r = await post(sock, 'IpamDriver.RequestPool', { AddressSpace: 'rhumb', Pool: '10.60.0.0/24', Options: {} });
    assert.match(String(r.body.Err), /already has rhumb network neta on 10\.60\.0\.0\/24.*--ipam-opt owner=UUID/);
    const ok = await post(sock, 'IpamDriver.RequestPool', { AddressSpace: 'rhumb', Pool: '10.60.0.0/24', Options: { owner: OWNER } });
    assert.deepEqual(ok.body, { PoolID: `rhumb:10.60.0.0/24:${OWNER}`, Pool: '10.60.0.0/24', Data: {} });
    dockerNets = [];
  });

  it('names the controller when it cannot be reached', async () => {
    const ctl = fakeController(() => {
      throw new TypeError('fetch failed');
    });
    const sock = await plugin(ctl.api, docker.socket);
    const r = await post(sock, 'NetworkDriver.CreateNetwork', createNetworkBody());
    assert.match(String(r.body.Err), /rhumb controller is unreachable \(fetch failed\)/);
  });

  it('a refused create rolls back the VLAN it made; a refused Docker record rolls back the network too', async () => {
    const refusedNetwork = fakeController((method, path) => {
      if (method === 'GET') return [];
      if (method === 'POST' && path.endsWith('/vlans')) return { vlan_id: 2 };
      if (method === 'POST' && path.endsWith('/networks')) throw new NapiRequestError('POST', path, 500, { message: 'store down' });
      return {};
    });
    let r = await post(await plugin(refusedNetwork.api, docker.socket), 'NetworkDriver.CreateNetwork', createNetworkBody());
    assert.match(String(r.body.Err), /store down/);
    assert.deepEqual(refusedNetwork.calls.filter(([m]) => m !== 'GET').map(([m, p]) => `${m} ${p}`), [
      `POST /fabrics/${OWNER}/vlans`,
      `POST /fabrics/${OWNER}/vlans/2/networks`,
      `DELETE /fabrics/${OWNER}/vlans/2`,
    ]);

    const refusedRecord = fakeController((method, path) => {
      if (method === 'GET') return [];
      if (method === 'POST' && path.endsWith('/vlans')) return { vlan_id: 2 };
      if (method === 'POST' && path.endsWith('/networks')) return { uuid: 'f0000000-0000-4000-8000-000000000000', name: 'docker-aaaa', subnet: '10.60.0.0/24', vlan_id: 2 };
      if (method === 'PUT') throw new NapiRequestError('PUT', path, 422, { message: 'Invalid parameters', errors: [{ field: 'icc', message: 'the network already exists with icc=false' }] });
      return {};
    });
    r = await post(await plugin(refusedRecord.api, docker.socket), 'NetworkDriver.CreateNetwork', createNetworkBody());
    assert.match(String(r.body.Err), /icc: the network already exists with icc=false/);
    assert.deepEqual(refusedRecord.calls.filter(([m]) => m === 'DELETE').map(([, p]) => p), [
      `/fabrics/${OWNER}/vlans/2/networks/f0000000-0000-4000-8000-000000000000`,
      `/fabrics/${OWNER}/vlans/2`,
    ]);
  });

  it('adopts the owner network with that subnet: no VLAN or network created, the node recorded', async () => {
    const ctl = fakeController((method, path) => {
      if (method === 'GET' && path.endsWith('/vlans')) return [{ vlan_id: 7 }];
      if (method === 'GET') return [{ uuid: 'f0000000-0000-4000-8000-000000000001', name: 'ops-net', subnet: '10.60.0.0/24', vlan_id: 7 }];
      if (method === 'PUT') return { uuid: 'f0000000-0000-4000-8000-000000000001', owner_uuid: OWNER, icc: true, nodes: [NODE], managed: false, vlan_created: false };
      throw new Error(`unexpected ${method} ${path}`);
    });
    const r = await post(await plugin(ctl.api, docker.socket), 'NetworkDriver.CreateNetwork', createNetworkBody());
    assert.deepEqual(r.body, {});
    assert.deepEqual(ctl.calls.filter(([m]) => m !== 'GET'), [
      ['PUT', '/fw/docker/networks/f0000000-0000-4000-8000-000000000001', { owner_uuid: OWNER, node: NODE, docker_id: NET_ID, icc: true, managed: false, vlan_created: false }],
    ]);
  });
});
