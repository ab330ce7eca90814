/**
 * The agent's POST /attach as an attacker would call it (issue 17 items 1 and 9): a real
 * agent running as root in a node namespace, kernel backend. Request fields go into the
 * `ip -batch` scripts the agent runs as root, so only namespace paths of an accepted shape
 * that name an instance's namespace get through; and the agent's state (which namespaces
 * it enters) is readable by root alone.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Datacenter, type Node, type RunningAgent, sleep } from '../helpers/datacenter.js';
import { netnsSkipReason, run } from '../helpers/netns.js';
import { http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000a7';

describe('agent POST /attach: only instance namespaces, only plain values reach ip -batch', { skip, timeout: 120_000 }, () => {
  const dc = new Datacenter('aag', {
    nodes: 1, stateTag: 'aag', backend: 'kernel', firewall: false,
    // An older agent's state: world-readable directory and file.
    beforeAgents: async (d) => {
      await mkdir(d.nodes[0]!.stateDir, { mode: 0o755 });
      await writeFile(join(d.nodes[0]!.stateDir, 'attachments.json'), '{"version":1,"nics":{}}\n', { mode: 0o644 });
    },
  });
  const { lab, api } = dc;
  let node: Node;
  let agent: RunningAgent;
  let tmp = '';
  let stateDir = '';
  let inst1 = '';
  let inst2 = '';
  const macs: string[] = [];
  const mounts: string[] = [];
  let sleeper: ChildProcess | undefined;

  const attach = (body: Record<string, unknown>) => http(agent.api, 'POST', '/attach', body);

  /** True when the node namespace has the host end of this NIC's veth (rv<mac hex>). */
  async function hostVethExists(mac: string): Promise<boolean> {
    const links = JSON.parse(await lab.ip(node.ns, '-j', 'link', 'show')) as Array<{ ifname: string }>;
    return links.some((l) => l.ifname === `rv${mac.replace(/:/g, '')}`);
  }

  async function exists(path: string): Promise<boolean> {
    return access(path).then(
      () => true,
      () => false,
    );
  }

  before(async () => {
    await dc.start();
    tmp = dc.stateRoot;
    node = dc.nodes[0]!;
    stateDir = node.stateDir;
    agent = node.agent!;
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 7, name: 'guard' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/7/networks`, {
      name: 'guard',
      subnet: '10.66.0.0/24',
      provision_start_ip: '10.66.0.10',
      provision_end_ip: '10.66.0.200',
      gateway: '10.66.0.1',
    });
    for (let i = 0; i < 3; i++) {
      const nic = await api('POST', '/nics', {
        owner_uuid: OWNER,
        belongs_to_uuid: randomUUID(),
        belongs_to_type: 'zone',
        network_uuid: net.uuid,
        cn_uuid: node.uuid,
      });
      macs.push(nic.mac);
    }
    inst1 = await lab.addNetns('i1');
    inst2 = await lab.addNetns('i2');
  });

  after(async () => {
    sleeper?.kill('SIGKILL');
    for (const m of mounts.splice(0)) await run('umount', [m]).catch(() => undefined);
    await dc.stop();
  });

  it('the exploit from the issue: 400, no file written, nothing plumbed', async () => {
    const marker = join(tmp, 'pwned');
    const netns = `/run/netns/${inst1}\nnetns exec ${inst1} /bin/sh -c "id > ${marker}"`;
    const r = await attach({ mac: macs[0], netns });
    await sleep(300);
    assert.equal(await exists(marker), false, 'the injected command ran');
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.message, /netns must be \/run\/netns\/NAME, \/var\/run\/netns\/NAME or \/proc\/PID\/ns\/net/);
    assert.equal(await hostVethExists(macs[0]!), false);
    // The same through the interface name.
    const r2 = await attach({ mac: macs[0], netns: `/run/netns/${inst1}`, ifname: `e0\nnetns exec ${inst1} /bin/sh -c "id > ${marker}"` });
    assert.equal(r2.status, 400);
    assert.equal(await exists(marker), false);
  });

  it('a namespace bind-mounted anywhere else, or a path through another directory, is refused', async () => {
    const elsewhere = join(tmp, 'ns-elsewhere');
    await writeFile(elsewhere, '');
    await run('mount', ['--bind', `/run/netns/${inst1}`, elsewhere]);
    mounts.push(elsewhere);
    for (const netns of [elsewhere, `/run/netns/../netns/${inst1}`, `/proc/self/root/run/netns/${inst1}`, '/etc/passwd']) {
      const r = await attach({ mac: macs[0], netns });
      assert.equal(r.status, 400, `${netns}: ${JSON.stringify(r.body)}`);
    }
    assert.equal(await hostVethExists(macs[0]!), false);
    const links = await lab.ip(inst1, '-br', 'link', 'show');
    assert.doesNotMatch(links, /eth0/);
  });

  it('/proc/PID/ns/net of the agent itself (the node namespace) or of PID 1 (the host) is a 422', async () => {
    const own = await attach({ mac: macs[0], netns: `/proc/${agent.proc.pid}/ns/net`, ifname: 'eth7' });
    assert.equal(own.status, 422, JSON.stringify(own.body));
    assert.match(own.body.message, /node's own network namespace/);
    // ifname lo: should the check ever be missing, creating the veth fails instead of touching the host.
    const host = await attach({ mac: macs[0], netns: '/proc/1/ns/net', ifname: 'lo' });
    assert.equal(host.status, 422, JSON.stringify(host.body));
    // (Where even root may not look at PID 1's namespace, as in some containers, that is the refusal.)
    assert.match(host.body.message, /host's initial network namespace|node's own|permission denied/);
    const missing = await attach({ mac: macs[0], netns: `/run/netns/${lab.prefix}-none` });
    assert.equal(missing.status, 422);
    assert.match(missing.body.message, /does not exist/);
    assert.equal(await hostVethExists(macs[0]!), false);
    const nodeLinks = await lab.ip(node.ns, '-br', 'link', 'show');
    assert.doesNotMatch(nodeLinks, /eth7/);
  });

  it('accepted shapes still work: /run/netns/NAME, /var/run/netns/NAME and /proc/PID/ns/net of an instance', async () => {
    const a = await attach({ mac: macs[0], netns: `/run/netns/${inst1}` });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    sleeper = lab.spawnIn(inst2, ['sleep', '600']);
    await sleep(200);
    const b = await attach({ mac: macs[1], netns: `/proc/${sleeper.pid}/ns/net`, ifname: 'net1' });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    const shown = JSON.parse(await lab.ip(inst2, '-j', 'link', 'show', 'dev', 'net1')) as Array<{ address: string }>;
    assert.equal(shown[0]!.address, macs[1]);
    const c = await attach({ mac: macs[2], netns: `/var/run/netns/${inst2}`, ifname: 'net2' });
    assert.equal(c.status, 200, JSON.stringify(c.body));
  });

  it('the state directory is 0700 and attachments.json 0600 (also those an older agent left wider)', async () => {
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(stateDir, 'attachments.json'))).mode & 0o777, 0o600);
  });
});
