// The touch throttle, counted at the fake gate. Date is mocked (timers are real) so a hundred
// requests over minutes run in milliseconds.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { SessiongateStore } from '../index.mjs';
import { startFakeGate, sessionFor, SID, SID2, TOKEN } from './fake-gate.mjs';

const T0 = Date.parse('2030-01-01T00:00:00Z');

let gate;
before(async () => {
  gate = await startFakeGate();
});
after(() => gate.close());
beforeEach(() => gate.reset());

const storeFor = (options = {}) => new SessiongateStore({ url: gate.url, token: TOKEN, retries: 0, ...options });

// What express-session hands touch() on each request: the same data, the expiry moved to now + maxAge.
const at = (maxAgeMs, data = { user: 'ada' }) => sessionFor(data, maxAgeMs, Date.now());

test('100 touches, one every 10 s, of a 1 h session: 2 writes after the set', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor({ touchShare: 0.1 });
  await store.set(SID, at(3600_000));
  const writes = [];
  for (let i = 1; i <= 100; i++) {
    t.mock.timers.tick(10_000);
    await store.touch(SID, at(3600_000));
    if (gate.count('PUT') > writes.length + 1) writes.push(i);
  }
  // A write when the expiry moved more than 0.1 × 3600 s = 360 s past the last written one:
  // touch 37 (370 s after the set), then 74.
  assert.deepEqual(writes, [37, 74]);
  assert.equal(gate.count('PUT'), 3);
  // The gate's copy always outlived the request that touched it.
  assert.equal(gate.sessions.get(SID).expires, T0 + 740_000 + 3600_000);
});

test('rapid touches of a short session: never more than one write a second', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor({ touchShare: 0.1 });
  await store.set(SID, at(5000));
  for (let i = 1; i <= 100; i++) {
    t.mock.timers.tick(100);
    await store.touch(SID, at(5000));
  }
  // 0.1 × 5 s = 500 ms would allow a write every 600 ms; the one-a-second rule makes it every
  // 10th touch over the 10 s: 10 writes, plus the set.
  assert.equal(gate.count('PUT'), 11);
});

test('touchShare 0 writes on every touch, still at most once a second', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor({ touchShare: 0 });
  await store.set(SID, at(60_000));
  for (let i = 1; i <= 100; i++) {
    t.mock.timers.tick(250);
    await store.touch(SID, at(60_000));
  }
  assert.equal(gate.count('PUT'), 1 + 25);
});

test('a browser-session cookie (no expiry) is never written by touch', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor();
  await store.set(SID, at(null));
  // Also for a session this store instance never wrote (another process did).
  for (let i = 1; i <= 100; i++) {
    t.mock.timers.tick(60_000);
    await store.touch(SID, at(null));
    await store.touch(SID2, at(null));
  }
  assert.equal(gate.count('PUT'), 1);
});

test('a session this instance never wrote is written on its first touch, then throttled', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor();
  for (let i = 0; i < 50; i++) {
    await store.touch(SID2, at(3600_000));
    t.mock.timers.tick(1000);
  }
  assert.equal(gate.count('PUT'), 1);
  assert.equal(gate.sessions.has(SID2), true);
});

test('a destroyed session is not written back by a late touch; a set brings it back', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor({ touchShare: 0 });
  await store.set(SID, at(3600_000));
  await store.destroy(SID);
  for (let i = 0; i < 5; i++) {
    t.mock.timers.tick(2000);
    await store.touch(SID, at(3600_000));
  }
  assert.equal(gate.count('PUT'), 1);
  assert.equal(gate.sessions.has(SID), false);

  await store.set(SID, at(3600_000));
  t.mock.timers.tick(2000);
  await store.touch(SID, at(3600_000));
  assert.equal(gate.count('PUT'), 3);
  assert.equal(gate.sessions.has(SID), true);
});

test('a failed touch reaches the callback and is tried again a second later', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor({ touchShare: 0 });
  await store.set(SID, at(3600_000));
  t.mock.timers.tick(2000);
  gate.mode = 503;
  const err = await new Promise((resolve) => store.touch(SID, at(3600_000), resolve));
  assert.equal(err.code, 'UNAVAILABLE');
  assert.equal(err.attempts, 1);

  gate.mode = 'ok';
  await store.touch(SID, at(3600_000)); // within the second of the failed attempt
  assert.equal(gate.count('PUT'), 2);
  t.mock.timers.tick(1000);
  await store.touch(SID, at(3600_000));
  assert.equal(gate.count('PUT'), 3);
  assert.equal(gate.sessions.get(SID).expires, T0 + 3000 + 3600_000);
});

test('a failed set is written again by the next touch a second later', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor();
  await store.set(SID, at(3600_000, { user: 'ada', n: 1 }));
  t.mock.timers.tick(5000);
  gate.mode = 503;
  await assert.rejects(store.set(SID, at(3600_000, { user: 'ada', n: 2 })), { code: 'UNAVAILABLE' });
  gate.mode = 'ok';
  // The expiry barely moved (a 1 h session, 5 s later): only the failed write makes it go.
  t.mock.timers.tick(1000);
  await store.touch(SID, at(3600_000, { user: 'ada', n: 2 }));
  assert.deepEqual(
    gate.requests.map((r) => `${r.method} ${r.status}`),
    ['PUT 200', 'PUT 503', 'PUT 200'],
  );
  assert.equal(JSON.parse(gate.sessions.get(SID).text).n, 2);
  t.mock.timers.tick(1000);
  await store.touch(SID, at(3600_000, { user: 'ada', n: 2 }));
  assert.equal(gate.count('PUT'), 3, 'and then throttled again');
});

test('a set always writes, whatever the throttle', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const store = storeFor();
  for (let i = 0; i < 20; i++) await store.set(SID, at(3600_000, { n: i }));
  assert.equal(gate.count('PUT'), 20);
  assert.equal(JSON.parse(gate.sessions.get(SID).text).n, 19);
});
