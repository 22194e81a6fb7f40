// The session store endpoints (/_sessiongate/sessions/:sid) an Express app writes through:
// token checks, what is stored and for how long, every refusal, and a DELETE that closes the
// session's open sockets at once (a push, not revalidation).

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { KEY_PREFIX, admit, closeAll, newSid, refuse, roomName, sessionRecord, signedCookie, startGate } from "./harness.mjs";

let gate;
before(async () => {
  gate = await startGate("store");
});
after(async () => {
  await gate?.stop();
});
afterEach(closeAll);

const ws = (path) => gate.wsBase + path;
const json = (r) => JSON.parse(r.body);

describe("tokens", () => {
  it("a wrong or missing token gets 401 and nothing is written", async () => {
    const sid = newSid();
    const body = JSON.stringify(sessionRecord());
    for (const token of ["wrong", "", null, "e2e-store-token-and-more"]) {
      for (const method of ["PUT", "GET", "DELETE"]) {
        const r = await gate.storeRequest(method, sid, { body: method === "PUT" ? body : undefined, token });
        assert.equal(r.status, 401, `${method} with token ${JSON.stringify(token)}`);
        assert.equal(r.headers["www-authenticate"], "Bearer");
      }
    }
    assert.equal(await gate.getSession(sid), null);
    // The admin token is not the store token.
    const admin = await gate.storeRequest("PUT", sid, { body, token: "e2e-admin-token" });
    assert.equal(admin.status, 401);
  });
});

describe("PUT, GET", () => {
  it("stores exactly the body at key_prefix + sid; the gate admits it; GET reads it back", async () => {
    const sid = newSid();
    const body = JSON.stringify(sessionRecord({ name: "Zoë" }));
    const put = await gate.storeRequest("PUT", sid, { body });
    assert.equal(put.status, 200, put.body);
    const answer = json(put);
    assert.equal(answer.stored, true);
    // cookie.expires is an hour away: the TTL runs to it (a second of slack for the clock).
    assert.ok(answer.ttl_seconds >= 3598 && answer.ttl_seconds <= 3601, `ttl ${answer.ttl_seconds}`);
    assert.equal(await gate.kv.get(KEY_PREFIX + sid), body);
    // KV itself expires the key then.
    const [listed] = (await gate.kv.list({ prefix: KEY_PREFIX + sid })).keys;
    const expiresIn = listed?.expiration - Date.now() / 1000;
    assert.ok(expiresIn >= 3590 && expiresIn <= 3602, `KV expiration in ${expiresIn} s`);
    const got = await gate.storeRequest("GET", sid);
    assert.equal(got.status, 200);
    assert.equal(got.body, body);
    assert.match(got.headers["content-type"], /application\/json/);
    const conn = await admit(ws(`/ws/rooms/${roomName()}`), { cookie: signedCookie(sid) });
    assert.equal(conn.welcomeFrame.session.user.name, "Zoë");
  });

  it("a browser-session cookie is stored without expiry; an expired one for KV's minimum 60 s", async () => {
    const browser = await gate.storeRequest("PUT", newSid(), { body: JSON.stringify(sessionRecord({ expires: null })) });
    assert.equal(json(browser).ttl_seconds, null);
    const past = await gate.storeRequest("PUT", newSid(), { body: JSON.stringify(sessionRecord({ expires: Date.now() - 5000 })) });
    assert.equal(json(past).ttl_seconds, 60);
  });

  it("GET of an absent session is 404 with x-sessiongate-session: absent", async () => {
    const r = await gate.storeRequest("GET", newSid());
    assert.equal(r.status, 404);
    assert.equal(r.headers["x-sessiongate-session"], "absent");
  });

  it("bad sids get 400, bodies that are not sessions 400, bodies over 64 KiB 413; nothing is written", async () => {
    const body = JSON.stringify(sessionRecord());
    for (const sid of ["short", "a".repeat(129), `${newSid().slice(0, 31)}%2B`, `${newSid()}.x`, encodeURIComponent("☃".repeat(20))]) {
      const r = await gate.storeRequest("PUT", sid, { body });
      assert.equal(r.status, 400, sid);
      assert.match(json(r).error, /session id must be 16 to 128 characters/);
    }
    const sid = newSid();
    for (const bad of ["", "not json", "[1]", '"text"', "{}", '{"cookie": 1}', '{"cookie": {"expires": "soon"}}']) {
      const r = await gate.storeRequest("PUT", sid, { body: bad });
      assert.equal(r.status, 400, bad);
    }
    const huge = JSON.stringify(sessionRecord({ extra: { blob: "x".repeat(70_000) } }));
    const r = await gate.storeRequest("PUT", sid, { body: huge });
    assert.equal(r.status, 413);
    assert.match(json(r).error, /over 65536 bytes/);
    assert.equal(await gate.getSession(sid), null);
  });

  it("other methods get 405 with Allow", async () => {
    const r = await gate.storeRequest("POST", newSid(), { body: "{}" });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, "GET, PUT, DELETE");
  });
});

describe("DELETE: a logout reaches open sockets at once", () => {
  it("deletes the session and closes its sockets in every room within 1 s with 4401; others stay", async () => {
    const s = await gate.newSession();
    const other = await gate.newSession({ user: "u-7", name: "Bob" });
    const roomA = ws(`/ws/rooms/${roomName()}`);
    const roomB = ws(`/ws/rooms/${roomName()}`);
    const mine = [await admit(roomA, { cookie: s.cookie }), await admit(roomB, { cookie: s.cookie })];
    const bystander = await admit(roomA, { cookie: other.cookie });
    const started = Date.now();
    const r = await gate.storeRequest("DELETE", s.sid);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual({ ...json(r), rooms: undefined }, { deleted: true, closed: 2, rooms: undefined });
    for (const conn of mine) {
      const info = await conn.waitClose(1000);
      assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
      assert.ok(info.at - started < 1000, `closed after ${info.at - started} ms`);
    }
    await bystander.waitType("leave");
    await bystander.ping();
    assert.equal(await gate.getSession(s.sid), null);
    assert.equal((await refuse(roomA, { cookie: s.cookie })).status, 401);
    const again = await gate.storeRequest("DELETE", s.sid);
    assert.equal(again.status, 200);
    assert.equal(json(again).closed, 0);
    // No line of the Worker's holds the sid. (wrangler's own access log prints each request's
    // URL, and this endpoint's URL holds the sid: see the README.)
    const leaking = gate.output().split("\n").filter((l) => l.includes(s.sid) && !/^\[wrangler:info\] DELETE \/_sessiongate\/sessions\//.test(l));
    assert.deepEqual(leaking.map((l) => l.slice(0, 80)), [], "the sid appears in the Worker's logs");
  });
});

describe("without STORE_TOKEN", () => {
  let bare;
  after(async () => {
    await bare?.stop();
  });
  it("the endpoints do not exist: 404 for every method, with or without a token", async () => {
    bare = await startGate("store-unset", { storeToken: null });
    const sid = newSid();
    for (const method of ["PUT", "GET", "DELETE"]) {
      for (const token of ["e2e-store-token", null]) {
        const r = await bare.storeRequest(method, sid, { body: method === "PUT" ? JSON.stringify(sessionRecord()) : undefined, token });
        assert.equal(r.status, 404, `${method}`);
        assert.equal(r.headers["x-sessiongate-session"], undefined);
      }
    }
    assert.equal(await bare.getSession(sid), null);
  });
});
