/**
 * UnderlayFollower: the agent moves to the address the API records for its node once
 * that address is on one of its interfaces, whichever of the two changed first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnderlayFollower } from '../../src/agent/underlay-follow.js';

function harness(local: string[], recorded: string[]) {
  const s = { local, recorded, current: '198.18.0.2', moves: [] as string[], apiCalls: 0 };
  const f = new UnderlayFollower({
    localAddresses: async () => [...s.local],
    recorded: async () => {
      s.apiCalls++;
      return [...s.recorded];
    },
    current: () => s.current,
    move: async (to) => {
      s.moves.push(to);
      s.current = to;
    },
  });
  return { s, f };
}

test('the API changed first, then the interface: moves when the new address appears', async () => {
  const { s, f } = harness(['127.0.0.1', '198.18.0.2'], ['198.18.0.2']);
  assert.equal(await f.tick(), undefined);
  s.recorded = ['198.18.0.12'];
  // Nothing changed locally: the API is not asked again.
  assert.equal(await f.tick(), undefined);
  assert.equal(s.apiCalls, 1);
  s.local = ['127.0.0.1', '198.18.0.12'];
  assert.equal(await f.tick(), '198.18.0.12');
  assert.deepEqual(s.moves, ['198.18.0.12']);
  assert.equal(await f.tick(), undefined);
});

test('the interface changed first: asks the API on every tick until it names a local address', async () => {
  const { s, f } = harness(['198.18.0.2'], ['198.18.0.2']);
  await f.tick();
  s.local = ['198.18.0.12'];
  assert.equal(await f.tick(), undefined);
  assert.equal(await f.tick(), undefined);
  assert.equal(s.apiCalls, 3);
  s.recorded = ['198.18.0.12'];
  assert.equal(await f.tick(), '198.18.0.12');
  assert.equal(await f.tick(), undefined);
  assert.equal(s.apiCalls, 4);
});

test('both addresses present: the one the API records wins; an unrelated address change moves nothing', async () => {
  const { s, f } = harness(['198.18.0.2', '198.18.0.12'], ['198.18.0.2']);
  assert.equal(await f.tick(), undefined);
  s.local = ['198.18.0.2', '198.18.0.12', '10.0.0.1'];
  assert.equal(await f.tick(), undefined);
  s.recorded = ['198.18.0.12'];
  s.local = ['198.18.0.2', '198.18.0.12'];
  assert.equal(await f.tick(), '198.18.0.12');
  assert.deepEqual(s.moves, ['198.18.0.12']);
});

test('an API that fails is asked again on the next tick, even with no further local change', async () => {
  const { s, f } = harness(['198.18.0.2'], ['198.18.0.2']);
  await f.tick();
  s.local = ['198.18.0.12'];
  s.recorded = ['198.18.0.12'];
  const f2 = f as unknown as { deps: { recorded: () => Promise<string[]> } };
  const ok = f2.deps.recorded;
  f2.deps.recorded = async () => {
    throw new Error('controller unreachable');
  };
  await assert.rejects(f.tick(), /unreachable/);
  f2.deps.recorded = ok;
  assert.equal(await f.tick(), '198.18.0.12');
});

test('a move that fails is tried again on the next tick, even with no further local change', async () => {
  const { s, f } = harness(['198.18.0.2'], ['198.18.0.2']);
  await f.tick();
  s.local = ['198.18.0.12'];
  s.recorded = ['198.18.0.12'];
  const f2 = f as unknown as { deps: { move: (to: string) => Promise<void> } };
  const ok = f2.deps.move;
  f2.deps.move = async () => {
    throw new Error('cannot set the vxlan source');
  };
  await assert.rejects(f.tick(), /vxlan source/);
  assert.equal(s.current, '198.18.0.2');
  f2.deps.move = ok;
  assert.equal(await f.tick(), '198.18.0.12');
  assert.deepEqual(s.moves, ['198.18.0.12']);
  assert.equal(await f.tick(), undefined);
});

test('the address in use gone is reported once, before the API is asked; other addresses coming and going are not', async () => {
  const order: string[] = [];
  const s = { local: ['198.18.0.2', '10.77.0.1'], recorded: ['198.18.0.2'], current: '198.18.0.2' };
  const f = new UnderlayFollower({
    localAddresses: async () => [...s.local],
    recorded: async () => {
      order.push('ask');
      return [...s.recorded];
    },
    current: () => s.current,
    move: async (to) => {
      s.current = to;
    },
    addressGone: () => order.push('gone'),
  });
  await f.tick();
  s.local = ['198.18.0.2'];
  await f.tick();
  s.local = ['198.18.0.2', '198.18.0.12'];
  await f.tick();
  assert.deepEqual(order, ['ask', 'ask', 'ask'], 'a gateway address going or another coming drops nothing');
  s.local = ['198.18.0.12'];
  await f.tick();
  assert.deepEqual(order, ['ask', 'ask', 'ask', 'gone', 'ask']);
  // Reported once while it stays gone (the API does not name the new one yet).
  await f.tick();
  assert.deepEqual(order, ['ask', 'ask', 'ask', 'gone', 'ask', 'ask']);
  s.recorded = ['198.18.0.12'];
  assert.equal(await f.tick(), '198.18.0.12');
  assert.deepEqual(order, ['ask', 'ask', 'ask', 'gone', 'ask', 'ask', 'ask']);
});

test('the address in use gone before the first look is reported too (the agent just started)', async () => {
  let gone = 0;
  const f = new UnderlayFollower({
    localAddresses: async () => ['198.18.0.12'],
    recorded: async () => ['198.18.0.12'],
    current: () => '198.18.0.2',
    move: async () => undefined,
    addressGone: () => gone++,
  });
  await f.tick();
  assert.equal(gone, 1);
});
