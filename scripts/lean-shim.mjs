// Part of scripts/build.sh: replaces the class proxy hooks of worker-build's JavaScript shim in
// build/index.js (built unminified) with ones that allocate nothing per call.
//
// worker-build 0.8.7 wraps every exported class (the Worker's entrypoint, Room) so that after
// a wasm trap ("unreachable", a Rust panic) the next call reinitializes the wasm instance and
// rebuilds the objects made before it. Its hooks create a new Proxy for every method looked up
// (each request, each socket event) and, for async functions, an extra async wrapper.
// Measured with benches/vs_js.mjs (GATE_OTHER_BUILD, the same build without the hooks at
// all): 13% of the handshake rate, 13% of the Worker's CPU.
// These hooks keep what the shim is for (the reinitialization and the rebuilt objects) with
// one guarded function per method, made once and shared by every instance (and no proxy at all
// for the entrypoint, which workerd makes per request): measured the same way against
// worker-build's own hooks, +12% rate, -7% CPU (tests/build/ checks the recovery).
//
// It also schedules wasm-bindgen-futures' task queue with a resolved promise's `then` instead
// of workerd's `queueMicrotask` (both run the queue as a microtask of the same turn): workerd's
// is an API call of its own around V8's queue, which a profile of fresh handshakes put at about
// 7% of the isolate's busy time (its glue and the runtime's `queueMicrotask` together); the
// promise is V8's own path. Measured with benches/vs_js.mjs under Miniflare (GATE_OTHER_BUILD,
// 7 rounds): -5% Worker CPU a handshake (0.76-1.20 per round), the same rate.
//
//   node scripts/lean-shim.mjs build/index.js
//
// Last, it adds the revocation index's shards, a Durable Object class in JavaScript.
//
// The text it replaces is worker-build's (the version scripts/setup.sh pins); if it is not
// found exactly once the build fails here rather than ship the shim half-replaced.

import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
const source = readFileSync(file, "utf8");

const start = "var classProxyHooks = {";
const end = "var shim_default = new Proxy(Entrypoint, classProxyHooks);";
const once = (needle) => source.indexOf(needle) >= 0 && source.indexOf(needle) === source.lastIndexOf(needle);
for (const needle of [start, end, "function checkReinitialize()", "function handleMaybeCritical(", "var instanceProxyHooks = {"]) {
  if (!once(needle)) {
    console.error(`lean-shim: ${file} does not hold "${needle}" exactly once (has worker-build's shim changed?)`);
    process.exit(1);
  }
}
if (source.indexOf(start) > source.indexOf(end)) {
  console.error(`lean-shim: ${file}: the class proxy hooks are not where expected`);
  process.exit(1);
}

const hooks = `// scripts/lean-shim.mjs: worker-build's class proxy hooks, without an allocation per call.
var guardedMethods = new WeakMap();
function guarded(method) {
  let guard = guardedMethods.get(method);
  if (guard === undefined) {
    guard = method.constructor === Function
      ? function (...args) {
          checkReinitialize();
          try {
            return method.apply(this, args);
          } catch (e) {
            handleMaybeCritical(e);
            throw e;
          }
        }
      : async function (...args) {
          checkReinitialize();
          try {
            return await method.apply(this, args);
          } catch (e) {
            handleMaybeCritical(e);
            throw e;
          }
        };
    guardedMethods.set(method, guard);
  }
  return guard;
}
var guardedInstanceHooks = {
  ...instanceProxyHooks,
  get(target, prop, receiver) {
    if (target.instanceId !== initState.instanceId) {
      target.instance = Reflect.construct(target.ctor, target.args, target.newTarget);
      target.instanceId = initState.instanceId;
    }
    const value = Reflect.get(target.instance, prop, receiver);
    return typeof value === "function" ? guarded(value) : value;
  }
};
var classProxyHooks = {
  construct(ctor, args, newTarget) {
    try {
      checkReinitialize();
      const target = { instance: Reflect.construct(ctor, args, newTarget), instanceId: initState.instanceId, ctor, args, newTarget };
      return new Proxy(target, guardedInstanceHooks);
    } catch (e) {
      initState.criticalError = true;
      throw e;
    }
  }
};
`;

// The entrypoint holds no wasm state (its methods call the module's exports), so nothing of it
// needs rebuilding after a reinitialization: its methods are guarded in place, and workerd,
// which makes one per request, makes a plain object.
const entrypoint = `// scripts/lean-shim.mjs: the entrypoint's methods guarded once, no proxy per request.
for (const name of Object.getOwnPropertyNames(Entrypoint.prototype)) {
  // Read as a descriptor: a getter is left alone, not called on the prototype.
  const method = Object.getOwnPropertyDescriptor(Entrypoint.prototype, name).value;
  if (name !== "constructor" && typeof method === "function") Entrypoint.prototype[name] = guarded(method);
}
var shim_default = Entrypoint;`;

let lean = source.slice(0, source.indexOf(start)) + hooks + entrypoint + source.slice(source.indexOf(end) + end.length);

// The entrypoint's fetch: src/edge/entry.js in place of worker-build's, which hands every
// request to the wasm's `fetch`. The entry calls the handshake's exports by their names in the
// shim.
const workerBuildFetch = /Entrypoint\.prototype\.fetch = function fetch2\(arg\) \{\s*return fetch\.call\(this, arg, this\.env, this\.ctx\);\s*\};/g;
if ((lean.match(workerBuildFetch) ?? []).length !== 1) {
  console.error(`lean-shim: ${file} does not hold worker-build's entrypoint fetch exactly once (has worker-build's shim changed?)`);
  process.exit(1);
}
// The wasm's functions the shim calls itself: the entry's, and compileSettings at load (below).
const entryCalls = ["handshakeKey", "handshakeAdmit", "appIndexAdd", "appIndexFailed", "compileSettings"];
for (const name of entryCalls.map((f) => `function ${f}(`)) {
  if (!once(name)) {
    console.error(`lean-shim: ${file} does not hold "${name}" exactly once (the shim calls it)`);
    process.exit(1);
  }
}
const entryFetch = readFileSync(new URL("../src/edge/entry.js", import.meta.url), "utf8");
lean = lean.replace(workerBuildFetch, () => entryFetch);
// worker-build makes every function the wasm exports a method of the entrypoint, and so an RPC
// method any Worker bound to the gate may call (an app's room, through its GATE binding). The
// handshake's steps are the entry's own: called with an `env` of the caller's making, step 2
// would hand out a Room's stub for a session the caller wrote, and compileSettings would keep a
// config of the caller's making for the isolate. They stay functions of the shim.
for (const name of entryCalls) {
  const method = `Entrypoint.prototype.${name} = ${name};\n`;
  if (!once(method)) {
    console.error(`lean-shim: ${file} does not hold "${method.trim()}" exactly once (has worker-build's shim changed?)`);
    process.exit(1);
  }
  lean = lean.replace(method, "");
}

// wasm-bindgen's import that queues the task queue's run (`queueMicrotask(closure)`); the other
// import of that name is the getter `arg0.queueMicrotask` it uses to see whether one exists.
const microtask = /(__wbg_queueMicrotask_\w+: function\(arg0\) \{\s*)queueMicrotask\(arg0\);/g;
const calls = lean.match(microtask) ?? [];
if (calls.length !== 1) {
  console.error(`lean-shim: ${file} has ${calls.length} queueMicrotask(arg0) imports, not 1 (has wasm-bindgen's glue changed?)`);
  process.exit(1);
}
lean = lean.replace(microtask, "$1Promise.resolve().then(arg0);");

// The config compiled while the isolate loads (src/edge/gate.rs, compileSettings), with the
// runtime's `env` as a module sees it at its top level: the platform loads an isolate during
// the client's TLS handshake, so the first request does not wait for that compile (about 70 KB
// of the wasm's code, which V8 compiles as it first runs). Nothing thrown here may keep the
// module from loading: a trap marks the instance for reinitialization, as a request's does,
// and the first request then compiles the config itself. A namespace import, so that a runtime
// without the importable env (before 2025-03) still links the module and skips this.
lean += `
import * as loadTimeWorkers from "cloudflare:workers";
const loadTimeEnv = loadTimeWorkers.env;
if (typeof loadTimeEnv === "object" && loadTimeEnv !== null) {
  try {
    compileSettings(loadTimeEnv);
  } catch {}
}
`;

// The revocation index's shards, a Durable Object class in JavaScript (src/edge/revocation_index.js,
// an ES module so that tests import it as it is): its declarations in a scope of their own,
// where no name of the shim's can clash, and the class exported beside the wasm's classes.
if (/\bRevocationIndex\b/.test(lean)) {
  console.error(`lean-shim: ${file} already declares RevocationIndex (is it a Rust Durable Object again?)`);
  process.exit(1);
}
const indexModule = readFileSync(new URL("../src/edge/revocation_index.js", import.meta.url), "utf8");
const indexBody = indexModule.replace(/^export (const|class|function) /gm, "$1 ");
if (/^\s*(export|import)\b/m.test(indexBody)) {
  console.error("lean-shim: src/edge/revocation_index.js: only `export const|class|function` declarations can be inlined");
  process.exit(1);
}
// workerd takes method calls on a Durable Object's stub (RPC) only for a class that extends
// its DurableObject, which Node's tests of the module cannot import: the class exported here
// extends it and hands each event to the module's class.
lean += `
var RevocationIndex = (() => {\n${indexBody}\nreturn RevocationIndex;\n})();
class RevocationIndexObject extends loadTimeWorkers.DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.index = new RevocationIndex(ctx, env);
  }
  fetch(request) {
    return this.index.fetch(request);
  }
  alarm() {
    return this.index.alarm();
  }
  add(body) {
    return this.index.add(body);
  }
}
export { RevocationIndexObject as RevocationIndex };
`;

writeFileSync(file, lean);
console.log("lean-shim: class proxy hooks replaced, the entry's fetch in place (its steps no entrypoint methods), microtasks queued by a promise, the revocation index's shards added, the config compiled at load");
