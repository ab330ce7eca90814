/**
 * NIC creates under group commit, read-ahead and the read cache, through a real
 * controller process on LevelDB with fsync: SIGKILLed in the middle of a concurrent
 * burst, every create it acknowledged is there after a restart, whole (NIC, IP record,
 * index entries), no address is held twice, and creates after the restart go on without
 * a duplicate (the allocator's in-memory hints are gone).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, makeTempDir, startControllerProcess } from '../helpers/processes.js';
import { ADMIN_UUID } from '../helpers/napi.js';
import { rm } from 'node:fs/promises';

interface Created {
  mac: string;
  ip: string;
  belongs_to_uuid: string;
}

const vm = (w: number, i: number): string => `c0a50000-0000-4000-8000-${(w * 100_000 + i).toString(16).padStart(12, '0')}`;

/** workers concurrent creators, until `until()` says stop; what was acknowledged goes into acked. */
async function burst(base: string, network: string, workers: number, perWorker: number, tag: number, until: () => boolean, acked: Created[] = []): Promise<Created[]> {
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; i < perWorker && !until(); i++) {
      let r;
      try {
        r = await http(base, 'POST', `/networks/${network}/nics`, { belongs_to_uuid: vm(tag * 100 + w, i), belongs_to_type: 'zone', owner_uuid: ADMIN_UUID });
      } catch {
        return; // the controller died under this request: not acknowledged
      }
      assert.equal(r.status, 200, JSON.stringify(r.body));
      acked.push({ mac: r.body.mac, ip: r.body.ip, belongs_to_uuid: r.body.belongs_to_uuid });
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return acked;
}

async function allNics(base: string, network: string): Promise<Created[]> {
  const out: Created[] = [];
  for (let offset = 0; ; offset += 1000) {
    const r = await http(base, 'GET', `/nics?network_uuid=${network}&limit=1000&offset=${offset}`);
    assert.equal(r.status, 200);
    out.push(...(r.body as Created[]));
    if (r.body.length < 1000) return out;
  }
}

test('acknowledged NIC creates survive SIGKILL mid-burst, whole and unique, and allocation goes on after restart', async () => {
  const dataDir = await makeTempDir('prov-crash');
  let ctl = await startControllerProcess({ dataDir });
  try {
    const net = await http(ctl.restUrl, 'POST', '/networks', {
      name: 'crash', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '10.60.0.0/22', provision_start_ip: '10.60.0.1', provision_end_ip: '10.60.3.254',
    });
    assert.equal(net.status, 200, JSON.stringify(net.body));
    const network = net.body.uuid as string;

    let killed = false;
    const acked: Created[] = [];
    const running = burst(ctl.restUrl, network, 16, 1000, 1, () => killed, acked);
    // Kill once a good part of the burst is acknowledged, with requests in flight.
    const t0 = Date.now();
    while (acked.length < 150 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
    await ctl.kill('SIGKILL');
    killed = true;
    await running;
    assert.ok(acked.length >= 100, `only ${acked.length} creates acknowledged before the kill`);

    ctl = await startControllerProcess({ dataDir });
    for (const a of acked) {
      const nic = await http(ctl.restUrl, 'GET', `/nics/${a.mac.replace(/:/g, '')}`);
      assert.equal(nic.status, 200, `acknowledged NIC ${a.mac} is gone`);
      assert.equal(nic.body.ip, a.ip);
      const ip = await http(ctl.restUrl, 'GET', `/networks/${network}/ips/${a.ip}`);
      assert.equal(ip.body.belongs_to_uuid, a.belongs_to_uuid, `IP ${a.ip} of acknowledged NIC ${a.mac}`);
      const byOwner = await http(ctl.restUrl, 'GET', `/nics?belongs_to_uuid=${a.belongs_to_uuid}`);
      assert.deepEqual(byOwner.body.map((n: Created) => n.mac), [a.mac], 'index entry');
    }
    // Whatever landed (acknowledged or not) landed whole, each address once.
    const stored = await allNics(ctl.restUrl, network);
    assert.equal(new Set(stored.map((n) => n.ip)).size, stored.length, 'an address is held twice');
    for (const n of stored) {
      const ip = await http(ctl.restUrl, 'GET', `/networks/${network}/ips/${n.ip}`);
      assert.equal(ip.body.belongs_to_uuid, n.belongs_to_uuid, `NIC ${n.mac} without its IP record`);
    }

    // Restart in the middle: allocation resumes from the store, not the lost hints.
    const after = await burst(ctl.restUrl, network, 16, 10, 2, () => false);
    assert.equal(after.length, 160);
    const all = await allNics(ctl.restUrl, network);
    assert.equal(all.length, stored.length + 160);
    assert.equal(new Set(all.map((n) => n.ip)).size, all.length, 'an address is held twice after the restart');
    assert.equal(new Set(all.map((n) => n.mac)).size, all.length);
  } finally {
    await ctl.stop({ keepData: true });
    await rm(dataDir, { recursive: true, force: true });
  }
});
