// The revocation index when sockets leave (revocation::RoomKeys): a room sends nothing at a
// departure, so the entry stays listed until it expires or a revocation meets it; after the
// room was evicted, the keys of its sockets are still registered (the floor in storage). In
// a room without revalidation, so that no alarm wakes it. Also the frames of an evicted room's
// sockets after it wakes: the room lists its members again, and finds each frame's sender by
// the id its stored attachment starts with. The built Worker in Miniflare, with its own config.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { INDEX_SHARDS as SHARDS, SECRET_NEW, admit, closeAll, gateWorker, httpRequest, indexShard as shardOf, newSid, roomName, sessionRecord, signedCookie, sleep } from "./harness.mjs";

// workerd evicts an idle hibernatable Durable Object after about 10 s.
const HIBERNATE_MS = 15_000;
const ADMIN_TOKEN = "e2e-index-admin";
const CONFIG = {
  key_prefix: "sess:",
  revalidate_seconds: 0,
  expose: ["passport.user"],
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

/** A room with a socket that stays (user `stayUser`) and one that has left (`leftUser`). */
async function roomOneLeft(stayUser, leftUser) {
  const room = `ws://${base.host}/ws/rooms/${roomName()}`;
  const stays = await newSession(stayUser);
  const left = await newSession(leftUser);
  const kept = await admit(room, { cookie: stays.cookie });
  const gone = await admit(room, { cookie: left.cookie });
  gone.terminate();
  await kept.waitType("leave", (f) => f.id === gone.id);
  return { room, stays, left };
}

describe("the revocation index after sockets left", () => {
  it("lists a room a key left until a revocation meets it there, which then removes the entry", async () => {
    const { stays, left: went } = await roomOneLeft("u-stays", "u-went");

    // Nothing is sent at a departure: the entry stays until it expires (10 minutes).
    const stale = await revoke(went.sid);
    assert.deepEqual(
      { closed: stale.closed, rooms: stale.rooms, requests: stale.requests },
      { closed: 0, rooms: 1, requests: 16 + 2 },
      "the 16 shards (one asked by the gate, the rest by the key's home shard), the room, and the removal of the stale entry",
    );
    const again = await revoke(went.sid);
    assert.deepEqual({ closed: again.closed, rooms: again.rooms, requests: again.requests }, { closed: 0, rooms: 0, requests: 16 });
    // The socket that stayed is still listed and still served.
    const still = await revoke(stays.sid);
    assert.deepEqual({ closed: still.closed, rooms: still.rooms }, { closed: 1, rooms: 1 });
  });

  it("after the room hibernated, its sockets' keys are still registered and new keys are registered again", async () => {
    const { room, stays: first, left } = await roomOneLeft("u-first", "u-left");
    // Long enough for an idle room with no alarm (revalidation off, no session expiring) to
    // be evicted from memory: the next arrival runs in a new object, which knows of its
    // registrations only the floor in storage.
    await sleep(HIBERNATE_MS);
    const tab = await admit(room, { cookie: first.cookie });
    const back = await admit(room, { cookie: left.cookie });
    const one = await revoke(first.sid);
    assert.deepEqual({ closed: one.closed, rooms: one.rooms }, { closed: 2, rooms: 1 }, "both sockets of the session that stayed");
    await tab.waitClose(2000);
    const other = await revoke(left.sid);
    assert.deepEqual({ closed: other.closed, rooms: other.rooms }, { closed: 1, rooms: 1 }, "the session that came back");
    await back.waitClose(2000);
  });

  it("a revocation finds the key's rooms on every shard, not only on the key's home shard", async () => {
    const session = await newSession("u-spread");
    const home = shardOf(`sid:${session.sid}`);
    // Two rooms on two shards, neither the key's home shard: each room's entries live on the
    // room's shard, so only the home shard's asking the others can find them.
    const rooms = [];
    const taken = new Set([home]);
    while (rooms.length < 2) {
      const name = roomName();
      const shard = shardOf(`ROOMS/room:${name}`);
      if (!taken.has(shard)) {
        taken.add(shard);
        rooms.push(name);
      }
    }
    const sockets = [];
    for (const name of rooms) sockets.push(await admit(`ws://${base.host}/ws/rooms/${name}`, { cookie: session.cookie }));
    const answer = await revoke(session.sid);
    assert.deepEqual(
      { closed: answer.closed, rooms: answer.rooms, shards: answer.shards, requests: answer.requests, failed: answer.failed },
      { closed: 2, rooms: 2, shards: SHARDS, requests: SHARDS + 2, failed: 0 },
    );
    for (const socket of sockets) assert.equal((await socket.waitClose(2000)).code, 4401);
  });

  it("a revocation the index cannot answer gets a 503 that says nothing was closed, not the runtime's bare 500", async () => {
    // INDEX bound to the Room class: every index request gets a room's refusal, as from a
    // shard that is misbound or down.
    const broken = new Miniflare({
      workers: [gateWorker({
        bindings: { SESSIONGATE: CONFIG, SESSION_SECRETS: JSON.stringify([SECRET_NEW]), ADMIN_TOKEN },
        durableObjects: { INDEX: { className: "Room", useSQLite: true } },
      })],
    });
    try {
      const brokenBase = await broken.ready;
      const sid = newSid();
      await (await broken.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord({ user: "u-broken" })));
      // The handshake is still admitted (a failed registration falls back on revalidation).
      const socket = await admit(`ws://${brokenBase.host}/ws/rooms/${roomName()}`, { cookie: signedCookie(sid) });
      const res = await httpRequest("POST", new URL("/_sessiongate/revoke", brokenBase).href, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ sid }),
      });
      assert.equal(res.status, 503, res.body);
      assert.match(JSON.parse(res.body).error, /nothing was closed/);
      await socket.ping();
    } finally {
      await closeAll();
      await broken.dispose();
    }
  });
});

describe("a room's sockets after it was evicted", () => {
  it("a frame after the wake comes from its own socket, and a departure names the socket that left", async () => {
    const room = `ws://${base.host}/ws/rooms/${roomName()}`;
    const a = await admit(room, { cookie: (await newSession("u-wake-a")).cookie });
    const b = await admit(room, { cookie: (await newSession("u-wake-b")).cookie });
    await a.waitType("join", (f) => f.id === b.id);
    const exchange = async (label) => {
      a.send({ type: "send", to: b.id, data: { label, by: "a" } });
      const atB = await b.waitType("message", (f) => f.data?.label === label);
      b.send({ type: "send", to: a.id, data: { label, by: "b" } });
      const atA = await a.waitType("message", (f) => f.data?.label === label);
      return { atB: [atB.from.id, atB.from.session.passport.user], atA: [atA.from.id, atA.from.session.passport.user] };
    };
    const expected = { atB: [a.id, "u-wake-a"], atA: [b.id, "u-wake-b"] };
    assert.deepEqual(await exchange("before"), expected);
    await sleep(HIBERNATE_MS);
    assert.deepEqual(await exchange("after"), expected, "each frame from its own socket after the wake");
    b.terminate();
    const leave = await a.waitType("leave", () => true);
    assert.equal(leave.id, b.id);
  });
});
