// The revocation index forgets a room a linger (30 s, revocation::LINGER_MS) after the last
// socket with a key left, and not before: the departure sets the room's alarm for that. In a
// room without revalidation, so that no other alarm does it instead. The built Worker in
// Miniflare, with its own config.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { SECRET_NEW, admit, closeAll, gateWorker, httpRequest, newSid, roomName, sessionRecord, signedCookie, sleep } from "./harness.mjs";

const LINGER_MS = 30_000;
const SLACK_MS = 5_000; // an alarm, one index request, on a loaded 2-core machine
const ADMIN_TOKEN = "e2e-linger-admin";
const CONFIG = {
  key_prefix: "sess:",
  revalidate_seconds: 0,
  routes: [{ path: "/ws/rooms/:room", room: "room:{room}", require: [{ session: "passport.user", exists: true }] }],
};

let mf;
let base;
let kv;
before(async () => {
  mf = new Miniflare({
    workers: [gateWorker({ bindings: { SESSIONGATE: CONFIG, SESSION_SECRETS: JSON.stringify([SECRET_NEW]), ADMIN_TOKEN } })],
  });
  base = await mf.ready;
  kv = await mf.getKVNamespace("SESSIONS");
});
after(async () => {
  await closeAll();
  await mf?.dispose();
});
afterEach(closeAll);

async function newSession(user) {
  const sid = newSid();
  await kv.put(`sess:${sid}`, JSON.stringify(sessionRecord({ user })));
  return { sid, cookie: signedCookie(sid) };
}
async function revoke(sid) {
  const res = await httpRequest("POST", new URL("/_sessiongate/revoke", base).href, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ sid }),
  });
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body);
}

describe("the revocation index after the last socket of a key left", () => {
  it("lists the room during the linger, and no longer once it is over", async () => {
    const room = `ws://${base.host}/ws/rooms/${roomName()}`;
    const early = await newSession("u-early");
    const late = await newSession("u-late");
    const stays = await newSession("u-stays");
    // Sessions far from expiring and no revalidation: only a departure sets the alarm sooner.
    const kept = await admit(room, { cookie: stays.cookie });
    const a = await admit(room, { cookie: early.cookie });
    const b = await admit(room, { cookie: late.cookie });
    a.terminate();
    b.terminate();
    await kept.waitType("leave", (f) => f.id === a.id);
    await kept.waitType("leave", (f) => f.id === b.id);
    const left = Date.now();

    const within = await revoke(early.sid);
    assert.deepEqual({ closed: within.closed, rooms: within.rooms }, { closed: 0, rooms: 1 }, "still listed during the linger");

    await sleep(LINGER_MS + SLACK_MS - (Date.now() - left));
    const over = await revoke(late.sid);
    assert.deepEqual({ closed: over.closed, rooms: over.rooms, requests: over.requests }, { closed: 0, rooms: 0, requests: 1 }, "forgotten after the linger");
    // The socket that stayed is still listed and still served.
    const still = await revoke(stays.sid);
    assert.deepEqual({ closed: still.closed, rooms: still.rooms }, { closed: 1, rooms: 1 });
  });
});
