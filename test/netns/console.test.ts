/**
 * The web console in a real headless browser (Debian's chromium through playwright-core)
 * against a sandbox (`rhumb sandbox up`, userspace backend): it loads and shows the
 * sandbox's nodes with their underlay health and its vnets, a NIC created through the
 * REST API appears within a second without a reload (and its shootdowns with their
 * latency), the explain form answers, and tenant-supplied names with HTML in them are
 * shown as text. Also: every query of the Grafana dashboard names a metric the running
 * controller or agent exports.
 *
 * Screenshots go to test-artifacts/console/ (gitignored). Needs root, a built dist/,
 * the native addon and chromium.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type LaunchedBrowser, artifactDir, browserSkipReason, launchBrowser } from '../helpers/browser.js';
import { restClient } from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { REPO_ROOT, http } from '../helpers/processes.js';
import { dashboardQueries, exportedNames, metricNamesInQuery } from '../helpers/promql.js';
import { TestSandbox } from '../helpers/sandbox.js';

const skip = netnsSkipReason() || browserSkipReason();

interface State {
  controller: { rest: string };
  nodes: Array<{ name: string; uuid: string; ip: string; agentApi: string }>;
  owners: Array<{ name: string; uuid: string; networkUuid: string; networkName: string; vnetId: number }>;
  instances: Array<{ name: string; uuid: string; owner: string; node: string; mac: string; ip: string }>;
}

describe('web console', { skip, timeout: 180_000 }, () => {
  const sb = new TestSandbox();
  let state: State;
  let browser: LaunchedBrowser | undefined;
  let page: Page;
  let shots = '';
  const api = restClient(() => state.controller.rest);

  async function screenshot(name: string): Promise<void> {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot: ${path}`);
  }

  before(async () => {
    const r = await sb.up(['--nodes', '2', '--backend', 'userspace']);
    assert.equal(r.code, 0, `sandbox up failed: ${r.stderr}\n${r.stdout}`);
    state = sb.readState() as unknown as State;
    shots = await artifactDir('console');
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    await page.goto(`${state.controller.rest}/ui`);
  });

  after(async () => {
    await browser?.close();
    await sb.cleanup();
  });

  it('loads and shows the sandbox\'s nodes with their underlay health, and its vnets', async () => {
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    assert.equal(new URL(page.url()).pathname, '/ui/');
    for (const n of state.nodes) {
      const row = page.locator(`#nodes tbody tr[data-node="${n.uuid}"]`);
      assert.equal(await row.locator('td').nth(1).textContent(), n.ip);
      // The agents' probes, reported to the controller: the other node is up, with an RTT and a loss figure.
      await row.locator('.peer.peer-up').first().waitFor({ timeout: 15_000 });
      assert.match((await row.locator('.peer.peer-up').first().textContent())!, /up \d+\.\d+ ms \d+% loss/);
    }
    for (const o of state.owners) {
      await page.locator(`#vnets tbody tr[data-vnet="${o.vnetId}"]`).waitFor();
      assert.equal(await page.locator(`#vnets tr[data-vnet="${o.vnetId}"] td.names`).textContent(), o.networkName);
      assert.equal(await page.locator(`#picture svg g.vnet[data-vnet="${o.vnetId}"] circle`).count(), 2, `vnet ${o.vnetId} joins both nodes`);
      assert.equal(await page.locator(`[data-network="${o.networkUuid}"] h3 .name`).textContent(), o.networkName);
    }
    for (const i of state.instances) {
      const row = page.locator(`#networks tr[data-mac="${i.mac}"]`);
      assert.equal(await row.locator('td').nth(1).textContent(), i.ip);
      assert.equal(await row.locator('td').nth(3).textContent(), state.nodes.find((n) => n.name === i.node)!.ip);
    }
    assert.equal(await page.locator('#rules tbody tr[data-rule]').count(), 2);
    await screenshot('loaded');
  });

  it('shows a NIC created through the REST API within a second, without reloading, and its shootdowns', async () => {
    const acme = state.owners.find((o) => o.name === 'acme')!;
    const node = state.nodes[1]!;
    // Page scripts are strings here: the test's TypeScript has no DOM types.
    await page.evaluate('window.notReloaded = true');
    const shootdownsBefore = await page.locator('#shootdowns tr[data-shootdown]').count();
    const nic = await api('POST', '/nics', { owner_uuid: acme.uuid, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: acme.networkUuid, cn_uuid: node.uuid });
    // The "within a second", as the longest this waits.
    const row = page.locator(`#networks [data-network="${acme.networkUuid}"] tr[data-mac="${nic.mac}"]`);
    await row.waitFor({ timeout: 1000 });
    assert.equal(await row.locator('td').nth(1).textContent(), nic.ip);
    assert.equal(await page.evaluate('window.notReloaded'), true, 'the page was not reloaded');
    // Both nodes were on the vnet: each applied a VL3 shootdown and reported when.
    // Polled from here: waitForFunction evaluates in the page, which the console's CSP forbids.
    const shootdowns = page.locator('#shootdowns tr[data-shootdown]');
    const until = Date.now() + 10_000;
    while ((await shootdowns.count()) < shootdownsBefore + 2) {
      assert.ok(Date.now() < until, `shootdowns shown: ${await shootdowns.count()}, expected ${shootdownsBefore + 2}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const newest = page.locator('#shootdowns tbody tr[data-shootdown]').first();
    assert.equal(await newest.locator('td').nth(4).textContent(), nic.ip);
    assert.match((await newest.locator('td.latency').textContent())!, /^\d+ ms$/);
    await screenshot('nic-created');
  });

  it('the explain form says which rule decides', async () => {
    const web1 = state.instances.find((i) => i.name === 'web1')!;
    const db1 = state.instances.find((i) => i.name === 'db1')!;
    const ask = async (port: string): Promise<string> => {
      await page.fill('#explain-from', web1.ip);
      await page.selectOption('#explain-to', db1.uuid);
      await page.selectOption('#explain-proto', 'tcp');
      await page.fill('#explain-port', port);
      await page.evaluate("delete document.getElementById('explain-result').dataset.state");
      await page.click('#explain button[type="submit"]');
      await page.waitForSelector('#explain-result[data-state="answered"]', { timeout: 5000 });
      return (await page.locator('#explain-result').textContent())!;
    };
    const allowed = await ask('5432');
    assert.match(allowed, /ALLOWED into/);
    assert.match(allowed, /FROM tag "role" = "web" TO tag "role" = "db" ALLOW tcp PORT 5432/);
    assert.equal(await page.locator('#explain-result').getAttribute('data-allowed'), 'yes');
    const blocked = await ask('6000');
    assert.match(blocked, /BLOCKED into/);
    assert.match(blocked, /blocked by default/);
    await screenshot('explain');
  });

  it('shows tenant-supplied names with HTML in them as text', async () => {
    const owner = randomUUID();
    const evilNet = '<img src=x onerror="window.pwned=1">net';
    const evilVlan = '<b>vlan</b>';
    const evilTag = '<script>window.pwned=2</script>';
    await api('POST', `/fabrics/${owner}/vlans`, { vlan_id: 30, name: evilVlan });
    const net = await api('POST', `/fabrics/${owner}/vlans/30/networks`, { name: evilNet, subnet: '10.30.0.0/24', provision_start_ip: '10.30.0.10', provision_end_ip: '10.30.0.20' });
    const inst = randomUUID();
    await api('PUT', `/fw/instances/${inst}`, { owner_uuid: owner, tags: { name: evilTag }, firewall_enabled: false });
    const nic = await api('POST', '/nics', { owner_uuid: owner, belongs_to_uuid: inst, belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: state.nodes[0]!.uuid });
    const card = page.locator(`[data-network="${net.uuid}"]`);
    await card.locator(`tr[data-mac="${nic.mac}"]`).waitFor({ timeout: 5000 });
    assert.equal(await card.locator('h3 .name').textContent(), evilNet);
    assert.match((await card.locator('h3 small').textContent())!, /\(<b>vlan<\/b>\)/);
    assert.equal(await card.locator('tr[data-mac] td.tags').textContent(), `name=${evilTag}`);
    assert.match((await page.locator(`#explain-to option[value="${inst}"]`).textContent())!, /<script>/);
    // Nothing of it became markup, nothing ran.
    assert.equal(await page.locator('main img, main script').count(), 0);
    assert.equal(await card.locator('b').count(), 0);
    assert.equal(await page.evaluate('window.pwned'), undefined);
    await screenshot('tenant-html');
  });

  it('the Grafana dashboard queries only metrics the controller and agents export', async () => {
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'contrib/grafana/rhumb.json'), 'utf8'));
    const queries = dashboardQueries(dashboard);
    assert.ok(queries.length >= 20, `${queries.length} queries`);
    const controller = await http(state.controller.rest, 'GET', '/metrics');
    const agent = await http(state.nodes[0]!.agentApi, 'GET', '/metrics');
    assert.equal(controller.status, 200);
    assert.equal(agent.status, 200);
    const exported = new Set([...exportedNames(String(controller.body)), ...exportedNames(String(agent.body))]);
    const unknown: string[] = [];
    for (const q of queries) {
      const names = metricNamesInQuery(q.expr);
      assert.ok(names.length > 0, `${q.where}: no metric in ${q.expr}`);
      for (const n of names) if (!exported.has(n)) unknown.push(`${q.where}: ${n}`);
    }
    assert.deepEqual(unknown, []);
  });
});
