// The core decision in V8 against what a Node user would write (issue 13): figures printed
// beside their anchor, nothing asserted.
//
//   node benches/core_v8.mjs [rounds=15] [decisions per round=20000]
//
// (a) core, batch     benches/core_v8/ (the sessiongate core as wasm, the release profile:
//                     opt-level "z", LTO), `decide_batch`: the loop runs inside wasm, so the
//                     JS<->wasm boundary is crossed once per round
// (b) core, per call  the same, `decide_once` called once per decision: one boundary crossing
//                     (and the path string copied in) per handshake, as the Worker does
// (c) Node stack      npm `cookie` 0.7 + `cookie-signature` 1.0 (express-session's own
//                     unsign: an HMAC with key set up per call, compared through SHA-1) +
//                     JSON.parse + the same checks and rules, written the plain way
//
// One workload, benches/auth_path.rs's fixture: route `/ws/rooms/:room`, the RFC 6455
// headers, an allowed Origin, a Cookie header of four cookies whose connect.sid is signed with
// the same secret (the header itself comes from the wasm, so both parse the same bytes), a
// store answering with the same ~300-byte session record, its cookie.expires, and the rules
// require passport.user exists, include user.roles contains "chat", exclude user.banned
// equals true. Every decision must admit the handshake to room "lobby" (checked before timing).
//
// Rounds are interleaved, the order rotating each round; each figure is the median over
// rounds of ns per decision. A raw HMAC-SHA256 through node:crypto (key set up per call) is
// printed as a reference, as auth_path prints its raw HMAC.
//
// Build: the first run builds what is missing, later runs skip it while it is newer than its
// sources (src/, Cargo.toml, Cargo.lock, benches/core_v8/): `cargo build --release --target
// wasm32-unknown-unknown` in benches/core_v8 (its own workspace: the root's cargo test and
// clippy never build it), then `wasm-bindgen --target experimental-nodejs-module` into
// benches/core_v8/target/pkg. wasm-bindgen is WASM_BINDGEN_BIN, ~/.cargo/bin/wasm-bindgen or
// the one on PATH, and its version must equal the wasm-bindgen in Cargo.lock.

import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import cookie from "cookie";
import signature from "cookie-signature";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CRATE = join(ROOT, "benches", "core_v8");
const PKG = join(CRATE, "target", "pkg");
const WASM = join(CRATE, "target", "wasm32-unknown-unknown", "release", "sessiongate_core_v8.wasm");
const MODULE = join(PKG, "sessiongate_core_v8.js");

const ROUNDS = Number(process.argv[2] ?? 15);
const PER_ROUND = Number(process.argv[3] ?? 20000);
const ANCHOR = "issue 13: V8 core 4.4 us vs Node express stack 6.4 us; target core >= 2x faster";

// The fixture (benches/auth_path.rs; benches/core_v8/src/lib.rs holds the same).
const SECRET = "a long production secret, 32+ chars";
const SID = "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG";
const NOW_MS = 1_795_651_200_000;
const PATH = "/ws/rooms/lobby";

// ---- build, when missing or older than its sources ----

function newestMtime(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) {
    if (entry === "target") continue;
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

function wasmBindgen() {
  const candidates = [process.env.WASM_BINDGEN_BIN, join(homedir(), ".cargo", "bin", "wasm-bindgen"), "wasm-bindgen"];
  const bin = candidates.find((c) => c && (c === "wasm-bindgen" || existsSync(c)));
  const lock = readFileSync(join(CRATE, "Cargo.lock"), "utf8");
  const wanted = /name = "wasm-bindgen"\nversion = "([^"]+)"/.exec(lock)?.[1];
  const have = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim().split(" ").pop();
  if (have !== wanted) {
    throw new Error(`${bin} is ${have}, Cargo.lock has wasm-bindgen ${wanted}: install wasm-bindgen-cli ${wanted}`);
  }
  return bin;
}

function build() {
  const sources = [join(ROOT, "src"), join(ROOT, "Cargo.toml"), join(ROOT, "Cargo.lock"), CRATE];
  const newest = Math.max(...sources.map(newestMtime));
  const built = existsSync(MODULE) ? statSync(join(PKG, "sessiongate_core_v8_bg.wasm")).mtimeMs : 0;
  if (built > newest) return "up to date";
  execFileSync("cargo", ["build", "--release", "--target", "wasm32-unknown-unknown"], { cwd: CRATE, stdio: "inherit" });
  execFileSync(wasmBindgen(), ["--target", "experimental-nodejs-module", "--out-dir", PKG, WASM], { stdio: "inherit" });
  return "built";
}

// ---- (c): what a Node user writes with express-session's own packages ----

const ROUTE = /^\/ws\/rooms\/([^/]+)$/;
const ALLOWED_ORIGINS = ["https://app.example.com"];
const OWN_ORIGIN = "https://gate.example.com";

const hasToken = (value, token) =>
  value !== undefined && value.split(",").some((t) => t.trim().toLowerCase() === token);

/** The same checks, in the gate's order; the room, or null when refused. */
function nodeDecide(req, store) {
  const match = ROUTE.exec(req.path);
  if (match === null) return null;
  const headers = req.headers;
  if (req.method !== "GET" || !hasToken(headers.upgrade, "websocket") || !hasToken(headers.connection, "upgrade")) return null;
  if (headers["sec-websocket-version"] !== "13") return null;
  const key = headers["sec-websocket-key"];
  if (key === undefined || key.length !== 24 || Buffer.from(key, "base64").length !== 16) return null;
  const origin = headers.origin;
  if (origin !== undefined && origin !== OWN_ORIGIN && !ALLOWED_ORIGINS.includes(origin)) return null;
  if (headers.cookie === undefined) return null;
  const value = cookie.parse(headers.cookie)["connect.sid"];
  if (value === undefined || value.slice(0, 2) !== "s:") return null;
  const sid = signature.unsign(value.slice(2), SECRET);
  if (sid === false || sid === "") return null;
  const stored = store.get(`sess:${sid}`);
  if (stored === undefined) return null;
  const session = JSON.parse(stored);
  if (session === null || typeof session !== "object" || Array.isArray(session)) return null;
  const expires = session.cookie?.expires;
  if (expires != null && Date.parse(expires) <= NOW_MS) return null;
  if (session.passport?.user == null) return null;
  const roles = session.user?.roles;
  if (!(Array.isArray(roles) ? roles.includes("chat") : typeof roles === "string" && roles.includes("chat"))) return null;
  if (session.user?.banned === true) return null;
  return decodeURIComponent(match[1]);
}

// ---- rounds ----

function nsPerOp(n, run) {
  const start = process.hrtime.bigint();
  run(n);
  return Number(process.hrtime.bigint() - start) / n;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const status = build();
const core = await import(MODULE);
const cookieHeader = core.cookie_header();
const store = new Map([[`sess:${SID}`, core.session_record()]]);
const req = {
  method: "GET",
  path: PATH,
  headers: {
    host: "gate.example.com",
    upgrade: "websocket",
    connection: "Upgrade",
    origin: "https://app.example.com",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    cookie: cookieHeader,
  },
};

if (core.decide_batch(PATH, 10) !== 10 || core.decide_once(PATH) !== true || nodeDecide(req, store) !== "lobby") {
  throw new Error("the fixture must be admitted to room lobby by both the core and the Node stack");
}

let sink = 0;
const runs = {
  "core, batch": (n) => {
    sink += core.decide_batch(PATH, n);
  },
  "core, per call": (n) => {
    for (let i = 0; i < n; i++) sink += core.decide_once(PATH) ? 1 : 0;
  },
  "Node stack": (n) => {
    for (let i = 0; i < n; i++) sink += nodeDecide(req, store) === null ? 0 : 1;
  },
  "raw HMAC (node:crypto)": (n) => {
    for (let i = 0; i < n; i++) sink += createHmac("sha256", SECRET).update(SID).digest().length;
  },
};
const names = Object.keys(runs);
for (const name of names) runs[name](PER_ROUND / 4); // warm-up: tiers up the JIT and the wasm
const figures = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const name of order) figures[name].push(nsPerOp(PER_ROUND, runs[name]));
}
if (sink === 0) throw new Error("nothing ran");

const us = (ns) => (ns / 1000).toFixed(2).padStart(6);
const med = Object.fromEntries(names.map((n) => [n, median(figures[n])]));
console.log(`== core in V8 vs Node's express stack (node ${process.version}, wasm ${status}; ${ROUNDS} interleaved rounds of ${PER_ROUND}, medians) ==`);
for (const name of names) {
  const range = `${us(Math.min(...figures[name]))}-${us(Math.max(...figures[name])).trim()}`;
  console.log(`${name.padEnd(24)} ${us(med[name])} us/op   (rounds ${range})`);
}
const node = med["Node stack"];
console.log(`Node stack / core, batch     ${(node / med["core, batch"]).toFixed(2)}x`);
console.log(`Node stack / core, per call  ${(node / med["core, per call"]).toFixed(2)}x`);
console.log(`anchor: ${ANCHOR}`);

// The core's own wasm, without the Worker layer (the crate without its `edge` feature), made
// as scripts/build.sh makes the Worker's: wasm-bindgen, then wasm-opt -Oz. What the handshake
// decision and the config cost in size, against the Worker's whole wasm.
const optimized = join(PKG, "core-oz.wasm");
execFileSync(join(ROOT, "node_modules", ".bin", "wasm-opt"), [
  join(PKG, "sessiongate_core_v8_bg.wasm"), "-Oz", "--strip-debug", "--strip-producers", "-o", optimized,
  "--enable-mutable-globals", "--enable-sign-ext", "--enable-nontrapping-float-to-int", "--enable-bulk-memory",
  "--enable-multivalue", "--enable-reference-types",
]);
const coreWasm = readFileSync(optimized);
rmSync(optimized);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`core wasm (the decision and the config, no Worker layer, wasm-opt -Oz): ${kb(coreWasm.length)} raw, ${kb(gzipSync(coreWasm, { level: 9 }).length)} gzipped   [issue 13: the Worker's whole wasm, target 150 KB gzipped]`);
