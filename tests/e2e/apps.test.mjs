// Your own room behind the gate: the gate (the built Worker) and a real second Worker
// (examples/ts-room, bundled with esbuild: ChatRoom extends sessiongate-room's GatedRoom) in one
// workerd through Miniflare, the second reached by a Durable Object binding with script_name,
// and the gate reached back by a service binding (revalidation). Real WebSocket clients.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { Miniflare } from "miniflare";
import { mac } from "../../packages/room/test/contract-signer.mjs";
import { ROOT, SECRET_NEW, admit, gateWorker, closeAll, httpRequest, indexKeyId, indexShard, newSid, refuse, roomName, sessionRecord, signedCookie, sleep } from "./harness.mjs";

const require = createRequire(import.meta.url);
const esbuild = require("esbuild");

const ADMISSION_KEY = "e2e admission key";
const ADMIN_TOKEN = "e2e-apps-admin";
const CONFIG = {
  key_prefix: "sess:",
  expose: ["passport.user", "user.name", "user.roles"],
  revalidate_seconds: 5,
  routes: [
    { path: "/ws/rooms/:room", room: "room:{room}", require: [{ session: "passport.user", exists: true }] },
    { path: "/ws/app/:room", room: "app:{room}", target: "APP_ROOMS", require: [{ session: "passport.user", exists: true }] },
    { path: "/ws/broken/:room", room: "broken:{room}", target: "NO_SUCH_BINDING" },
  ],
};

let mf;
let base;
let kv;
let dir;
const logs = [];
const sids = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "sg-apps-"));
  await esbuild.build({
    entryPoints: [join(ROOT, "examples/ts-room/src/index.ts")],
    outfile: join(dir, "index.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*"],
    alias: {
      "sessiongate-room": join(ROOT, "packages/room/index.js"),
      "sessiongate-room/partyserver": join(ROOT, "packages/room/partyserver.js"),
    },
    logLevel: "silent",
  });
  mf = new Miniflare({
    workers: [
      gateWorker({
        durableObjects: { APP_ROOMS: { className: "ChatRoom", scriptName: "sessiongate-example-room" } },
        bindings: { SESSIONGATE: CONFIG, SESSION_SECRETS: JSON.stringify([SECRET_NEW]), ADMIN_TOKEN, ADMISSION_KEY },
      }),
      {
        name: "sessiongate-example-room",
        modules: true,
        scriptPath: join(dir, "index.js"),
        modulesRoot: dir,
        compatibilityDate: "2026-04-01",
        durableObjects: {
          ROOMS: { className: "ChatRoom", useSQLite: true },
          CURSORS: { className: "Cursors", useSQLite: true },
        },
        bindings: { ADMISSION_KEY, REVALIDATE_SECONDS: "1" },
        serviceBindings: { GATE: "sessiongate" },
      },
    ],
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) stream.on("data", (d) => logs.push(String(d)));
    },
  });
  base = await mf.ready;
  kv = await mf.getKVNamespace("SESSIONS");
});
after(async () => {
  await closeAll();
  await mf?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterEach(closeAll);

const ws = (path) => `ws://${base.host}${path}`;
async function newSession(fields = {}) {
  const sid = newSid();
  sids.push(sid);
  await kv.put(`sess:${sid}`, JSON.stringify(sessionRecord(fields)));
  return { sid, cookie: signedCookie(sid) };
}
function revoke(body) {
  return httpRequest("POST", new URL("/_sessiongate/revoke", base).href, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** What the room's index shard holds for a key there: when each entry expires (1: never). */
async function expiries(key, roomEntry) {
  const index = await mf.getDurableObjectNamespace("INDEX", "sessiongate");
  const shard = index.get(index.idFromName(`shard:${indexShard(roomEntry)}`));
  const res = await shard.fetch("https://index/entries", { method: "POST", body: indexKeyId(key) });
  assert.equal(res.status, 200);
  return (await res.json()).filter((line) => line.endsWith(` ${roomEntry}`)).map((line) => Number(line.split(" ")[0]));
}
/** A revalidation as an app's room signs it (docs/ADMISSION.md section 3). */
function revalidate(payload) {
  const body = JSON.stringify(payload);
  return httpRequest("POST", new URL("/_sessiongate/revalidate", base).href, {
    headers: { "content-type": "application/json", "x-sessiongate-signature": mac(ADMISSION_KEY, "sessiongate-revalidate-v1", body) },
    body,
  });
}
/** A ticket as the gate writes it (src/admission.rs, `Ticket`): opaque to rooms. */
const ticketOf = (fields) => Buffer.from(JSON.stringify(fields)).toString("base64url");
/** An app room's index entries live this long past their last write, plus two intervals. */
const ENTRY_TTL = 10 * 60_000;

describe("a route's target: the app's own Durable Object in another Worker", () => {
  it("admits into the app's room, which sees the verified session and every peer's", async () => {
    const room = `/ws/app/${roomName()}`;
    const ada = await newSession({ user: "u-ada", name: "Ada" });
    const bob = await newSession({ user: "u-bob", name: "Bob" });
    const a = await admit(ws(room), { cookie: ada.cookie });
    assert.equal(a.welcomeFrame.session.user.name, "Ada");
    assert.match(a.welcomeFrame.id, /^c[0-9a-f]{12}$/, "the connection id is the gate's");
    const b = await admit(ws(room), { cookie: bob.cookie });
    assert.deepEqual(b.welcomeFrame.peers.map((p) => p.session.user.name), ["Ada"]);
    const joined = await a.waitType("join");
    assert.equal(joined.session.passport.user, "u-bob");
  });

  it("refusals happen at the gate: no cookie 401, and a client-sent admission does not help", async () => {
    const r = await refuse(ws(`/ws/app/${roomName()}`), { headers: { "x-sessiongate-admission": "e30", "x-sessiongate-signature": "x" } });
    assert.equal(r.status, 401);
    assert.equal(r.body, "missing cookie");
  });

  it("a revocation reaches the app's room through the index and a signed control (4401 within 1 s)", async () => {
    const user = `u-${newSid().slice(0, 8)}`;
    const s = await newSession({ user });
    const inApp = await admit(ws(`/ws/app/${roomName()}`), { cookie: s.cookie });
    const inBuiltIn = await admit(ws(`/ws/rooms/${roomName()}`), { cookie: s.cookie });
    const bystander = await admit(ws(`/ws/app/${roomName()}`), { cookie: (await newSession()).cookie });
    const started = Date.now();
    const res = await revoke({ session: { field: "passport.user", equals: user } });
    assert.equal(res.status, 200, res.body);
    const answer = JSON.parse(res.body);
    assert.deepEqual({ closed: answer.closed, rooms: answer.rooms, shards: answer.shards, requests: answer.requests }, { closed: 2, rooms: 2, shards: 16, requests: 18 });
    for (const conn of [inApp, inBuiltIn]) {
      const info = await conn.waitClose(1000);
      assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
      assert.ok(info.at - started < 1000);
    }
    assert.equal(bystander.closeInfo, null);
  });

  it("revalidation through the gate's service binding closes a socket whose session is gone", async () => {
    const s = await newSession();
    const conn = await admit(ws(`/ws/app/${roomName()}`), { cookie: s.cookie });
    await kv.delete(`sess:${s.sid}`);
    const info = await conn.waitClose(6000); // the example revalidates every second
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
  });

  it("a target binding that does not exist: 500 and one clear log line, never an admit", async () => {
    const s = await newSession();
    const r = await refuse(ws(`/ws/broken/${roomName()}`), { cookie: s.cookie });
    assert.equal(r.status, 500);
    assert.match(r.body, /route target unavailable/);
    // wrangler passes the Worker's output on asynchronously: the line may follow the answer.
    const targetLine = () => logs.join("").split("\n").find((l) => l.includes('"sessiongate":"target"'));
    for (let waited = 0; !targetLine() && waited < 3000; waited += 50) await sleep(50);
    const line = targetLine();
    assert.ok(line, "no target log line within 3 s");
    assert.match(line, /NO_SUCH_BINDING/);
  });

  it("an app room's index entries expire, and the room's revalidation renews them (no leftovers after its sockets left)", async () => {
    const s = await newSession();
    const name = roomName();
    const entry = `APP_ROOMS/app:${name}`;
    const before = Date.now();
    await admit(ws(`/ws/app/${name}`), { cookie: s.cookie });
    const after = Date.now();
    // The example room's 101 says it revalidates every second: the entry expires, ten minutes
    // and two intervals on.
    const [admitted] = await expiries(`sid:${s.sid}`, entry);
    assert.ok(admitted >= before + ENTRY_TTL + 2_000 && admitted <= after + ENTRY_TTL + 2_000, `expires at ${admitted}, admitted between ${before} and ${after}`);
    // A revalidation that says it comes hourly renews it for two hours more (a five-minute
    // boundary always falls within an hour); a ticket from before tickets carried the socket's
    // keys (route 1), which renews the session's as they stand.
    const ticket = ticketOf({ s: s.sid, r: 1, p: [["room", name]] });
    const t0 = Date.now();
    const hourly = await revalidate({ v: 1, tickets: [ticket], every: 3600 });
    assert.equal(hourly.status, 200, hourly.body);
    assert.deepEqual(JSON.parse(hourly.body).results, [{ ok: true }]);
    const [renewed] = await expiries(`sid:${s.sid}`, entry);
    assert.ok(renewed >= t0 + ENTRY_TTL + 7_200_000 && renewed <= Date.now() + ENTRY_TTL + 7_200_000, `renewed to ${renewed}`);
    // A room that does not say how often renews nothing; a malformed interval is refused.
    assert.equal((await revalidate({ v: 1, tickets: [ticket] })).status, 200);
    assert.deepEqual(await expiries(`sid:${s.sid}`, entry), [renewed]);
    assert.equal((await revalidate({ v: 1, tickets: [ticket], every: "3600" })).status, 401);
    // A session that no longer holds is not renewed.
    await kv.delete(`sess:${s.sid}`);
    const gone = await revalidate({ v: 1, tickets: [ticket], every: 3600 });
    assert.deepEqual(JSON.parse(gone.body).results, [{ ok: false, code: 4401, reason: "session revoked" }]);
    assert.deepEqual(await expiries(`sid:${s.sid}`, entry), [renewed]);
  });

  it("a renewal lists the keys a socket was admitted with: a login as someone else on its sid does not let the old user's entry lapse", async () => {
    const user = `u-${newSid().slice(0, 8)}`;
    const keyOf = (u) => `field:passport.user=${JSON.stringify(u)}`;
    const s = await newSession({ user });
    const name = roomName();
    const entry = `APP_ROOMS/app:${name}`;
    const conn = await admit(ws(`/ws/app/${name}`), { cookie: s.cookie });
    const [admitted] = await expiries(keyOf(user), entry);
    assert.ok(admitted > Date.now() && admitted <= Date.now() + ENTRY_TTL + 2_000, `expires at ${admitted}`);
    // The same sid now holds another user (a login without regenerate); the rules still hold.
    await kv.put(`sess:${s.sid}`, JSON.stringify(sessionRecord({ user: `${user}-new` })));
    const ticket = ticketOf({ s: s.sid, r: 1, p: [["room", name]], k: [["passport.user", user]] });
    const t0 = Date.now();
    const r = await revalidate({ v: 1, tickets: [ticket], every: 3600 });
    assert.deepEqual(JSON.parse(r.body).results, [{ ok: true }]);
    const [renewed] = await expiries(keyOf(user), entry);
    assert.ok(renewed >= t0 + ENTRY_TTL + 7_200_000, `the admitted user's entry renewed to ${renewed}, not past ${t0 + ENTRY_TTL + 7_200_000}`);
    assert.deepEqual(await expiries(keyOf(`${user}-new`), entry), [], "no entry for a value no socket of the room was admitted with");
    // What the entry is for: a revocation of the admitted user still reaches the socket.
    const res = await revoke({ session: { field: "passport.user", equals: user } });
    assert.equal(JSON.parse(res.body).closed, 1, res.body);
    const info = await conn.waitClose(1000);
    assert.deepEqual({ code: info.code, reason: info.reason }, { code: 4401, reason: "session revoked" });
  });

  it("the revalidation endpoint refuses an unsigned request", async () => {
    const r = await httpRequest("POST", new URL("/_sessiongate/revalidate", base).href, {
      headers: { "content-type": "application/json", "x-sessiongate-signature": "forged" },
      body: JSON.stringify({ v: 1, tickets: [] }),
    });
    assert.equal(r.status, 401);
  });

  it("no sid reaches any log line", () => {
    const text = logs.join("");
    assert.ok(sids.length >= 6, `only ${sids.length} sessions`);
    assert.deepEqual(sids.filter((sid) => text.includes(sid)), [], "sids in the workers' output");
  });
});
