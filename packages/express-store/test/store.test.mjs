// SessiongateStore against a fake gate: round trips, the contract's error cases, timeouts and
// retries, local refusals, option checks, and express-session on top of it.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import express from 'express';
import session from 'express-session';
import { SessiongateStore, SessiongateStoreError } from '../index.mjs';
import { startFakeGate, sessionFor, SID, SID2, TOKEN } from './fake-gate.mjs';

const require = createRequire(import.meta.url);

let gate;
before(async () => {
  gate = await startFakeGate();
});
after(() => gate.close());
beforeEach(() => gate.reset());

const storeFor = (options = {}) => new SessiongateStore({ url: gate.url, token: TOKEN, ...options });

// Callback-style calls as express-session makes them, as promises of [err, value].
function call(store, method, ...args) {
  return new Promise((resolve) => {
    const result = store[method](...args, (err, value) => resolve([err, value]));
    assert.equal(result, undefined, 'with a callback, no promise is returned');
  });
}

function assertClean(err, ...secrets) {
  for (const secret of [TOKEN, SID, SID2, ...secrets]) {
    assert.ok(!err.message.includes(secret), `message leaks a secret: ${err.message}`);
    assert.ok(!String(err.stack).includes(secret), 'stack leaks a secret');
  }
}

test('set, get, touch, destroy round-trip through the gate', async () => {
  const store = storeFor();
  const sess = sessionFor({ user: { id: 7, name: 'Ada' }, views: 3 });

  const [setErr, setValue] = await call(store, 'set', SID, sess);
  assert.equal(setErr, null);
  assert.equal(setValue, undefined);
  assert.equal(gate.count('PUT'), 1);
  const put = gate.requests[0];
  assert.equal(put.authorization, `Bearer ${TOKEN}`);
  assert.equal(put.contentType, 'application/json');
  assert.equal(put.path, `/_sessiongate/sessions/${SID}`);
  assert.equal(put.body, JSON.stringify(sess));

  const [getErr, got] = await call(store, 'get', SID);
  assert.equal(getErr, null);
  assert.deepEqual(got, sess);
  assert.equal(gate.count('GET'), 1);

  // A touch that the throttle lets through is a PUT of the session (never written by this store
  // instance → its TTL at the gate is unknown → it writes).
  const other = storeFor();
  const touched = sessionFor({ user: { id: 7, name: 'Ada' }, views: 3 }, 7200_000);
  const [touchErr] = await call(other, 'touch', SID, touched);
  assert.equal(touchErr, null);
  assert.equal(gate.count('PUT'), 2);
  assert.equal(gate.sessions.get(SID).text, JSON.stringify(touched));

  gate.closedSockets = 2;
  const [destroyErr] = await call(store, 'destroy', SID);
  assert.equal(destroyErr, null);
  assert.equal(gate.count('DELETE'), 1);
  assert.equal(gate.sessions.has(SID), false);

  const [afterErr, afterValue] = await call(store, 'get', SID);
  assert.equal(afterErr, null);
  assert.equal(afterValue, null);
});

test('without a callback every method returns a promise', async () => {
  const store = storeFor();
  const sess = sessionFor({ n: 1 });
  assert.equal(await store.set(SID, sess), undefined);
  assert.deepEqual(await store.get(SID), sess);
  assert.equal(await store.touch(SID, sess), undefined);
  assert.equal(await store.destroy(SID), undefined);
  assert.equal(await store.get(SID), null);
  await assert.rejects(store.get('short'), { code: 'BAD_SID' });
  assert.equal(gate.count(), 4, 'set, get, destroy, get; the touch right after the set was throttled');
});

test('an absent session calls back (null, null); deleting one is not an error', async () => {
  const store = storeFor();
  const [err, sess] = await call(store, 'get', SID2);
  assert.equal(err, null);
  assert.equal(sess, null);
  const [destroyErr] = await call(store, 'destroy', SID2);
  assert.equal(destroyErr, null);
  assert.deepEqual(
    gate.requests.map((r) => [r.method, r.status]),
    [
      ['GET', 404],
      ['DELETE', 200],
    ],
  );
});

test('a session the gate still holds past cookie.expires is no session', async () => {
  const store = storeFor();
  const stale = sessionFor({ user: 'ada' }, -1000);
  gate.sessions.set(SID, { text: JSON.stringify(stale), expires: Date.parse(stale.cookie.expires) });
  const [err, sess] = await call(store, 'get', SID);
  assert.equal(err, null);
  assert.equal(sess, null);
});

test('disabled endpoints (404 without x-sessiongate-session) are an error, never "no session"', async () => {
  gate.disabled = true;
  const store = storeFor();
  const [getErr, got] = await call(store, 'get', SID);
  assert.ok(getErr instanceof SessiongateStoreError);
  assert.equal(got, undefined);
  assert.equal(getErr.code, 'DISABLED');
  assert.equal(getErr.status, 404);
  assert.equal(getErr.attempts, 1);
  assert.match(getErr.message, /STORE_TOKEN/);

  const [setErr] = await call(store, 'set', SID, sessionFor());
  assert.equal(setErr.code, 'DISABLED');
  const [destroyErr] = await call(store, 'destroy', SID);
  assert.equal(destroyErr.code, 'DISABLED');
  assert.equal(gate.count(), 3, 'a 404 is not retried');
  assertClean(getErr);
  assertClean(setErr);
});

test('a wrong token is an error and is not retried', async () => {
  const store = storeFor({ token: 'wrong-token-but-long-enough', retries: 3 });
  const [err] = await call(store, 'set', SID, sessionFor());
  assert.ok(err instanceof SessiongateStoreError);
  assert.equal(err.code, 'UNAUTHORIZED');
  assert.equal(err.status, 401);
  assert.equal(err.attempts, 1);
  assert.equal(gate.count('PUT'), 1);
  assert.equal(gate.sessions.size, 0);
  assertClean(err, 'wrong-token-but-long-enough');

  const [getErr] = await call(store, 'get', SID);
  assert.equal(getErr.code, 'UNAUTHORIZED');
  assert.equal(gate.count(), 2);
});

test('other 4xx are not retried either; 405 and 413 from the gate map to their codes', async () => {
  const store = storeFor({ retries: 3 });
  gate.script.push(400, 405, 413, 403);
  const codes = [];
  for (let i = 0; i < 4; i++) {
    const [err] = await call(store, 'set', SID, sessionFor());
    codes.push([err.code, err.status, err.attempts]);
  }
  assert.deepEqual(codes, [
    ['BAD_REQUEST', 400, 1],
    ['METHOD_NOT_ALLOWED', 405, 1],
    ['TOO_LARGE', 413, 1],
    ['FORBIDDEN', 403, 1],
  ]);
  assert.equal(gate.count(), 4);
});

test('503 then success: retried, and the write lands', async () => {
  const store = storeFor({ retries: 2 });
  gate.script.push(503, 503);
  const sess = sessionFor({ user: 'ada' });
  const [err] = await call(store, 'set', SID, sess);
  assert.equal(err, null);
  assert.deepEqual(
    gate.requests.map((r) => r.status),
    [503, 503, 200],
  );
  assert.equal(gate.sessions.get(SID).text, JSON.stringify(sess));
});

test('429 and other 5xx are retried too; a 5xx that stays is an error with attempts = retries + 1', async () => {
  const store = storeFor({ retries: 3 });
  gate.script.push(429, 500, 502);
  const [err, got] = await call(store, 'get', SID);
  assert.equal(err, null);
  assert.equal(got, null);
  assert.equal(gate.count('GET'), 4);

  gate.reset();
  gate.mode = 503;
  const [failErr] = await call(store, 'get', SID);
  assert.equal(failErr.code, 'UNAVAILABLE');
  assert.equal(failErr.status, 503);
  assert.equal(failErr.attempts, 4);
  assert.match(failErr.message, /after 4 attempts/);
  assert.equal(gate.count('GET'), 4);

  gate.reset();
  gate.mode = 429;
  const [rateErr] = await call(storeFor({ retries: 1 }), 'get', SID);
  assert.equal(rateErr.code, 'RATE_LIMITED');
  assert.equal(rateErr.attempts, 2);
});

test('Retry-After is honoured (up to a cap)', async () => {
  const store = storeFor({ retries: 1 });
  gate.script.push({ status: 503, headers: { 'retry-after': '1' }, body: { error: 'kv down' } });
  const started = Date.now();
  const [err] = await call(store, 'set', SID, sessionFor());
  const elapsed = Date.now() - started;
  assert.equal(err, null);
  assert.equal(gate.count('PUT'), 2);
  assert.ok(elapsed >= 950, `waited ${elapsed} ms, Retry-After said 1 s`);
  assert.ok(elapsed < 3000, `waited ${elapsed} ms`);
});

test('a hanging gate: timeout per attempt, then an error with attempts = retries + 1', async () => {
  gate.mode = 'hang';
  const store = storeFor({ timeoutMs: 150, retries: 2 });
  const started = Date.now();
  const [err] = await call(store, 'get', SID);
  const elapsed = Date.now() - started;
  assert.ok(err instanceof SessiongateStoreError);
  assert.equal(err.code, 'TIMEOUT');
  assert.equal(err.status, undefined);
  assert.equal(err.attempts, 3);
  assert.equal(gate.count('GET'), 3);
  // 3 × 150 ms plus two backoffs (50..100 ms, 100..200 ms).
  assert.ok(elapsed >= 3 * 150 + 50 + 100 - 20, `took ${elapsed} ms`);
  assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  assertClean(err);
});

test('a timeout holds even with an injected fetch that ignores the abort signal', async () => {
  let calls = 0;
  const fetch = () => {
    calls++;
    return new Promise(() => {});
  };
  const store = storeFor({ fetch, timeoutMs: 60, retries: 1 });
  const [err] = await call(store, 'destroy', SID);
  assert.equal(err.code, 'TIMEOUT');
  assert.equal(err.attempts, 2);
  assert.equal(calls, 2);
});

test('slow but in time is fine', async () => {
  gate.latencyMs = 80;
  const store = storeFor({ timeoutMs: 1000, retries: 0 });
  const [err] = await call(store, 'set', SID, sessionFor());
  assert.equal(err, null);
  assert.equal(gate.count('PUT'), 1);
});

test('a destroy that fails reaches the callback (a logout never reports success)', async () => {
  gate.sessions.set(SID, { text: JSON.stringify(sessionFor()), expires: null });
  gate.mode = 503;
  const store = storeFor({ retries: 1 });
  const [err] = await call(store, 'destroy', SID);
  assert.ok(err instanceof SessiongateStoreError);
  assert.equal(err.code, 'UNAVAILABLE');
  assert.equal(err.attempts, 2);
  assert.equal(gate.count('DELETE'), 2);
  assert.equal(gate.sessions.has(SID), true);

  gate.mode = 'hang';
  const [hangErr] = await call(storeFor({ timeoutMs: 50, retries: 0 }), 'destroy', SID);
  assert.equal(hangErr.code, 'TIMEOUT');
  assert.equal(hangErr.attempts, 1);
});

test('network errors are retried, then reported as NETWORK', async () => {
  const closed = await startFakeGate();
  const url = closed.url;
  await closed.close();
  const store = new SessiongateStore({ url, token: TOKEN, retries: 2 });
  const [err] = await call(store, 'set', SID, sessionFor());
  assert.equal(err.code, 'NETWORK');
  assert.equal(err.attempts, 3);
  assert.match(err.message, /ECONNREFUSED/);
  assertClean(err);
});

test('a redirect is an error, not followed, not retried', async () => {
  gate.script.push({ status: 302, headers: { location: 'https://elsewhere.example/' }, body: '' });
  const [err] = await call(storeFor({ retries: 2 }), 'get', SID);
  assert.equal(err.code, 'REDIRECT');
  assert.equal(err.attempts, 1);
  assert.equal(gate.count(), 1);
});

test('answers that break the contract are errors', async () => {
  const store = storeFor({ retries: 0 });
  gate.script.push({ status: 200, body: 'not json' });
  assert.equal((await call(store, 'get', SID))[0].code, 'BAD_RESPONSE');
  gate.script.push({ status: 200, body: { stored: false } });
  assert.equal((await call(store, 'set', SID, sessionFor()))[0].code, 'BAD_RESPONSE');
  gate.script.push({ status: 200, body: { ok: true } });
  assert.equal((await call(store, 'destroy', SID))[0].code, 'BAD_RESPONSE');
  gate.script.push({ status: 200, body: [1, 2] });
  assert.equal((await call(store, 'get', SID))[0].code, 'BAD_RESPONSE');
});

test('the sid and the token never appear in messages, even when the gate echoes them', async () => {
  const store = storeFor({ retries: 0 });
  gate.script.push({ status: 400, body: { error: `bad sid ${SID} with Bearer ${TOKEN}` } });
  const [err] = await call(store, 'set', SID, sessionFor());
  assert.equal(err.code, 'BAD_REQUEST');
  assert.match(err.message, /\[redacted\]/);
  assertClean(err);

  // An injected fetch whose error names the URL.
  const fetch = async (url) => {
    throw new TypeError(`cannot reach ${url}`);
  };
  const [netErr] = await call(storeFor({ fetch, retries: 0 }), 'get', SID);
  assert.equal(netErr.code, 'NETWORK');
  assertClean(netErr);
});

test('bad sids are refused locally, before any request', async () => {
  const store = storeFor();
  const bad = ['short', 'x'.repeat(129), `${SID.slice(0, 20)}/../x`, `${SID}%`, 'é'.repeat(20), '', null, 42, undefined];
  for (const sid of bad) {
    for (const [method, args] of [
      ['get', [sid]],
      ['set', [sid, sessionFor()]],
      ['touch', [sid, sessionFor()]],
      ['destroy', [sid]],
    ]) {
      const [err] = await call(store, method, ...args);
      assert.ok(err instanceof SessiongateStoreError, `${method}(${String(sid)})`);
      assert.equal(err.code, 'BAD_SID');
      assert.equal(err.attempts, 0);
      assert.equal(err.status, undefined);
      if (typeof sid === 'string' && sid.length > 3) assert.ok(!err.message.includes(sid));
    }
  }
  assert.equal(gate.count(), 0);
  // The edges of the contract are accepted.
  for (const sid of ['a'.repeat(16), 'Z_-9'.repeat(32)]) {
    assert.equal((await call(store, 'set', sid, sessionFor()))[0], null);
  }
  assert.equal(gate.count('PUT'), 2);
});

test('sessions the gate would refuse are refused locally', async () => {
  const store = storeFor();
  for (const sess of [null, 'text', [], {}, { cookie: null }, { cookie: 'x' }]) {
    const [err] = await call(store, 'set', SID, sess);
    assert.equal(err.code, 'BAD_SESSION');
  }
  const big = sessionFor({ blob: 'x'.repeat(65536) });
  const [err] = await call(store, 'set', SID, big);
  assert.equal(err.code, 'TOO_LARGE');
  assert.equal(err.attempts, 0);
  // Just under the limit goes through.
  const fits = sessionFor({ blob: '' });
  fits.blob = 'x'.repeat(65536 - Buffer.byteLength(JSON.stringify(fits)));
  assert.equal(Buffer.byteLength(JSON.stringify(fits)), 65536);
  assert.equal((await call(store, 'set', SID, fits))[0], null);
  assert.equal(gate.count(), 1);
});

test('options are checked at construction, with clear errors', () => {
  const ok = { url: 'https://gate.example.com', token: TOKEN };
  const cases = [
    [undefined, /options \{ url, token \} are required/],
    [{ token: TOKEN }, /options\.url is required/],
    [{ url: 'https://gate.example.com' }, /options\.token is required/],
    [{ ...ok, token: '' }, /options\.token is required/],
    [{ ...ok, token: 'has space' }, /printable ASCII/],
    [{ ...ok, url: 'not a url' }, /not a valid absolute URL/],
    [{ ...ok, url: 'ftp://gate.example.com' }, /http\(s\) URL/],
    [{ ...ok, url: 'http://gate.example.com' }, /must use https/],
    [{ ...ok, url: 'https://user:pw@gate.example.com' }, /credentials/],
    [{ ...ok, url: 'https://gate.example.com/?a=1' }, /query or fragment/],
    [{ ...ok, timeoutMs: 0 }, /timeoutMs/],
    [{ ...ok, timeoutMs: Infinity }, /timeoutMs/],
    [{ ...ok, retries: -1 }, /retries/],
    [{ ...ok, retries: 1.5 }, /retries/],
    [{ ...ok, retries: 11 }, /retries/],
    [{ ...ok, touchShare: 1 }, /touchShare/],
    [{ ...ok, touchShare: -0.1 }, /touchShare/],
    [{ ...ok, touchShare: NaN }, /touchShare/],
    [{ ...ok, fetch: 'no' }, /fetch/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new SessiongateStore(options), (err) => {
      assert.ok(err instanceof TypeError);
      assert.match(err.message, message);
      assert.ok(!err.message.includes(TOKEN));
      return true;
    });
  }
  // Accepted: https, loopback http, a URL object, a path prefix with a trailing slash.
  for (const url of ['https://gate.example.com', 'http://localhost:8787', 'http://127.0.0.1:1', 'http://[::1]:8787', new URL('https://gate.example.com/')]) {
    assert.ok(new SessiongateStore({ url, token: TOKEN }));
  }
});

test('a base URL with a path keeps it; the sid is URL-encoded into the path', async () => {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push([url, init.method, init.headers.authorization, init.redirect]);
    return new Response(JSON.stringify({ deleted: true, closed: 0, rooms: 0 }), { status: 200 });
  };
  const store = new SessiongateStore({ url: 'https://gate.example.com/prefix/', token: TOKEN, fetch });
  await store.destroy(SID);
  assert.deepEqual(seen, [[`https://gate.example.com/prefix/_sessiongate/sessions/${SID}`, 'DELETE', `Bearer ${TOKEN}`, 'manual']]);
});

test('express-session over SessiongateStore: login, read, logout reach the gate', async () => {
  const store = storeFor();
  const app = express();
  app.use(session({ store, secret: 'keyboard cat', resave: false, saveUninitialized: false, cookie: { maxAge: 3600_000 } }));
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ada';
      res.send('ok');
    });
  });
  app.get('/me', (req, res) => res.json(req.session.user ?? null));
  app.post('/logout', (req, res) => {
    req.session.destroy((err) => (err ? res.status(500).send(err.code) : res.send('bye')));
  });
  app.use((err, req, res, next) => res.status(500).send(`error ${err.code}`));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${server.address().port}`;

  try {
    // express-session sends the head first and ends the body once the store called back:
    // read the body before looking at the gate.
    const login = await fetch(`${base}/login`, { method: 'POST' });
    assert.equal(login.status, 200);
    assert.equal(await login.text(), 'ok');
    const cookie = login.headers.get('set-cookie').split(';')[0];
    assert.equal(gate.count('PUT'), 1);
    const [sid] = [...gate.sessions.keys()];
    assert.match(cookie, new RegExp(`^connect\\.sid=s%3A${sid}\\.`));
    assert.equal(JSON.parse(gate.sessions.get(sid).text).user, 'ada');

    const me = await fetch(`${base}/me`, { headers: { cookie } });
    assert.equal(await me.json(), 'ada');
    assert.equal(gate.count('GET'), 1);
    assert.equal(gate.count('PUT'), 1, 'the touch within a second of the set did not write');

    // A logout the gate cannot take is reported to the handler, not as success: the session
    // loads (GET), then every DELETE attempt gets 503.
    gate.script.push('ok', 503, 503, 503);
    const failed = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } });
    assert.equal(failed.status, 500);
    assert.equal(await failed.text(), 'UNAVAILABLE');
    assert.equal(gate.sessions.has(sid), true);
    assert.deepEqual(gate.requests.slice(-4).map((r) => `${r.method} ${r.status}`), ['GET 200', 'DELETE 503', 'DELETE 503', 'DELETE 503']);

    const logout = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } });
    assert.equal(await logout.text(), 'bye');
    assert.equal(gate.sessions.has(sid), false);
    const anonymous = await fetch(`${base}/me`, { headers: { cookie } });
    assert.equal(await anonymous.json(), null);

    // The gate down on a read: express-session's next(err).
    gate.mode = 503;
    const down = await fetch(`${base}/me`, { headers: { cookie } });
    assert.equal(down.status, 500);
    assert.equal(await down.text(), 'error UNAVAILABLE');
  } finally {
    server.closeAllConnections();
    await promisify(server.close.bind(server))();
  }
});

test('SessiongateStore is an express-session Store when express-session is installed', () => {
  const store = storeFor();
  assert.ok(store instanceof session.Store);
  assert.equal(typeof store.regenerate, 'function');
  assert.equal(typeof store.load, 'function');
  assert.equal(typeof store.createSession, 'function');
  // No all/length/clear: the endpoints cannot list or count.
  assert.equal(store.all, undefined);
  assert.equal(store.length, undefined);
  assert.equal(store.clear, undefined);
  assert.equal(require('../index.cjs').SessiongateStore, SessiongateStore);
});
