// src/edge/revocation_index.js, the revocation index's shards, against an in-memory storage
// with the Durable Object storage API's semantics (sorted listings, `start` inclusive, `limit`,
// deletes of a key or a list) and a namespace of such shards. The end-to-end tests
// (tests/e2e/index.test.mjs, apps.test.mjs) run the same class in workerd with the gate.

import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { MAX_SHARDS, NO_EXPIRY, RevocationIndex, STORAGE_BATCH, SWEEP_EVERY_MS, SWEEP_PAGE, SWEEP_PAGES, SWEEP_PAUSE_MS } from "../../src/edge/revocation_index.js";

class MemoryStorage {
  constructor() {
    this.data = new Map();
    this.alarm = null;
    this.writes = []; // keys per put or delete of many
  }
  async get(key) {
    return this.data.get(key);
  }
  async put(keyOrEntries, value) {
    if (typeof keyOrEntries === "string") return void this.data.set(keyOrEntries, value);
    const entries = Object.entries(keyOrEntries);
    assert.ok(entries.length <= STORAGE_BATCH, `a put of ${entries.length} keys (the runtime takes ${STORAGE_BATCH})`);
    this.writes.push(entries.length);
    for (const [k, v] of entries) this.data.set(k, v);
  }
  async delete(keys) {
    if (typeof keys === "string") return this.data.delete(keys);
    assert.ok(keys.length <= STORAGE_BATCH, `a delete of ${keys.length} keys`);
    this.writes.push(keys.length);
    let n = 0;
    for (const k of keys) n += this.data.delete(k) ? 1 : 0;
    return n;
  }
  async list({ prefix = "", start, limit = Infinity } = {}) {
    const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix) && (start === undefined || k >= start)).sort();
    return new Map(keys.slice(0, limit).map((k) => [k, this.data.get(k)]));
  }
  async getAlarm() {
    return this.alarm;
  }
  async setAlarm(when) {
    this.alarm = when;
  }
}

/** `shards` shards in one namespace (the gate's INDEX binding); `broken` answer 500. */
function namespace(shards, broken = []) {
  const env = {};
  const objects = new Map();
  env.INDEX = {
    idFromName: (name) => name,
    get(name) {
      if (!objects.has(name)) objects.set(name, new RevocationIndex({ storage: new MemoryStorage() }, env));
      const object = objects.get(name);
      return {
        fetch: (url, init) => (broken.includes(name) ? new Response("down", { status: 500 }) : object.fetch(new Request(url, init))),
      };
    },
  };
  const shard = (n) => {
    env.INDEX.get(`shard:${n}`);
    return objects.get(`shard:${n}`);
  };
  return { shard, count: shards };
}

/** Runs the alarm as the runtime does: while it runs, no alarm is set. */
const fire = (index, storage) => {
  storage.alarm = null;
  return index.alarm();
};
const post = (index, path, body) => index.fetch(new Request(`https://index${path}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) }));
const listed = async (index, path, body) => {
  const res = await post(index, path, body);
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
  return res.json();
};

describe("the revocation index's shards (src/edge/revocation_index.js)", () => {
  it("lists the rooms a key id was added for until they are removed, other ids apart", async () => {
    const index = new RevocationIndex({ storage: new MemoryStorage() }, {});
    assert.equal((await post(index, "/add", { rooms: ["ROOMS/room:a", "ROOMS/room:b"], ids: ["k1", "k2"] })).status, 200);
    await post(index, "/add", { rooms: ["ROOMS/room:c"], ids: ["k3"] });
    assert.deepEqual(await listed(index, "/rooms", "k1"), ["ROOMS/room:a", "ROOMS/room:b"]);
    assert.deepEqual(await listed(index, "/rooms", "k2"), ["ROOMS/room:a", "ROOMS/room:b"]);
    assert.equal((await post(index, "/remove", { rooms: ["ROOMS/room:a"], ids: ["k1"] })).status, 200);
    assert.deepEqual(await listed(index, "/rooms", "k1"), ["ROOMS/room:b"]);
    assert.deepEqual(await listed(index, "/rooms", "k3"), ["ROOMS/room:c"]);
    // A key id that is a prefix of another lists only its own rooms.
    assert.deepEqual(await listed(index, "/rooms", "k"), []);
    assert.deepEqual(await listed(index, "/entries", "k2"), [`${NO_EXPIRY} ROOMS/room:a`, `${NO_EXPIRY} ROOMS/room:b`]);
  });

  it("add (the rooms' method call) stores what /add stores, and refuses what /add refuses by throwing", async () => {
    const storage = new MemoryStorage();
    const index = new RevocationIndex({ storage }, {});
    const until = Date.now() + 60_000;
    assert.equal(await index.add(JSON.stringify({ rooms: ["ROOMS/room:a"], ids: ["k1", "k2"], until })), undefined);
    assert.deepEqual(await listed(index, "/entries", "k2"), [`${until} ROOMS/room:a`]);
    assert.ok(storage.alarm !== null, "an entry that expires schedules the sweep");
    for (const body of ["not json", "null", '{"rooms":["a"]}', '{"rooms":["a"],"ids":["k"],"until":1.5}', { rooms: ["a"], ids: ["k"] }, undefined]) {
      await assert.rejects(index.add(body), /^Error: index add: bad entries$/, JSON.stringify(body));
    }
    assert.deepEqual(await listed(index, "/rooms", "k"), [], "nothing stored by a refused add");
  });

  it("writes many entries in batches the runtime takes", async () => {
    const storage = new MemoryStorage();
    const index = new RevocationIndex({ storage }, {});
    const ids = Array.from({ length: 300 }, (_, i) => `id${i}`);
    await post(index, "/add", { rooms: ["ROOMS/r"], ids });
    assert.deepEqual(storage.writes, [128, 128, 44]);
    await post(index, "/remove", { rooms: ["ROOMS/r"], ids });
    assert.equal(storage.data.size, 0);
  });

  it("does not list an entry past its time, shows it in /entries, and schedules one sweep", async () => {
    const storage = new MemoryStorage();
    const index = new RevocationIndex({ storage }, {});
    const now = Date.now();
    await post(index, "/add", { rooms: ["ROOMS/old"], ids: ["k"], until: now - 1 });
    const alarm = storage.alarm;
    assert.ok(alarm >= now + SWEEP_EVERY_MS && alarm < now + SWEEP_EVERY_MS + 60_000, `alarm in ${alarm - now} ms`);
    await post(index, "/add", { rooms: ["ROOMS/new"], ids: ["k"], until: now + 60_000 });
    await post(index, "/add", { rooms: ["ROOMS/forever"], ids: ["k"] });
    assert.equal(storage.alarm, alarm, "the sweep already scheduled is kept");
    assert.deepEqual(await listed(index, "/rooms", "k"), ["ROOMS/forever", "ROOMS/new"]);
    assert.deepEqual(await listed(index, "/entries", "k"), ["1 ROOMS/forever", `${now + 60_000} ROOMS/new`, `${now - 1} ROOMS/old`]);
  });

  it("refuses what is not one of its requests with a 4xx, never a throw", async () => {
    const index = new RevocationIndex({ storage: new MemoryStorage() }, {});
    for (const body of ["not json", "null", "[]", '{"rooms":["a"]}', '{"rooms":[1],"ids":["k"]}', '{"rooms":["a"],"ids":["k"],"until":1.5}', '{"rooms":["a"],"ids":["k"],"until":"soon"}']) {
      const res = await post(index, "/add", body);
      assert.equal(res.status, 400, body);
      assert.equal(await res.text(), "bad entries");
    }
    assert.equal((await index.fetch(new Request("https://index/rooms"))).status, 404, "a GET");
    assert.equal((await post(index, "/elsewhere", "k")).status, 404);
    for (const body of ["k", "k 4", "k 4 1 2", "k four 1", "k 4 -1", "k 4 1.5", "k 99999999999 1"]) {
      const res = await post(index, "/find", body);
      assert.equal(res.status, 400, body);
      assert.equal(await res.text(), "bad find");
    }
    for (const body of [`k ${MAX_SHARDS + 1} 0`, "k 4 4", "k 0 0"]) {
      const res = await post(index, "/find", body);
      assert.equal(res.status, 400, body);
      assert.equal(await res.text(), "bad find: shard count");
    }
  });

  it("finds a key's live entries on every shard, each with the shard that lists it", async () => {
    const { shard } = namespace(3);
    const now = Date.now();
    await post(shard(0), "/add", { rooms: ["ROOMS/a"], ids: ["k"], until: now + 60_000 });
    await post(shard(1), "/add", { rooms: ["ROOMS/b", "APP/c"], ids: ["k"] });
    await post(shard(1), "/add", { rooms: ["ROOMS/gone"], ids: ["k"], until: now - 1 });
    await post(shard(2), "/add", { rooms: ["ROOMS/other"], ids: ["j"] });
    assert.deepEqual(await listed(shard(2), "/find", "k 3 2"), ["0 ROOMS/a", "1 APP/c", "1 ROOMS/b"]);
    assert.deepEqual(await listed(shard(0), "/find", "j 3 0"), ["2 ROOMS/other"]);
    // One shard: no one else to ask.
    assert.deepEqual(await listed(shard(0), "/find", "k 1 0"), ["0 ROOMS/a"]);
  });

  it("fails the whole listing when a shard does not answer, so that no revocation takes it for empty", async () => {
    const { shard } = namespace(3, ["shard:1"]);
    await post(shard(0), "/add", { rooms: ["ROOMS/a"], ids: ["k"] });
    const res = await post(shard(0), "/find", "k 3 0");
    assert.equal(res.status, 503);
    assert.equal(await res.text(), "index find: index /rooms on shard 1: status 500");
  });

  it("sweeps expired entries a page at a time, pauses after its pages, and goes on where it stopped", async () => {
    const storage = new MemoryStorage();
    const index = new RevocationIndex({ storage }, {});
    const now = Date.now();
    const expired = SWEEP_PAGE * SWEEP_PAGES + 500;
    for (let i = 0; i < expired; i++) storage.data.set(`k:id${String(i).padStart(6, "0")}:ROOMS/r`, now - 1000);
    storage.data.set("k:zz:ROOMS/live", now + 60_000);
    storage.data.set("k:zz:ROOMS/forever", NO_EXPIRY);
    storage.data.set("k:zz:ROOMS/not-a-number", "x");
    await fire(index, storage);
    assert.equal(storage.data.size, 500 + 3 + 1, "the first alarm's pages swept, its place kept");
    assert.equal(typeof storage.data.get("sweep_after"), "string");
    assert.ok(storage.alarm <= Date.now() + SWEEP_PAUSE_MS, "goes on a moment later");
    await fire(index, storage);
    assert.deepEqual([...storage.data.keys()].sort(), ["k:zz:ROOMS/forever", "k:zz:ROOMS/live", "k:zz:ROOMS/not-a-number"]);
    assert.ok(storage.alarm >= now + SWEEP_EVERY_MS, "an entry that expires remains: the next sweep in SWEEP_EVERY_MS");
  });

  it("stops sweeping when no entry that expires remains", async () => {
    const storage = new MemoryStorage();
    const index = new RevocationIndex({ storage }, {});
    storage.data.set("k:a:ROOMS/r", Date.now() - 1);
    storage.data.set("k:b:ROOMS/r", NO_EXPIRY);
    await fire(index, storage);
    assert.deepEqual([...storage.data.keys()], ["k:b:ROOMS/r"]);
    assert.equal(storage.alarm, null);
  });

  it("holds the Rust core's values of what the two sides share (MAX_SHARDS, the entries' lifetime)", () => {
    // The config refuses more than MAX_SHARDS shards and a shard refuses a /find naming more;
    // a shard sweeps as often as the rooms' entries live. Written twice, checked here.
    const rust = readFileSync(new URL("../../src/revocation.rs", import.meta.url), "utf8");
    const constant = (name) => {
      const m = rust.match(new RegExp(`pub const ${name}: \\w+ = ([0-9_ *]+);`));
      assert.ok(m, `src/revocation.rs defines ${name}`);
      return m[1].split("*").reduce((product, factor) => product * Number(factor.trim().replaceAll("_", "")), 1);
    };
    assert.equal(MAX_SHARDS, constant("MAX_SHARDS"));
    assert.equal(SWEEP_EVERY_MS, constant("ENTRY_TTL_MS"));
  });
});
