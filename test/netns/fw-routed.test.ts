/**
 * Node-side firewall, traffic the node routes (not bridges) to and from an instance: an
 * instance behind its node (the bridge as its gateway, the node forwarding to another
 * network) reaches out and gets its replies, while new connections from outside stay
 * blocked. The replies enter the bridge from the node's routing, so the state table must
 * classify them on the way into the bridge, not only when they leave one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadNft } from '../../src/fw/applier.js';
import { PolicyWorld } from '../../src/fw/compile.js';
import { renderRuleset, renderStateTable } from '../../src/fw/nft.js';
import { ping } from '../helpers/datacenter.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';

const skip = netnsSkipReason();
const INSTANCE = '10000000-0000-4000-8000-0000000000e1';

describe('node-side firewall, routed traffic', { skip: skip || undefined }, () => {
  const lab = new NetnsLab('fwr');
  let node = '';
  let inst = '';
  let ext = '';

  before(async () => {
    [node, inst, ext] = [await lab.addNetns('n'), await lab.addNetns('i'), await lab.addNetns('e')];
    await lab.exec(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await lab.ip(node, 'link', 'add', 'br0', 'group', '0x72000005', 'type', 'bridge');
    await lab.ip(node, 'addr', 'add', '10.9.0.254/24', 'dev', 'br0');
    await lab.ip(node, 'link', 'set', 'br0', 'up');
    await lab.addVeth({ ns: node, name: 'rvport' }, { ns: inst, name: 'eth0' });
    await lab.ip(node, 'link', 'set', 'rvport', 'master', 'br0', 'up');
    await lab.ip(inst, 'addr', 'add', '10.9.0.2/24', 'dev', 'eth0');
    await lab.ip(inst, 'link', 'set', 'eth0', 'up');
    await lab.ip(inst, 'route', 'add', 'default', 'via', '10.9.0.254');
    await lab.addVeth({ ns: node, name: 'out' }, { ns: ext, name: 'eth0' });
    await lab.ip(node, 'addr', 'add', '10.8.0.254/24', 'dev', 'out');
    await lab.ip(node, 'link', 'set', 'out', 'up');
    await lab.ip(ext, 'addr', 'add', '10.8.0.1/24', 'dev', 'eth0');
    await lab.ip(ext, 'link', 'set', 'eth0', 'up');
    await lab.ip(ext, 'route', 'add', 'default', 'via', '10.8.0.254');
  });

  after(async () => {
    await lab.cleanup();
  });

  it('outbound reaches a routed network and its replies come back; inbound from there stays blocked', async () => {
    assert.ok(await ping(lab, ext, '10.9.0.2', 1, 2), 'no firewall: reachable');
    const world = new PolicyWorld();
    world.upsertInstance({ uuid: INSTANCE, tags: {}, firewall_enabled: true, addresses: ['10.9.0.2'], nodes: [] });
    const error = await loadNft(`/run/netns/${node}`, renderStateTable() + renderRuleset(INSTANCE, world.compile(INSTANCE), ['rvport']));
    assert.equal(error, undefined);
    assert.ok(await ping(lab, inst, '10.8.0.1', 1, 2), 'outbound allowed by default, the reply routed into the bridge passes');
    assert.equal(await ping(lab, ext, '10.9.0.2', 1, 1), false, 'inbound blocked by default');
  });
});
