// scripts/lean-shim.mjs: the class proxy hooks it puts in place of worker-build's keep what
// the shim is for (after a wasm trap the next call reinitializes the instance and objects
// made before are rebuilt) without a new function per call; the futures' task queue is
// scheduled by a promise, still as a microtask; and the built Worker has both.
//
// The fixture is the part of worker-build's shim that the script replaces and relies on, as
// esbuild bundles it (the same `var` declarations); the reinitialization is faked by counting.

import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

const FIXTURE = `
export var resets = { count: 0 };
var initState = { criticalError: false, instanceId: 0 };
function checkReinitialize() {
  if (initState.criticalError) {
    resets.count++;
    initState.criticalError = false;
    initState.instanceId++;
  }
}
function handleMaybeCritical(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    initState.criticalError = true;
  }
}
// The test's stand-in for a trap in another request (what handleMaybeCritical records).
export function trapElsewhere() { initState.criticalError = true; }
var instanceProxyHooks = {
  set: (target, prop, value, receiver) => Reflect.set(target.instance, prop, value, receiver),
  has: (target, prop) => Reflect.has(target.instance, prop),
};
var classProxyHooks = {
  construct() {
    throw new Error("worker-build's hooks: replaced by the script");
  }
};
var shim_default = new Proxy(Entrypoint, classProxyHooks);
var wasmImports = {
    __wbg_queueMicrotask_1e8503a8a690f0a3: function(arg0) {
      const ret = arg0.queueMicrotask;
      return ret;
    },
    __wbg_queueMicrotask_4a1a4d8dd332373b: function(arg0) {
      queueMicrotask(arg0);
    },
};
export { wasmImports };
`;

// The entrypoint as worker-build declares it (its fetch hands every request to the wasm's),
// with the wasm's exports that src/edge/entry.js calls, each passing to a fake in `wasm`.
const ENTRYPOINT = `export var wasm = {
  key: () => undefined,
  admit: () => { throw new Error("step 2 not expected"); },
  indexAdd: () => { throw new Error("no index add expected"); },
  indexFailed: () => { throw new Error("no index failure expected"); },
  fetch: (req) => "answer to " + req,
  // Called at load with the runtime's env (the test's globalThis.loadTimeEnv): it records it,
  // and traps when told to.
  compileSettings: (env) => {
    globalThis.compiledAtLoad = env;
    if (env.trapAtLoad) throw new WebAssembly.RuntimeError("unreachable");
  },
};
function handshakeKey(request, env) { return wasm.key(request, env); }
function handshakeAdmit(request, env, read, stored, failure) { return wasm.admit(request, env, read, stored, failure); }
function appIndexAdd(env, registration, answer) { return wasm.indexAdd(env, registration, answer); }
function appIndexFailed(registration, why) { return wasm.indexFailed(registration, why); }
function compileSettings(env) { return wasm.compileSettings(env); }
function fetch(req, env, ctx) { return wasm.fetch(req, env, ctx); }
var Entrypoint = class { constructor(env, ctx) { this.env = env; this.ctx = ctx; } };
Entrypoint.prototype.fetch = function fetch2(arg) {
  return fetch.call(this, arg, this.env, this.ctx);
};
Entrypoint.prototype.appIndexAdd = appIndexAdd;
Entrypoint.prototype.appIndexFailed = appIndexFailed;
Entrypoint.prototype.compileSettings = compileSettings;
Entrypoint.prototype.handshakeAdmit = handshakeAdmit;
Entrypoint.prototype.handshakeKey = handshakeKey;
`;

class Room {
  static made = 0;
  constructor(name) {
    this.name = name;
    this.generation = ++Room.made;
  }
  greet(who) {
    return `${this.name} greets ${who} (object ${this.generation})`;
  }
  async later() {
    return this.generation;
  }
  trap() {
    throw new WebAssembly.RuntimeError("unreachable");
  }
}

/** Temporary directories of the shimmed fixtures, removed once this file's tests ran (a module
 * imported from one stays loaded). */
const tempDirs = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "lean-shim-"));
  tempDirs.push(dir);
  return dir;
}

/** The runtime's `DurableObject` base class, as the shimmed fixtures see it. */
globalThis.RuntimeDurableObject = class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
};

async function shimmed() {
  const dir = tempDir();
  const file = join(dir, "index.mjs");
  writeFileSync(file, `${ENTRYPOINT}\n${FIXTURE}\nexport const wrap = (cls) => new Proxy(cls, classProxyHooks);\nexport { shim_default };\n`);
  execFileSync(process.execPath, [join(ROOT, "scripts/lean-shim.mjs"), file], { stdio: "pipe" });
  // Node has no `cloudflare:workers`: the runtime's env at load is the test's, and its
  // DurableObject a class that keeps what the runtime hands a Durable Object.
  const loadTimeImport = 'import * as loadTimeWorkers from "cloudflare:workers";';
  const source = readFileSync(file, "utf8");
  assert.equal(source.split(loadTimeImport).length, 2, "the shim imports the runtime's module once, for the config's compile at load");
  writeFileSync(file, source.replace(loadTimeImport, "const loadTimeWorkers = { env: globalThis.loadTimeEnv, DurableObject: globalThis.RuntimeDurableObject };"));
  return import(pathToFileURL(file).href);
}

describe("lean-shim", () => {
  it("guards each method once and passes calls, results and this through", async () => {
    const { wrap } = await shimmed();
    Room.made = 0;
    const room = new (wrap(Room))("lobby");
    assert.equal(room.greet("ada"), "lobby greets ada (object 1)");
    assert.equal(room.greet, room.greet, "the same guarded function each time, not a new one per call");
    assert.equal(await room.later(), 1);
    assert.equal(room.name, "lobby");
  });

  it("after a wasm trap: the next call reinitializes and the object is made again", async () => {
    const { wrap, resets } = await shimmed();
    Room.made = 0;
    const room = new (wrap(Room))("lobby");
    assert.throws(() => room.trap(), WebAssembly.RuntimeError);
    assert.equal(resets.count, 0, "nothing is reset until the next call");
    assert.equal(room.greet("ada"), "lobby greets ada (object 2)", "rebuilt with its constructor's arguments");
    assert.equal(resets.count, 1);
    assert.equal(room.greet("bo"), "lobby greets bo (object 2)", "once");
  });

  it("an ordinary error is passed on and resets nothing", async () => {
    const { wrap, resets } = await shimmed();
    class Fails {
      run() {
        throw new TypeError("bad input");
      }
    }
    const o = new (wrap(Fails))();
    assert.throws(() => o.run(), TypeError);
    assert.throws(() => o.run(), TypeError);
    assert.equal(resets.count, 0);
  });

  it("the entrypoint's methods are guarded in place, with the same recovery", async () => {
    const { shim_default: Entrypoint, wasm, resets } = await shimmed();
    const a = new Entrypoint({}, {});
    const b = new Entrypoint({}, {});
    assert.equal(await a.fetch("q"), "answer to q");
    assert.equal(a.fetch, b.fetch, "one guarded method for every request's object");
    wasm.key = () => {
      throw new WebAssembly.RuntimeError("unreachable");
    };
    await assert.rejects(a.fetch("q"), WebAssembly.RuntimeError);
    wasm.key = () => undefined;
    wasm.fetch = (req) => "again " + req;
    assert.equal(await new Entrypoint({}, {}).fetch("r"), "again r");
    assert.equal(resets.count, 1, "the next request reinitialized first");
  });

  it("the entry's steps are not entrypoint methods: no Worker bound to the gate can call them over RPC", async () => {
    const { shim_default: Entrypoint } = await shimmed();
    for (const name of ["handshakeKey", "handshakeAdmit", "appIndexAdd", "appIndexFailed", "compileSettings"]) {
      assert.equal(Entrypoint.prototype[name], undefined, name);
    }
    assert.deepEqual(Object.getOwnPropertyNames(Entrypoint.prototype).sort(), ["constructor", "fetch"]);
  });

  it("exports the revocation index's shards as a class of the runtime's DurableObject, so that rooms can call `add` on a stub (RPC)", async () => {
    const { RevocationIndex } = await shimmed();
    assert.ok(RevocationIndex.prototype instanceof globalThis.RuntimeDurableObject, "extends the runtime's DurableObject");
    assert.deepEqual(Object.getOwnPropertyNames(RevocationIndex.prototype).sort(), ["add", "alarm", "constructor", "fetch"]);
    const data = new Map();
    const storage = {
      put: async (entries) => void Object.entries(entries).forEach(([k, v]) => data.set(k, v)),
      list: async ({ prefix }) => new Map([...data].filter(([k]) => k.startsWith(prefix)).sort()),
      getAlarm: async () => null,
      setAlarm: async () => {},
    };
    const shard = new RevocationIndex({ storage }, {});
    const until = Date.now() + 60_000;
    assert.equal(await shard.add(JSON.stringify({ rooms: ["ROOMS/room:lobby"], ids: ["k1"], until })), undefined);
    assert.deepEqual([...data], [[`k:k1:ROOMS/room:lobby`, until]], "add stored the entry");
    const listed = await shard.fetch(new Request("https://index/rooms", { method: "POST", body: "k1" }));
    assert.deepEqual(await listed.json(), ["ROOMS/room:lobby"], "fetch reaches the same shard");
    await assert.rejects(shard.add("not json"), /index add: bad entries/);
  });

  it("compiles the config at load with the runtime's env; without one, or when that traps, the module still loads", async () => {
    globalThis.loadTimeEnv = { SESSIONGATE: { routes: [] } };
    globalThis.compiledAtLoad = undefined;
    const { shim_default: Entrypoint } = await shimmed();
    assert.equal(globalThis.compiledAtLoad, globalThis.loadTimeEnv, "compileSettings got the load-time env");
    assert.equal(typeof Entrypoint, "function");

    globalThis.loadTimeEnv = undefined;
    globalThis.compiledAtLoad = "not called";
    await shimmed();
    assert.equal(globalThis.compiledAtLoad, "not called", "no env at load: nothing compiled");

    globalThis.loadTimeEnv = { trapAtLoad: true };
    // (In the built shim, wasm-bindgen's own guard around compileSettings marks the instance,
    // and the next call into the wasm reinitializes it.)
    const { shim_default: Trapped, wasm } = await shimmed();
    assert.equal(globalThis.compiledAtLoad, globalThis.loadTimeEnv);
    wasm.key = () => undefined;
    assert.equal(await new Trapped({}, {}).fetch("r"), "answer to r", "the module loaded and serves");
    delete globalThis.loadTimeEnv;
    delete globalThis.compiledAtLoad;
  });

  it("the entry: a request step 1 does not take goes to the Rust fetch, with env and ctx", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    const env = { SESSIONS: { get: () => assert.fail("no session read") } };
    const ctx = { waitUntil() {} };
    let seen;
    wasm.fetch = (...args) => (seen = args, "rust");
    assert.equal(await new Entrypoint(env, ctx).fetch("req"), "rust");
    assert.deepEqual(seen, ["req", env, ctx]);
  });

  it("the entry: step 1's refusal is the answer, and no session is read", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    const refusal = { status: 403 };
    wasm.key = () => refusal;
    const env = { SESSIONS: { get: () => assert.fail("no session read") } };
    assert.equal(await new Entrypoint(env, {}).fetch("req"), refusal);
  });

  it("the entry: step 1's read is made (its namespace, key and options), step 2 gets step 1's request and the value, the built-in Room the request", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    const reads = [];
    const sessions = { get: async (...args) => (reads.push(args), '{"cookie":{}}') };
    const env = { SESSIONS: { get: () => assert.fail("the read is step 1's namespace, not one the entry looks up") } };
    const stub = { fetch: async (request) => ({ status: 101, request }) };
    let step2;
    const read = { readBy: "step 1" };
    wasm.key = (request, e) => (assert.equal(e, env), [sessions, "sess:abc", { cacheTtl: 60 }, read]);
    wasm.admit = (...args) => (step2 = args, [stub, "to the room"]);
    assert.deepEqual(await new Entrypoint(env, {}).fetch("req"), { status: 101, request: "to the room" });
    assert.deepEqual(reads, [["sess:abc", { cacheTtl: 60 }]]);
    assert.deepEqual(step2, ["req", env, read, '{"cookie":{}}', undefined]);
    assert.equal(step2[2], read, "step 1's request itself, not a copy");
    wasm.key = () => [sessions, "sess:none", undefined, read];
    sessions.get = async (...args) => (reads.push(args), null);
    await new Entrypoint(env, {}).fetch("req");
    assert.deepEqual(reads[1], ["sess:none", undefined], "no options without a cacheTtl");
    assert.deepEqual(step2, ["req", env, read, null, undefined], "no session: null, no failure");
  });

  it("the entry: a trap elsewhere during the read reinitializes before step 2, which then reads the request itself", async () => {
    const { shim_default: Entrypoint, wasm, trapElsewhere, resets } = await shimmed();
    const env = {};
    let step2;
    const read = { readBy: "step 1" };
    wasm.key = () => [{ get: async () => (trapElsewhere(), '{"cookie":{}}') }, "sess:abc", undefined, read];
    wasm.admit = (...args) => (step2 = args, { status: 403 });
    assert.deepEqual(await new Entrypoint(env, {}).fetch("req"), { status: 403 });
    assert.equal(resets.count, 1, "reinitialized before step 2, not left to the next request");
    assert.deepEqual(step2, ["req", env, undefined, '{"cookie":{}}', undefined], "step 1's reading went with the old instance");
    // No trap meanwhile: step 1's reading, and no reinitialization.
    wasm.key = () => [{ get: async () => '{"cookie":{}}' }, "sess:abc", undefined, read];
    await new Entrypoint(env, {}).fetch("req");
    assert.equal(step2[2], read);
    assert.equal(resets.count, 1);
  });

  it("the entry: a read that fails, or a binding step 1 could not open, is step 2's failure (which refuses)", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    let step2;
    const env = {};
    wasm.admit = (...args) => (step2 = args, { status: 503 });
    const failing = { get: async () => { throw new Error("KV GET failed: 414"); } };
    const read = { readBy: "step 1" };
    wasm.key = () => [failing, "sess:abc", undefined, read];
    assert.deepEqual(await new Entrypoint(env, {}).fetch("req"), { status: 503 });
    assert.deepEqual(step2, ["req", env, read, null, "KV GET failed: 414"]);
    wasm.key = () => ["KV binding SESSIONS is not bound", "sess:abc", undefined, read];
    assert.deepEqual(await new Entrypoint(env, {}).fetch("req"), { status: 503 });
    assert.deepEqual(step2, ["req", env, read, null, "KV binding SESSIONS is not bound"]);
  });

  it("the entry: an app's room gets the forwarded upgrade; once it took the socket, the socket's keys go to the index before the answer", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    const env = {};
    const registration = { room: "r" };
    const order = [];
    const took = { status: 101 };
    const room = { fetch: async (req) => (order.push(["room", req]), took) };
    const index = { add: async (entries) => void order.push(["index", entries]) };
    wasm.key = () => [{ get: async () => "{}" }, "sess:abc", undefined];
    wasm.admit = () => [room, "forwarded", registration];
    wasm.indexAdd = (e, r, answer) => (assert.equal(e, env), assert.equal(r, registration), assert.equal(answer, took), [index, "entries"]);
    assert.equal(await new Entrypoint(env, {}).fetch("req"), took);
    assert.deepEqual(order, [["room", "forwarded"], ["index", "entries"]]);
    // Not taken: no index request.
    const refused = { status: 403 };
    room.fetch = async () => refused;
    wasm.indexAdd = () => assert.fail("no listing for a socket the room refused");
    assert.equal(await new Entrypoint(env, {}).fetch("req"), refused);
  });

  it("the entry: a failed index listing is logged through the wasm and the socket is still the client's; a trap is not swallowed", async () => {
    const { shim_default: Entrypoint, wasm } = await shimmed();
    const registration = { room: "r" };
    const took = { status: 101 };
    const failures = [];
    wasm.key = () => [{ get: async () => "{}" }, "sess:abc", undefined];
    wasm.admit = () => [{ fetch: async () => took }, "forwarded", registration];
    wasm.indexFailed = (r, why) => failures.push([r, why]);
    wasm.indexAdd = () => [{ add: async () => { throw new Error("index add: bad entries"); } }, "entries"];
    assert.equal(await new Entrypoint({}, {}).fetch("req"), took);
    wasm.indexAdd = () => [{ add: async () => { throw new Error("shard unreachable"); } }, "entries"];
    assert.equal(await new Entrypoint({}, {}).fetch("req"), took);
    wasm.indexAdd = () => { throw new Error("no INDEX binding"); };
    assert.equal(await new Entrypoint({}, {}).fetch("req"), took);
    assert.deepEqual(failures, [[registration, "index add: bad entries"], [registration, "shard unreachable"], [registration, "no INDEX binding"]]);
    wasm.indexAdd = () => { throw new WebAssembly.RuntimeError("unreachable"); };
    await assert.rejects(new Entrypoint({}, {}).fetch("req"), WebAssembly.RuntimeError);
  });

  it("the entry: a trap elsewhere while an app's room takes the socket: no listing (its registration went with the old instance), the socket is the client's", async () => {
    const { shim_default: Entrypoint, wasm, trapElsewhere, resets } = await shimmed();
    const registration = { room: "r" };
    const took = { status: 101 };
    const failures = [];
    wasm.key = () => [{ get: async () => "{}" }, "sess:abc", undefined, {}];
    wasm.admit = () => [{ fetch: async () => (trapElsewhere(), took) }, "forwarded", registration];
    wasm.indexAdd = () => assert.fail("no listing from a registration of the old instance");
    wasm.indexFailed = (r, why) => failures.push([r, why]);
    assert.equal(await new Entrypoint({}, {}).fetch("req"), took);
    assert.equal(resets.count, 1);
    // A trap while the index is asked: the failure is not logged through the old registration.
    wasm.admit = () => [{ fetch: async () => took }, "forwarded", registration];
    wasm.indexAdd = () => [{ add: async () => { trapElsewhere(); throw new Error("index add: bad entries"); } }, "entries"];
    assert.equal(await new Entrypoint({}, {}).fetch("req"), took);
    assert.equal(resets.count, 2);
    assert.deepEqual(failures, []);
  });

  it("queues the futures' task queue as a microtask of a resolved promise, the getter left alone", async () => {
    const { wasmImports } = await shimmed();
    const source = String(wasmImports.__wbg_queueMicrotask_4a1a4d8dd332373b);
    assert.match(source, /Promise\.resolve\(\)\.then\(arg0\)/);
    assert.doesNotMatch(source, /(^|[^.])queueMicrotask\(/);
    const order = [];
    wasmImports.__wbg_queueMicrotask_4a1a4d8dd332373b(() => order.push("queued"));
    setTimeout(() => order.push("timer"), 0);
    order.push("sync");
    await new Promise((ok) => setTimeout(ok, 5));
    assert.deepEqual(order, ["sync", "queued", "timer"], "after the current code, before any task");
    assert.equal(wasmImports.__wbg_queueMicrotask_1e8503a8a690f0a3({ queueMicrotask: 7 }), 7);
  });

  it("refuses glue without the one queueMicrotask call it replaces", () => {
    const dir = tempDir();
    const file = join(dir, "index.mjs");
    writeFileSync(file, `${ENTRYPOINT}\n${FIXTURE.replace("queueMicrotask(arg0);", "other(arg0);")}`);
    assert.throws(() => execFileSync(process.execPath, [join(ROOT, "scripts/lean-shim.mjs"), file], { stdio: "pipe" }), (e) => e.status === 1 && /queueMicrotask/.test(String(e.stderr)));
  });

  it("refuses a shim it does not recognize, rather than half-replace it", () => {
    const dir = tempDir();
    const file = join(dir, "index.mjs");
    writeFileSync(file, FIXTURE.replace("var classProxyHooks = {", "var otherHooks = {"));
    assert.throws(() => execFileSync(process.execPath, [join(ROOT, "scripts/lean-shim.mjs"), file], { stdio: "pipe" }), (e) => e.status === 1 && /exactly once/.test(String(e.stderr)));
    assert.equal(readFileSync(file, "utf8").includes("otherHooks"), true, "left as it was");
  });

  it("refuses a shim whose entrypoint fetch is not worker-build's, rather than keep it", () => {
    const dir = tempDir();
    const file = join(dir, "index.mjs");
    writeFileSync(file, `${ENTRYPOINT.replace("fetch.call(this, arg", "other.call(this, arg")}\n${FIXTURE}`);
    assert.throws(() => execFileSync(process.execPath, [join(ROOT, "scripts/lean-shim.mjs"), file], { stdio: "pipe" }), (e) => e.status === 1 && /entrypoint fetch/.test(String(e.stderr)));
  });

  for (const dir of ["build", "build/demo"]) it(`the built Worker (${dir}/) carries the lean hooks (after scripts/build.sh)`, () => {
    const built = readFileSync(join(ROOT, dir, "index.js"), "utf8");
    assert.match(built, /WeakMap/, "build/index.js: the guarded methods' cache");
    assert.doesNotMatch(built, /async apply\(/, "build/index.js: worker-build's per-call proxies");
    assert.match(built, /__wbg_queueMicrotask_\w+:function\(\w\)\{Promise\.resolve\(\)\.then\(\w\)\}/, "build/index.js: the task queue scheduled by a promise");
    assert.match(built, /\.get\(\w+,\w+\)\}catch\(\w+\)\{\w+=\w+ instanceof Error\?\w+\.message:String\(\w+\)\}/, "build/index.js: src/edge/entry.js as the entrypoint's fetch");
    assert.doesNotMatch(built, /prototype\.(handshakeKey|handshakeAdmit|appIndexAdd|appIndexFailed|compileSettings)=/, "build/index.js: the entry's steps as entrypoint (RPC) methods");
    assert.match(built, /import\*as (\w+) from"cloudflare:workers";/, "build/index.js: the runtime's module, for the env at load");
    assert.match(built, /(\w+)=\w+\.env;if\(typeof \1=="object"&&\1!==null\)try\{\w+\(\1\)\}catch\{\}/, "build/index.js: the config compiled at load");
    const shards = /export\{[^}]*\b(\w+) as RevocationIndex\b/.exec(built);
    assert.ok(shards, "build/index.js: the revocation index's shards exported");
    assert.match(built, new RegExp(`class ${shards[1]} extends (\\w+)\\.DurableObject\\{`), "build/index.js: the exported shards' class extends the runtime's DurableObject (rooms call its add over RPC)");
    assert.match(built, /"bad find: shard count"/, "build/index.js: src/edge/revocation_index.js as the shards' class");
  });
});
