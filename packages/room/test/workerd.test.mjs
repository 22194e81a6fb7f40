// The example Worker (examples/ts-room: ChatRoom extends GatedRoom, Cursors extends
// GatedServer) in real workerd through Miniflare, with real WebSocket clients. No Rust gate:
// a "transport" Worker forwards requests to the rooms as they come (it strips nothing), and
// this test signs admissions and controls as the gate would (test/contract-signer.mjs), so
// anything a client could send is what reaches the room.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import * as gate from "./contract-signer.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const PKG = join(HERE, "..");
const ROOT = join(PKG, "../..");
const require = createRequire(join(ROOT, "package.json"));
const { Miniflare } = require("miniflare");
const esbuild = require("esbuild");
const { WebSocket } = require("ws");

const KEY = "workerd test admission key";
const TRANSPORT = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, kind, binding, room] = url.pathname.split("/");
    const ns = env[binding];
    if (!ns || !room) return new Response("no such room", { status: 404 });
    const stub = ns.get(ns.idFromName(decodeURIComponent(room)));
    if (kind === "control") return stub.fetch(new Request("https://sessiongate.internal/_sessiongate/control", request));
    return stub.fetch(request);
  },
};`;

let mf;
let base;
let dir;
const logs = [];
const open = new Set();
const revalidation = { status: 200, deny: new Map(), calls: 0 };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "sg-room-"));
  await esbuild.build({
    entryPoints: [join(HERE, "fixtures/entry.js")],
    outfile: join(dir, "index.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*"],
    alias: { "sessiongate-room": join(PKG, "index.js"), "sessiongate-room/partyserver": join(PKG, "partyserver.js") },
    logLevel: "silent",
  });
  const endpoint = gate.revalidationEndpoint(KEY, (t) => revalidation.deny.get(t) ?? { ok: true });
  mf = new Miniflare({
    workers: [
      {
        name: "transport",
        modules: true,
        script: TRANSPORT,
        compatibilityDate: "2026-04-01",
        durableObjects: {
          ROOMS: { className: "ChatRoom", scriptName: "room" },
          CURSORS: { className: "Cursors", scriptName: "room" },
          PROBE_ROOM: { className: "ProbeRoom", scriptName: "room" },
          PROBE_SERVER: { className: "ProbeServer", scriptName: "room" },
          PROBE_MEMORY: { className: "ProbeMemoryServer", scriptName: "room" },
        },
      },
      {
        name: "room",
        modules: true,
        scriptPath: join(dir, "index.js"),
        modulesRoot: dir,
        compatibilityDate: "2026-04-01",
        durableObjects: {
          ROOMS: { className: "ChatRoom", useSQLite: true },
          CURSORS: { className: "Cursors", useSQLite: true },
          PROBE_ROOM: { className: "ProbeRoom", useSQLite: true },
          PROBE_SERVER: { className: "ProbeServer", useSQLite: true },
          PROBE_MEMORY: { className: "ProbeMemoryServer", useSQLite: true },
        },
        bindings: { ADMISSION_KEY: KEY, REVALIDATE_SECONDS: "1" },
        serviceBindings: {
          async GATE(request) {
            revalidation.calls++;
            const body = await request.text();
            const answer = await endpoint.fetch(request.url, { method: request.method, headers: request.headers, body });
            if (answer.status === 200 && revalidation.status !== 200) return new Response("store unavailable", { status: revalidation.status });
            return answer;
          },
        },
      },
    ],
    handleRuntimeStdio(stdout, stderr) {
      for (const s of [stdout, stderr]) s.on("data", (d) => logs.push(String(d)));
    },
  });
  try {
    base = await mf.ready;
  } catch (e) {
    console.error(logs.join("").slice(-3000));
    throw e;
  }
});

after(async () => {
  for (const ws of open) ws.terminate();
  await mf?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Opens a socket; resolves `{ ws, frames, closed }` after the first frame, or `{ status }` when refused. */
function connect(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    url.protocol = "ws:";
    const ws = new WebSocket(url, { headers });
    open.add(ws);
    ws.on("close", () => open.delete(ws));
    const frames = [];
    let waiting = null;
    // The room's close frame is what counts: workerd (as under `wrangler dev`, see
    // tests/e2e/harness.mjs) may leave the connection itself open after a close sent from a
    // fetch or alarm handler, and ws 8 has no event for the frame, only its answer: close().
    const closed = new Promise((ok) => {
      const answer = ws.close.bind(ws);
      ws.close = (code, reason) => {
        if (ws._closeFrameReceived) ok({ code: ws._closeCode, reason: String(ws._closeMessage ?? "") });
        return answer(code, reason);
      };
      ws.on("close", (code, reason) => ok({ code, reason: String(reason) }));
    });
    const next = (pred = () => true, ms = 5000) =>
      new Promise((ok, fail) => {
        const i = frames.findIndex(pred);
        if (i >= 0) return ok(frames.splice(i, 1)[0]);
        const t = setTimeout(() => fail(new Error(`no frame within ${ms} ms`)), ms);
        waiting = { pred, ok: (f) => (clearTimeout(t), ok(f)) };
      });
    ws.on("message", (data) => {
      const f = JSON.parse(String(data));
      if (waiting && waiting.pred(f)) {
        const w = waiting;
        waiting = null;
        w.ok(f);
      } else frames.push(f);
    });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    ws.on("error", (e) => reject(e));
    let announced;
    ws.on("upgrade", (res) => (announced = res.headers["x-sessiongate-revalidate"]));
    ws.on("open", async () => {
      try {
        resolve({ ws, first: await next(), next, closed, announced });
      } catch (e) {
        reject(e);
      }
    });
  });
}

const admit = (over = {}, key = KEY) => {
  const body = gate.admission(over);
  return { body, headers: gate.admissionHeaders(key, body) };
};

async function control(binding, room, body, key = KEY) {
  const res = await fetch(new URL(`/control/${binding}/${room}`, base), { method: "POST", headers: gate.controlHeaders(key, body) });
  return { status: res.status, body: await res.json() };
}

describe("GatedRoom in workerd", () => {
  it("a correctly signed admission opens a socket and onJoin sees the session", async () => {
    const a = admit({ room: "r1", session: { user: { name: "ada", roles: ["chat"] } } });
    const c = await connect("/ws/ROOMS/r1", a.headers);
    assert.deepEqual(c.first, { type: "welcome", id: a.body.id, session: a.body.session, peers: [] });
    assert.equal(c.announced, "1", "the 101 tells the gate the room revalidates every second (REVALIDATE_SECONDS)");
    c.ws.close();
  });

  it("forged, wrong-key, expired, replayed, unsigned, wrong-room and cookie-only upgrades get 401 and no socket", async () => {
    const used = admit({ room: "r2" });
    const first = await connect("/ws/ROOMS/r2", used.headers);
    const attempts = {
      forged: { ...admit({ room: "r2" }).headers, "x-sessiongate-signature": admit({ room: "r2" }).headers["x-sessiongate-signature"] },
      "wrong key": admit({ room: "r2" }, "not the key").headers,
      expired: admit({ room: "r2", iat: Date.now() - 31_000 }).headers,
      replayed: used.headers,
      unsigned: { "x-sessiongate-admission": admit({ room: "r2" }).headers["x-sessiongate-admission"] },
      "wrong room": admit({ room: "r-other" }).headers,
      "no admission": { cookie: "connect.sid=s%3Aabc.def" },
      "huge": admit({ room: "r2", session: { blob: "x".repeat(30_000) } }).headers,
    };
    for (const [what, headers] of Object.entries(attempts)) {
      const r = await connect("/ws/ROOMS/r2", headers);
      assert.equal(r.status, 401, what);
      assert.equal(r.ws, undefined, what);
    }
    const b = admit({ room: "r2" });
    const second = await connect("/ws/ROOMS/r2", b.headers);
    assert.deepEqual(second.first.peers.map((p) => p.id), [used.body.id], "nothing else was accepted");
    first.ws.close();
    second.ws.close();
  });

  it("two sockets see each other's sessions; messages carry the sender's verified session", async () => {
    const a = admit({ room: "r3", session: { user: { name: "ada" } } });
    const b = admit({ room: "r3", session: { user: { name: "bob" } } });
    const ca = await connect("/ws/ROOMS/r3", a.headers);
    const cb = await connect("/ws/ROOMS/r3", b.headers);
    assert.deepEqual(cb.first.peers, [{ id: a.body.id, session: a.body.session }]);
    assert.deepEqual(await ca.next((f) => f.type === "join"), { type: "join", id: b.body.id, session: b.body.session });
    cb.ws.send(JSON.stringify({ type: "broadcast", data: { text: "hi", from: "forged" } }));
    const m = await ca.next((f) => f.type === "message");
    assert.deepEqual(m.from, { id: b.body.id, session: b.body.session });
    cb.ws.close(1000, "bye");
    assert.deepEqual(await ca.next((f) => f.type === "leave"), { type: "leave", id: b.body.id });
    ca.ws.close();
  });

  it("a signed control revokes the sockets tagged with its key (4401) and answers {closed: N}", async () => {
    const key = gate.newKeyId();
    const a = admit({ room: "r4", revoke: [key, gate.newKeyId()] });
    const b = admit({ room: "r4" });
    const ca = await connect("/ws/ROOMS/r4", a.headers);
    const cb = await connect("/ws/ROOMS/r4", b.headers);
    const forged = await control("ROOMS", "r4", gate.control({ key }), "not the key");
    assert.equal(forged.status, 401);
    const ok = await control("ROOMS", "r4", gate.control({ key }));
    assert.deepEqual(ok, { status: 200, body: { closed: 1 } });
    assert.deepEqual(await ca.closed, { code: 4401, reason: "session revoked" });
    assert.deepEqual(await cb.next((f) => f.type === "leave"), { type: "leave", id: a.body.id });
    assert.equal(cb.ws.readyState, WebSocket.OPEN);
    cb.ws.close();
  });

  it("the alarm closes a socket when its session expires (4401 session expired)", async () => {
    const a = admit({ room: "r5", expires_at: Date.now() + 1500 });
    const c = await connect("/ws/ROOMS/r5", a.headers);
    const t = Date.now();
    assert.deepEqual(await c.closed, { code: 4401, reason: "session expired" });
    assert.ok(Date.now() - t < 4000);
  });

  it("revalidation through the GATE binding closes what the gate denies; a 503 keeps sockets", async () => {
    const keep = admit({ room: "r6" });
    const deny = admit({ room: "r6" });
    const ck = await connect("/ws/ROOMS/r6", keep.headers);
    revalidation.status = 503;
    const cd = await connect("/ws/ROOMS/r6", deny.headers);
    revalidation.deny.set(deny.body.ticket, { ok: false, code: 4403, reason: "rule denied" });
    const calls = revalidation.calls;
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(revalidation.calls > calls, "the room asked");
    assert.equal(cd.ws.readyState, WebSocket.OPEN, "503: kept");
    revalidation.status = 200;
    assert.deepEqual(await cd.closed, { code: 4403, reason: "rule denied" });
    assert.equal(ck.ws.readyState, WebSocket.OPEN);
    ck.ws.close();
  });
});

describe("GatedServer (partyserver) in workerd", () => {
  it("the connection id is the admission's, never the client's _pk; client x-partykit-* headers are ignored", async () => {
    const a = admit({ room: "p1", session: { user: { name: "ada" } } });
    const props = Buffer.from(JSON.stringify({ admin: true })).toString("base64");
    const c = await connect("/ws/CURSORS/p1?_pk=chosen-by-client&_pk=again", {
      ...a.headers,
      "x-partykit-props": props,
      "x-partykit-room": "elsewhere",
      "x-partykit-namespace": "rooms",
    });
    assert.deepEqual(c.first, { type: "welcome", id: a.body.id, session: a.body.session, peers: [] });
    assert.equal(c.announced, "1", "partyserver's 101 tells the gate the interval too");
    c.ws.close();
  });

  it("refuses upgrades without a valid admission (401) and connects nothing", async () => {
    const used = admit({ room: "p2" });
    const first = await connect("/ws/CURSORS/p2?_pk=x", used.headers);
    for (const headers of [{}, used.headers, admit({ room: "p2" }, "bad key").headers, admit({ room: "p2", v: 2 }).headers]) {
      const r = await connect("/ws/CURSORS/p2?_pk=intruder", headers);
      assert.equal(r.status, 401);
    }
    const b = admit({ room: "p2" });
    const second = await connect("/ws/CURSORS/p2", b.headers);
    assert.deepEqual(second.first.peers.map((p) => p.id), [used.body.id]);
    first.ws.close();
    second.ws.close();
  });

  it("getConnections() gives every peer's session; cursors carry the verified name; revocation works", async () => {
    const key = gate.newKeyId();
    const a = admit({ room: "p3", session: { user: { name: "ada" } }, revoke: [key] });
    const b = admit({ room: "p3", session: { user: { name: "bob" } } });
    const ca = await connect("/ws/CURSORS/p3", a.headers);
    const cb = await connect("/ws/CURSORS/p3", b.headers);
    assert.deepEqual(cb.first.peers, [{ id: a.body.id, session: a.body.session }]);
    assert.equal((await ca.next((f) => f.type === "join")).id, b.body.id);
    ca.ws.send(JSON.stringify({ x: 1, y: 2, name: "mallory" }));
    assert.deepEqual(await cb.next((f) => f.type === "cursor"), { type: "cursor", id: a.body.id, name: "ada", x: 1, y: 2 });
    assert.deepEqual(await control("CURSORS", "p3", gate.control({ key })), { status: 200, body: { closed: 1 } });
    assert.deepEqual(await ca.closed, { code: 4401, reason: "session revoked" });
    assert.equal((await cb.next((f) => f.type === "leave")).id, a.body.id);
    cb.ws.close();
  });
});

describe("what the integration hides, and hibernation", () => {
  it("the object's own name is checked even for the first admission it sees", async () => {
    const r = await connect("/ws/PROBE_ROOM/fresh-1", admit({ room: "not-fresh-1" }).headers);
    assert.equal(r.status, 401);
    assert.match(r.body, /wrong room/);
  });

  it("partyserver's onStart, ctx.request, uri and state never see client x-partykit-* or the admission", async () => {
    const a = admit({ room: "probe-1" });
    const c = await connect("/ws/PROBE_SERVER/probe-1?_pk=mine", {
      ...a.headers,
      "x-partykit-props": Buffer.from(JSON.stringify({ admin: true })).toString("base64"),
      "x-partykit-room": "elsewhere",
      "x-other": "kept",
    });
    assert.equal(c.first.id, a.body.id);
    assert.equal(c.first.name, "probe-1");
    assert.equal(c.first.props, null, "onStart got no client props");
    assert.deepEqual(c.first.headers, ["x-other"]);
    assert.equal(new URL(c.first.uri).searchParams.getAll("_pk").join(), a.body.id);
    assert.deepEqual(c.first.state, { session: a.body.session, route: a.body.route, params: a.body.params, expiresAt: a.body.expires_at });
    assert.deepEqual(c.first.tags, [a.body.id, "sg", `k:${a.body.revoke[0]}`]);
    assert.ok(!JSON.stringify(c.first).includes(a.body.ticket), "the ticket stays in the room");
    c.ws.close();
  });

  it("partyserver without hibernation: the same id, sessions and revocation, from memory", async () => {
    const a = admit({ room: "mem-1", session: { user: { name: "ada" } } });
    const b = admit({ room: "mem-1", session: { user: { name: "bob" } } });
    const ca = await connect("/ws/PROBE_MEMORY/mem-1?_pk=a", a.headers);
    const cb = await connect("/ws/PROBE_MEMORY/mem-1?_pk=a", b.headers);
    assert.equal(ca.first.id, a.body.id);
    assert.equal(cb.first.id, b.body.id);
    assert.equal((await connect("/ws/PROBE_MEMORY/mem-1", a.headers)).status, 401, "replay");
    cb.ws.send("get");
    const who = await cb.next((f) => f.type === "who");
    assert.deepEqual(who.sessions, [{ id: a.body.id, session: a.body.session }, { id: b.body.id, session: b.body.session }]);
    assert.deepEqual(who.session, b.body.session);
    assert.deepEqual(await control("PROBE_MEMORY", "mem-1", gate.control({ key: a.body.revoke[0] })), { status: 200, body: { closed: 1 } });
    assert.deepEqual(await ca.closed, { code: 4401, reason: "session revoked" });
    cb.ws.send("get");
    assert.deepEqual((await cb.next((f) => f.type === "who")).sessions.map((p) => p.id), [b.body.id]);
    cb.ws.close();
  });

  it("after the object hibernates, sessions(), state and the verified session are rebuilt from attachments", { timeout: 120_000 }, async () => {
    const out = {};
    for (const binding of ["PROBE_ROOM", "PROBE_SERVER"]) {
      const room = `hib-${binding}`;
      const a = admit({ room, expires_at: null, session: { user: { name: "ada" } } });
      const b = admit({ room, expires_at: null, session: { user: { name: "bob" } } });
      const ca = await connect(`/ws/${binding}/${room}`, a.headers);
      const cb = await connect(`/ws/${binding}/${room}`, b.headers);
      ca.ws.send("set");
      const before = await ca.next((f) => f.type === "who");
      out[binding] = { a, b, ca, cb, before };
    }
    let woke = {};
    // workerd evicts an object whose only sockets are hibernatable after ~10 s without events
    // (a probe is an event: wait longer than that between them).
    for (let i = 0; i < 6 && Object.keys(woke).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 15_000));
      for (const [binding, { cb, before }] of Object.entries(out)) {
        if (woke[binding]) continue;
        cb.ws.send("get");
        const now = await cb.next((f) => f.type === "who");
        if (now.instance !== before.instance) woke[binding] = now;
      }
    }
    for (const [binding, { a, b, ca, cb, before }] of Object.entries(out)) {
      const now = woke[binding];
      assert.ok(now, `${binding} did not hibernate within a minute`);
      const expected = [{ id: a.body.id, session: a.body.session }, { id: b.body.id, session: b.body.session }];
      assert.deepEqual(before.sessions, expected);
      assert.deepEqual(now.sessions, expected, binding);
      ca.ws.send("get");
      const mine = await ca.next((f) => f.type === "who");
      assert.equal(mine.state.mine, 1, `${binding}: app state survived`);
      if (binding === "PROBE_SERVER") assert.deepEqual(mine.session, a.body.session);
      assert.deepEqual(await control(binding, `hib-${binding}`, gate.control({ key: a.body.revoke[0] })), { status: 200, body: { closed: 1 } });
      assert.equal((await ca.closed).code, 4401);
      cb.ws.close();
    }
  });
});
