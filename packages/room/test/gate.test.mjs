// The Gate engine (what GatedRoom and withSessiongate delegate to) on a fake Durable Object
// state: acceptance, membership across a simulated wake, control requests, expiry, revalidation.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Gate, tagForKey } from "../core.js";
import * as gate from "./contract-signer.mjs";

const KEY = "admission key for the tests";

class FakeSocket {
  readyState = 1;
  sent = [];
  closedWith = null;
  #att;
  send(m) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(m);
  }
  close(code, reason) {
    if (this.readyState !== 1) throw new Error("already closing");
    this.readyState = 2;
    this.closedWith = { code, reason };
  }
  serializeAttachment(v) {
    this.#att = structuredClone(v);
  }
  deserializeAttachment() {
    return structuredClone(this.#att);
  }
}

class FakeCtx {
  sockets = [];
  alarm = null;
  setAlarms = 0;
  listed = 0;
  constructor(name = "lobby") {
    this.id = { name };
    this.storage = {
      getAlarm: async () => this.alarm,
      setAlarm: async (t) => {
        this.alarm = t;
        this.setAlarms++;
      },
    };
  }
  acceptWebSocket(ws, tags) {
    ws.tags = tags;
    this.sockets.push(ws);
  }
  getWebSockets(tag) {
    this.listed++;
    return this.sockets.filter((ws) => !tag || ws.tags.includes(tag));
  }
}

function setup({ name, env = { ADMISSION_KEY: KEY }, now, ...options } = {}) {
  const ctx = new FakeCtx(name);
  const logs = [];
  const events = [];
  const clock = { t: now ?? Date.now() };
  const make = () =>
    new Gate(
      ctx,
      env,
      { createPair: () => [new FakeSocket(), new FakeSocket()], log: (e) => logs.push(e), now: () => clock.t, ...options },
      {
        onJoin: (c) => events.push(["join", c.id, c.session]),
        onLeave: (c, code, reason) => events.push(["leave", c.id, code, reason]),
      },
    );
  return { ctx, logs, events, clock, g: make(), wake: make };
}

const upgrade = (body, key = KEY) =>
  new Request("https://app.example.com/ws/rooms/lobby", { headers: { upgrade: "websocket", ...gate.admissionHeaders(key, body) } });
const controlRequest = (body, key = KEY) => new Request(gate.CONTROL_URL, { method: "POST", headers: gate.controlHeaders(key, body) });

async function join(g, over = {}) {
  const body = gate.admission({ iat: g.now(), ...over });
  const a = await g.admit(upgrade(body));
  assert.ok(!(a instanceof Response), `admitted: ${a instanceof Response ? await a.text() : ""}`);
  const r = await g.accept(a);
  return { ...r, body };
}

describe("Gate: admission and acceptance", () => {
  it("accepts with tags sg + k:<key>, the attachment, an alarm, then onJoin", async () => {
    const { ctx, g, events } = setup({ revalidateSeconds: 60 });
    const { conn, body } = await join(g);
    const [ws] = ctx.sockets;
    assert.deepEqual(ws.tags, ["sg", `k:${body.revoke[0]}`]);
    assert.deepEqual(ws.deserializeAttachment(), {
      id: body.id, session: body.session, expires_at: body.expires_at, ticket: body.ticket, route: body.route, params: body.params,
    });
    assert.deepEqual(events, [["join", body.id, body.session]]);
    assert.equal(ctx.alarm, g.now() + 60_000, "next revalidation comes before the expiry");
    assert.deepEqual(JSON.parse(JSON.stringify(conn)), { id: body.id, session: body.session }, "no ticket in JSON");
    assert.ok(!Object.values(conn).includes(body.ticket), "no ticket among its fields");
  });
  it("sets the alarm at the earliest expiry, and writes it only when it moves earlier", async () => {
    const { ctx, g, clock } = setup({ revalidateSeconds: 0 });
    await join(g, { expires_at: clock.t + 10_000 });
    await join(g, { expires_at: clock.t + 20_000 });
    await join(g, { expires_at: null });
    assert.equal(ctx.alarm, clock.t + 10_000);
    assert.equal(ctx.setAlarms, 1);
    await join(g, { expires_at: clock.t + 5_000 });
    assert.equal(ctx.alarm, clock.t + 5_000);
    assert.equal(ctx.setAlarms, 2);
  });
  it("refuses forged, replayed and wrong-room admissions with 401 and accepts nothing", async () => {
    const { ctx, g } = setup();
    const body = gate.admission();
    for (const req of [
      upgrade(body, "forged key"),
      upgrade(gate.admission({ room: "other" })),
      new Request("https://x/ws", { headers: { upgrade: "websocket" } }),
    ]) {
      const r = await g.admit(req);
      assert.ok(r instanceof Response);
      assert.equal(r.status, 401);
    }
    assert.ok(!((await g.admit(upgrade(body))) instanceof Response));
    assert.equal((await g.admit(upgrade(body))).status, 401, "replay");
    assert.equal(ctx.sockets.length, 0, "admit never accepts");
  });
  it("without ADMISSION_KEY answers 500 and logs once", async () => {
    const { g, logs } = setup({ env: {} });
    assert.equal((await g.admit(upgrade(gate.admission()))).status, 500);
    assert.equal((await g.admit(upgrade(gate.admission()))).status, 500);
    assert.equal(logs.filter((l) => /ADMISSION_KEY/.test(l.error ?? "")).length, 1);
  });
  it("takes the key from options (a list, or a function of env)", async () => {
    const { g } = setup({ env: { K: "k2" }, key: (env) => ["k1", env.K] });
    assert.ok(!((await g.admit(upgrade(gate.admission(), "k2"))) instanceof Response));
  });
  it("refuses an attachment over 2 KB with 500 and a log line, accepting nothing", async () => {
    const { ctx, g, logs } = setup();
    const a = await g.admit(upgrade(gate.admission({ session: { blob: "x".repeat(2100) } })));
    const { response } = await g.accept(a);
    assert.equal(response.status, 500);
    assert.equal(ctx.sockets.length, 0);
    assert.match(logs.at(-1).error, /over the 2048-byte budget/);
  });
  it("keeps the keys that do not fit the tags in the attachment", async () => {
    const { ctx, g } = setup();
    const keys = Array.from({ length: 11 }, gate.newKeyId);
    await join(g, { revoke: keys });
    assert.equal(ctx.sockets[0].tags.length, 10);
    assert.deepEqual(ctx.sockets[0].deserializeAttachment().rk, keys.slice(9));
  });
  it("pins the room to the first admission when the runtime gives no name", async () => {
    const { ctx, g } = setup();
    ctx.id = {};
    await join(g, { room: "a" });
    assert.equal(g.name, "a");
    assert.equal((await g.admit(upgrade(gate.admission({ room: "b" })))).status, 401);
  });
});

describe("Gate: membership", () => {
  it("sessions() lists every open socket synchronously; after a wake it is rebuilt once from attachments", async () => {
    const { ctx, g, wake } = setup();
    const a = await join(g);
    const b = await join(g, { session: { user: { name: "bob" } } });
    const expected = [{ id: a.body.id, session: a.body.session }, { id: b.body.id, session: b.body.session }];
    assert.deepEqual(g.sessions(), expected);
    const woken = wake();
    ctx.listed = 0;
    for (let i = 0; i < 100; i++) assert.deepEqual(woken.sessions(), expected);
    assert.equal(ctx.listed, 1, "getWebSockets once per wake");
    assert.equal(woken.connection(b.body.id).session.user.name, "bob");
    assert.equal(woken.connection(b.body.id).route, "/ws/rooms/:room");
  });
  it("closed() forgets the socket, calls onLeave once, and answers the close frame", async () => {
    const { ctx, g, events } = setup();
    const { body } = await join(g);
    const ws = ctx.sockets[0];
    g.closed(ws, 1000, "bye");
    g.closed(ws, 1000, "bye");
    assert.deepEqual(events.filter((e) => e[0] === "leave"), [["leave", body.id, 1000, "bye"]]);
    assert.deepEqual(ws.closedWith, { code: 1000, reason: "bye" });
    assert.deepEqual(g.sessions(), []);
    const other = await join(g);
    g.closed(ctx.sockets[1], 1006, "");
    assert.equal(ctx.sockets[1].closedWith, null, "no close frame to answer after 1006");
    assert.equal(events.at(-1)[1], other.body.id);
  });
  it("setState keeps app state in the attachment, within the budget", async () => {
    const { ctx, g, wake } = setup();
    const { conn } = await join(g);
    conn.setState({ cursor: [1, 2] });
    assert.deepEqual(wake().connection(conn.id).state, { cursor: [1, 2] });
    assert.throws(() => conn.setState({ big: "x".repeat(3000) }), RangeError);
    assert.deepEqual(ctx.sockets[0].deserializeAttachment().state, { cursor: [1, 2] });
  });
});

describe("Gate: control requests", () => {
  it("revoke closes every socket tagged k:<key> with 4401 and answers {closed: N}", async () => {
    const { ctx, g, events } = setup();
    const shared = gate.newKeyId();
    const a = await join(g, { revoke: [shared, gate.newKeyId()] });
    await join(g, { revoke: [gate.newKeyId(), shared] });
    const c = await join(g);
    const res = await g.control(controlRequest(gate.control({ key: shared })));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { closed: 2 });
    assert.deepEqual(ctx.sockets[0].closedWith, { code: 4401, reason: "session revoked" });
    assert.deepEqual(ctx.sockets[1].closedWith, { code: 4401, reason: "session revoked" });
    assert.equal(ctx.sockets[2].closedWith, null);
    assert.deepEqual(g.sessions().map((s) => s.id), [c.body.id]);
    assert.ok(events.some((e) => e[0] === "leave" && e[1] === a.body.id && e[2] === 4401));
  });
  it("a bad, stale, replayed or unsigned control gets 401 and closes nothing", async () => {
    const { ctx, g } = setup();
    const { body } = await join(g);
    const key = body.revoke[0];
    const ok = gate.control({ key });
    for (const req of [
      controlRequest(gate.control({ key }), "forged key"),
      controlRequest(gate.control({ key, iat: Date.now() - 60_000 })),
      new Request(gate.CONTROL_URL, { method: "POST" }),
    ]) {
      assert.equal((await g.control(req)).status, 401);
    }
    assert.equal(ctx.sockets[0].closedWith, null);
    assert.deepEqual(await (await g.control(controlRequest(ok))).json(), { closed: 1 });
    assert.equal((await g.control(controlRequest(ok))).status, 401, "replayed");
    assert.equal((await g.control(new Request(gate.CONTROL_URL))).status, 405);
    assert.equal((await g.control(controlRequest(gate.control({ op: "drain" })))).status, 400);
  });
  it("after a wake, finds keys by tag, overflow keys from attachments, and long keys by their hash", async () => {
    const { ctx, g, wake } = setup();
    const keys = Array.from({ length: 10 }, gate.newKeyId);
    const long = "L".repeat(400);
    await join(g, { revoke: keys });
    await join(g, { revoke: [long] });
    assert.equal(ctx.sockets[1].tags[1], await tagForKey(long));
    const w = wake();
    assert.equal(await w.revoke(keys[9]), 1, "overflow key, from the attachment");
    assert.equal(await w.revoke(long), 1);
    assert.equal(w.sessions().length, 0);
  });
});

describe("Gate: expiry and revalidation", () => {
  it("the alarm closes expired sockets with 4401 session expired and sets the next one", async () => {
    const { ctx, g, clock } = setup({ revalidateSeconds: 0 });
    await join(g, { expires_at: clock.t + 1_000 });
    await join(g, { expires_at: clock.t + 5_000 });
    clock.t += 1_000;
    await g.alarm();
    assert.deepEqual(ctx.sockets[0].closedWith, { code: 4401, reason: "session expired" });
    assert.equal(ctx.sockets[1].closedWith, null);
    assert.equal(ctx.alarm, clock.t + 4_000);
  });
  it("a message after the expiry closes the socket instead of delivering it", async () => {
    const { ctx, g, clock } = setup();
    await join(g, { expires_at: clock.t + 1_000 });
    assert.ok(g.receiving(ctx.sockets[0]));
    clock.t += 1_000;
    assert.equal(g.receiving(ctx.sockets[0]), undefined);
    assert.equal(ctx.sockets[0].closedWith.code, 4401);
  });
  it("revalidates through env.GATE: closes sockets whose result is not ok with its code and reason", async () => {
    const banned = new Set();
    const endpoint = gate.revalidationEndpoint(KEY, (t) => (banned.has(t) ? { ok: false, code: 4403, reason: "rule denied" } : { ok: true }));
    const { ctx, g, clock, wake } = setup({ env: { ADMISSION_KEY: KEY, GATE: endpoint }, revalidateSeconds: 30 });
    const a = await join(g);
    await join(g, { ticket: a.body.ticket });
    const c = await join(g);
    banned.add(a.body.ticket);
    clock.t += 30_000;
    assert.equal(ctx.alarm, clock.t);
    await g.alarm();
    assert.equal(endpoint.calls.length, 1);
    assert.ok(endpoint.calls[0].ok, "signed as the contract says");
    assert.deepEqual(endpoint.calls[0].body, { v: 1, tickets: [a.body.ticket, c.body.ticket], every: 30 }, "one ticket once, and how often");
    assert.deepEqual(ctx.sockets[0].closedWith, { code: 4403, reason: "rule denied" });
    assert.deepEqual(ctx.sockets[1].closedWith, { code: 4403, reason: "rule denied" });
    assert.equal(ctx.sockets[2].closedWith, null);
    assert.equal(ctx.alarm, clock.t + 30_000);
    // An empty room sets no further alarm.
    const w = wake();
    w.closed(ctx.sockets[2], 1000, "");
    clock.t += 30_000;
    ctx.alarm = null;
    await w.alarm();
    assert.equal(ctx.alarm, null);
  });
  it("tells the gate how often it revalidates (the 101's x-sessiongate-revalidate) only when it does", async () => {
    const upgrade = () => ({ status: 101, headers: new Headers() });
    const gateBinding = gate.revalidationEndpoint(KEY, () => ({ ok: true }));
    const announced = (options) => setup(options).g.announce(upgrade()).headers.get("x-sessiongate-revalidate");
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 30 }), "30");
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 1.5 }), "2", "whole seconds, rounded up");
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding } }), "60", "the default interval");
    // Without revalidation the gate must keep the socket's index entries forever: no header.
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 0 }), null);
    assert.equal(announced({ env: { ADMISSION_KEY: KEY }, revalidateSeconds: 30 }), null, "no binding to the gate");
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 86_400 }), "86400");
    assert.equal(announced({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 86_401 }), null, "past a day: the gate would refuse its every");
    const refused = { status: 401, headers: new Headers() };
    const { g } = setup({ env: { ADMISSION_KEY: KEY, GATE: gateBinding }, revalidateSeconds: 30 });
    assert.equal(g.announce(refused).headers.get("x-sessiongate-revalidate"), null, "only an accepting 101");
    const frozen = { status: 101, headers: { set() { throw new TypeError("immutable"); } } };
    assert.equal(g.announce(frozen), frozen, "immutable headers: the response as it was");
  });
  it("a room revalidating less often than daily sends no every, so the gate does not refuse its revalidations", async () => {
    const endpoint = gate.revalidationEndpoint(KEY, () => ({ ok: true }));
    const { g } = setup({ env: { ADMISSION_KEY: KEY, GATE: endpoint }, revalidateSeconds: 2 * 86_400 });
    await join(g);
    await g.revalidate();
    assert.equal(endpoint.calls.length, 1);
    assert.equal("every" in endpoint.calls[0].body, false);
  });
  it("keeps every socket on a 503, a network error, a bad signature or a malformed answer", async () => {
    const endpoint = gate.revalidationEndpoint(KEY, () => ({ ok: false, code: 4401, reason: "session revoked" }));
    const env = { ADMISSION_KEY: KEY, GATE: endpoint };
    const { ctx, g, logs } = setup({ env, revalidateSeconds: 30 });
    await join(g);
    endpoint.status = 503;
    assert.equal(await g.revalidate(), 0);
    env.GATE = { fetch: async () => { throw new Error("network connection lost"); } };
    assert.equal(await g.revalidate(), 0);
    env.GATE = { fetch: async () => new Response(JSON.stringify({ v: 1, results: [{ ok: false, code: 4401 }] }), { headers: { "x-sessiongate-signature": gate.mac("forged", "sessiongate-revalidated-v1", "x") } }) };
    assert.equal(await g.revalidate(), 0);
    const short = JSON.stringify({ v: 1, results: [] });
    env.GATE = { fetch: async () => new Response(short, { headers: { "x-sessiongate-signature": gate.mac(KEY, "sessiongate-revalidated-v1", short) } }) };
    assert.equal(await g.revalidate(), 0);
    assert.equal(ctx.sockets[0].closedWith, null);
    assert.deepEqual(logs.filter((l) => l.revalidate).map((l) => l.revalidate), [
      "gate answered 503", "gate unreachable", "answer without a valid signature", "malformed answer",
    ]);
    env.GATE = endpoint;
    endpoint.status = 200;
    assert.equal(await g.revalidate(), 1);
    assert.deepEqual(ctx.sockets[0].closedWith, { code: 4401, reason: "session revoked" });
  });
  it("sends at most 100 tickets a request", async () => {
    const endpoint = gate.revalidationEndpoint(KEY, () => ({ ok: true }));
    const { g } = setup({ env: { ADMISSION_KEY: KEY, GATE: endpoint } });
    for (let i = 0; i < 205; i++) await join(g);
    await g.revalidate();
    assert.deepEqual(endpoint.calls.map((c) => c.body.tickets.length), [100, 100, 5]);
  });
  it("without the service binding, logs once and keeps the sockets", async () => {
    const { g, logs } = setup();
    await join(g);
    assert.equal(await g.revalidate(), 0);
    assert.equal(await g.revalidate(), 0);
    assert.equal(logs.filter((l) => /no service binding GATE/.test(l.error ?? "")).length, 1);
  });
});
