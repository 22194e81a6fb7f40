// Soak: many sockets in a few rooms under a steady broadcast load, under `wrangler dev --env soak`
// ([env.soak] in wrangler.toml: [env.test] with room for 1,000 sockets a room). Prints figures
// and asserts nothing timed; exits 1 if a message was lost, duplicated or misdelivered, or a
// socket closed that the soak did not close.
//
//   node benches/soak.mjs [sockets=1000] [rooms=10] [seconds=60] [messages/s=50]
//
// Every socket sends broadcasts at an even pace (together `messages/s`); each must reach every
// OTHER member of its room exactly once. Latency is receive time minus send time, both taken
// here (one clock). Memory is the RSS of wrangler's workerd processes, read from /proc.

import WebSocket from "ws";
import { newSid, sessionRecord, signedCookie, sleep, startGate } from "../tests/e2e/harness.mjs";
import { rssLine, workerdRss } from "./support.mjs";

const SOCKETS = Number(process.argv[2] ?? 1000);
const ROOMS = Number(process.argv[3] ?? 10);
const SECONDS = Number(process.argv[4] ?? 60);
const RATE = Number(process.argv[5] ?? 50); // broadcasts per second, all sockets together
const SOCKETS_PER_SESSION = 10;
const OPEN_CONCURRENCY = 16;
const DRAIN_MS = 20_000;

/* ---------------------------------------------------------------------- sockets */

const members = []; // { index, room, ws, id, closedUnexpectedly }
const rooms = Array.from({ length: ROOMS }, (_, r) => ({ name: `soak-${r}-${Date.now().toString(36)}`, members: [] }));
let closingOnPurpose = false;

const stats = {
  sent: 0,
  expected: 0, // deliveries owed: one per other member of the room at send time
  delivered: 0,
  duplicates: 0,
  misdelivered: 0, // to the sender itself, or to another room
  unexpectedCloses: [],
  unexpectedLeaves: 0,
  errorFrames: 0,
  latencies: [],
  windows: [], // latencies by 10 s window of send time
};
let loadStarted = 0;
/** message key -> { room, sender, remaining: Set of receiver indexes } */
const inFlight = new Map();

function onFrame(me, text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    stats.misdelivered++;
    return;
  }
  if (frame.type === "message") {
    const now = Date.now();
    const key = frame.data?.k;
    const message = inFlight.get(key);
    if (!message) {
      // Already complete (so a duplicate) or never sent.
      if (typeof key === "string" && key.startsWith("m")) stats.duplicates++;
      else stats.misdelivered++;
      return;
    }
    if (message.room !== me.room || message.sender === me.index) {
      stats.misdelivered++;
      return;
    }
    if (!message.remaining.delete(me.index)) {
      stats.duplicates++;
      return;
    }
    stats.delivered++;
    stats.latencies.push(now - frame.data.t);
    const window = Math.floor((frame.data.t - loadStarted) / 10_000);
    (stats.windows[window] ??= []).push(now - frame.data.t);
    if (message.remaining.size === 0) inFlight.delete(key);
  } else if (frame.type === "leave") {
    if (!closingOnPurpose) stats.unexpectedLeaves++;
  } else if (frame.type === "error") {
    stats.errorFrames++;
  }
  // join frames: the room filling up, expected while sockets open.
}

function open(index, cookie, gate) {
  const room = index % ROOMS;
  return new Promise((ok, fail) => {
    const ws = new WebSocket(`${gate.wsBase}/ws/rooms/${rooms[room].name}`, { headers: { cookie, origin: gate.origin }, handshakeTimeout: 30_000 });
    const me = { index, room, ws, id: null };
    ws.once("unexpected-response", (_req, res) => fail(new Error(`socket ${index}: HTTP ${res.statusCode}`)));
    ws.once("error", (e) => fail(new Error(`socket ${index}: ${e.message}`)));
    ws.once("message", (data) => {
      const welcome = JSON.parse(data.toString());
      if (welcome.type !== "welcome") return fail(new Error(`socket ${index}: first frame ${data}`));
      me.id = welcome.id;
      ws.on("message", (d, isBinary) => onFrame(me, isBinary ? "<binary>" : d.toString()));
      ws.on("close", (code, reason) => {
        if (!closingOnPurpose) stats.unexpectedCloses.push(`socket ${index} (room ${room}): ${code} ${reason}`);
      });
      ok(me);
    });
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/* ------------------------------------------------------------------------- run */

console.log(`soak: ${SOCKETS} sockets in ${ROOMS} rooms for ${SECONDS} s, ${RATE} broadcasts/s in all (each to the ${Math.round(SOCKETS / ROOMS) - 1} others of its room)`);
const gate = await startGate("soak", { env: "soak" });
let failed = false;
try {
  await sleep(1000);
  const rssIdle = workerdRss(gate);
  console.log(`workerd RSS, gate idle:          ${rssLine(rssIdle)}`);

  const cookies = [];
  for (let s = 0; s < Math.ceil(SOCKETS / SOCKETS_PER_SESSION); s++) {
    const sid = newSid();
    await gate.putSession(sid, sessionRecord({ user: `u-soak-${s}`, name: `soak ${s}` }));
    cookies.push(signedCookie(sid));
  }

  const openStarted = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: OPEN_CONCURRENCY }, async () => {
      while (next < SOCKETS) {
        const i = next++;
        const me = await open(i, cookies[Math.floor(i / SOCKETS_PER_SESSION)], gate);
        members[i] = me;
        rooms[me.room].members.push(me);
      }
    }),
  );
  const openSeconds = (Date.now() - openStarted) / 1000;
  console.log(`opened ${SOCKETS} sockets in ${openSeconds.toFixed(1)} s (${(SOCKETS / openSeconds).toFixed(0)}/s)`);
  await sleep(3000); // joins settle
  const rssOpen = workerdRss(gate);
  console.log(`workerd RSS, ${SOCKETS} sockets open:   ${rssLine(rssOpen)}`);

  // Steady load: one broadcast every 1000/RATE ms, from the sockets in turn (rooms interleaved).
  const interval = 1000 / RATE;
  const started = Date.now();
  loadStarted = started;
  let sender = 0;
  let seq = 0;
  let lateTicks = 0;
  while (Date.now() - started < SECONDS * 1000) {
    const due = started + seq * interval;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -interval) lateTicks++;
    const me = members[sender];
    sender = (sender + 1) % SOCKETS;
    const key = `m${seq++}`;
    const others = rooms[me.room].members.filter((m) => m !== me).map((m) => m.index);
    inFlight.set(key, { room: me.room, sender: me.index, remaining: new Set(others) });
    stats.expected += others.length;
    stats.sent++;
    me.ws.send(JSON.stringify({ type: "broadcast", data: { k: key, t: Date.now() } }));
  }
  const sendSeconds = (Date.now() - started) / 1000;
  // Drain: wait until every delivery arrived, or give up.
  const drainStarted = Date.now();
  while (inFlight.size > 0 && Date.now() - drainStarted < DRAIN_MS) await sleep(100);
  const drainMs = Date.now() - drainStarted;
  const rssLoaded = workerdRss(gate);

  closingOnPurpose = true;
  for (const m of members) m.ws.close(1000, "soak done");
  await sleep(5000);
  for (const m of members) m.ws.terminate();
  await sleep(3000);
  const rssAfter = workerdRss(gate);

  const lost = [...inFlight.values()].reduce((a, m) => a + m.remaining.size, 0);
  const sorted = Float64Array.from(stats.latencies).sort();
  console.log(`sent ${stats.sent} broadcasts in ${sendSeconds.toFixed(1)} s (${(stats.sent / sendSeconds).toFixed(1)}/s${lateTicks ? `, sender fell behind ${lateTicks} times` : ""})`);
  console.log(`deliveries: ${stats.delivered} of ${stats.expected} expected (${(stats.delivered / sendSeconds).toFixed(0)}/s); lost ${lost}, duplicated ${stats.duplicates}, misdelivered ${stats.misdelivered}; drained ${drainMs} ms after the last send`);
  console.log(`delivery latency: p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, max ${sorted.length ? sorted[sorted.length - 1] : NaN} ms`);
  const byWindow = stats.windows.map((w, i) => {
    const s = Float64Array.from(w).sort();
    return `${i * 10}-${i * 10 + 10} s: ${percentile(s, 50)}/${percentile(s, 99)}`;
  });
  console.log(`latency p50/p99 ms by 10 s of the load: ${byWindow.join(", ")}`);
  console.log(`unexpected closes ${stats.unexpectedCloses.length}, unexpected leave frames ${stats.unexpectedLeaves}, error frames ${stats.errorFrames}`);
  console.log(`workerd RSS, after the load:     ${rssLine(rssLoaded)}`);
  console.log(`workerd RSS, 8 s after closing:  ${rssLine(rssAfter)}`);
  const badLog = gate.output().split("\n").filter((l) => /panic|RuntimeError|unreachable|Durable Object reset|exceeded/i.test(l));
  console.log(`Worker log: ${badLog.length} panic/RuntimeError/unreachable/reset/exceeded lines${badLog.length ? `, e.g. ${badLog[0].slice(0, 200)}` : ""} (${gate.logFile})`);
  for (const c of stats.unexpectedCloses.slice(0, 10)) console.log(`  ${c}`);
  failed = lost > 0 || stats.duplicates > 0 || stats.misdelivered > 0 || stats.unexpectedCloses.length > 0 || stats.unexpectedLeaves > 0;
} catch (e) {
  console.error(`soak: ${e.stack ?? e}`);
  failed = true;
} finally {
  await gate.stop();
}
if (failed) {
  console.log("soak: FAILED (lost, duplicated or misdelivered messages, or unexpected closes)");
  process.exit(1);
}
console.log("soak: every message reached every other member of its room exactly once");
