// The Worker's fetch. scripts/lean-shim.mjs puts it in place of worker-build's, inside the
// shim, where `handshakeKey`, `handshakeAdmit`, `forwardToApp` and `AppHandoff` are the
// wasm's exports (src/edge/gate.rs) and `fetch` is the Rust `fetch` (src/edge/mod.rs).
//
// A handshake's I/O is here and every decision in the wasm, in two synchronous calls: no
// Rust future and no `worker::Request` on a handshake's path, whose glue cost the Worker CPU
// and start-up time that benches/vs_js.mjs measures (README, figures). Every other request
// goes to the Rust `fetch`. lean-shim guards this method as it guards every entrypoint method:
// after a wasm trap, the next request reinitializes the instance.
Entrypoint.prototype.fetch = async function fetch2(request) {
  const env = this.env;
  const step = handshakeKey(request, env);
  if (step === undefined) return fetch(request, env, this.ctx);
  if (!Array.isArray(step)) return step; // a refusal
  // The read step 1 chose: the sessions' namespace, the key and the options, or why the binding
  // cannot be opened. That, like a read that fails, is the store's failure, which step 2
  // refuses as the route says (never admits).
  const [sessions, key, options] = step;
  let stored = null;
  let failure;
  if (typeof sessions === "string") {
    failure = sessions;
  } else {
    try {
      stored = await sessions.get(key, options);
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
  }
  const next = handshakeAdmit(request, env, stored, failure);
  if (Array.isArray(next)) return next[0].fetch(next[1]); // the built-in Room: [stub, request]
  if (next instanceof AppHandoff) return forwardToApp(request, env, next);
  return next; // a refusal
};
