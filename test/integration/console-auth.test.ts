/**
 * The web console on a controller with an auth file, in a real headless browser
 * (Debian's chromium through playwright-core): without a token it asks for one; a token
 * the controller does not know is refused, saying so; an owner's token is told the
 * console is for admins; an admin token shows the snapshot and follows the event stream
 * (a write through REST reaches the page without a reload); the token lasts the tab's
 * session. Needs chromium and a built dist/.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type LaunchedBrowser, browserSkipReason, launchBrowser } from '../helpers/browser.js';
import { type RunningController, http, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const ADMIN = randomBytes(24).toString('hex');
const OWNER_TOKEN = randomBytes(24).toString('hex');
const OWNER = randomUUID();

describe('web console with tokens', { skip: browserSkipReason() || undefined, timeout: 120_000 }, () => {
  let ctl: RunningController | undefined;
  let browser: LaunchedBrowser | undefined;
  let page: Page;
  /** fetch as the admin. */
  const asAdmin: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${ADMIN}`);
    return fetch(input, { ...init, headers });
  };
  const admin = (method: string, path: string, body?: unknown) => http(ctl!.restUrl, method, path, body, asAdmin);

  async function signIn(token: string): Promise<void> {
    await page.fill('#signin-token', token);
    await page.click('#signin button[type=submit]');
  }

  before(async () => {
    const dir = await makeTempDir('console-auth');
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ tokens: [{ token: ADMIN, role: 'admin' }, { token: OWNER_TOKEN, role: 'owner', owner_uuid: OWNER }] }));
    await chmod(authFile, 0o600);
    ctl = await startControllerProcess({ args: ['--auth-file', authFile] });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  });

  after(async () => {
    await browser?.close();
    await ctl?.stop();
  });

  it('asks for a token, refuses an unknown one and an owner\'s, shows and follows with an admin\'s', async () => {
    await page.goto(`${ctl!.restUrl}/ui/`);
    await page.waitForSelector('#signin:not([hidden])');
    assert.equal(await page.getAttribute('#conn', 'data-state'), 'signed-out');

    await signIn('not-a-token-of-this-controller');
    await page.locator('#signin-error', { hasText: 'refused the token' }).waitFor();

    await signIn(OWNER_TOKEN);
    await page.locator('#signin-error', { hasText: 'admins only' }).waitFor();

    await signIn(ADMIN);
    await page.waitForSelector('#signin[hidden]', { state: 'attached' });
    await page.locator('#conn[data-state=live]').waitFor();
    await page.locator('body[data-revision]').waitFor();
    const before = Number(await page.getAttribute('body', 'data-revision'));
    assert.ok(before > 0, 'a snapshot was shown');

    // A write through REST reaches the page over the event stream, no reload.
    const net = await admin('POST', '/networks', { name: 'console-auth-net', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '198.18.77.0/24', provision_start_ip: '198.18.77.10', provision_end_ip: '198.18.77.250' });
    assert.equal(net.status, 200, JSON.stringify(net.body));
    // Polled from here: waitForFunction evaluates in the page, which the console's CSP forbids.
    const until = Date.now() + 10_000;
    while (Number(await page.getAttribute('body', 'data-revision')) <= before) {
      assert.ok(Date.now() < until, 'the write did not reach the page');
      await new Promise((r) => setTimeout(r, 50));
    }

    // The token is the tab's: a reload keeps it.
    await page.reload();
    await page.locator('#conn[data-state=live]').waitFor();
    assert.equal(await page.isHidden('#signin'), true);
  });
});
