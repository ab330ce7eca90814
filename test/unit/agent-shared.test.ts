import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backendFactory, backendNames, registerBackend } from '../../src/agent/backend.js';
import '../../src/agent/backends.js';
import { SerialQueue } from '../../src/agent/serial.js';
import { STATE_DIR_MODE, STATE_FILE_MODE, StateFile } from '../../src/agent/state-file.js';

describe('SerialQueue', () => {
  it('runs jobs one at a time in call order; a failure reaches its caller only', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    let running = 0;
    const job = (name: string, fail = false) => async () => {
      running++;
      assert.equal(running, 1, 'two jobs at once');
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${name}`);
      running--;
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
    const results = await Promise.allSettled([q.run(job('a')), q.run(job('b', true)), q.run(job('c'))]);
    assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
      ['a', 'b failed', 'c'],
    );
  });
});

describe('StateFile', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'rhumb-state-file-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes atomically, 0600 in a 0700 directory, in call order; remove() after queued writes', async () => {
    const f = new StateFile(join(root, 'a', 'b', 's.json'));
    assert.equal(await f.read(), undefined);
    await Promise.all([f.write('one'), f.write('two')]);
    assert.equal(await f.read(), 'two');
    assert.deepEqual(await readdir(join(root, 'a', 'b')), ['s.json'], 'no temporary file left');
    assert.equal((await stat(f.path)).mode & 0o777, STATE_FILE_MODE);
    assert.equal((await stat(f.dir)).mode & 0o777, STATE_DIR_MODE);
    await Promise.all([f.write('three'), f.remove()]);
    assert.equal(await f.read(), undefined);
  });

  it('secure() narrows wider modes an older writer left; a leftover temporary file is replaced', async () => {
    const dir = join(root, 'wide');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const f = new StateFile(join(dir, 's.json'));
    await writeFile(f.path, 'old', { mode: 0o644 });
    await chmod(f.path, 0o644);
    await f.secure();
    assert.equal((await stat(dir)).mode & 0o777, STATE_DIR_MODE);
    assert.equal((await stat(f.path)).mode & 0o777, STATE_FILE_MODE);
    await writeFile(`${f.path}.${process.pid}.tmp`, 'junk', { mode: 0o666 });
    await f.write('new');
    assert.equal(await readFile(f.path, 'utf8'), 'new');
    assert.equal((await stat(f.path)).mode & 0o777, STATE_FILE_MODE);
    assert.deepEqual(await readdir(dir), ['s.json']);
  });
});

describe('data-plane backend registry', () => {
  it('lists the backends that registered themselves, in order; a name is registered once', () => {
    assert.deepEqual(backendNames(), ['kernel', 'userspace']);
    assert.equal(typeof backendFactory('kernel'), 'function');
    assert.equal(backendFactory('nope'), undefined);
    assert.equal(backendFactory('__proto__'), undefined);
    assert.throws(() => registerBackend('kernel', async () => assert.fail('not called')), /registered twice/);
  });
});
