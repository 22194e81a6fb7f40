// Interop with a real Express app: express + express-session with a small KV-backed Store
// (the way express-session-cloudflare-kv-style stores work) writing to the same local KV the
// gate reads. The app's cookies, unchanged, must open (and, after logout, stop opening)
// WebSockets at the gate; the gate's demo cookies must be readable by the app.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import session from "express-session";
import { BUG_1, KEY_PREFIX, SECRET_NEW, admit, closeAll, httpRequest, refuse, roomName, startGate } from "./harness.mjs";

/** An express-session Store on Workers KV (through getPlatformProxy's binding). */
class KvSessionStore extends session.Store {
  constructor(kv, prefix = KEY_PREFIX) {
    super();
    this.kv = kv;
    this.prefix = prefix;
  }

  get(sid, callback) {
    this.kv.get(this.prefix + sid).then(
      (text) => callback(null, text ? JSON.parse(text) : null),
      (err) => callback(err),
    );
  }

  set(sid, sess, callback = () => {}) {
    const maxAge = sess.cookie?.maxAge; // ms left, or null for a browser-session cookie
    const options = typeof maxAge === "number" ? { expirationTtl: Math.max(60, Math.ceil(maxAge / 1000)) } : {};
    this.kv.put(this.prefix + sid, JSON.stringify(sess), options).then(() => callback(null), callback);
  }

  touch(sid, sess, callback) {
    this.set(sid, sess, callback);
  }

  destroy(sid, callback = () => {}) {
    this.kv.delete(this.prefix + sid).then(() => callback(null), callback);
  }
}

let gate;
let app;
let server;
let appBase;

before(async () => {
  gate = await startGate("interop");
  app = express();
  app.use(
    session({
      secret: SECRET_NEW,
      name: "connect.sid",
      store: new KvSessionStore(gate.kv),
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 3_600_000, httpOnly: true, sameSite: "lax" },
    }),
  );
  app.post("/login", express.json(), (req, res) => {
    req.session.passport = { user: "u-7" };
    req.session.user = { name: "Grace", roles: ["chat"], email: "grace@example.com" };
    if (req.query.browser === "1") req.session.cookie.maxAge = null; // a browser-session cookie
    res.json({ ok: true });
  });
  app.post("/promote", (req, res) => {
    if (!req.session.user) return res.sendStatus(401);
    req.session.user.roles = [...req.session.user.roles, "admin"];
    res.json({ ok: true });
  });
  app.get("/me", (req, res) => {
    if (!req.session.passport) return res.status(401).json({ error: "not signed in" });
    res.json({ passport: req.session.passport, user: req.session.user });
  });
  app.post("/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.sendStatus(204)));
  });
  server = await new Promise((ok) => {
    const s = app.listen(0, "127.0.0.1", () => ok(s));
  });
  appBase = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  if (server) {
    server.closeAllConnections?.();
    await new Promise((ok) => server.close(ok));
  }
  await gate?.stop();
});

afterEach(closeAll);

/** POST to the app; returns the response and the `connect.sid=...` pair of its Set-Cookie, unchanged. */
async function appPost(path, { cookie, body } = {}) {
  const headers = { "content-type": "application/json" };
  if (cookie) headers.cookie = cookie;
  const res = await httpRequest("POST", appBase + path, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const setCookie = [res.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith("connect.sid="));
  return { res, setCookie, cookie: setCookie?.split(";")[0] };
}

const sidOf = (cookiePair) => decodeURIComponent(cookiePair.slice("connect.sid=".length)).slice(2).split(".")[0];
const GRACE = { passport: { user: "u-7" }, user: { name: "Grace", roles: ["chat"] } };

describe("express-session interop", () => {
  it("the app's Set-Cookie opens a socket; after req.session.destroy() it gets 401", async () => {
    const { res, setCookie, cookie } = await appPost("/login", { body: {} });
    assert.equal(res.status, 200);
    assert.ok(setCookie, "the app set connect.sid");
    assert.match(cookie, /^connect\.sid=s%3A[\w-]{32}\.[A-Za-z0-9%]+$/);

    // What the app stored is what express-session writes: JSON.stringify(req.session).
    const sid = sidOf(cookie);
    const stored = JSON.parse(await gate.getSession(sid));
    assert.equal(stored.cookie.originalMaxAge, 3_600_000);
    assert.match(stored.cookie.expires, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(stored.passport, { user: "u-7" });

    const room = `/ws/rooms/${roomName()}`;
    const conn = await admit(gate.wsBase + room, { cookie, origin: gate.origin });
    assert.deepEqual(conn.welcomeFrame.session, GRACE, "welcome shows Grace, and only the exposed fields");
    assert.ok(!conn.raw[0].includes("grace@example.com"));

    // The app still knows the session too.
    const me = await httpRequest("GET", appBase + "/me", { headers: { cookie } });
    assert.equal(me.status, 200);

    const out = await appPost("/logout", { cookie });
    assert.equal(out.res.status, 204);
    assert.equal(await gate.getSession(sid), null, "destroy() deleted the KV key");

    const r = await refuse(gate.wsBase + room, { cookie, origin: gate.origin });
    assert.equal(r.status, 401);
    assert.equal(r.body, "unknown session");
  });

  // Needs the Room's alarm (BUG-1 in tests/e2e/README.md).
  it("a socket opened before the app's logout closes at the next revalidation", async () => {
    const { cookie } = await appPost("/login", { body: {} });
    const conn = await admit(`${gate.wsBase}/ws/rooms/${roomName()}`, { cookie });
    const out = await appPost("/logout", { cookie });
    assert.equal(out.res.status, 204);
    const info = await conn.waitClose(5000 + 2500).catch((e) => {
      throw new Error(`${e.message}\n${BUG_1}`);
    });
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
    assert.ok(info.at - out.res.at <= 5000 + 2500);
  });

  it("cookies whose signature needs percent-encoding (+ and /) are read exactly as Express sets them", async () => {
    let cookie;
    for (let i = 0; i < 40 && !cookie; i++) {
      const login = await appPost("/login", { body: {} });
      if (/%2B|%2F/.test(login.cookie)) cookie = login.cookie;
      else await appPost("/logout", { cookie: login.cookie });
    }
    assert.ok(cookie, "no cookie with %2B or %2F in 40 logins");
    const conn = await admit(`${gate.wsBase}/ws/rooms/${roomName()}`, { cookie });
    assert.deepEqual(conn.welcomeFrame.session, GRACE);
    // The same cookie among others, as a browser sends it.
    const conn2 = await admit(`${gate.wsBase}/ws/rooms/${roomName()}`, { cookie: `theme=dark; ${cookie}; lang=en` });
    assert.deepEqual(conn2.welcomeFrame.session, GRACE);
  });

  it("a browser-session cookie (cookie.expires null) is admitted", async () => {
    const { cookie } = await appPost("/login?browser=1", { body: {} });
    const stored = JSON.parse(await gate.getSession(sidOf(cookie)));
    assert.equal(stored.cookie.expires, null);
    const conn = await admit(`${gate.wsBase}/ws/rooms/${roomName()}`, { cookie });
    assert.deepEqual(conn.welcomeFrame.session, GRACE);
  });

  it("a change the app saves to the session is what the next handshake sees", async () => {
    const { cookie } = await appPost("/login", { body: {} });
    const before = await refuse(`${gate.wsBase}/ws/admin/${roomName()}`, { cookie });
    assert.equal(before.status, 403);
    const promoted = await appPost("/promote", { cookie });
    assert.equal(promoted.res.status, 200);
    const conn = await admit(`${gate.wsBase}/ws/admin/${roomName()}`, { cookie });
    assert.deepEqual(conn.welcomeFrame.session.user.roles, ["chat", "admin"]);
  });

  it("the gate's demo sign-in makes a session the Express app can read", async () => {
    const login = await httpRequest("POST", `${gate.base}/demo/login`, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ada", roles: ["chat"] }),
    });
    assert.equal(login.status, 200);
    const cookie = [login.headers["set-cookie"]].flat()[0].split(";")[0];
    const me = await httpRequest("GET", appBase + "/me", { headers: { cookie } });
    assert.equal(me.status, 200, `express-session did not accept the gate's cookie/session: ${me.body}`);
    assert.deepEqual(JSON.parse(me.body).passport, { user: "u-ada" });
  });
});
