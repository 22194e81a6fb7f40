// Shared end-to-end harness: one `wrangler dev --env test` per test file, the same local KV
// seen from the test process through getPlatformProxy, signed express-session cookies, and a
// small WebSocket client that records frames and closes with timestamps.
//
//   const gate = await startGate("handshake");   // in before()
//   await gate.stop();                            // in after()
//
// wrangler's stdout and stderr go to tests/artifacts/e2e-<name>.log (the Worker logs one JSON
// line per decision there). Every wrangler started here is killed with its whole process group
// when the test process exits, even on a crash.

import { freePort } from "../support/net.mjs";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import WebSocket from "ws";
import { after, before } from "node:test";

const require = createRequire(import.meta.url);
const signature = require("cookie-signature");

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(ROOT, "tests/artifacts");
export const SECRET_NEW = "e2e new secret";
export const SECRET_OLD = "e2e old secret";
export const ADMIN_TOKEN = "e2e-admin-token";
export const STORE_TOKEN = "e2e-store-token";
export const COOKIE_NAME = "connect.sid";
export const KEY_PREFIX = "sess:";

const READY_TIMEOUT_MS = 120_000;

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** What a missing alarm-driven close most likely means (see tests/e2e/README.md). */
export const BUG_1 =
  "The Room's alarm did not close the socket. BUG-1 (fixed in c5d28b0) looked like this: Room::schedule() in " +
  "src/edge/room.rs passed an absolute Unix-ms time to storage().set_alarm(), which worker 0.8 reads as an offset " +
  "from now, so the alarm landed ~56 years ahead (no expiry close, no revalidation, no \"revalidation\" log line).";

/* ------------------------------------------------------------- process hygiene */

const liveGroups = new Set(); // pids of process-group leaders still running

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

process.on("exit", () => {
  for (const pid of liveGroups) killGroup(pid, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    for (const pid of liveGroups) killGroup(pid, "SIGKILL");
    process.exit(130);
  });
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/**
 * A tiny detached watchdog: if this test process dies without cleaning up (SIGKILL, a crash
 * the exit hook cannot see), it kills the given targets (a negative number is a process
 * group); it exits by itself once they are all gone.
 */
function startReaper(targets, tempDir = "") {
  const code = `
    const [dir, parent, ...targets] = [process.argv[1], ...process.argv.slice(2).map(Number)];
    const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === "EPERM"; } };
    setInterval(() => {
      const left = targets.filter(alive);
      if (left.length === 0) process.exit(0);
      if (!alive(parent)) {
        for (const t of left) { try { process.kill(t, "SIGKILL"); } catch {} }
        if (dir) setTimeout(() => { require("fs").rmSync(dir, { recursive: true, force: true }); process.exit(0); }, 1000);
        else process.exit(0);
      }
    }, 500);`;
  spawn(process.execPath, ["-e", code, tempDir, String(process.pid), ...targets.map(String)], { detached: true, stdio: "ignore" }).unref();
}

/** workerd processes that are children of this process (getPlatformProxy starts one; so does
 * each Miniflare of benches/support.mjs). Linux only. */
export function workerdChildren() {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && comm.startsWith("workerd")) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}


/* ------------------------------------------------------------------ the gate */

/**
 * Starts `wrangler dev --env test` on a free port with a fresh persistence directory and the
 * e2e secrets, waits until it answers HTTP, and opens the same KV through getPlatformProxy.
 */
export async function startGate(name, options = {}) {
  // `wrangler dev` runs scripts/build.sh and then reads build/. Another build running at the
  // same moment (another engineer, another test suite) can leave it reading a half-written
  // wasm ("WasmModuleObject::Compile(): unknown import kind"): wrangler then exits before
  // "Ready on". Such a start is retried; anything else fails at once.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGateOnce(name, attempt, options);
    } catch (e) {
      if (!e.exitedBeforeReady || attempt >= 3) throw e;
      process.stderr.write(`# e2e: wrangler exited before "Ready on" (attempt ${attempt}), retrying: see ${e.logFile}\n`);
      await sleep(3000);
    }
  }
}

/**
 * options.sessionSecrets: the SESSION_SECRETS value to give the Worker (default: the two test
 * secrets as a JSON array); options.storeToken: STORE_TOKEN (default STORE_TOKEN, null leaves
 * it unset); options.extraArgs: more `wrangler dev` arguments (e.g. `--var`; note that
 * `--var SESSIONGATE:...` replaces the table with a string, which the gate refuses);
 * options.env: the wrangler.toml environment (default "test"; "soak" for benches/soak.mjs; null:
 * the top level); options.config: another wrangler.toml, relative to the repository (the
 * benchmarks' JavaScript anchors, benches/anchor/), with the same KV namespace id so the same
 * session helpers seed it.
 */
async function startGateOnce(name, attempt, { sessionSecrets = JSON.stringify([SECRET_NEW, SECRET_OLD]), storeToken = STORE_TOKEN, extraArgs = [], env = "test", config = null } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const temp = mkdtempSync(join(tmpdir(), `sessiongate-e2e-${name}-`));
  const persistDir = join(temp, "state");
  const envFile = join(temp, "e2e.env");
  writeFileSync(envFile, `SESSION_SECRETS=${sessionSecrets}\nADMIN_TOKEN=${ADMIN_TOKEN}\n${storeToken ? `STORE_TOKEN=${storeToken}\n` : ""}`);
  const port = await freePort();
  const inspectorPort = await freePort();
  // One log per file and run, named after the run's process (the `node --test` runner that
  // started this file), since several runs may share the machine; logs of earlier runs whose
  // process is gone are removed.
  const run = process.ppid;
  for (const old of readdirSync(ARTIFACTS)) {
    const m = /^e2e-[\w-]+\.run(\d+)(?:\.attempt\d)?\.log$/.exec(old);
    if (m && Number(m[1]) !== run && !isAlive(Number(m[1]))) rmSync(join(ARTIFACTS, old), { force: true });
  }
  const logFile = join(ARTIFACTS, `e2e-${name}.run${run}${attempt === 1 ? "" : `.attempt${attempt}`}.log`);
  const log = createWriteStream(logFile);
  log.write(`# ${new Date().toISOString()} wrangler dev ${config ? `-c ${config} ` : ""}${env ? `--env ${env}` : ""} on 127.0.0.1:${port}, persist ${persistDir}\n`);

  const child = spawn(
    join(ROOT, "node_modules/.bin/wrangler"),
    [
      "dev",
      ...(config ? ["-c", config] : []),
      ...(env ? ["--env", env] : []),
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--inspector-port", String(inspectorPort),
      "--persist-to", persistDir,
      "--env-file", envFile,
      "--show-interactive-dev-session=false",
      ...extraArgs,
    ],
    {
      cwd: ROOT,
      detached: true, // its own process group: wrangler, the build, workerd
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
    },
  );
  liveGroups.add(child.pid);
  startReaper([-child.pid], temp);
  let output = "";
  const exited = new Promise((ok) => child.once("exit", (code, signal) => {
    liveGroups.delete(child.pid);
    ok({ code, signal });
  }));
  const onData = (chunk) => {
    output += chunk.toString();
    log.write(chunk);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);

  const base = `http://127.0.0.1:${port}`;
  const gate = {
    name,
    pid: child.pid, // wrangler's process-group leader: workerd runs in its group
    port,
    inspectorPort, // wrangler's inspector proxy: V8 CPU profiles of the Worker (benches/profile.mjs)
    base,
    wsBase: `ws://127.0.0.1:${port}`,
    origin: base, // the gate's own origin, always allowed
    persistDir,
    logFile,
    env: null,
    kv: null,
    dispose: null,
    output: () => output,
    /** The Worker's JSON log lines (one per decision, revocation, revalidation...). */
    logLines() {
      const lines = [];
      for (const raw of output.split("\n")) {
        const start = raw.indexOf('{"');
        if (start < 0 || !raw.includes('"sessiongate"')) continue;
        try {
          lines.push(JSON.parse(raw.slice(start)));
        } catch {
          /* not one of ours */
        }
      }
      return lines;
    },
    /** Waits for a Worker log line matching `pred` (log lines reach wrangler's output a moment after the response). */
    async waitLog(pred, { timeoutMs = 3000, what = "a log line" } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = gate.logLines().findLast(pred);
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`no ${what} in the Worker's log within ${timeoutMs} ms (see ${logFile})`);
        await sleep(50);
      }
    },
    /** Did wrangler reload the Worker after it was ready (src/ edited during the run)? */
    reloadedAfterReady() {
      const ready = output.indexOf("Ready on");
      return ready >= 0 && /changed, restarting/.test(output.slice(ready));
    },
    async stop() {
      if (gate.reloadedAfterReady()) {
        process.stderr.write(`# e2e: wrangler rebuilt and reloaded the Worker during the run (src/ changed); sockets open then were dropped. See ${logFile}\n`);
      }
      for (const conn of allConnections) conn.terminate();
      allConnections.clear();
      if (gate.dispose) {
        await gate.dispose().catch(() => {});
        gate.dispose = null;
      }
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child.pid, "SIGTERM");
        const done = await Promise.race([exited, sleep(5000).then(() => null)]);
        if (!done) {
          killGroup(child.pid, "SIGKILL");
          await Promise.race([exited, sleep(5000)]);
        }
      }
      // workerd children may outlive wrangler by a moment; the group is gone once this fails.
      killGroup(child.pid, "SIGKILL");
      liveGroups.delete(child.pid);
      await new Promise((ok) => log.end(ok));
      rmSync(temp, { recursive: true, force: true });
    },
    ...sessionHelpers(),
  };

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!/Ready on/.test(output)) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw Object.assign(new Error(`wrangler exited before "Ready on" (log: ${logFile}):\n${tail(output)}`), { exitedBeforeReady: true, logFile });
      }
      if (Date.now() > deadline) throw new Error(`no "Ready on" from wrangler after ${READY_TIMEOUT_MS} ms:\n${tail(output)}`);
      await sleep(100);
    }
    for (;;) {
      try {
        await httpRequest("GET", `${base}/demo/me`, { timeoutMs: 5000 });
        break;
      } catch (e) {
        if (child.exitCode !== null) throw new Error(`wrangler exited:\n${tail(output)}`);
        if (Date.now() > deadline) throw new Error(`gate never answered HTTP (${e.message}):\n${tail(output)}`);
        await sleep(200);
      }
    }
    const { getPlatformProxy } = await import("wrangler");
    const knownWorkerd = workerdChildren();
    // Quiet: its warnings (internal Durable Objects cannot be proxied) are expected here.
    const previousLevel = process.env.WRANGLER_LOG;
    process.env.WRANGLER_LOG = "error";
    let proxy;
    try {
      proxy = await getPlatformProxy({
        configPath: join(ROOT, config ?? "wrangler.toml"),
        environment: config ? undefined : "test",
        persist: { path: join(persistDir, "v3") },
      });
    } finally {
      if (previousLevel === undefined) delete process.env.WRANGLER_LOG;
      else process.env.WRANGLER_LOG = previousLevel;
    }
    const proxyWorkerd = workerdChildren().filter((pid) => !knownWorkerd.includes(pid));
    if (proxyWorkerd.length > 0) startReaper(proxyWorkerd);
    gate.env = proxy.env;
    gate.kv = proxy.env.SESSIONS;
    gate.dispose = proxy.dispose;
  } catch (e) {
    await gate.stop();
    throw e;
  }
  return gate;
}

function tail(text, lines = 60) {
  return text.split("\n").slice(-lines).join("\n");
}

/* ----------------------------------------------------- the gate in Miniflare */

/** The revocation index's default shard count (`index_shards`). */
export const INDEX_SHARDS = 16;

/** The index shard of a name, as `revocation::locate` (a key) and `room_shard` (a room entry,
 * `<binding>/<room>`) compute it: the first four bytes of its SHA-256, mod the shard count. */
export function indexShard(name, shards = INDEX_SHARDS) {
  return createHash("sha256").update(name).digest().readUInt32BE(0) % shards;
}

/** A key's id in the index (what shards store, and an app's room tags sockets with): the hex SHA-256. */
export function indexKeyId(key) {
  return createHash("sha256").update(key).digest("hex");
}

/**
 * The built gate (build/, or another build's `dir`) as a Miniflare worker definition: workerd
 * without wrangler's dev proxy, for what the proxy hides (the client's own handshake), a
 * second Worker beside it, or the benchmarks' BENCH_RUNTIME=miniflare. `bindings` holds
 * SESSIONGATE and the secrets; `durableObjects` adds to the gate's own.
 */
export function gateWorker({ bindings, durableObjects = {}, dir = join(ROOT, "build") }) {
  return {
    name: "sessiongate",
    modules: [
      { type: "ESModule", path: join(dir, "index.js") },
      { type: "CompiledWasm", path: join(dir, "index_bg.wasm") },
    ],
    modulesRoot: dir,
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["SESSIONS"],
    durableObjects: {
      ROOMS: { className: "Room", useSQLite: true },
      INDEX: { className: "RevocationIndex", useSQLite: true },
      ...durableObjects,
    },
    bindings,
  };
}

/** The built gate (build/, or `dir`) in Miniflare, started, its runtime output pushed to
 * `logs`; `options` adds to or overrides the worker definition (`kvNamespaces: []`). Miniflare
 * is loaded here, not by every test file that imports the harness. */
export async function gateInMiniflare({ dir, bindings, logs, ...options }) {
  const { Miniflare } = await import("miniflare");
  return new Miniflare({
    ...gateWorker({ dir, bindings }),
    ...options,
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) stream.on("data", (d) => logs.push(String(d)));
    },
  });
}

/** The built gate with `config` (and `SECRET_NEW`) in Miniflare, as `gateInMiniflare` starts
 * it, from a copy of build/ whose index.js runs `prelude` first: a test counts the runtime calls
 * it cares about by wrapping a method there with a `console.log` per call, and reads them from
 * `gate.logs`. Registers the `before` that starts it (then `gate.mf` and `gate.base` are set)
 * and the `after` that stops it and removes the copy, in the calling `describe`. */
export function countedGate(prelude, config) {
  const gate = { mf: undefined, base: undefined, logs: [] };
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sessiongate-counted-"));
    copyFileSync(join(ROOT, "build/index_bg.wasm"), join(dir, "index_bg.wasm"));
    writeFileSync(join(dir, "index.js"), prelude + readFileSync(join(ROOT, "build/index.js"), "utf8"));
    const bindings = { SESSIONGATE: config, SESSION_SECRETS: JSON.stringify([SECRET_NEW]) };
    gate.mf = await gateInMiniflare({ dir, bindings, logs: gate.logs });
    gate.base = await gate.mf.ready;
  });
  after(async () => {
    await gate.mf?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return gate;
}

/** Waits until no line has come to `logs` for 300 ms (workerd's output arrives after the
 * answers it belongs to), at most `ms`. */
export async function logsSettled(logs, ms = 3000) {
  const deadline = Date.now() + ms;
  let seen = -1;
  while (logs.length !== seen && Date.now() < deadline) {
    seen = logs.length;
    await sleep(300);
  }
}

/** A WebSocket upgrade to /ws/rooms/lobby of the gate `mf` serves at `base` (RFC 6455 section
 * 1.3's sample key). */
export function upgradeLobby(mf, base, cookie) {
  return mf.dispatchFetch(new URL("/ws/rooms/lobby", base), {
    headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...(cookie ? { cookie } : {}) },
  });
}

/* -------------------------------------------------------- sessions and cookies */

/** A fresh express-session style sid: 24 random bytes, base64url (32 characters). */
export function newSid() {
  return randomBytes(24).toString("base64url");
}

/** The cookie pair express-session sets: connect.sid=s%3A<sid>.<signature>. */
export function signedCookie(sid, secret = SECRET_NEW) {
  return `${COOKIE_NAME}=${encodeURIComponent("s:" + signature.sign(sid, secret))}`;
}

/**
 * A stored session like express-session writes it (JSON.stringify(req.session)).
 * `expires` is a Date, a Unix ms number, or null (browser-session cookie).
 */
export function sessionRecord({ user = "u-42", name = "Ada", roles = ["chat"], expires = Date.now() + 3_600_000, userExtra = {}, extra = {} } = {}) {
  const at = expires === null ? null : new Date(expires);
  return {
    cookie: {
      originalMaxAge: at === null ? null : 3_600_000,
      expires: at === null ? null : at.toISOString(),
      httpOnly: true,
      path: "/",
    },
    passport: { user },
    user: { name, roles, ...userExtra },
    ...extra,
  };
}

function sessionHelpers() {
  return {
    /** Writes a session record to KV under sess:<sid>. */
    async putSession(sid, record) {
      await this.kv.put(KEY_PREFIX + sid, typeof record === "string" ? record : JSON.stringify(record));
    },
    async getSession(sid) {
      return this.kv.get(KEY_PREFIX + sid);
    },
    async deleteSession(sid) {
      await this.kv.delete(KEY_PREFIX + sid);
    },
    /** A new session in KV: { sid, cookie, record }. */
    async newSession(fields = {}) {
      const sid = newSid();
      const record = sessionRecord(fields);
      await this.putSession(sid, record);
      return { sid, cookie: signedCookie(sid), record };
    },
    /** A request to /_sessiongate/sessions/<sid> with the store token (null: no header). */
    storeRequest(method, sid, { body, token = STORE_TOKEN, headers = {} } = {}) {
      const all = { ...headers };
      if (token !== null) all.authorization = `Bearer ${token}`;
      if (body !== undefined) all["content-type"] = "application/json";
      return httpRequest(method, `${this.base}/_sessiongate/sessions/${sid}`, { headers: all, body });
    },
    /** POST /_sessiongate/revoke. */
    revoke(body, { token = ADMIN_TOKEN } = {}) {
      const headers = { "content-type": "application/json" };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      return httpRequest("POST", `${this.base}/_sessiongate/revoke`, { headers, body: JSON.stringify(body) });
    },
  };
}

/* ------------------------------------------------------------------------ HTTP */

/** A plain HTTP request: { status, headers, body, at } (at = when the response completed). */
export function httpRequest(method, url, { headers = {}, body, timeoutMs = 15_000 } = {}) {
  return new Promise((ok, fail) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(), at: Date.now() }));
      res.on("error", fail);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer in ${timeoutMs} ms`)));
    req.on("error", fail);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/* ------------------------------------------------------------------- WebSockets */

const allConnections = new Set();

/** Closes (terminates) every socket opened so far; call in afterEach to empty the rooms. */
export async function closeAll() {
  const conns = [...allConnections];
  allConnections.clear();
  for (const conn of conns) conn.terminate();
}

/** An open socket: its frames in order, waiters, and its close with a timestamp. */
export class Conn {
  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.id = null;
    this.welcomeFrame = null;
    this.frames = []; // unconsumed parsed frames
    this.raw = []; // every text frame received, in order
    this.waiters = [];
    this.closeInfo = null; // the first of: the server's close frame, or the connection's end
    this.tcpClosedAt = null; // when the connection itself ended ('close' event)
    let settle;
    this.closed = new Promise((ok) => {
      settle = (code, reason, how) => {
        if (!this.closeInfo) {
          this.closeInfo = { code, reason: String(reason), at: Date.now(), how };
          for (const w of [...this.waiters]) w.check();
          ok(this.closeInfo);
        }
      };
    });
    // The server's close frame is when the server closed the socket. Under `wrangler dev`, a
    // close sent by a Durable Object from a fetch or alarm handler reaches the client, but the
    // connection itself is not ended afterwards (reproduced with a minimal JavaScript Durable
    // Object on the same workerd), so ws's 'close' event only comes at its 30 s close
    // timeout. ws 8 has no event for the close frame: on receiving one it records
    // _closeFrameReceived/_closeCode/_closeMessage and calls close(code, reason) on the socket
    // to answer it, which is observed here (ws is pinned by package-lock.json).
    const answer = ws.close.bind(ws);
    ws.close = (code, reason) => {
      if (ws._closeFrameReceived) settle(ws._closeCode, ws._closeMessage ?? "", "close frame");
      return answer(code, reason);
    };
    ws.on("close", (code, reason) => {
      this.tcpClosedAt = Date.now();
      allConnections.delete(this);
      settle(code, reason.toString(), "connection closed");
    });
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? `<binary ${data.length}>` : data.toString();
      this.raw.push(text);
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { type: "<not json>", text };
      }
      this.frames.push(frame);
      for (const w of [...this.waiters]) w.check();
    });
    ws.on("error", () => {}); // surfaces as a close
  }

  /** Open, and no close frame received. */
  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN && this.closeInfo === null;
  }

  send(frame) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The first unconsumed frame matching `pred` (consumed), waiting up to `timeoutMs`. */
  waitFor(pred, { timeoutMs = 5000, what = "a frame" } = {}) {
    return new Promise((ok, fail) => {
      const waiter = {
        check: () => {
          const i = this.frames.findIndex(pred);
          if (i >= 0) {
            const [frame] = this.frames.splice(i, 1);
            done();
            ok(frame);
          } else if (this.closeInfo) {
            done();
            fail(new Error(`${this.label()}: closed (${this.closeInfo.code} ${JSON.stringify(this.closeInfo.reason)}) while waiting for ${what}; unconsumed: ${JSON.stringify(this.frames)}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        fail(new Error(`${this.label()}: no ${what} within ${timeoutMs} ms; unconsumed: ${JSON.stringify(this.frames)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      this.waiters.push(waiter);
      waiter.check();
    });
  }

  /** The next frame in order, whatever it is. */
  next(opts = {}) {
    return this.waitFor(() => true, { what: "any frame", ...opts });
  }

  /** Waits for a frame of `type` (and optionally more fields: matches(frame)). */
  waitType(type, matches = () => true, opts = {}) {
    return this.waitFor((f) => f.type === type && matches(f), { what: `a ${type} frame`, ...opts });
  }

  /** Waits for the close; rejects if it does not come within `timeoutMs`. */
  async waitClose(timeoutMs = 5000) {
    const info = await Promise.race([this.closed, sleep(timeoutMs).then(() => null)]);
    if (!info) throw new Error(`${this.label()}: still open after ${timeoutMs} ms; frames: ${JSON.stringify(this.frames)}`);
    return info;
  }

  /** Round trip through the room: a direct message to itself. Proves the socket is open and served. */
  async ping(timeoutMs = 5000) {
    const token = `ping-${randomBytes(4).toString("hex")}`;
    this.send({ type: "send", to: this.id, data: { ping: token } });
    return this.waitFor((f) => f.type === "message" && f.data?.ping === token, { timeoutMs, what: `the echo of ${token}` });
  }

  terminate() {
    allConnections.delete(this);
    try {
      this.ws.terminate();
    } catch {
      /* already gone */
    }
  }

  label() {
    return `socket ${this.id ?? "?"} ${this.url}`;
  }
}

/**
 * Opens a WebSocket. Resolves to { conn } once open (admitted or, in close mode, about to be
 * closed), or { refused: { status, headers, body } } for an HTTP refusal.
 */
export function openSocket(url, { cookie, origin, headers = {}, timeoutMs = 15_000 } = {}) {
  const allHeaders = { ...headers };
  if (cookie !== undefined) allHeaders.cookie = cookie;
  if (origin !== undefined) allHeaders.origin = origin;
  return new Promise((ok, fail) => {
    const ws = new WebSocket(url, { headers: allHeaders, handshakeTimeout: timeoutMs });
    const conn = new Conn(ws, url); // listeners from the start: no frame is missed
    let settled = false;
    ws.once("open", () => {
      settled = true;
      allConnections.add(conn);
      ok({ conn });
    });
    ws.once("unexpected-response", (req, res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        settled = true;
        ok({ refused: { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() } });
        req.destroy();
      });
    });
    ws.once("error", (e) => {
      if (!settled) {
        settled = true;
        fail(new Error(`${url}: ${e.message}`));
      }
    });
  });
}

/** Opens a socket that must be admitted; returns the Conn with its welcome consumed. */
export async function admit(url, opts = {}) {
  const result = await openSocket(url, opts);
  if (result.refused) {
    throw new Error(`${url}: expected admission, got HTTP ${result.refused.status} ${JSON.stringify(result.refused.body)}`);
  }
  const { conn } = result;
  const welcome = await conn.waitFor(() => true, { what: "the welcome frame" });
  if (welcome.type !== "welcome") throw new Error(`${url}: first frame is not a welcome: ${JSON.stringify(welcome)}`);
  conn.id = welcome.id;
  conn.welcomeFrame = welcome;
  return conn;
}

/** Opens a socket that must be refused with an HTTP status; returns { status, headers, body }. */
export async function refuse(url, opts = {}) {
  const result = await openSocket(url, opts);
  if (result.conn) {
    const first = await Promise.race([result.conn.next({ timeoutMs: 2000 }).catch(() => null), result.conn.closed]);
    result.conn.terminate();
    throw new Error(`${url}: expected an HTTP refusal, but the socket opened (first event: ${JSON.stringify(first)})`);
  }
  return result.refused;
}

/** A unique room name for one test. */
export function roomName(prefix = "r") {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Reads a file from the repository (for messages). */
export function readRepoFile(path) {
  return readFileSync(join(ROOT, path), "utf8");
}
