import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AttachmentState, STATE_FILE, defaultStateDir } from '../../src/agent/state.js';

describe('agent attachment state file', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'rhumb-agent-state-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is empty before the first save; the directory is created on save', async () => {
    const st = new AttachmentState(join(root, 'a', 'b'));
    assert.equal((await st.load()).size, 0);
    await st.save(new Map([['02:00:00:00:00:01', { netns: '/run/netns/x', ifname: 'eth0', belongs_to_uuid: 'u1' }]]));
    assert.deepEqual(await readdir(join(root, 'a', 'b')), [STATE_FILE]);
  });

  it('round-trips records and leaves no temporary file behind', async () => {
    const dir = join(root, 'rt');
    const st = new AttachmentState(dir);
    const recs = new Map([
      ['02:00:00:00:00:02', { netns: '/proc/123/ns/net', ifname: 'net1' }],
      ['02:00:00:00:00:01', { netns: '/run/netns/x', ifname: 'eth0', belongs_to_uuid: 'u1' }],
    ]);
    await Promise.all([st.save(new Map()), st.save(recs)]);
    assert.deepEqual(await new AttachmentState(dir).load(), recs);
    assert.deepEqual(await readdir(dir), [STATE_FILE]);
    // Sorted by MAC: the file does not churn when nothing changed.
    const text = await readFile(join(dir, STATE_FILE), 'utf8');
    assert.ok(text.indexOf('02:00:00:00:00:01') < text.indexOf('02:00:00:00:00:02'));
  });

  it('a corrupt file is a clear error; malformed records are skipped', async () => {
    const dir = join(root, 'bad');
    const st = new AttachmentState(dir);
    await st.save(new Map());
    await writeFile(join(dir, STATE_FILE), '{"nics": ');
    await assert.rejects(st.load(), /attachments\.json: not JSON/);
    await writeFile(join(dir, STATE_FILE), JSON.stringify({ nics: { a: { netns: 1 }, b: { netns: '/run/netns/n', ifname: 'eth0' } } }));
    assert.deepEqual([...(await st.load()).keys()], ['b']);
  });

  it('defaults under /var/lib/rhumb per node', () => {
    assert.equal(defaultStateDir('n1'), '/var/lib/rhumb/agent-n1');
  });

  it('is readable by its owner alone: directory 0700, file 0600, whatever the umask', async () => {
    const dir = join(root, 'modes', 'agent-n1');
    const old = process.umask(0o000);
    try {
      await new AttachmentState(dir).save(new Map([['02:00:00:00:00:01', { netns: '/run/netns/x', ifname: 'eth0' }]]));
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, STATE_FILE))).mode & 0o777, 0o600);
  });

  it('an older agent\'s world-readable directory and file are narrowed at load, and on save', async () => {
    const dir = join(root, 'wide');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    await writeFile(join(dir, STATE_FILE), JSON.stringify({ version: 1, nics: {} }), { mode: 0o644 });
    await chmod(join(dir, STATE_FILE), 0o644);
    const st = new AttachmentState(dir);
    await st.load();
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, STATE_FILE))).mode & 0o777, 0o600);
    // A leftover temporary file with a wide mode does not lend it to the new file.
    await chmod(dir, 0o755);
    await writeFile(join(dir, `${STATE_FILE}.${process.pid}.tmp`), 'x', { mode: 0o666 });
    await chmod(join(dir, `${STATE_FILE}.${process.pid}.tmp`), 0o666);
    await st.save(new Map());
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, STATE_FILE))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), [STATE_FILE]);
  });

  it('records naming a namespace or interface of a refused shape are dropped at load', async () => {
    const dir = join(root, 'shapes');
    await mkdir(dir);
    await writeFile(join(dir, STATE_FILE), JSON.stringify({
      version: 1,
      nics: {
        '02:00:00:00:00:01': { netns: '/run/netns/ok', ifname: 'eth0' },
        '02:00:00:00:00:02': { netns: '/run/netns/x\nnetns exec y id', ifname: 'eth0' },
        '02:00:00:00:00:03': { netns: '/etc/passwd', ifname: 'eth0' },
        '02:00:00:00:00:04': { netns: '/proc/42/ns/net', ifname: 'a b' },
      },
    }));
    assert.deepEqual([...(await new AttachmentState(dir).load()).keys()], ['02:00:00:00:00:01']);
  });
});
