// mirror() over the real express-session MemoryStore, in a real Express app, against the fake
// gate: reads stay on the wrapped store, writes reach both, a logout reaches the gate.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { promisify } from 'node:util';
import express from 'express';
import session from 'express-session';
import { mirror, SessiongateStoreError } from '../index.mjs';
import { startFakeGate, sessionFor, SID, TOKEN } from './fake-gate.mjs';

let gate;
before(async () => {
  gate = await startFakeGate();
});
after(() => gate.close());
beforeEach(() => gate.reset());

const options = (extra = {}) => ({ url: gate.url, token: TOKEN, ...extra });

// The wrapped store's sessions, as MemoryStore keeps them (sid -> JSON text).
const held = (memory) => memory.sessions;

async function startApp(store) {
  const app = express();
  app.use(
    session({
      store,
      secret: 'keyboard cat',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 3600_000 },
    }),
  );
  // The recommended login: save explicitly, so a store failure reaches the handler.
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ada';
      req.session.save((saveErr) => (saveErr ? next(saveErr) : res.send('ok')));
    });
  });
  // The common one: express-session saves after the response head went out, so a failed save
  // can no longer change the status.
  app.post('/login-lazy', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ada';
      res.send('ok');
    });
  });
  app.get('/me', (req, res) => res.json(req.session.user ?? null));
  app.post('/count', (req, res) => {
    req.session.count = (req.session.count ?? 0) + 1;
    res.json(req.session.count);
  });
  app.post('/logout', (req, res) => {
    req.session.destroy((err) => (err ? res.status(500).send(err.code) : res.send('bye')));
  });
  app.use((err, req, res, next) => res.status(500).send(`error ${err.code}`));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  // The body is read before returning: express-session ends it only once the store called back.
  const request = async (method, path, cookie) => {
    const res = await fetch(base + path, { method, headers: cookie ? { cookie } : {} });
    const text = await res.text();
    const setCookie = res.headers.get('set-cookie');
    return { status: res.status, text, cookie: setCookie ? setCookie.split(';')[0] : cookie };
  };
  const close = async () => {
    server.closeAllConnections();
    await promisify(server.close.bind(server))();
  };
  return { request, close };
}

test('a real Express app: reads never hit the gate, writes reach both, logout reaches DELETE', async () => {
  const memory = new session.MemoryStore();
  const store = mirror(memory, options());
  const app = await startApp(store);
  try {
    const login = await app.request('POST', '/login');
    assert.equal(login.text, 'ok');
    const sids = Object.keys(held(memory));
    assert.equal(sids.length, 1);
    const [sid] = sids;
    assert.match(login.cookie, new RegExp(`^connect\\.sid=s%3A${sid}\\.`));
    // regenerate() destroys the session express-session had just generated (never saved: the
    // gate answers 200 all the same), then the new one is saved to both: by the explicit save,
    // and again by express-session at the end of the response (after a regenerate it always
    // saves; a set always writes).
    assert.deepEqual(
      gate.requests.map((r) => `${r.method} ${r.sid === sid ? 'sid' : 'other'} ${r.status}`),
      ['DELETE other 200', 'PUT sid 200', 'PUT sid 200'],
    );
    assert.equal(gate.sessions.get(sid).text, held(memory)[sid], 'the gate holds what the app stored');

    for (let i = 0; i < 10; i++) {
      const me = await app.request('GET', '/me', login.cookie);
      assert.equal(me.text, '"ada"');
    }
    assert.equal(gate.count('GET'), 0, 'reads stay on the wrapped store');
    assert.equal(gate.count('PUT'), 2, 'touches within a second of the set do not write');

    for (let i = 1; i <= 3; i++) {
      const count = await app.request('POST', '/count', login.cookie);
      assert.equal(count.text, String(i));
    }
    assert.equal(gate.count('PUT'), 5, 'every modified session is saved to both');
    assert.equal(JSON.parse(gate.sessions.get(sid).text).count, 3);
    assert.equal(gate.sessions.get(sid).text, held(memory)[sid]);

    gate.closedSockets = 2;
    const logout = await app.request('POST', '/logout', login.cookie);
    assert.equal(logout.text, 'bye');
    assert.equal(gate.count('DELETE'), 2);
    assert.equal(gate.requests.at(-1).method, 'DELETE');
    assert.equal(gate.requests.at(-1).sid, sid);
    assert.equal(gate.sessions.has(sid), false);
    assert.equal(held(memory)[sid], undefined);
    assert.equal(gate.count('GET'), 0);
  } finally {
    await app.close();
  }
});

test('regenerate (a login over an existing session) deletes the old session at the gate', async () => {
  const memory = new session.MemoryStore();
  const app = await startApp(mirror(memory, options()));
  try {
    const first = await app.request('POST', '/login');
    const [oldSid] = Object.keys(held(memory));
    const second = await app.request('POST', '/login', first.cookie);
    assert.notEqual(second.cookie, first.cookie);
    const [newSid] = Object.keys(held(memory));
    assert.notEqual(newSid, oldSid);
    assert.deepEqual(
      gate.requests.map((r) => `${r.method} ${r.sid === oldSid ? 'old' : r.sid === newSid ? 'new' : '?'}`),
      ['DELETE ?', 'PUT old', 'PUT old', 'DELETE old', 'PUT new', 'PUT new'],
    );
    assert.deepEqual([...gate.sessions.keys()], [newSid]);
  } finally {
    await app.close();
  }
});

test('a logout the gate cannot take fails the logout (and the app store still drops it)', async () => {
  const memory = new session.MemoryStore();
  const app = await startApp(mirror(memory, options({ retries: 1 })));
  try {
    const login = await app.request('POST', '/login');
    const [sid] = Object.keys(held(memory));
    gate.reset();
    gate.mode = 503;
    const logout = await app.request('POST', '/logout', login.cookie);
    assert.equal(logout.status, 500);
    assert.equal(logout.text, 'UNAVAILABLE');
    assert.deepEqual(
      gate.requests.map((r) => `${r.method} ${r.status}`),
      ['DELETE 503', 'DELETE 503'],
    );
    assert.equal(held(memory)[sid], undefined);
  } finally {
    await app.close();
  }
});

test('a save the gate cannot take fails the request', async () => {
  const memory = new session.MemoryStore();
  const app = await startApp(mirror(memory, options({ retries: 0 })));
  try {
    gate.script.push('ok'); // regenerate's destroy of the fresh session goes through
    gate.mode = 401; // the save does not
    const login = await app.request('POST', '/login');
    assert.equal(login.status, 500);
    assert.equal(login.text, 'error UNAUTHORIZED');
    assert.deepEqual(
      gate.requests.map((r) => `${r.method} ${r.status}`),
      ['DELETE 200', 'PUT 401', 'PUT 401'], // the explicit save, then express-session's own
    );
    // The wrapped store, written first, has it; the gate does not.
    const [sid] = Object.keys(held(memory));
    assert.equal(JSON.parse(held(memory)[sid]).user, 'ada');
    assert.equal(gate.sessions.size, 0);
  } finally {
    await app.close();
  }
});

test('a save the gate missed after the response went out is written by a touch a second later', async () => {
  const memory = new session.MemoryStore();
  const app = await startApp(mirror(memory, options({ retries: 0 })));
  try {
    gate.script.push('ok', 503);
    const login = await app.request('POST', '/login-lazy');
    assert.equal(login.status, 200, 'express-session had already sent the head');
    const [sid] = Object.keys(held(memory));
    assert.equal(gate.sessions.has(sid), false);

    const early = await app.request('GET', '/me', login.cookie);
    assert.equal(early.text, '"ada"');
    assert.equal(gate.count('PUT'), 1, 'within a second of the failed write: no write');

    await new Promise((r) => setTimeout(r, 1100));
    const later = await app.request('GET', '/me', login.cookie);
    assert.equal(later.text, '"ada"');
    assert.deepEqual(
      gate.requests.map((r) => `${r.method} ${r.status}`),
      ['DELETE 200', 'PUT 503', 'PUT 200'],
    );
    assert.equal(gate.sessions.get(sid).text, held(memory)[sid]);
  } finally {
    await app.close();
  }
});

test('the mirror is the wrapped store for everything but writes', async () => {
  const memory = new session.MemoryStore();
  const store = mirror(memory, options());
  assert.ok(store instanceof session.MemoryStore);
  assert.ok(store instanceof session.Store);
  assert.ok(store instanceof EventEmitter);
  assert.notEqual(store.set, memory.set);
  assert.notEqual(store.destroy, memory.destroy);
  assert.notEqual(store.touch, memory.touch);
  assert.equal(store.on, store.on, 'stable method identity');
  assert.equal(store.constructor, session.MemoryStore);
  assert.equal('touch' in store, true);

  // Assignments land on the wrapped store (express-session sets store.generate).
  const generate = () => {};
  store.generate = generate;
  assert.equal(memory.generate, generate);

  // Events registered through the mirror are the wrapped store's; chaining stays on the mirror.
  let events = 0;
  assert.equal(store.on('connect', () => events++), store);
  memory.emit('connect');
  assert.equal(events, 1);

  // Reads, lists and counts are the wrapped store's own.
  await promisify(store.set.bind(store))(SID, sessionFor({ user: 'ada' }));
  assert.equal(gate.count('PUT'), 1);
  const got = await promisify(store.get.bind(store))(SID);
  assert.equal(got.user, 'ada');
  assert.equal(await promisify(store.length.bind(store))(), 1);
  assert.deepEqual(Object.keys(await promisify(store.all.bind(store))()), [SID]);
  // load/createSession come from express-session's Store, running against the mirror.
  const loaded = await promisify(store.load.bind(store))(SID);
  assert.equal(loaded.user, 'ada');
  assert.ok(loaded.cookie.expires instanceof Date);
  await promisify(store.clear.bind(store))();
  assert.equal(await promisify(store.length.bind(store))(), 0);
  assert.equal(gate.count('GET'), 0);
  assert.equal(gate.count('DELETE'), 0, 'clear is the wrapped store\'s alone (documented)');
});

test('any object with get/set/destroy can be mirrored; no touch stays no touch', async () => {
  const data = new Map();
  const calls = [];
  const plain = {
    get(sid, cb) {
      calls.push('get');
      setImmediate(cb, null, data.has(sid) ? JSON.parse(data.get(sid)) : null);
    },
    set(sid, sess, cb) {
      calls.push('set');
      data.set(sid, JSON.stringify(sess));
      setImmediate(cb, null);
    },
    destroy(sid, cb) {
      calls.push('destroy');
      data.delete(sid);
      setImmediate(cb, null);
    },
  };
  const store = mirror(plain, options());
  assert.equal(store.touch, undefined);
  assert.equal('touch' in store, false);

  await promisify(store.set.bind(store))(SID, sessionFor({ n: 1 }));
  assert.equal((await promisify(store.get.bind(store))(SID)).n, 1);
  await promisify(store.destroy.bind(store))(SID);
  assert.deepEqual(calls, ['set', 'get', 'destroy']);
  assert.deepEqual(
    gate.requests.map((r) => r.method),
    ['PUT', 'DELETE'],
  );
  // Promise style too.
  await store.set(SID, sessionFor({ n: 2 }));
  assert.equal(data.has(SID), true);
  assert.equal(gate.sessions.has(SID), true);
  assert.throws(() => mirror({ get() {}, set() {} }, options()), /get, set and destroy/);
  assert.throws(() => mirror(plain, { url: gate.url }), /options\.token is required/);
});

test('promise-returning stores (connect-redis style) are mirrored too', async () => {
  const data = new Map();
  const asyncStore = Object.assign(new EventEmitter(), {
    async get(sid, cb) {
      const value = data.has(sid) ? JSON.parse(data.get(sid)) : null;
      cb?.(null, value);
      return value;
    },
    async set(sid, sess, cb) {
      data.set(sid, JSON.stringify(sess));
      cb?.(null);
    },
    async destroy(sid) {
      data.delete(sid); // resolves without calling back
    },
  });
  const store = mirror(asyncStore, options());
  await store.set(SID, sessionFor());
  await store.destroy(SID);
  assert.equal(data.size, 0);
  assert.deepEqual(
    gate.requests.map((r) => r.method),
    ['PUT', 'DELETE'],
  );
});

test('the wrapped store failing: a set does not reach the gate; a destroy still does', async () => {
  const boom = new Error('redis down');
  const memory = new session.MemoryStore();
  memory.set = (sid, sess, cb) => setImmediate(cb, boom);
  memory.destroy = (sid, cb) => setImmediate(cb, boom);
  const store = mirror(memory, options());
  const gateErrors = [];
  store.on('gateError', (err, op) => gateErrors.push([err.code, op]));

  await assert.rejects(store.set(SID, sessionFor()), boom);
  assert.equal(gate.count(), 0);

  await assert.rejects(store.destroy(SID), boom);
  assert.equal(gate.count('DELETE'), 1, 'revoked at the edge even though the app store failed');

  // Both failing: the callback gets the wrapped store's error, the gate's goes to 'gateError'.
  gate.mode = 503;
  const err = await new Promise((resolve) => store.destroy(SID, resolve));
  assert.equal(err, boom);
  assert.deepEqual(gateErrors, [['UNAVAILABLE', 'destroy']]);
});

test("a gate touch failure goes to 'gateError'; the callback gets the wrapped store's result", async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2030-01-01T00:00:00Z') });
  const memory = new session.MemoryStore();
  const store = mirror(memory, options({ retries: 0, touchShare: 0 }));
  await store.set(SID, sessionFor({ user: 'ada' }, 3600_000, Date.now()));
  t.mock.timers.tick(5000);

  const gateErrors = [];
  store.on('gateError', (err, op) => gateErrors.push([err, op]));
  gate.mode = 503;
  const touchErr = await new Promise((resolve) => store.touch(SID, sessionFor({ user: 'ada' }, 3600_000, Date.now()), resolve));
  assert.equal(touchErr, null);
  assert.equal(gateErrors.length, 1);
  assert.ok(gateErrors[0][0] instanceof SessiongateStoreError);
  assert.equal(gateErrors[0][0].code, 'UNAVAILABLE');
  assert.equal(gateErrors[0][1], 'touch');
  // The wrapped store was touched.
  const expires = JSON.parse(memory.sessions[SID]).cookie.expires;
  assert.equal(Date.parse(expires), Date.now() + 3600_000);

  // A failing wrapped touch goes to the callback and skips the gate.
  const boom = new Error('touch failed');
  memory.touch = (sid, sess, cb) => setImmediate(cb, boom);
  gate.mode = 'ok';
  t.mock.timers.tick(5000);
  const before = gate.count();
  const err = await new Promise((resolve) => store.touch(SID, sessionFor({}, 3600_000, Date.now()), resolve));
  assert.equal(err, boom);
  assert.equal(gate.count(), before);
});

test("without a 'gateError' listener a gate touch failure is a process warning, not silence", async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2031-01-01T00:00:00Z') });
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const store = mirror(new session.MemoryStore(), options({ retries: 0 }));
    await store.set(SID, sessionFor({}, 3600_000, Date.now()));
    gate.mode = 503;
    for (let i = 0; i < 3; i++) {
      t.mock.timers.tick(600_000);
      await store.touch(SID, sessionFor({}, 3600_000, Date.now()));
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(gate.count('PUT'), 4);
    const ours = warnings.filter((w) => w.name === 'SessiongateStoreWarning');
    assert.equal(ours.length, 3, 'one a minute at most, and these were 10 minutes apart');
    assert.equal(ours[0].code, 'UNAVAILABLE');
    assert.match(ours[0].message, /gateError/);
    assert.ok(!ours[0].message.includes(SID));
  } finally {
    process.off('warning', onWarning);
  }
});
