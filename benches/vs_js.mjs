// The gate against what a user would write in JavaScript (issue 13), printed as figures beside
// their anchors, nothing asserted:
//
//   node benches/vs_js.mjs [rounds=5] [handshakes=300] [concurrency=8] [cold starts=15] [sessions=fresh]
//   node benches/vs_js.mjs 3 100 8 3          # the short form, about two minutes
//   VS_JS_ONLY=handshakes (or startup) node benches/vs_js.mjs ...   # one part only
//
// 1. Handshakes. Three Workers, each under its own `wrangler dev` (own wrangler, own workerd,
//    own local KV seeded with the same sessions), on free ports:
//      gate  the Rust/wasm gate, `--env bench` ([env.soak] without revalidation)
//      (b)   benches/anchor/: npm `cookie`, WebCrypto HMAC + timingSafeEqual, KV get,
//            JSON.parse, expiry, one rule, a JS Durable Object (acceptWebSocket,
//            serializeAttachment, welcome with the peers, join to the others)
//      (c)   (b)'s Worker as a pass-through: no checks, straight to the same Durable Object
//      gate other  with GATE_OTHER_BUILD=<dir>: another build of the gate (index.js and
//            index_bg.wasm in <dir>), to compare builds in one run (in the start-up part too)
//      (d)   with VS_JS_INDEX_ANCHOR=1: (b) plus the gate's revocation index registration in
//            JavaScript (benches/anchor/: the Room sends a socket's new keys to the index
//            shard of the room and waits for the write before the 101): what the same job
//            with the same index costs in JavaScript
//      gate log1  the gate with a log line for every admission (log_admissions = 1; the
//            default logs one in 100): what the line costs, printed as a share of the rate
//    Every handshake is admitted into one of 20 rooms that each keep one socket open (no room
//    starts or empties during a round); the client waits for the welcome frame and drops the
//    socket. sessions=fresh: every handshake has its own session (the gate registers its
//    revocation key with the index on arrival); sessions=room: the session of the socket the
//    room keeps (its key is registered already). Rounds are interleaved (the order rotates each round). Worker CPU per handshake is
//    the utime+stime delta of the Worker's workerd process (/proc/<pid>/stat, 10 ms ticks)
//    over the round plus a settle time, divided by the handshakes: workerd gives no
//    per-request figure. The dev proxy's workerd and wrangler's node are shown beside it.
//    The run waits 40 s after the warm-up (for work it left for later, such as alarms), and
//    with fresh sessions prints the Worker CPU per handshake over the whole run plus a tail of
//    that length as well.
//    BENCH_RUNTIME=miniflare runs each target in its own Miniflare instead (workerd alone: no
//    dev proxy, no inspector, no asset router; benches/support.mjs), which is closer to what
//    the Workers' code costs; the "proxy" and "node" columns are then empty.
// 2. Start-up: time from spawning workerd (no wrangler, no Miniflare: a capnp config of one
//    Worker with the gate's bindings, KV bound to a stub) to its answer to a first plain GET,
//    for an empty Worker (empty Durable Object classes), the same logging one line a request,
//    the gate (build/) and (b) (wrangler's own bundle), cold starts interleaved. Polled every
//    millisecond: "listening" is when its socket first accepts a connection (the Worker loaded,
//    its modules compiled, the gate's wasm instantiated), "first answer" adds the first request
//    (for the gate: its first calls into the wasm, which V8 compiles function by function as
//    they first run, reading the config, and the refusal's log line; an isolate's first
//    console.log loads workerd's inspect module, which "empty+log" shows alone). Then, once
//    per gate build, what the first request compiled: workerd with V8's
//    --trace-wasm-compilation-times, whose lines count the wasm functions V8 compiled lazily
//    for that request, their bytes of wasm and V8's time for each. Unlike the times above it
//    does not move with the machine's load: the code a first request runs through. The probe
//    is a 426, which runs only the checks that need no store; the same cold starts are then
//    timed with a first request that is a whole admitted handshake (a signed cookie, the start-up
//    config's KV holding a session for every key, the room's accept, the index; (b)'s room
//    too), with its compile count: what a Worker's first real visitor waits for.
//    `VS_JS_COMPILED=<prefix>` also writes each first request's functions (a line each: V8's
//    function index, its bytes, its µs) to <prefix>.probe and <prefix>.handshake, which
//    `python3 benches/wasm_sizes.py <wasm with names> <file>` names and sums by crate (for a
//    build with names: scripts/build.sh without its last wasm-opt pass).
// 3. Size: build/index_bg.wasm raw and gzipped (-9), against (b)'s bundle as wrangler builds
//    it (`wrangler deploy --dry-run --outdir`), gzipped.
//
// Local `wrangler dev` throughput is bounded by wrangler's proxy and Miniflare: compare the
// rows of one run, not with production.

import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { freePort } from "../tests/support/net.mjs";
import { ROOT, SECRET_NEW, SECRET_OLD, newSid, sessionRecord, signedCookie } from "../tests/e2e/harness.mjs";
import { CPU_RESOLUTION_MS, processCpuMs, cpuDelta, cpuSnapshot, fmt, handshake, median, openKept, range, rotate, runConcurrent, sleep, startTarget } from "./support.mjs";

const ROUNDS = Number(process.argv[2] ?? 5);
const COUNT = Number(process.argv[3] ?? 300);
const CONCURRENCY = Number(process.argv[4] ?? 8);
const COLD_STARTS = Number(process.argv[5] ?? 15);
const SESSIONS = process.argv[6] ?? "fresh";
if (!["fresh", "room"].includes(SESSIONS)) throw new Error(`sessions: "fresh" or "room", not ${SESSIONS}`);
const ROOMS = 20;
const LOG_EVERY = 100; // log_admissions' default (src/config/check.rs)
const SETTLE_MS = 500; // after a round, before reading CPU: the Durable Objects' close handlers
const DEFERRED_MS = 40_000; // the wait after the warm-up and the tail of the whole-run figure (was a key's linger, 30 s, and slack)
const WARMUP = 200; // handshakes per target before the rounds

const ANCHOR = {
  rate: "issue 13 measured gate/(b) 0.71-0.79, gate/(c) 0.64-0.73; target gate/(b) >= 1.0, gate/(c) >= 0.9",
  cpu: "issue 13 measured gate/(b) 1.38-1.62; target <= 1.0",
  startup: "issue 13 measured gate +13.6 ms, (b) +0.4 ms over an empty Worker; target gate <= +5 ms",
  log: "issue 13 measured a line per admission at ~15% of the rate; target < 3%",
  size: "issue 13 measured wasm 660 KB, 283 KB gzipped, (b) 4.4 KB gzipped; target wasm <= 150 KB gzipped",
};

const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };
Object.assign(process.env, { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" });

/* ------------------------------------------------------------------ 1. handshakes */

async function handshakes() {
  const runtime = process.env.BENCH_RUNTIME === "miniflare" ? "each in its own Miniflare (no dev proxy, no inspector)" : "each under wrangler dev";
  console.log(`## handshakes: ${ROUNDS} rounds x ${COUNT} admitted handshakes, concurrency ${CONCURRENCY}, into ${ROOMS} occupied rooms, sessions=${SESSIONS}, ${runtime}`);
  const keys = ["gate", "b", "c", "logged", ...(process.env.GATE_OTHER_BUILD ? ["other"] : []), ...(process.env.VS_JS_INDEX_ANCHOR ? ["d"] : [])];
  const servers = {};
  try {
    for (const key of keys) servers[key] = await startTarget(key, "vs_js");
    // Sessions: one per kept socket, one per warm-up handshake, and (sessions=fresh) one per
    // handshake of every round, so that each round's are new to the rooms (before, every round
    // reused the first round's, whose keys the rooms still held).
    const fresh = SESSIONS === "fresh" ? ROUNDS * COUNT : 0;
    const keptAt = (r) => r;
    const warmAt = (i) => ROOMS + i;
    const roundAt = (r, i) => ROOMS + WARMUP + r * COUNT + i;
    const cookies = [];
    const records = [];
    for (let i = 0; i < ROOMS + WARMUP + fresh; i++) {
      const sid = newSid();
      records.push([sid, sessionRecord({ user: `u-bench-${i}`, name: `bench ${i}` })]);
      cookies.push(signedCookie(sid));
    }
    await Promise.all(keys.map(async (key) => {
      for (const [sid, record] of records) await servers[key].putSession(sid, record);
    }));
    for (const key of keys) {
      const s = servers[key];
      console.log(`${s.label.padEnd(9)} ${process.env.BENCH_RUNTIME === "miniflare" ? "Miniflare" : "wrangler dev"} on :${s.port}, worker workerd ${s.procs.worker.join(",")}, proxy workerd ${s.procs.proxy.join(",")}, node ${s.procs.node.join(",")}`);
    }

    // Rooms that stay occupied, then a warm-up of each isolate and its Durable Objects.
    const kept = [];
    for (const key of keys) {
      const s = servers[key];
      for (let r = 0; r < ROOMS; r++) {
        const ws = await openKept(`${s.wsBase}/ws/rooms/kept-${r}`, { cookie: cookies[keptAt(r)], origin: s.origin });
        kept.push(ws);
      }
      // A warm-up of each isolate and its Durable Objects. (With 40, the gate's first round ran at half
      // speed; at least part of that was the first round's index registrations, which later rounds
      // did not pay while they reused its sessions.)
      const warm = await runConcurrent(WARMUP, CONCURRENCY, (i) => handshake(`${s.wsBase}/ws/rooms/kept-${i % ROOMS}`, { cookie: cookies[warmAt(i)], origin: s.origin }));
      if (warm.outcomes.admitted !== WARMUP) console.log(`warm-up ${s.label}: ${JSON.stringify(warm.outcomes)}`);
    }
    // Work a fresh session could leave for later (before index entries expired on their own,
    // its key left the index 30-35 s after its socket left, in the room's alarm): whatever the
    // warm-up left must be over before the rounds, and the rounds' is counted in the whole-run
    // figure.
    if (SESSIONS === "fresh") {
      console.log(`waiting ${DEFERRED_MS / 1000} s for work the warm-up left for later`);
      await sleep(DEFERRED_MS);
    } else {
      await sleep(1000);
    }
    for (const key of keys) {
      const s = servers[key];
      const a = cpuSnapshot(s);
      await sleep(3000);
      const d = cpuDelta(a, cpuSnapshot(s));
      console.log(`${s.label.padEnd(9)} idle CPU (3 s, ${ROOMS} occupied rooms): worker ${fmt(d.worker / 3, 0)} ms/s, proxy ${fmt(d.proxy / 3, 0)} ms/s, node ${fmt(d.node / 3, 0)} ms/s`);
    }

    const rows = { gate: [], b: [], c: [], logged: [], other: [], d: [] };
    const runStart = Object.fromEntries(keys.map((key) => [key, cpuSnapshot(servers[key])]));
    for (let r = 0; r < ROUNDS; r++) {
      const parts = [];
      for (const key of rotate(keys, r)) {
        const s = servers[key];
        const before = cpuSnapshot(s);
        const cookie = (i) => (SESSIONS === "fresh" ? cookies[roundAt(r, i)] : cookies[keptAt(i % ROOMS)]);
        const { seconds, outcomes } = await runConcurrent(COUNT, CONCURRENCY, (i) =>
          handshake(`${s.wsBase}/ws/rooms/kept-${i % ROOMS}`, { cookie: cookie(i), origin: s.origin }),
        );
        await sleep(SETTLE_MS);
        const d = cpuDelta(before, cpuSnapshot(s));
        const admitted = outcomes.admitted ?? 0;
        const row = {
          rate: admitted / seconds,
          worker: d.worker / COUNT,
          proxy: d.proxy / COUNT,
          node: d.node / COUNT,
          outcomes,
        };
        rows[key].push(row);
        const odd = admitted === COUNT ? "" : ` ${JSON.stringify(outcomes)}`;
        parts.push(`${s.label} ${fmt(row.rate, 0)}/s cpu ${fmt(row.worker, 2)} ms (proxy ${fmt(row.proxy, 2)}, node ${fmt(row.node, 2)})${odd}`);
      }
      const g = rows.gate[r], b = rows.b[r], c = rows.c[r];
      console.log(`round ${r + 1}: ${parts.join(" | ")} || rate gate/(b) ${fmt(g.rate / b.rate, 2)} gate/(c) ${fmt(g.rate / c.rate, 2)}, cpu gate/(b) ${fmt(g.worker / b.worker, 2)}`);
    }
    // The whole run's Worker CPU per handshake, with what the rounds left for later.
    const runCpu = {};
    if (SESSIONS === "fresh") {
      await sleep(DEFERRED_MS);
      for (const key of keys) runCpu[key] = cpuDelta(runStart[key], cpuSnapshot(servers[key])).worker / (ROUNDS * COUNT);
    }
    for (const ws of kept) ws.terminate();

    const med = (key, field) => median(rows[key].map((x) => x[field]));
    console.log("");
    console.log(`medians (${ROUNDS} rounds; worker CPU per handshake from /proc, resolution ${fmt(CPU_RESOLUTION_MS / COUNT, 3)} ms at ${COUNT} handshakes):`);
    for (const key of keys) {
      console.log(`  ${servers[key].label.padEnd(9)} ${fmt(med(key, "rate"), 0).padStart(5)} handshakes/s   worker CPU ${fmt(med(key, "worker"), 2)} ms/handshake   (dev proxy ${fmt(med(key, "proxy"), 2)}, wrangler node ${fmt(med(key, "node"), 2)})`);
    }
    const ratio = (field, other) => rows.gate.map((g, r) => g[field] / rows[other][r][field]);
    console.log(`  rate gate/(b): median ${fmt(med("gate", "rate") / med("b", "rate"), 2)}, per round ${range(ratio("rate", "b"))}   [${ANCHOR.rate}]`);
    console.log(`  rate gate/(c): median ${fmt(med("gate", "rate") / med("c", "rate"), 2)}, per round ${range(ratio("rate", "c"))}`);
    console.log(`  worker CPU gate/(b): median ${fmt(med("gate", "worker") / med("b", "worker"), 2)}, per round ${range(ratio("worker", "b"))}   [${ANCHOR.cpu}]`);
    console.log(`  worker CPU gate/(c): median ${fmt(med("gate", "worker") / med("c", "worker"), 2)}, per round ${range(ratio("worker", "c"))}`);
    if (SESSIONS === "fresh") {
      console.log(`  worker CPU per handshake over the whole run, with the work left for later (a ${DEFERRED_MS / 1000} s tail): ${keys.map((key) => `${servers[key].label.trim()} ${fmt(runCpu[key], 2)} ms`).join(", ")}; gate/(b) ${fmt(runCpu.gate / runCpu.b, 2)}, gate/(c) ${fmt(runCpu.gate / runCpu.c, 2)}`);
    }
    const cost = rows.gate.map((g, r) => 1 - rows.logged[r].rate / g.rate);
    console.log(`  admission log line: a line for every admission (log_admissions = 1) costs ${fmt(100 * median(cost), 1)}% of the default's rate (per round ${range(cost.map((x) => 100 * x))}%); the default logs one in ${LOG_EVERY}, so ~${fmt((100 * median(cost)) / LOG_EVERY, 2)}%   [${ANCHOR.log}]`);
    if (rows.d.length) {
      console.log(`  rate gate/(d): median ${fmt(med("gate", "rate") / med("d", "rate"), 2)}, per round ${range(ratio("rate", "d"))}`);
      console.log(`  worker CPU gate/(d): median ${fmt(med("gate", "worker") / med("d", "worker"), 2)}, per round ${range(ratio("worker", "d"))}`);
      if (SESSIONS === "fresh") console.log(`  worker CPU over the whole run gate/(d): ${fmt(runCpu.gate / runCpu.d, 2)}`);
    }
    if (rows.other.length) {
      const rate = rows.other.map((o, r) => o.rate / rows.gate[r].rate);
      const cpu = rows.other.map((o, r) => o.worker / rows.gate[r].worker);
      console.log(`  other build (${process.env.GATE_OTHER_BUILD}) / gate: rate ${fmt(median(rate), 2)} (per round ${range(rate)}), worker CPU ${fmt(median(cpu), 2)} (per round ${range(cpu)})`);
    }
    const badLog = servers.gate.output().split("\n").filter((l) => /panic|RuntimeError|unreachable|Durable Object reset|exceeded/i.test(l));
    if (badLog.length) console.log(`  gate log: ${badLog.length} panic/RuntimeError/reset lines, e.g. ${badLog[0].slice(0, 200)}`);
  } finally {
    for (const s of Object.values(servers)) await s.stop();
  }
}

/* -------------------------------------------------------------------- 2. start-up */

const EMPTY_WORKER = `import { DurableObject } from "cloudflare:workers";
export default { fetch() { return new Response("ok"); } };
export class Room extends DurableObject {}
export class RevocationIndex extends DurableObject {}
`;
// The empty Worker that logs one line per request, as the gate logs the probe's refusal: the
// first console.log of an isolate loads workerd's inspect module, a cost (b) never pays.
const EMPTY_LOGGING_WORKER = EMPTY_WORKER.replace(
  "fetch() {",
  'fetch() { console.log(JSON.stringify({ sessiongate: "decision", decision: "deny", status: 426 }));',
);
const WORKERD = join(ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

function bundleAnchor() {
  const out = mkdtempSync(join(tmpdir(), "sessiongate-anchor-bundle-"));
  execFileSync(join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", out, "-c", "benches/anchor/wrangler.toml"], { cwd: ROOT, env, stdio: "ignore" });
  return { dir: out, script: join(out, "worker.js") };
}

/** A workerd config (capnp text) serving one Worker on `port`, KV bound to a stub service. */
function workerdConfig(port, modules, bindings, classes, v8Flags = []) {
  const q = (text) => JSON.stringify(text); // a JSON string literal is a capnp text literal (ASCII)
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .mainWorker), (name = "kv", worker = .kvWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
  v8Flags = [ ${v8Flags.map(q).join(", ")} ],
);
const kvWorker :Workerd.Worker = (
  modules = [ (name = "kv.mjs", esModule = ${q(`export default { fetch(request) { return request.method === "GET" ? new Response(${JSON.stringify(STARTUP_SESSION)}) : new Response(null, { status: 404 }); } };`)}) ],
  compatibilityDate = "2026-04-01",
);
const mainWorker :Workerd.Worker = (
  modules = [ ${modules.map(([name, kind, file]) => `(name = ${q(name)}, ${kind} = embed ${q(file ?? name)})`).join(", ")} ],
  compatibilityDate = "2026-04-01",
  bindings = [ ${bindings.join(", ")},
    (name = "SESSIONS", kvNamespace = "kv"),
    ${classes.map(([binding, className]) => `(name = ${q(binding)}, durableObjectNamespace = ${q(className)})`).join(", ")} ],
  durableObjectNamespaces = [ ${classes.map(([, className]) => `(className = ${q(className)}, uniqueKey = ${q(className)}, enableSql = true)`).join(", ")} ],
  durableObjectStorage = (inMemory = void),
);
`;
}

const signed = (x) => (x >= 0 ? `+${fmt(x)}` : fmt(x));

/**
 * Spawns workerd, polls (every millisecond) until its socket accepts a TCP connection, then
 * makes its first request (`first`: by default GET /ws/rooms/probe, no upgrade): ms from spawn
 * to listening and to the answer, and workerd's CPU by then.
 */
async function coldStart(dir, configFile, port, first = probe) {
  const t0 = performance.now();
  const child = spawn(WORKERD, ["serve", join(dir, configFile), "--experimental"], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  try {
    await untilListening(child, port, t0, () => stderr, 1);
    const listening = performance.now() - t0;
    const status = await first(port);
    const ms = performance.now() - t0;
    const cpu = processCpuMs(child.pid);
    await probe(port);
    return { ms, listening, status, cpu, second: performance.now() - t0 - ms };
  } finally {
    await kill(child);
  }
}

/** Polls every `everyMs` until workerd's socket accepts a connection (30 s at most). */
async function untilListening(child, port, t0, output, everyMs) {
  for (;;) {
    const open = await new Promise((ok) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        ok(true);
      });
      socket.once("error", () => ok(false));
    });
    if (open) return;
    if (child.exitCode !== null) throw new Error(`workerd exited: ${output().slice(0, 2000)}`);
    if (performance.now() - t0 > 30_000) throw new Error(`workerd did not listen in 30 s: ${output().slice(0, 2000)}`);
    await sleep(everyMs);
  }
}

/** GET /ws/rooms/probe (no upgrade): its status. */
function probe(port) {
  return new Promise((ok, fail) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/ws/rooms/probe", agent: false }, (res) => {
      res.resume();
      res.on("end", () => ok(res.statusCode));
    });
    req.on("error", fail);
  });
}

/** The session every key of the start-up config's KV holds: a first handshake is admitted. */
const STARTUP_SESSION = JSON.stringify(sessionRecord({ user: "u-startup", name: "first", expires: Date.now() + 86_400_000 }));
const STARTUP_COOKIE = signedCookie(newSid());

/**
 * A WebSocket handshake to /ws/rooms/probe with a signed session cookie, its session in KV:
 * the whole admitted path (cookie, HMAC, KV read, rules, the room's accept), through to the
 * room's first frame (support.mjs's `handshake`): "admitted", or the status of a refusal.
 */
function handshakeProbe(port, origin) {
  return handshake(`ws://127.0.0.1:${port}/ws/rooms/probe`, { cookie: STARTUP_COOKIE, ...(origin ? { origin } : {}) });
}

async function kill(child) {
  child.kill("SIGKILL");
  await new Promise((ok) => (child.exitCode !== null || child.signalCode !== null ? ok() : child.once("exit", ok)));
}

/**
 * The wasm functions V8 compiled for a Worker's first request (it compiles each as it first
 * runs): workerd with --trace-wasm-compilation-times, its lines from the probe on counted.
 */
async function firstRequestCompiles(dir, configFile, port, first = probe) {
  const child = spawn(WORKERD, ["serve", join(dir, configFile), "--experimental"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (out += c));
  // The function (`<module>#<index>`), V8's µs, the function's bytes.
  const compiled = (text) => [...text.matchAll(/Compiled function (\S+) using \w+, took (\d+) μs .*?bodysize (\d+)/g)];
  try {
    await untilListening(child, port, performance.now(), () => out, 5);
    const before = out.length;
    await first(port);
    await sleep(200); // the trace is written as V8 compiles; let it reach the pipe
    const lines = compiled(out.slice(before));
    if (process.env.VS_JS_COMPILED) {
      const file = `${process.env.VS_JS_COMPILED}.${first === probe ? "probe" : "handshake"}`;
      writeFileSync(file, lines.map((m) => `${m[1].split("#").pop()} ${m[3]} ${m[2]}\n`).join(""));
    }
    return {
      functions: lines.length,
      bytes: lines.reduce((sum, m) => sum + Number(m[3]), 0),
      ms: lines.reduce((sum, m) => sum + Number(m[2]), 0) / 1000,
      atLoad: compiled(out.slice(0, before)).length,
    };
  } finally {
    await kill(child);
  }
}

async function startup(bundle) {
  console.log(`## start-up: workerd spawned on a config of one Worker until it answers its first request (GET /ws/rooms/probe), ${COLD_STARTS} cold starts each, interleaved`);
  const dir = mkdtempSync(join(tmpdir(), "sessiongate-startup-"));
  const q = (text) => JSON.stringify(text);
  const secrets = `(name = "SESSION_SECRETS", text = ${q(JSON.stringify([SECRET_NEW, SECRET_OLD]))})`;
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"), "bench");
  const config = `(name = "SESSIONGATE", json = ${q(JSON.stringify(workerOptions.bindings.SESSIONGATE))})`;
  copyFileSync(join(ROOT, "build/index.js"), join(dir, "index.js"));
  copyFileSync(join(ROOT, "build/index_bg.wasm"), join(dir, "index_bg.wasm"));
  copyFileSync(bundle.script, join(dir, "anchor.js"));
  writeFileSync(join(dir, "empty.js"), EMPTY_WORKER);
  writeFileSync(join(dir, "emptylog.js"), EMPTY_LOGGING_WORKER);
  const gateClasses = [["ROOMS", "Room"], ["INDEX", "RevocationIndex"]];
  const variants = {
    empty: { modules: [["empty.js", "esModule"]], bindings: [secrets, config], classes: gateClasses },
    "empty+log": { modules: [["emptylog.js", "esModule"]], bindings: [secrets, config], classes: gateClasses },
    gate: { modules: [["index.js", "esModule"], ["index_bg.wasm", "wasm"]], bindings: [secrets, config], classes: gateClasses },
    "(b)": { modules: [["anchor.js", "esModule"]], bindings: [secrets], classes: [["ROOMS", "Room"]] },
    // (b) with the revocation index's registration (benches/anchor/wrangler.index.toml): its
    // first admitted handshake starts an index shard too, as the gate's does.
    "(d)": { modules: [["anchor.js", "esModule"]], bindings: [secrets, '(name = "REVOCATION_INDEX", text = "true")'], classes: [["ROOMS", "Room"], ["INDEX", "RevocationIndex"]] },
  };
  const other = process.env.GATE_OTHER_BUILD;
  if (other) {
    copyFileSync(join(other, "index.js"), join(dir, "other.js"));
    copyFileSync(join(other, "index_bg.wasm"), join(dir, "index_bg.wasm.other"));
    // The other build's shim imports "./index_bg.wasm": its own copy under that name, by a
    // module name the capnp config maps.
    variants["gate other"] = { modules: [["other.js", "esModule"], ["index_bg.wasm", "wasm", "index_bg.wasm.other"]], bindings: [secrets, config], classes: gateClasses };
  }
  const times = {};
  const cpus = {};
  const listens = {};
  const seconds = {};
  // From listening to the first answer, per cold start: what the first visitor of an isolate
  // the platform loaded during the client's TLS handshake waits for.
  const afterListening = {};
  // The same cold starts with a first request that is a whole admitted handshake (the 426 probe
  // runs only the checks that need no store): its session read from KV, the room's accept.
  const handshakeTimes = {};
  const handshakeAfterListening = {};
  const originOf = (key, port) => (key.startsWith("gate") ? "http://allowed.example" : key === "(b)" || key === "(d)" ? `http://127.0.0.1:${port}` : undefined);
  try {
    for (const [key, v] of Object.entries(variants)) {
      v.port = await freePort();
      v.file = `${key.replace(/\W/g, "")}.capnp`;
      writeFileSync(join(dir, v.file), workerdConfig(v.port, v.modules, v.bindings, v.classes));
      times[key] = [];
      afterListening[key] = [];
      handshakeTimes[key] = [];
      handshakeAfterListening[key] = [];
      cpus[key] = [];
      listens[key] = [];
      seconds[key] = [];
    }
    for (let i = 0; i <= COLD_STARTS; i++) {
      for (const key of rotate(Object.keys(variants), i)) {
        const { ms, listening, status, cpu, second } = await coldStart(dir, variants[key].file, variants[key].port);
        variants[key].status = status;
        if (i > 0) {
          // the first pass warms the page cache
          times[key].push(ms);
          cpus[key].push(cpu);
          listens[key].push(listening);
          seconds[key].push(second);
          afterListening[key].push(ms - listening);
        }
      }
      for (const key of rotate(Object.keys(variants), i)) {
        const v = variants[key];
        const { ms, listening, status } = await coldStart(dir, v.file, v.port, (port) => handshakeProbe(port, originOf(key, port)));
        v.handshakeStatus = status;
        if (i > 0) {
          handshakeTimes[key].push(ms);
          handshakeAfterListening[key].push(ms - listening);
        }
      }
    }
    for (const key of ["gate", "gate other"].filter((k) => variants[k])) {
      const v = variants[key];
      const file = `${v.file}.trace.capnp`;
      writeFileSync(join(dir, file), workerdConfig(v.port, v.modules, v.bindings, v.classes, ["--trace-wasm-compilation-times"]));
      v.compiles = await firstRequestCompiles(dir, file, v.port);
      v.handshakeCompiles = await firstRequestCompiles(dir, file, v.port, (port) => handshakeProbe(port, originOf(key, port)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const key of Object.keys(variants)) {
    console.log(`  ${key.padEnd(9)} listening after ${fmt(median(listens[key]))} ms, first answer (HTTP ${variants[key].status}) after ${fmt(median(times[key]))} ms (the second took ${fmt(median(seconds[key]))} ms), workerd CPU by then ${fmt(median(cpus[key]), 0)} ms (medians; answers ${times[key].map((t) => t.toFixed(0)).join(", ")})`);
  }
  const over = (key, t) => signed(median(t[key]) - median(t.empty));
  console.log(`  over the empty Worker, first answer: gate ${over("gate", times)} ms, (b) ${over("(b)", times)} ms   [${ANCHOR.startup}]`);
  console.log(`  of which listening (workerd loads the Worker and compiles its modules): gate ${over("gate", listens)} ms, (b) ${over("(b)", listens)} ms; workerd CPU: gate ${over("gate", cpus)} ms, (b) ${over("(b)", cpus)} ms`);
  if (other) console.log(`  other build (${other}) over the empty Worker, first answer: ${over("gate other", times)} ms; listening ${over("gate other", listens)} ms`);
  console.log(`  from listening to the first answer (what the first visitor of an isolate loaded during its TLS handshake waits for): ${Object.keys(variants).map((k) => `${k} ${fmt(median(afterListening[k]))} ms`).join(", ")}`);
  console.log(`  of the gate's, its first log line (the empty Worker with one console.log per request): ${over("empty+log", times)} ms`);
  for (const key of ["gate", "gate other"].filter((k) => variants[k])) {
    const c = variants[key].compiles;
    console.log(`  ${key}: its first request made V8 compile ${c.functions} wasm functions, ${(c.bytes / 1024).toFixed(1)} KB of wasm, in ${fmt(c.ms)} ms of V8's compile time (--trace-wasm-compilation-times; ${c.atLoad} compiled before it)`);
  }
  console.log(`  a first request that is an admitted handshake (a signed cookie, its session in KV; statuses ${Object.keys(variants).map((k) => `${k} ${variants[k].handshakeStatus}`).join(", ")}):`);
  const notAdmitted = Object.keys(variants).filter((k) => !k.startsWith("empty") && variants[k].handshakeStatus !== "admitted");
  if (notAdmitted.length) console.log(`    WARNING: not admitted: ${notAdmitted.join(", ")}; the figures below are not an admitted handshake's`);
  for (const key of Object.keys(variants)) {
    console.log(`    ${key.padEnd(9)} first answer after ${fmt(median(handshakeTimes[key]))} ms (medians; answers ${handshakeTimes[key].map((t) => t.toFixed(0)).join(", ")})`);
  }
  console.log(`    over the empty Worker's first answer to it: gate ${over("gate", handshakeTimes)} ms, (b) ${over("(b)", handshakeTimes)} ms, (d) ${over("(d)", handshakeTimes)} ms${other ? `, other build ${over("gate other", handshakeTimes)} ms` : ""}   [the 426 probe above runs only the checks that need no store]`);
  console.log(`    from listening to that first answer: ${Object.keys(variants).map((k) => `${k} ${fmt(median(handshakeAfterListening[k]))} ms`).join(", ")}`);
  for (const key of ["gate", "gate other"].filter((k) => variants[k])) {
    const c = variants[key].handshakeCompiles;
    console.log(`    ${key}: that first request made V8 compile ${c.functions} wasm functions, ${(c.bytes / 1024).toFixed(1)} KB of wasm, in ${fmt(c.ms)} ms of V8's compile time`);
  }
}

/* ------------------------------------------------------------------------ 3. size */

function sizes(bundle) {
  console.log("## size");
  const wasm = readFileSync(join(ROOT, "build/index_bg.wasm"));
  const shim = readFileSync(join(ROOT, "build/index.js"));
  const anchor = readFileSync(bundle.script);
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  const gz = (b) => gzipSync(b, { level: 9 }).length;
  console.log(`  gate wasm ${kb(wasm.length)} raw, ${kb(gz(wasm))} gzipped; its JS glue (build/index.js) ${kb(shim.length)} raw, ${kb(gz(shim))} gzipped`);
  console.log(`  (b) bundle (wrangler deploy --dry-run) ${kb(anchor.length)} raw, ${kb(gz(anchor))} gzipped`);
  console.log(`  gate wasm gzipped / (b) gzipped: ${fmt(gz(wasm) / gz(anchor), 0)}x   [${ANCHOR.size}]`);
}

/* ------------------------------------------------------------------------- run */

const only = process.env.VS_JS_ONLY; // "handshakes" or "startup" (start-up and size): one part only
if (only !== "startup") await handshakes();
if (only !== "handshakes") {
  console.log("");
  const bundle = bundleAnchor();
  try {
    await startup(bundle);
    console.log("");
    sizes(bundle);
  } finally {
    rmSync(bundle.dir, { recursive: true, force: true });
  }
}
process.exit(0);
