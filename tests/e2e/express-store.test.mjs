// The sessiongate-store package (packages/express-store) in real Express 4 apps with the real
// express-session, against the gate under `wrangler dev`: mirror() over MemoryStore and over
// connect-redis on a real redis-server, and SessiongateStore as an app's only store. What an
// app does (login, rename, logout) must be what the edge sees, a logout must close open sockets
// at once (a push through DELETE, not the 5 s revalidation), the touch throttle must keep the
// gate's writes to a handful, and failures (wrong token, gate unreachable) must reach the app
// after their retries without blocking its other requests.
//
// Gate writes are counted from the Worker's log: one {"sessiongate":"store","op":"put"|"delete",
// "sid":<tag>} line per write, where tag = the first 4 bytes of SHA-256(sid) in hex
// (src/edge/util.rs sid_tag). A GET is not logged, so requests that reach the gate are counted
// by a small HTTP proxy in front of it (see gateProxy).

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import net from "node:net";
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";
import { SessiongateStore, mirror } from "../../packages/express-store/index.mjs";
import { freePort } from "../support/net.mjs";
import {
  COOKIE_NAME,
  SECRET_NEW,
  STORE_TOKEN,
  admit,
  closeAll,
  httpRequest,
  newSid,
  refuse,
  roomName,
  sessionRecord,
  sleep,
  startGate,
} from "./harness.mjs";

let gate;
const cleanups = []; // run in reverse order in after()

before(async () => {
  gate = await startGate("express-store");
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {});
  await gate?.stop();
});

afterEach(closeAll);

/* ------------------------------------------------------------------ helpers */

/** The sid's tag as the Worker logs it. */
const sidTag = (sid) => createHash("sha256").update(sid).digest("hex").slice(0, 8);

/** The sid of a `connect.sid=s%3A<sid>.<sig>` pair. */
const sidOf = (cookiePair) => decodeURIComponent(cookiePair.slice(COOKIE_NAME.length + 1)).slice(2).split(".")[0];

/** The Worker's store write lines (op "put" or "delete") for one sid. */
const storeLines = (sid, op) => gate.logLines().filter((l) => l.sessiongate === "store" && l.op === op && l.sid === sidTag(sid));

/**
 * Makes sure every log line of a request answered so far is in wrangler's output: writes a
 * marker session and waits for its own put line (the Worker's lines reach the output in order).
 */
async function flushLog() {
  const marker = newSid();
  const r = await gate.storeRequest("PUT", marker, { body: JSON.stringify(sessionRecord()) });
  assert.equal(r.status, 200, `marker PUT: ${r.body}`);
  await gate.waitLog((l) => l.sessiongate === "store" && l.op === "put" && l.sid === sidTag(marker), { what: "the marker's put line" });
}

/** A fetch that records every call (method, url, when) before passing it on. */
function countingFetch() {
  const calls = [];
  const fn = (url, init = {}) => {
    calls.push({ method: init.method ?? "GET", url: String(url), at: Date.now() });
    return fetch(url, init);
  };
  return { fetch: fn, calls };
}

/**
 * The Express app every test uses, with `store` as its session store:
 *   POST /login?name=   sets passport.user and user {name, roles: ["chat"]}, saves before answering
 *   GET  /me            the session's user (401 without one)
 *   POST /rename?name=  changes user.name, saves before answering
 *   POST /logout        req.session.destroy(cb), 204 once the store called back
 *   GET  /plain         200, touches no session (no cookie sent)
 * Errors go to an error middleware that records them and answers 500 {code, attempts}.
 */
async function startApp(store) {
  const errors = [];
  const sids = []; // req.sessionID of every login, also when its save failed
  const app = express();
  app.use(
    session({
      store,
      secret: SECRET_NEW,
      name: COOKIE_NAME,
      resave: false,
      saveUninitialized: false,
      rolling: false,
      cookie: { maxAge: 3_600_000, httpOnly: true, sameSite: "lax" },
    }),
  );
  app.post("/login", (req, res, next) => {
    const name = String(req.query.name ?? "Ada");
    sids.push(req.sessionID);
    req.session.passport = { user: `u-${name.toLowerCase()}` };
    req.session.user = { name, roles: ["chat"] };
    req.session.save((err) => (err ? next(err) : res.json({ ok: true, sid: req.sessionID })));
  });
  app.get("/me", (req, res) => {
    if (!req.session.user) return res.status(401).json({ error: "not signed in" });
    res.json({ user: req.session.user });
  });
  app.post("/rename", (req, res, next) => {
    if (!req.session.user) return res.sendStatus(401);
    req.session.user.name = String(req.query.name);
    req.session.save((err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.post("/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.sendStatus(204)));
  });
  app.get("/plain", (req, res) => res.send("ok"));
  // Four parameters: that is how Express tells an error middleware.
  app.use((err, req, res, next) => {
    errors.push(err);
    res.status(500).json({ code: err.code, attempts: err.attempts, message: err.message });
  });
  const server = await new Promise((ok) => {
    const s = app.listen(0, "127.0.0.1", () => ok(s));
  });
  cleanups.push(async () => {
    server.closeAllConnections?.();
    await new Promise((ok) => server.close(ok));
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  const call = async (method, path, cookie) => {
    const res = await httpRequest(method, base + path, { headers: cookie ? { cookie } : {} });
    const setCookie = [res.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith(`${COOKIE_NAME}=`));
    let json = null;
    try {
      json = JSON.parse(res.body);
    } catch {
      /* not JSON */
    }
    return { res, status: res.status, json, cookie: setCookie?.split(";")[0] };
  };
  return { base, errors, sids, call };
}

/**
 * A transparent HTTP proxy in front of the gate that records every request reaching it
 * (method, path). It counts what actually arrives over the wire, so it does not depend on the
 * package honouring an injected fetch, and it also sees GETs, which the Worker does not log.
 */
async function gateProxy() {
  const seen = [];
  const target = new URL(gate.base);
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, path: req.url });
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host }, agent: false },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", (e) => {
      res.writeHead(502);
      res.end(String(e.message));
    });
    req.pipe(upstream);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  cleanups.push(async () => {
    server.closeAllConnections?.();
    await new Promise((ok) => server.close(ok));
  });
  return { base: `http://127.0.0.1:${server.address().port}`, seen };
}

/* -------------------------------------------------------------------- tests */

describe("mirror(MemoryStore): a logout is pushed to the edge", () => {
  it("the app's cookie opens a socket; req.session.destroy() closes it within 1 s (4401) and the next handshake gets 401", async (t) => {
    const memory = new session.MemoryStore();
    const app = await startApp(mirror(memory, { url: gate.base, token: STORE_TOKEN }));

    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 200, login.res.body);
    assert.ok(login.cookie, "the app set connect.sid");
    const sid = sidOf(login.cookie);
    assert.equal(sid, login.json.sid);

    // Written to both, the same JSON.
    const atGate = await gate.getSession(sid);
    assert.ok(atGate, "the session is in the gate's KV");
    assert.equal(atGate, memory.sessions[sid], "the gate holds exactly what MemoryStore holds");
    assert.deepEqual(JSON.parse(atGate).passport, { user: "u-ada" });

    const room = `/ws/rooms/${roomName("xs")}`;
    const conn = await admit(gate.wsBase + room, { cookie: login.cookie });
    assert.deepEqual(conn.welcomeFrame.session, { passport: { user: "u-ada" }, user: { name: "Ada", roles: ["chat"] } });

    const logoutSent = Date.now();
    const logout = await app.call("POST", "/logout", login.cookie);
    assert.equal(logout.status, 204, logout.res.body);
    const info = await conn.waitClose(1000);
    // Negative when the close frame beat the app's answer: the gate's DELETE answers only once
    // the sockets are closed, and the app answers after that.
    const latency = info.at - logout.res.at;
    t.diagnostic(`logout-to-close latency: ${latency} ms after the logout response, ${info.at - logoutSent} ms after the request (${info.how})`);
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
    assert.ok(latency < 1000, `closed ${latency} ms after the logout response`);

    // A push: the DELETE itself closed the socket (revalidation would have logged closed: 0 here).
    const deleted = await gate.waitLog((l) => l.sessiongate === "store" && l.op === "delete" && l.sid === sidTag(sid), { what: "the delete line" });
    assert.equal(deleted.closed, 1, `the gate's DELETE closed ${deleted.closed} sockets: ${JSON.stringify(deleted)}`);
    assert.equal(memory.sessions[sid], undefined, "MemoryStore forgot the session");
    assert.equal(await gate.getSession(sid), null, "the gate's KV forgot the session");

    const again = await refuse(gate.wsBase + room, { cookie: login.cookie });
    assert.equal(again.status, 401);
  });
});

describe("SessiongateStore as the app's only store", () => {
  let app;
  let store;
  let touches = 0;
  before(async () => {
    store = new SessiongateStore({ url: gate.base, token: STORE_TOKEN });
    // Counts express-session's touch calls, so that "few writes" cannot come from no touches.
    const touch = store.touch.bind(store);
    store.touch = (sid, sess, cb) => {
      touches++;
      return touch(sid, sess, cb);
    };
    app = await startApp(store);
  });

  it("the app reads its sessions back through the gate; a saved rename is what the next handshake sees", async () => {
    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 200, login.res.body);
    const sid = sidOf(login.cookie);
    assert.ok(await gate.getSession(sid), "the session is in the gate's KV");

    const me = await app.call("GET", "/me", login.cookie);
    assert.equal(me.status, 200, me.res.body);
    assert.deepEqual(me.json.user, { name: "Ada", roles: ["chat"] });

    const first = await admit(`${gate.wsBase}/ws/rooms/${roomName("xs")}`, { cookie: login.cookie });
    assert.equal(first.welcomeFrame.session.user.name, "Ada");

    const rename = await app.call("POST", "/rename?name=Grace", login.cookie);
    assert.equal(rename.status, 200, rename.res.body);
    const second = await admit(`${gate.wsBase}/ws/rooms/${roomName("xs")}`, { cookie: login.cookie });
    assert.equal(second.welcomeFrame.session.user.name, "Grace");
    assert.equal((await app.call("GET", "/me", login.cookie)).json.user.name, "Grace", "the app reads the rename back");
    assert.equal(JSON.parse(await gate.getSession(sid)).user.name, "Grace");
  });

  it("100 requests in a row to /me (a touch each) cause at most 5 gate writes", async (t) => {
    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 200, login.res.body);
    const sid = sidOf(login.cookie);
    await flushLog();
    const putsBefore = storeLines(sid, "put").length;
    assert.equal(putsBefore, 1, "the login wrote once");
    const touchesBefore = touches;

    for (let i = 0; i < 100; i++) {
      const me = await app.call("GET", "/me", login.cookie);
      assert.equal(me.status, 200, `request ${i}: ${me.res.body}`);
      assert.equal(me.cookie, undefined, "rolling: false sets no cookie");
    }
    await flushLog();
    const writes = storeLines(sid, "put").length - putsBefore;
    const touched = touches - touchesBefore;
    t.diagnostic(`gate writes for 100 /me requests: ${writes} (express-session touched ${touched} times)`);
    assert.equal(touched, 100, "express-session touched on every request");
    assert.ok(writes <= 5, `${writes} gate writes for 100 requests`);
  });
});

describe("failures reach the app", () => {
  it("a wrong token: the login gets 500 UNAUTHORIZED after one attempt, and nothing is written", async () => {
    const app = await startApp(new SessiongateStore({ url: gate.base, token: "not-the-store-token" }));
    await flushLog();
    const refusedBefore = gate.logLines().filter((l) => l.sessiongate === "store" && l.error === "bad or missing token").length;

    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 500, login.res.body);
    assert.equal(app.errors.length, 1);
    const [err] = app.errors;
    assert.equal(err.code, "UNAUTHORIZED");
    assert.equal(err.status, 401);
    assert.equal(err.attempts, 1, "a 401 is not retried");
    assert.ok(!err.message.includes("not-the-store-token"), "the token is not in the message");

    const [sid] = app.sids;
    await flushLog();
    const refused = gate.logLines().filter((l) => l.sessiongate === "store" && l.error === "bad or missing token").length - refusedBefore;
    assert.equal(refused, 1, "the gate refused exactly one request");
    assert.equal(await gate.getSession(sid), null, "nothing in KV");
    assert.equal(storeLines(sid, "put").length, 0, "no put line for the session");
  });

  it("gate unreachable: set fails after its retries, and /plain answers meanwhile; so does destroy", async (t) => {
    const port = await freePort(); // nothing listens there
    const counter = countingFetch();
    const retries = 5; // backoff 50..100 + 100..200 + 200..400 + 400..800 + 800..1600 ms: 1.55..3.1 s in all
    const store = new SessiongateStore({ url: `http://127.0.0.1:${port}`, token: STORE_TOKEN, retries, fetch: counter.fetch });
    const app = await startApp(store);

    const started = Date.now();
    let loginAt = null;
    const loginPromise = app.call("POST", "/login?name=Ada").then((r) => {
      loginAt = Date.now();
      return r;
    });
    await sleep(100);
    const plain = await app.call("GET", "/plain");
    const plainAt = Date.now();
    const attemptsWhenPlainAnswered = counter.calls.length;
    assert.equal(plain.status, 200);
    assert.equal(loginAt, null, "the login was still retrying when /plain answered");

    const login = await loginPromise;
    assert.equal(login.status, 500, login.res.body);
    assert.deepEqual(login.json && { code: login.json.code, attempts: login.json.attempts }, { code: "NETWORK", attempts: retries + 1 });
    assert.equal(app.errors[0].attempts, retries + 1);
    assert.equal(counter.calls.length, retries + 1, "one request per attempt");
    assert.ok(counter.calls.every((c) => c.method === "PUT"));
    assert.ok(attemptsWhenPlainAnswered >= 1 && attemptsWhenPlainAnswered < retries + 1, `${attemptsWhenPlainAnswered} attempts made when /plain answered`);
    assert.ok(loginAt - started >= 1500, `the failing save took ${loginAt - started} ms (its backoff alone is at least 1550 ms)`);
    t.diagnostic(`/plain answered after ${plainAt - started} ms, the failing login after ${loginAt - started} ms`);

    // This store's destroy (the app cannot reach it here: loading the session fails first).
    const destroyStarted = Date.now();
    const destroyError = await store.destroy(app.sids[0]).then(() => null, (e) => e);
    assert.ok(destroyError, "destroy did not fail");
    assert.deepEqual({ code: destroyError.code, attempts: destroyError.attempts }, { code: "NETWORK", attempts: retries + 1 });
    const deletes = counter.calls.slice(retries + 1);
    assert.equal(deletes.length, retries + 1, "one request per attempt");
    assert.ok(deletes.every((c) => c.method === "DELETE"));
    assert.ok(Date.now() - destroyStarted >= 1500, "destroy went through its backoff");
  });

  it("gate unreachable behind mirror(MemoryStore): the logout's destroy fails after its retries (500), /plain answers meanwhile", async () => {
    const port = await freePort();
    const counter = countingFetch();
    const retries = 5;
    const memory = new session.MemoryStore();
    const app = await startApp(mirror(memory, { url: `http://127.0.0.1:${port}`, token: STORE_TOKEN, retries, fetch: counter.fetch }));

    // The login's set reaches MemoryStore, then fails at the gate: 500, but the cookie is set.
    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 500, login.res.body);
    assert.deepEqual({ code: login.json.code, attempts: login.json.attempts }, { code: "NETWORK", attempts: retries + 1 });
    assert.ok(login.cookie, "express-session set the cookie of the modified session");
    const sid = sidOf(login.cookie);
    assert.ok(memory.sessions[sid], "the wrapped store has the session");
    assert.equal(counter.calls.length, retries + 1);

    const before = counter.calls.length;
    const started = Date.now();
    let logoutAt = null;
    const logoutPromise = app.call("POST", "/logout", login.cookie).then((r) => {
      logoutAt = Date.now();
      return r;
    });
    await sleep(100);
    const plain = await app.call("GET", "/plain");
    assert.equal(plain.status, 200);
    assert.equal(logoutAt, null, "the logout was still retrying when /plain answered");

    const logout = await logoutPromise;
    assert.equal(logout.status, 500, "a logout that did not reach the gate is not reported as done");
    assert.deepEqual({ code: logout.json.code, attempts: logout.json.attempts }, { code: "NETWORK", attempts: retries + 1 });
    const deletes = counter.calls.slice(before);
    assert.equal(deletes.length, retries + 1, "one request per attempt");
    assert.ok(deletes.every((c) => c.method === "DELETE"));
    assert.ok(logoutAt - started >= 1500, `the failing destroy took ${logoutAt - started} ms (its backoff alone is at least 1550 ms)`);
    assert.equal(memory.sessions[sid], undefined, "the wrapped store destroyed it anyway");
  });
});

/* ------------------------------------------------- mirror over connect-redis */

/** Starts `redis-server` on a free port; resolves once it answers PING. */
async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const spawnError = new Promise((_, fail) =>
    child.once("error", (e) =>
      fail(new Error(e.code === "ENOENT" ? "redis-server is not installed: run `bash scripts/setup.sh --redis`" : `redis-server: ${e.message}`)),
    ),
  );
  spawnError.catch(() => {});
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(3000)]);
      kill();
    }
    process.off("exit", kill);
  };
  const ping = () =>
    new Promise((ok) => {
      const socket = net.connect(port, "127.0.0.1");
      let answer = "";
      socket.setTimeout(500, () => socket.destroy());
      socket.on("connect", () => socket.write("PING\r\n"));
      socket.on("data", (c) => {
        answer += c;
        if (answer.includes("\r\n")) socket.end();
      });
      socket.on("close", () => ok(answer.startsWith("+PONG")));
      socket.on("error", () => {});
    });
  const deadline = Date.now() + 10_000;
  try {
    for (;;) {
      if (await Promise.race([ping(), spawnError])) break;
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s:\n${output}`);
      await sleep(100);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, stop };
}

describe("mirror(connect-redis) on a real redis-server", () => {
  let redis;
  let client;
  let proxy;
  let app;
  before(async () => {
    const server = await startRedis();
    cleanups.push(server.stop);
    client = createClient({ url: `redis://127.0.0.1:${server.port}`, socket: { reconnectStrategy: false } });
    client.on("error", () => {}); // a failure shows in the commands that fail
    await client.connect();
    cleanups.push(async () => client.destroy());
    redis = new RedisStore({ client }); // connect-redis's default prefix "sess:"
    proxy = await gateProxy();
    app = await startApp(mirror(redis, { url: proxy.base, token: STORE_TOKEN }));
  });

  it("reads never reach the gate; writes reach redis and the gate with equal JSON; destroy removes both", async () => {
    // Sanity: the proxy passes requests through and counts them.
    // Local KV is a SQLite file that the harness's platform proxy (gate.kv) opens beside
    // wrangler dev's workerd; a read may meet "database is locked" (SQLITE_BUSY), which the gate
    // rightly answers 503. This probe is about the proxy, so it asks again then (seen once in CI).
    const probe = newSid();
    let r;
    for (let attempt = 1; attempt <= 3; attempt++) {
      r = await httpRequest("GET", `${proxy.base}/_sessiongate/sessions/${probe}`, { headers: { authorization: `Bearer ${STORE_TOKEN}` } });
      if (r.status !== 503) break;
      await sleep(200);
    }
    assert.equal(r.status, 404);
    assert.equal(r.headers["x-sessiongate-session"], "absent");
    const probes = proxy.seen.splice(0);
    assert.ok(probes.length >= 1 && probes.every((p) => p.method === "GET" && p.path === `/_sessiongate/sessions/${probe}`), JSON.stringify(probes));

    const login = await app.call("POST", "/login?name=Ada");
    assert.equal(login.status, 200, login.res.body);
    const sid = sidOf(login.cookie);
    const inRedis = await client.get(`${redis.prefix}${sid}`);
    const atGate = await gate.getSession(sid);
    assert.ok(inRedis, `redis has ${redis.prefix}${sid}`);
    assert.ok(atGate, "the gate's KV has sess:<sid>");
    assert.equal(atGate, inRedis, "the same JSON in both");
    assert.ok((await client.ttl(`${redis.prefix}${sid}`)) > 3500, "connect-redis set the TTL from cookie.expires");

    for (let i = 0; i < 20; i++) {
      const me = await app.call("GET", "/me", login.cookie);
      assert.equal(me.status, 200, me.res.body);
      assert.equal(me.json.user.name, "Ada");
    }
    const rename = await app.call("POST", "/rename?name=Grace", login.cookie);
    assert.equal(rename.status, 200, rename.res.body);
    assert.equal(await gate.getSession(sid), await client.get(`${redis.prefix}${sid}`), "the rename reached both, equal");
    assert.equal(JSON.parse(await gate.getSession(sid)).user.name, "Grace");

    const conn = await admit(`${gate.wsBase}/ws/rooms/${roomName("xs")}`, { cookie: login.cookie });
    assert.equal(conn.welcomeFrame.session.user.name, "Grace");

    const logout = await app.call("POST", "/logout", login.cookie);
    assert.equal(logout.status, 204, logout.res.body);
    assert.equal(await client.exists(`${redis.prefix}${sid}`), 0, "gone from redis");
    assert.equal(await gate.getSession(sid), null, "gone from the gate's KV");
    const info = await conn.waitClose(1000);
    assert.equal(info.code, 4401);

    // Everything that reached the gate for this session: the login's PUT, the rename's PUT, the
    // logout's DELETE; no GET (21 reads were all redis's), and the 20 touches throttled away.
    const path = `/_sessiongate/sessions/${sid}`;
    const methods = proxy.seen.filter((s) => s.path === path).map((s) => s.method);
    assert.deepEqual(methods, ["PUT", "PUT", "DELETE"]);
    assert.equal(proxy.seen.filter((s) => s.method === "GET").length, 0, "no GET reached the gate");
  });
});
