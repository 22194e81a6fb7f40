// Shared by the benchmarks (vs_js, fanout; soak and revocation for workerd's RSS): the three Workers of issue 13 under
// `wrangler dev` (each its own wrangler, workerd and local KV), or each in its own Miniflare
// (BENCH_RUNTIME=miniflare: workerd alone, without wrangler's dev proxy and inspector), the CPU
// of their processes read from /proc, and small statistics. Linux only (/proc).
//
//   gate  the Rust/wasm gate, `wrangler dev --env bench` ([env.bench]: 1,000 sockets a room, no
//         per-session limit, 1,000 frames a second a socket, no revalidation)
//   b     benches/anchor/wrangler.toml: the gate's job in plain JavaScript
//   c     benches/anchor/wrangler.pass.toml: (b)'s Worker as a pass-through (no checks)
//   d     benches/anchor/wrangler.index.toml: (b) with the gate's revocation index registration

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { KEY_PREFIX, ROOT, SECRET_NEW, SECRET_OLD, gateWorker, newSid, sessionRecord, signedCookie, startGate, workerdChildren } from "../tests/e2e/harness.mjs";
import { freePort } from "../tests/support/net.mjs";

// Variants of wrangler.toml, written beside it before each start (wrangler reads main, assets
// and the build command relative to it) and ignored by git.
const LOGGED_CONFIG = "wrangler.bench-logged.toml";
const OTHER_CONFIG = "wrangler.bench-other.toml";

/** Writes `file`: wrangler.toml with `text` replaced by `by`, which must be there. */
function writeConfigVariant(file, replacements) {
  let toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  for (const [text, by] of replacements) {
    if (!toml.includes(text)) throw new Error(`wrangler.toml has no ${JSON.stringify(text)} (for ${file})`);
    toml = toml.replace(text, by);
  }
  writeFileSync(join(ROOT, file), toml);
}

function writeLoggedConfig() {
  const table = "[env.bench.vars.SESSIONGATE]\n";
  writeConfigVariant(LOGGED_CONFIG, [[table, `${table}log_admissions = 1\n`]]);
}

function writeOtherConfig() {
  const dir = process.env.GATE_OTHER_BUILD;
  if (!dir) throw new Error("GATE_OTHER_BUILD: the directory of the other build");
  writeConfigVariant(OTHER_CONFIG, [
    ['main = "build/index.js"', `main = ${JSON.stringify(join(dir, "index.js"))}`],
    ['[build]\ncommand = "bash scripts/build.sh"\n', ""],
  ]);
}

export const TARGETS = {
  gate: { label: "gate", options: { env: "bench" } },
  b: { label: "(b) JS", options: { config: "benches/anchor/wrangler.toml", env: null } },
  c: { label: "(c) pass", options: { config: "benches/anchor/wrangler.pass.toml", env: null } },
  d: { label: "(d) JS+ix", options: { config: "benches/anchor/wrangler.index.toml", env: null } },
  // The gate with a log line for every admission (log_admissions = 1), to measure what the
  // line costs against the default sampling: wrangler.toml's [env.bench] with that one setting.
  logged: { label: "gate log1", options: { config: LOGGED_CONFIG, env: "bench" }, prepare: writeLoggedConfig },
  // Another build of the gate (GATE_OTHER_BUILD=<dir> holding index.js and index_bg.wasm, e.g. a
  // copy of build/ made with other profile settings), run as `gate` is: to compare two builds
  // in one run.
  other: { label: "gate other", options: { config: OTHER_CONFIG, env: "bench" }, prepare: writeOtherConfig },
};

/** Starts one target under `wrangler dev` (the e2e harness), or in its own Miniflare with
 * BENCH_RUNTIME=miniflare, and finds its processes. */
export async function startTarget(key, name) {
  if (process.env.BENCH_RUNTIME === "miniflare") return startMiniflareTarget(key);
  TARGETS[key].prepare?.();
  const server = await startGate(`${name}-${key}`, TARGETS[key].options);
  server.key = key;
  server.label = TARGETS[key].label;
  server.procs = processesOf(server);
  if (server.procs.worker.length !== 1) {
    process.stderr.write(`# ${key}: expected one worker workerd in wrangler's group, found ${JSON.stringify(server.procs)}\n`);
  }
  return server;
}

/* ------------------------------------------------- the targets in Miniflare alone */

/**
 * The same targets, each in its own Miniflare: one workerd that runs the Worker, its Durable
 * Objects and Miniflare's KV, reached directly. Without wrangler's dev proxy (a second workerd
 * every request crosses), its inspector (which has workerd report every subrequest to
 * wrangler's node over the Network domain). (No target has static assets any more; the
 * asset router, which every target went through equally, was a third difference.) What is
 * left is closer to what the Worker's code costs. The gate's
 * vars are wrangler.toml's [env.bench]; (b) and (c) are benches/anchor/worker.js bundled by
 * esbuild as wrangler bundles it.
 */
async function startMiniflareTarget(key) {
  const { Miniflare } = await import("miniflare");
  const { unstable_readConfig } = await import("wrangler");
  const secrets = JSON.stringify([SECRET_NEW, SECRET_OLD]);
  const gateVars = () => {
    const bench = unstable_readConfig({ config: join(ROOT, "wrangler.toml"), env: "bench" });
    return { ...bench.vars };
  };
  const gate = (dir, vars) => gateWorker({ dir, bindings: { ...vars, SESSION_SECRETS: secrets } });
  let bundleDir = null;
  const anchor = (passThrough, revocationIndex = false) => {
    bundleDir = mkdtempSync(join(tmpdir(), "sessiongate-anchor-"));
    const out = join(bundleDir, "worker.mjs");
    execFileSync(join(ROOT, "node_modules/.bin/esbuild"), [join(ROOT, "benches/anchor/worker.js"), "--bundle", "--format=esm", "--platform=neutral", "--external:cloudflare:*", `--outfile=${out}`, "--log-level=warning"]);
    return {
      compatibilityDate: "2026-04-01",
      kvNamespaces: ["SESSIONS"],
      modules: [{ type: "ESModule", path: out }],
      modulesRoot: bundleDir,
      bindings: { SESSION_SECRETS: secrets, PASS_THROUGH: String(passThrough), REVOCATION_INDEX: String(revocationIndex) },
      durableObjects: {
        ROOMS: { className: "Room", useSQLite: true },
        ...(revocationIndex ? { INDEX: { className: "RevocationIndex", useSQLite: true } } : {}),
      },
    };
  };
  const definitions = {
    gate: () => gate(join(ROOT, "build"), gateVars()),
    logged: () => {
      const vars = gateVars();
      return gate(join(ROOT, "build"), { ...vars, SESSIONGATE: { ...vars.SESSIONGATE, log_admissions: 1 } });
    },
    other: () => {
      if (!process.env.GATE_OTHER_BUILD) throw new Error("GATE_OTHER_BUILD: the directory of the other build");
      return gate(process.env.GATE_OTHER_BUILD, gateVars());
    },
    b: () => anchor(false),
    c: () => anchor(true),
    d: () => anchor(false, true),
  };
  let output = "";
  const collect = (stream) => stream.on("data", (chunk) => (output = (output + chunk).slice(-1_000_000)));
  const before = workerdChildren();
  // BENCH_INSPECT=1: workerd's inspector on a free port (benches/profile.mjs).
  const inspectorPort = process.env.BENCH_INSPECT ? await freePort() : undefined;
  // Miniflare keeps its state in a directory of os.tmpdir() it names itself, and its dispose()
  // removes it without waiting: the benches' process.exit() came first and left 12 MB a
  // target behind. So it is made inside a directory of ours, which stop() removes.
  const stateDir = mkdtempSync(join(tmpdir(), `sessiongate-bench-${key}-`));
  const tmpdirBefore = process.env.TMPDIR;
  process.env.TMPDIR = stateDir;
  let mf;
  try {
    mf = new Miniflare({
      inspectorPort,
      workers: [{ ...definitions[key](), name: `bench-${key}` }],
      handleRuntimeStdio: (stdout, stderr) => {
        collect(stdout);
        collect(stderr);
      },
    });
  } finally {
    if (tmpdirBefore === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdirBefore;
  }
  let url;
  try {
    url = await mf.ready;
  } catch (e) {
    process.stderr.write(`# ${key}: workerd did not start:\n${output}\n`);
    await mf.dispose().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const kv = await mf.getKVNamespace("SESSIONS");
  const worker = workerdChildren().filter((pid) => !before.includes(pid));
  if (worker.length !== 1) process.stderr.write(`# ${key}: expected one new workerd, found ${JSON.stringify(worker)}\n`);
  const base = url.origin;
  return {
    key,
    label: TARGETS[key].label,
    port: Number(url.port),
    inspectorPort,
    base,
    wsBase: base.replace(/^http/, "ws"),
    origin: base,
    procs: { worker, proxy: [], node: [] },
    output: () => output,
    async putSession(sid, record) {
      await kv.put(KEY_PREFIX + sid, typeof record === "string" ? record : JSON.stringify(record));
    },
    async stop() {
      await mf.dispose();
      if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * The processes of one `wrangler dev` (its process group): "worker" is the workerd that runs
 * the Worker and its Durable Objects (and Miniflare's KV), "proxy" the workerd of wrangler's
 * dev proxy (the one listening on the public port), "node" wrangler itself.
 */
export function processesOf(server) {
  const out = { worker: [], proxy: [], node: [] };
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== server.pid) continue;
      if (comm.startsWith("workerd")) {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
        const isProxy = cmdline.includes(`--socket-addr=entry=127.0.0.1:${server.port}\0`);
        out[isProxy ? "proxy" : "worker"].push(Number(entry));
      } else if (comm === "node" || comm.startsWith("node")) {
        out.node.push(Number(entry));
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** RSS of a server's workerd processes, each with its role ("worker" or "proxy"), in KB. */
export function workerdRss(server) {
  const { worker, proxy } = processesOf(server);
  const rssKb = (pid) => {
    try {
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      return 0; // gone meanwhile
    }
  };
  return [...worker.map((pid) => ({ pid, role: "worker" })), ...proxy.map((pid) => ({ pid, role: "proxy" }))].map((p) => ({ ...p, kb: rssKb(p.pid) }));
}

const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
/** "1298.4 MB (worker 662.0 MB, proxy 636.4 MB)" */
export const rssLine = (list) => `${mb(list.reduce((a, p) => a + p.kb, 0))} (${list.map((p) => `${p.role} ${mb(p.kb)}`).join(", ") || "no workerd found"})`;

/** utime + stime of a process (all its threads), in milliseconds. */
export function processCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** CPU milliseconds used so far by each role of a server's processes. */
export function cpuSnapshot(server) {
  const sum = (pids) => pids.reduce((a, pid) => a + processCpuMs(pid), 0);
  return { worker: sum(server.procs.worker), proxy: sum(server.procs.proxy), node: sum(server.procs.node), at: performance.now() };
}

export function cpuDelta(before, after) {
  return { worker: after.worker - before.worker, proxy: after.proxy - before.proxy, node: after.node - before.node, ms: after.at - before.at };
}

export const CPU_RESOLUTION_MS = 1000 / CLK_TCK;

/* ------------------------------------------------------- the gate against (b) */

/** The targets of a bench that compares one room's work: the gate and (b), and GATE_OTHER_BUILD's build. */
export function gateAndAnchor() {
  return ["gate", "b", ...(process.env.GATE_OTHER_BUILD ? ["other"] : [])];
}

/** `count` new sessions (users `u-<label>-<i>`), the same in every server's KV: their cookies. */
export async function seedSessions(servers, count, label) {
  const cookies = [];
  for (let i = 0; i < count; i++) {
    const sid = newSid();
    const record = sessionRecord({ user: `u-${label}-${i}`, name: `${label} ${i}` });
    for (const server of Object.values(servers)) await server.putSession(sid, record);
    cookies.push(signedCookie(sid));
  }
  return cookies;
}

/**
 * `count` frames `frame(n)` from `ws`, in bursts of 25 frames 50 ms apart: at most 500 a
 * second, under [env.bench]'s rate limit of 1,000 frames a second a socket.
 */
export async function sendPaced(ws, count, frame) {
  for (let n = 0; n < count; n++) {
    ws.send(frame(n));
    if ((n + 1) % 25 === 0) await sleep(50);
  }
}

/** `count` chat frames {"type":"send","to":to,"data":{s: sender, n}} from `ws`, paced as
 * `sendPaced` paces them (benches/frames.mjs, profile.mjs sessions=frames). */
export function sendFrames(ws, to, count, sender) {
  return sendPaced(ws, count, (n) => JSON.stringify({ type: "send", to, data: { s: sender, n } }));
}

/** Prints how many of the gate's log lines tell of a panic, a trap, a reset or an exceeded limit, if any. */
export function reportGateTroubles(server) {
  const troubles = server.output().split("\n").filter((l) => /panic|RuntimeError|unreachable|Durable Object reset|exceeded/i.test(l));
  if (troubles.length) console.log(`  gate log: ${troubles.length} panic/RuntimeError/reset lines, e.g. ${troubles[0].slice(0, 200)}`);
}

/**
 * With GATE_OTHER_BUILD, the other build's figures over the gate's, round by round: `parts`
 * names each field of the rounds' rows ([label, field]).
 */
export function reportOtherBuild(rows, parts) {
  if (!rows.other) return;
  const vs = (field) => rows.other.map((o, r) => o[field] / rows.gate[r][field]);
  console.log(`  other build (${process.env.GATE_OTHER_BUILD}) / gate: ${parts.map(([what, field]) => `${what} ${fmt(median(vs(field)), 2)} (${range(vs(field))})`).join(", ")}`);
}

/* ------------------------------------------------------------------- statistics */

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function range(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length ? `${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)}` : "n/a";
}

export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");

/** Rotates a list by `r` (round r starts with the r-th item): interleaved rounds. */
export function rotate(list, r) {
  const k = r % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/* ------------------------------------------------------------------- WebSockets */

/**
 * One handshake up to the first frame (the welcome), then the socket is dropped:
 * resolves "admitted", an HTTP status, or "error: ...".
 */
export function handshake(url, headers, timeoutMs = 15_000) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    const timer = setTimeout(() => {
      ws.terminate();
      resolve("error: timeout");
    }, timeoutMs);
    ws.once("message", () => {
      clearTimeout(timer);
      ws.terminate();
      resolve("admitted");
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      resolve(res.statusCode);
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      resolve(`error: ${e.message}`);
    });
  });
}

/** Opens a socket that stays (a room kept occupied): resolves once its welcome arrived. */
export function openKept(url, headers) {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(url, { headers });
    ws.once("message", () => ok(ws));
    ws.once("unexpected-response", (_q, res) => fail(new Error(`${url}: HTTP ${res.statusCode}`)));
    ws.once("error", fail);
  });
}

/** Runs `n` calls of `one(i)` with `concurrency` in flight; returns { seconds, outcomes }. */
export async function runConcurrent(n, concurrency, one) {
  let next = 0;
  const outcomes = {};
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const outcome = await one(i);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    }),
  );
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, outcomes };
}
