// Where a Worker's CPU goes during admitted handshakes (or a room's broadcasts): a V8 CPU
// profile taken through wrangler dev's inspector, summed by self time. Prints figures, asserts
// nothing.
//
//   node benches/profile.mjs [target=gate|b|c|logged] [handshakes=600] [concurrency=8] [top=25] [sessions=fresh|room|fill|broadcast|frames]
//
// The target runs as in benches/vs_js.mjs (`wrangler dev`, 20 rooms kept occupied; fresh
// sessions, or the session of the socket each room keeps); sessions=fill instead opens every
// socket, fresh sessions, into one new room and keeps it open, as benches/fanout.mjs fills a
// room; sessions=broadcast fills such a room with `handshakes` sockets unprofiled, then
// profiles PROFILE_BROADCASTS (default 20) broadcasts from its first socket, as fanout.mjs
// sends them (each after the last was delivered to every other socket), and prints figures a
// broadcast; sessions=frames opens a room of one receiver and PROFILE_SENDERS (default 20)
// senders unprofiled, then profiles each sender sending `handshakes` frames to the receiver,
// as benches/frames.mjs sends them, and prints figures a frame. Self time is grouped into: wasm (the gate's code, by function when the build kept
// names), glue (the JavaScript of build/ or of the anchor's bundle), runtime (V8 built-ins and
// workerd's API, which the profile shows without a script), gc, and idle/program. For named
// wasm functions, build with `worker-build --release` (the environment of scripts/build.sh) and
// skip build.sh's final wasm-opt pass, which strips the name section. The profiler slows the
// isolate (busy time under it was about twice the Worker CPU vs_js.mjs reads): read shares as
// rough, and compare changes with vs_js.mjs. A sample taken after a gap over GAP_MS (the
// isolate stopped, or the sampler starved of a core) would credit that whole gap to whatever
// ran at the sample, often a wasm function of a few instructions (single samples of 40 ms on
// `drop_in_place` under broadcasts): such samples are left out, and their count and time are
// printed. PROFILE_SAVE=<file> writes the raw profile. PROFILE_INCLUSIVE=<regex> adds the
// inclusive time of the functions it matches.

import { readFileSync, writeFileSync } from "node:fs";
import WebSocket from "ws";
import { newSid, sessionRecord, signedCookie } from "../tests/e2e/harness.mjs";
import { fmt, handshake, openKept, runConcurrent, sendFrames, sleep, startTarget } from "./support.mjs";

const TARGET = process.argv[2] ?? "gate";
const COUNT = Number(process.argv[3] ?? 600);
const CONCURRENCY = Number(process.argv[4] ?? 8);
const TOP = Number(process.argv[5] ?? 25);
const SESSIONS = process.argv[6] ?? "fresh";
const ROOMS = 20;
const BROADCASTS = Number(process.env.PROFILE_BROADCASTS ?? 20);
const BROADCAST_TIMEOUT_MS = 30_000;
const SENDERS = Number(process.env.PROFILE_SENDERS ?? 20);
/** Samples after a longer gap are left out of the attribution (see above). */
const GAP_MS = 10;

Object.assign(process.env, { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" });

/** One Chrome DevTools Protocol session on the Worker's isolate. */
async function inspect(port) {
  let targets = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
    } catch {
      await sleep(100);
    }
  }
  // Under Miniflare (BENCH_RUNTIME=miniflare) workerd lists its own workers too.
  const target = targets.find((t) => t.webSocketDebuggerUrl && /bench-/.test(`${t.title} ${t.id}`)) ?? targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
  if (!target) throw new Error(`no inspector target on :${port}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => ws.once("open", ok).once("error", fail));
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  return {
    call(method, params = {}) {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((ok, fail) =>
        pending.set(id, (msg) => (msg.error ? fail(new Error(`${method}: ${msg.error.message}`)) : ok(msg.result))),
      );
    },
    close: () => ws.close(),
  };
}

const sources = new Map();
/** What a line of the bundled glue holds: the wasm-bindgen import it belongs to (its `__wbg_...`
 * name), or the line's start. Read while wrangler dev (which deletes its bundle on exit) runs. */
function shim(url, line) {
  if (!sources.has(url)) {
    try {
      sources.set(url, readFileSync(url.startsWith("file://") ? new URL(url) : url, "utf8").split("\n"));
    } catch {
      sources.set(url, null);
    }
  }
  const lines = sources.get(url);
  if (!lines || !lines[line]) return "";
  for (let i = line; i >= 0 && i > line - 12; i--) {
    const m = /(__wbg_\w+|__wbindgen_\w+)/.exec(lines[i]);
    if (m) return ` ${m[1]}`;
  }
  return ` ${lines[line].trim().slice(0, 60)}`;
}

function categorize(frame) {
  const { functionName: name, url } = frame;
  if (name === "(garbage collector)") return "gc";
  if (name === "(idle)" || name === "(program)" || name === "(root)") return name;
  if (url.startsWith("wasm://") || /^\$?(func\d+|wasm-function)/.test(name)) return "wasm";
  if (url) return "glue";
  return "runtime";
}

/**
 * Broadcasts from the first socket of a filled room, as benches/fanout.mjs sends them: each
 * once the last was delivered to every other socket. Returns { seconds, firstMs } (the median
 * time to the first delivery); throws when a broadcast is not delivered to every socket
 * within BROADCAST_TIMEOUT_MS, rather than waiting for ever.
 */
function broadcaster(sockets) {
  let pending = null;
  sockets.forEach((ws, i) =>
    ws.on("message", (data) => {
      if (i === 0 || !pending || JSON.parse(data.toString()).type !== "message") return;
      pending.first ??= performance.now() - pending.sentAt;
      if (++pending.got === sockets.length - 1) pending.done();
    }),
  );
  return async (count) => {
    const started = performance.now();
    const firsts = [];
    for (let b = 0; b < count; b++) {
      await new Promise((delivered, lost) => {
        const timer = setTimeout(() => lost(new Error(`broadcast ${b}: ${pending.got} of ${sockets.length - 1} deliveries in ${BROADCAST_TIMEOUT_MS} ms`)), BROADCAST_TIMEOUT_MS);
        const done = () => (clearTimeout(timer), delivered());
        pending = { sentAt: performance.now(), got: 0, first: null, done };
        sockets[0].send(JSON.stringify({ type: "broadcast", data: { k: `b${b}` } }));
      });
      firsts.push(pending.first);
      await sleep(20);
    }
    firsts.sort((a, b) => a - b);
    return { seconds: (performance.now() - started) / 1000, firstMs: firsts[firsts.length >> 1] };
  };
}

/**
 * Client frames into a room of one receiver (sockets[0]) and senders, as benches/frames.mjs
 * sends them: every sender sends `count` frames {"type":"send","to":<the receiver>} in bursts
 * of 25, 50 ms apart. Returns { seconds } once the receiver got them all; throws after
 * BROADCAST_TIMEOUT_MS.
 */
function framer(sockets, receiverId) {
  return async (count) => {
    const started = performance.now();
    const expected = (sockets.length - 1) * count;
    let got = 0;
    await new Promise((delivered, lost) => {
      const timer = setTimeout(() => lost(new Error(`${got} of ${expected} frames delivered in ${BROADCAST_TIMEOUT_MS} ms`)), BROADCAST_TIMEOUT_MS);
      sockets[0].on("message", (data) => {
        if (JSON.parse(data.toString()).type === "message" && ++got === expected) (clearTimeout(timer), delivered());
      });
      sockets.slice(1).forEach((ws, k) => sendFrames(ws, receiverId, count, k + 1));
    });
    return { seconds: (performance.now() - started) / 1000 };
  };
}

async function main() {
  process.env.BENCH_INSPECT = "1";
  const server = await startTarget(TARGET, "profile");
  const sockets = [];
  const filled = []; // sessions=fill and broadcast: the one room's sockets
  try {
    const cookies = [];
    for (let i = 0; i < COUNT + ROOMS * 3; i++) {
      const sid = newSid();
      await server.putSession(sid, sessionRecord({ user: `u-prof-${i}`, name: `prof ${i}` }));
      cookies.push(signedCookie(sid));
    }
    for (let r = 0; r < ROOMS; r++) {
      sockets.push(await openKept(`${server.wsBase}/ws/rooms/kept-${r}`, { cookie: cookies[COUNT + r], origin: server.origin }));
    }
    const warm = await runConcurrent(ROOMS * 2, CONCURRENCY, (i) =>
      handshake(`${server.wsBase}/ws/rooms/kept-${i % ROOMS}`, { cookie: cookies[COUNT + ROOMS + i], origin: server.origin }),
    );
    if (warm.outcomes.admitted !== ROOMS * 2) console.log(`warm-up: ${JSON.stringify(warm.outcomes)}`);
    await sleep(500);

    const fillRoom = `${server.wsBase}/ws/rooms/fill-${Date.now().toString(36)}`;
    // fill: every socket into one room, and kept (each arrival is announced to all before it)
    const fill = async (i) => {
      filled.push(await openKept(fillRoom, { cookie: cookies[i], origin: server.origin }));
      return "admitted";
    };
    let broadcast;
    if (SESSIONS === "broadcast") {
      await runConcurrent(COUNT, CONCURRENCY, fill);
      broadcast = broadcaster(filled);
      await sleep(2000);
    }
    let frames;
    if (SESSIONS === "frames") {
      // The receiver first: its welcome names it.
      const receiverId = await new Promise((ok, fail) => {
        const ws = new WebSocket(fillRoom, { headers: { cookie: cookies[0], origin: server.origin } });
        ws.once("message", (data) => (filled.push(ws), ok(JSON.parse(data.toString()).id)));
        ws.once("unexpected-response", (_q, res) => fail(new Error(`receiver: HTTP ${res.statusCode}`)));
        ws.once("error", fail);
      });
      for (let i = 1; i <= SENDERS; i++) await fill(i);
      frames = framer(filled, receiverId);
      await sleep(1000);
    }

    const inspector = await inspect(server.inspectorPort);
    await inspector.call("Profiler.enable");
    await inspector.call("Profiler.setSamplingInterval", { interval: 100 });
    await inspector.call("Profiler.start");
    const run =
      SESSIONS === "broadcast"
        ? await broadcast(BROADCASTS)
        : SESSIONS === "frames"
          ? await frames(COUNT)
          : await runConcurrent(COUNT, CONCURRENCY, async (i) => {
            if (SESSIONS === "fill") return fill(i);
            return handshake(`${server.wsBase}/ws/rooms/kept-${i % ROOMS}`, { cookie: cookies[SESSIONS === "room" ? COUNT + (i % ROOMS) : i], origin: server.origin });
          });
    await sleep(500);
    const { profile } = await inspector.call("Profiler.stop");
    inspector.close();
    // PROFILE_SAVE=<file>: the raw profile too, for DevTools or another reading.
    if (process.env.PROFILE_SAVE) writeFileSync(process.env.PROFILE_SAVE, JSON.stringify(profile));

    // Self time per node: samples x their intervals, but for samples after a gap.
    const selfUs = new Map();
    const gaps = { count: 0, us: 0 };
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i + 1] ?? 0;
      if (dt > GAP_MS * 1000) {
        gaps.count++;
        gaps.us += dt;
        continue;
      }
      selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
    }
    const byCategory = new Map();
    const byFunction = new Map();
    let busy = 0;
    for (const node of profile.nodes) {
      const us = selfUs.get(node.id) ?? 0;
      if (!us) continue;
      const category = categorize(node.callFrame);
      byCategory.set(category, (byCategory.get(category) ?? 0) + us);
      if (category !== "(idle)" && category !== "(program)") busy += us;
      const { functionName, url, lineNumber } = node.callFrame;
      // An anonymous function of the glue is one of wasm-bindgen's import shims: named by its line.
      const key = `${category} ${functionName || (url ? `(anonymous) ${url.split("/").pop()}:${lineNumber + 1}${shim(url, lineNumber)}` : "(anonymous)")}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    }
    const [per, unit, what] = {
      broadcast: [BROADCASTS, "broadcast", `${BROADCASTS} broadcasts to ${COUNT - 1} sockets (first delivery median ${fmt(run.firstMs, 2)} ms)`],
      frames: [COUNT * SENDERS, "frame", `${COUNT * SENDERS} frames from ${SENDERS} senders to one receiver`],
    }[SESSIONS] ?? [COUNT, "handshake", `${COUNT} handshakes ${JSON.stringify(run.outcomes)}`];
    console.log(`${server.label}: ${what} in ${fmt(run.seconds, 2)} s; isolate busy ${fmt(busy / 1000, 0)} ms (${fmt(busy / per / 1000, 3)} ms a ${unit})`);
    console.log(`  left out: ${gaps.count} samples after gaps over ${GAP_MS} ms, ${fmt(gaps.us / 1000, 0)} ms`);
    for (const [category, us] of [...byCategory].sort((a, b) => b[1] - a[1])) {
      const share = category.startsWith("(") ? "" : ` (${fmt((100 * us) / busy, 1)}% of busy)`;
      console.log(`  ${category.padEnd(10)} ${fmt(us / 1000, 1).padStart(8)} ms${share}`);
    }
    // Inclusive time of the functions named in PROFILE_INCLUSIVE (a regular expression): each
    // node's subtree, counted once per function even when it recurses.
    if (process.env.PROFILE_INCLUSIVE) {
      const pattern = new RegExp(process.env.PROFILE_INCLUSIVE);
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      const subtree = (node, seen) => (selfUs.get(node.id) ?? 0) + (node.children ?? []).reduce((a, c) => a + subtree(byId.get(c), seen), 0);
      const inclusive = new Map();
      const walk = (node, inside) => {
        const name = node.callFrame.functionName;
        const counts = pattern.test(name) && !inside.has(name);
        if (counts) inclusive.set(name, (inclusive.get(name) ?? 0) + subtree(node));
        const next = counts ? new Set([...inside, name]) : inside;
        for (const c of node.children ?? []) walk(byId.get(c), next);
      };
      walk(profile.nodes[0], new Set());
      console.log(`inclusive time of /${process.env.PROFILE_INCLUSIVE}/:`);
      for (const [name, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
        console.log(`  ${fmt(us / 1000, 1).padStart(8)} ms ${fmt((100 * us) / busy, 1).padStart(5)}%  ${name.slice(0, 140)}`);
      }
    }
    console.log(`top ${TOP} by self time:`);
    for (const [key, us] of [...byFunction].filter(([k]) => !k.startsWith("(")).sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      console.log(`  ${fmt(us / 1000, 1).padStart(8)} ms ${fmt((100 * us) / busy, 1).padStart(5)}%  ${key.slice(0, 140)}`);
    }
  } finally {
    for (const ws of [...sockets, ...filled]) ws.terminate();
    await server.stop?.();
  }
}

await main();
process.exit(0);
