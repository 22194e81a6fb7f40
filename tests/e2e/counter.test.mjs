// The counter app (`app = "counter"` on /ws/counter/:room in [env.test]): a second room app
// behind the same engine. Its frames (count, add) and that the engine's rules hold for it as
// for chat: admission limits, the rate limit, the frame size limit, revocation and expiry.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { BUG_1, closeAll, newSid, openSocket, refuse, roomName, sessionRecord, signedCookie, sleep, startGate } from "./harness.mjs";

let gate;
before(async () => {
  gate = await startGate("counter");
});
after(async () => {
  await gate?.stop();
});
afterEach(closeAll);

const counter = () => `${gate.wsBase}/ws/counter/${roomName("c")}`;
const uniqueUser = () => `u-${randomBytes(3).toString("hex")}`;

/** Opens a counter socket that must be admitted; its first frame is the count. */
async function join(url, cookie) {
  const result = await openSocket(url, { cookie });
  if (result.refused) throw new Error(`${url}: expected admission, got HTTP ${result.refused.status} ${result.refused.body}`);
  const first = await result.conn.next({ what: "the first count" });
  assert.equal(first.type, "count", `first frame: ${JSON.stringify(first)}`);
  return { conn: result.conn, value: first.value };
}

const count = (conn, value) => conn.waitType("count", (f) => f.value === value, { what: `count ${value}` });

describe("the counter app", () => {
  it("two sockets see each other's adds; a newcomer gets the current count", async () => {
    const url = counter();
    const ada = await gate.newSession({ user: uniqueUser() });
    const bob = await gate.newSession({ user: uniqueUser(), name: "Bob" });
    const a = await join(url, ada.cookie);
    assert.equal(a.value, 0);
    const b = await join(url, bob.cookie);
    assert.equal(b.value, 0);
    a.conn.send({ type: "add", by: 5 });
    await count(a.conn, 5);
    await count(b.conn, 5);
    b.conn.send({ type: "add", by: -7 });
    await count(b.conn, -2);
    await count(a.conn, -2);
    const c = await join(url, ada.cookie);
    assert.equal(c.value, -2);
    assert.deepEqual(a.conn.frames, [], "no other frame (no welcome/join: that is chat)");
  });

  it("bad frames get error frames and the socket stays open; the count does not change", async () => {
    const url = counter();
    const s = await gate.newSession({ user: uniqueUser() });
    const a = await join(url, s.cookie);
    const range = '"by" must be an integer from -1000 to 1000';
    const cases = [
      [{ type: "add", by: 1001 }, range],
      [{ type: "add", by: 1.5 }, range],
      [{ type: "add" }, 'frame needs "by"'],
      [{ type: "broadcast", data: 1 }, 'unknown frame type "broadcast"'],
      [{ type: "add", by: 1, pad: "x".repeat(1024) }, "frame over 1024 bytes"],
    ];
    for (const [frame, reason] of cases) {
      a.conn.send(frame);
      assert.deepEqual(await a.conn.waitType("error"), { type: "error", reason }, `answer to ${JSON.stringify(frame).slice(0, 60)}`);
    }
    a.conn.ws.send(Buffer.from([1, 2, 3]));
    assert.deepEqual(await a.conn.waitType("error"), { type: "error", reason: "binary frames are not supported" });
    a.conn.send({ type: "add", by: 1000 });
    await count(a.conn, 1000);
    assert.ok(a.conn.isOpen);
  });

  it("the count is kept in the room's storage: it outlives every socket leaving", async () => {
    const url = counter();
    const s = await gate.newSession({ user: uniqueUser() });
    const a = await join(url, s.cookie);
    a.conn.send({ type: "add", by: 42 });
    await count(a.conn, 42);
    a.conn.ws.close(1000);
    await a.conn.waitClose(5000);
    await sleep(500);
    const again = await join(url, s.cookie);
    assert.equal(again.value, 42);
  });
});

describe("the engine's rules hold for the counter app", () => {
  it("limits: a third socket of one session, and a fourth in the room, get 429", async () => {
    const url = counter();
    const ada = await gate.newSession({ user: uniqueUser() });
    await join(url, ada.cookie);
    await join(url, ada.cookie);
    const third = await refuse(url, { cookie: ada.cookie });
    assert.deepEqual([third.status, third.body], [429, "too many connections for this session"]);
    const bob = await gate.newSession({ user: uniqueUser(), name: "Bob" });
    await join(url, bob.cookie);
    const fourth = await refuse(url, { cookie: bob.cookie });
    assert.deepEqual([fourth.status, fourth.body], [429, "room is full"]);
  });

  it("rate limit: 11 adds in 2 s close the socket with 1008; only 10 changed the count", async () => {
    const url = counter();
    const ada = await gate.newSession({ user: uniqueUser() });
    const bob = await gate.newSession({ user: uniqueUser(), name: "Bob" });
    const a = await join(url, ada.cookie);
    const b = await join(url, bob.cookie);
    for (let i = 0; i < 11; i++) a.conn.send({ type: "add", by: 1 });
    const info = await a.conn.waitClose(5000);
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 1008, reason: "rate limit exceeded" });
    await count(b.conn, 10);
    b.conn.send({ type: "add", by: 1 });
    await count(b.conn, 11); // the 11th add never counted
  });

  it("revocation by sid closes the counter socket with 4401, not the other session's", async () => {
    const url = counter();
    const victim = await gate.newSession({ user: uniqueUser() });
    const bystander = await gate.newSession({ user: uniqueUser(), name: "Bob" });
    const a = await join(url, victim.cookie);
    const b = await join(url, bystander.cookie);
    const res = await gate.revoke({ sid: victim.sid });
    assert.equal(res.status, 200, res.body);
    assert.equal(JSON.parse(res.body).closed, 1);
    const info = await a.conn.waitClose(2000);
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
    b.conn.send({ type: "add", by: 3 });
    await count(b.conn, 3);
  });

  it("expiry: the socket closes with 4401 'session expired' at cookie.expires", async () => {
    const sid = newSid();
    const expires = Date.now() + 3000;
    await gate.putSession(sid, sessionRecord({ user: uniqueUser(), expires }));
    const a = await join(counter(), signedCookie(sid));
    let info;
    try {
      info = await a.conn.waitClose(expires + 2500 - Date.now());
    } catch (e) {
      throw new Error(`${e.message}\n${BUG_1}`);
    }
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session expired" });
    assert.ok(info.at >= expires - 100, `closed ${expires - info.at} ms before cookie.expires`);
  });
});
