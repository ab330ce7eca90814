import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, http, type RunningController, startControllerProcess } from '../helpers/processes.js';

describe('controller process', () => {
  let ctl: RunningController;
  before(async () => {
    ctl = await startControllerProcess();
  });
  after(async () => {
    await ctl?.stop();
  });

  it('announces its REST address and answers /ping', async () => {
    assert.match(ctl.restUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await http(ctl.restUrl, 'GET', '/ping');
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'OK');
    assert.equal(res.body.healthy, true);
    assert.equal(res.body.config.fabrics_enabled, true);
    assert.equal(res.headers.get('server'), 'rhumb Networking API');
    assert.ok(res.headers.get('x-request-id'));
  });

  it('serves prom-client metrics with request counts by route and status, and object counts', async () => {
    await http(ctl.restUrl, 'GET', '/ping');
    await http(ctl.restUrl, 'GET', '/no/such/route');
    const res = await http(ctl.restUrl, 'GET', '/metrics');
    assert.equal(res.status, 200);
    const text = String(res.body);
    assert.match(text, /rhumb_http_requests_total\{[^}]*route="\/ping"[^}]*status="200"[^}]*\} \d+/);
    assert.match(text, /rhumb_http_requests_total\{[^}]*status="404"[^}]*\} \d+/);
    assert.match(text, /rhumb_http_request_duration_seconds_bucket/);
    // the overlay and underlay nic tags exist from the first start
    assert.match(text, /rhumb_objects\{[^}]*type="nic_tags"[^}]*\} 2/);
    // the SVP side: the mapping index has followed the store and SVP counters exist
    assert.match(text, /rhumb_mapping_index_revision\{[^}]*\} [1-9]\d*/);
    assert.match(text, /rhumb_mapping_index_entries\{[^}]*kind="mac"[^}]*\} 0/);
    assert.match(text, /rhumb_svp_connections\{[^}]*\} 0/);
  });

  it('answers unknown routes with NAPI\'s 404 body', async () => {
    const res = await http(ctl.restUrl, 'GET', '/nope');
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { code: 'ResourceNotFound', message: '/nope does not exist' });
  });

  it('refuses a second controller on the same data directory with a clear error', () => {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--data', ctl.dataDir, '--listen', '127.0.0.1:0', '--svp-listen', '127.0.0.1:0'], {
      encoding: 'utf8',
      timeout: 15000,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /rhumb: .*(lock|in use|held)/i);
  });

  it('keeps its data across a restart', async () => {
    await ctl.stop({ keepData: true });
    ctl = await startControllerProcess({ dataDir: ctl.dataDir });
    const res = await http(ctl.restUrl, 'GET', '/metrics');
    assert.match(String(res.body), /rhumb_objects\{[^}]*type="nic_tags"[^}]*\} 2/);
  });
});

describe('rhumb CLI argument errors', () => {
  it('rejects a bad --listen with a clear message and a non-zero exit', () => {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--listen', 'nonsense'], { encoding: 'utf8', timeout: 15000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /HOST:PORT/);
  });
  it('rejects an unknown subcommand', () => {
    const r = spawnSync(process.execPath, [CLI, 'frobnicate'], { encoding: 'utf8', timeout: 15000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown command/);
  });
});
