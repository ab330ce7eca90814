/**
 * End to end through a real controller process: NICs created, moved and deleted through
 * the REST API are answered over SVP, and the shootdown events reach exactly the nodes
 * that were on the vnet, until LOG_RM removes them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';
import { spawnSync } from 'node:child_process';
import { CLI, http, type RunningController, startControllerProcess } from '../helpers/processes.js';

const OWNER = '11111111-2222-4333-8444-555555555555';
const CN = ['c0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000003', 'c0000000-0000-4000-8000-000000000004'];
const UL = ['198.18.7.11', '198.18.7.12', '198.18.7.13'];
const VM = (n: number) => `a0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe('SVP answers what the REST API wrote', () => {
  let ctl: RunningController;
  let svp: SvpClient;
  let vnet: number;
  let fabricNet: string;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await http(ctl.restUrl, method, path, body);
    assert.ok(r.status < 300, `${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const drain = async (ul: string) => {
    const got = await svp.logReq(ul, 65536);
    if (got.entries.length > 0) await svp.logRm(got.entries.map((e) => e.id));
    return got;
  };

  before(async () => {
    ctl = await startControllerProcess({ args: ['--log-wait', '300'] });
    assert.ok(ctl.svp, 'controller announced its SVP address');
    svp = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 3000 });
    await svp.start();
    const ulNet = await api('POST', '/networks', {
      name: 'underlay',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: '198.18.7.0/24',
      provision_start_ip: '198.18.7.10',
      provision_end_ip: '198.18.7.200',
    });
    for (let i = 0; i < 3; i++) {
      await api('POST', `/networks/${ulNet.uuid}/nics`, {
        belongs_to_uuid: CN[i],
        belongs_to_type: 'server',
        owner_uuid: OWNER,
        ip: UL[i],
        underlay: true,
        check_owner: false,
      });
    }
    const vlan = await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 5, name: 'v5' });
    vnet = vlan.vnet_id;
    const net = await api('POST', `/fabrics/${OWNER}/vlans/5/networks`, {
      name: 'web',
      subnet: '10.20.0.0/24',
      provision_start_ip: '10.20.0.10',
      provision_end_ip: '10.20.0.250',
    });
    fabricNet = net.uuid;
  });
  after(async () => {
    await svp?.close();
    await ctl?.stop();
  });

  it('answers VL2 and VL3 for a fabric NIC with its node\'s underlay address', async () => {
    const a = await api('POST', `/networks/${fabricNet}/nics`, { belongs_to_uuid: VM(1), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: CN[0], ip: '10.20.0.11' });
    const vl3 = await svp.vl3('10.20.0.11', vnet);
    assert.equal(vl3.status, SvpStatus.OK);
    assert.equal(vl3.mac, a.mac);
    assert.equal(vl3.ip, UL[0]);
    assert.equal(vl3.port, 4789);
    const vl2 = await svp.vl2(a.mac, vnet);
    assert.equal(vl2.status, SvpStatus.OK);
    assert.equal(vl2.ip, UL[0]);
    assert.equal(vl2.port, 4789);
  });

  it('the operator command `rhumb svp vl3` answers the same, in JSON and in words', () => {
    const server = `${ctl.svp!.host}:${ctl.svp!.port}`;
    const json = spawnSync(process.execPath, [CLI, 'svp', 'vl3', '10.20.0.11', String(vnet), '--server', server, '--json'], { encoding: 'utf8', timeout: 15000 });
    assert.equal(json.status, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.ip, UL[0]);
    const words = spawnSync(process.execPath, [CLI, 'svp', 'vl2', '02:00:00:00:00:99', String(vnet), '--server', server], { encoding: 'utf8', timeout: 15000 });
    assert.equal(words.status, 2, 'a non-OK status exits 2');
    assert.match(words.stdout + words.stderr, /NOTFOUND/i);
  });

  it('answers NOTFOUND for an unknown MAC, an unknown vnet and a node without underlay record', async () => {
    assert.equal((await svp.vl2('02:00:00:00:00:99', vnet)).status, SvpStatus.NOTFOUND);
    assert.equal((await svp.vl3('10.20.0.11', (vnet + 1) % 16777215)).status, SvpStatus.NOTFOUND);
    const orphan = await api('POST', `/networks/${fabricNet}/nics`, { belongs_to_uuid: VM(9), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: CN[3] });
    const r = await svp.vl3(orphan.ip, vnet);
    assert.equal(r.status, SvpStatus.NOTFOUND);
    assert.equal(r.mac, null);
    assert.equal((await svp.vl2(orphan.mac, vnet)).status, SvpStatus.NOTFOUND);
    await api('DELETE', `/nics/${orphan.mac}`);
  });

  it('a long-polled LOG_REQ wakes within 50 ms of the commit of a NIC on the vnet', async () => {
    for (const ul of UL) await drain(ul);
    const waiting = svp.logReq(UL[0], 65536).then((r) => ({ r, at: performance.now() }));
    await new Promise((r) => setTimeout(r, 50));
    const b = await api('POST', `/networks/${fabricNet}/nics`, { belongs_to_uuid: VM(2), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: CN[1], ip: '10.20.0.12' });
    const acked = performance.now();
    const { r, at } = await waiting;
    assert.ok(at - acked < 50, `LOG_REQ returned ${Math.round(at - acked)} ms after the REST answer`);
    assert.deepEqual(
      r.entries.map((e) => (e.type === 'vl3' ? [e.type, e.ip, e.vnetId] : [e.type])),
      [['vl3', b.ip, vnet]],
    );
    await svp.logRm(r.entries.map((e) => e.id));
  });

  it('a moved NIC yields VL2 and VL3 to exactly the nodes on the vnet, and LOG_RM removes them', async () => {
    for (const ul of UL) await drain(ul);
    const a = await api('GET', '/nics?belongs_to_uuid=' + VM(1));
    const mac = a[0].mac as string;
    await api('PUT', `/nics/${mac}`, { cn_uuid: CN[2] });
    // The new location is answered at once.
    const vl2 = await svp.vl2(mac, vnet);
    assert.equal(vl2.ip, UL[2]);
    for (const [i, ul] of UL.entries()) {
      const got = await svp.logReq(ul, 65536);
      const kinds = got.entries.map((e) => (e.type === 'vl2' ? `vl2 ${e.mac}` : `vl3 ${e.ip}`)).sort();
      if (i === 2) assert.deepEqual(kinds, [], 'the node the NIC moved to was not on the vnet before');
      else assert.deepEqual(kinds, [`vl2 ${mac}`, 'vl3 10.20.0.11']);
      assert.ok(got.entries.every((e) => e.vnetId === vnet));
      await svp.logRm(got.entries.map((e) => e.id));
      assert.equal((await svp.logReq(ul, 65536)).entries.length, 0, 'LOG_RM removed the events');
    }
  });

  it('a deleted NIC yields VL2 to the nodes on the vnet and is NOTFOUND afterwards', async () => {
    for (const ul of UL) await drain(ul);
    const b = (await api('GET', '/nics?belongs_to_uuid=' + VM(2)))[0];
    await api('DELETE', `/nics/${b.mac}`);
    assert.equal((await svp.vl3(b.ip, vnet)).status, SvpStatus.NOTFOUND);
    assert.equal((await svp.vl2(b.mac, vnet)).status, SvpStatus.NOTFOUND);
    // Nodes on the vnet before the delete: CN[1] (B itself) and CN[2] (A after its move).
    const seen = [];
    for (const ul of UL) seen.push((await drain(ul)).entries.map((e) => e.type === 'vl2' ? e.mac : '?'));
    assert.deepEqual(seen, [[], [b.mac], [b.mac]]);
  });

  it('LOG_REQ for an unknown underlay IP is FATAL with no entries', async () => {
    const r = await svp.logReq('198.18.99.99', 65536);
    assert.equal(r.status, SvpStatus.FATAL);
    assert.equal(r.entries.length, 0);
  });
});
