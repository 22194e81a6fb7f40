// The Worker's fetch. scripts/lean-shim.mjs puts it in place of worker-build's, inside the
// shim, where `handshakeKey`, `handshakeAdmit`, `appIndexAdd` and `appIndexFailed` are the
// wasm's exports (src/edge/gate.rs), `fetch` is the Rust `fetch` (src/edge/mod.rs), and
// `initState` and `checkReinitialize` are worker-build's (the instance's generation, and its
// reinitialization after a trap).
//
// A handshake's I/O is here and every decision in the wasm, in synchronous calls (two, and
// for an app's room the index listing's two): no Rust future on a handshake's path, whose glue
// cost the Worker CPU and start-up time that benches/vs_js.mjs measures (README, figures). Every other request
// goes to the Rust `fetch`. lean-shim guards this method as it guards every entrypoint method:
// after a wasm trap, the next request reinitializes the instance.
Entrypoint.prototype.fetch = async function fetch2(request) {
  const env = this.env;
  const step = handshakeKey(request, env);
  if (step === undefined) return fetch(request, env, this.ctx);
  if (!Array.isArray(step)) return step; // a refusal
  // The read step 1 chose: the sessions' namespace, the key and the options, or why the binding
  // cannot be opened. That, like a read that fails, is the store's failure, which step 2
  // refuses as the route says (never admits). `read` is the request as step 1 read it (held in
  // the wasm), which step 2 takes back.
  const [sessions, key, options, read] = step;
  const readBy = initState.instanceId;
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
  // A trap in another request meanwhile leaves the instance to be reinitialized: that is done
  // now, as the next request would, so that step 2 runs on a whole instance. Step 1's reading
  // went with the old one; step 2 then reads the request itself.
  checkReinitialize();
  const next = handshakeAdmit(request, env, initState.instanceId === readBy ? read : undefined, stored, failure);
  if (!Array.isArray(next)) return next; // a refusal
  // [stub, request] for the built-in Room; [stub, request, registration] for an app's own
  // room, which does not talk to the index: once it took the socket, the socket's keys are
  // listed there before the client gets it. A failed listing is logged; the socket stays.
  const [stub, forwarded, registration] = next;
  const admittedBy = initState.instanceId;
  const answer = await stub.fetch(forwarded);
  if (registration === undefined || answer.status !== 101) return answer;
  // The registration is held in the wasm. After a reinitialization (a trap in another request
  // while the room took the socket) it is gone: the socket stays unlisted, as after a listing
  // that failed, and its room's revalidation still reaches it.
  const held = () => (checkReinitialize(), initState.instanceId === admittedBy);
  if (!held()) return answer;
  const failed = (why) => held() && appIndexFailed(registration, why);
  try {
    // The shard's `add`, a method call on its stub (RPC); it throws if the write failed.
    const [index, entries] = appIndexAdd(env, registration, answer);
    await index.add(entries);
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) throw e; // a trap: the guard reinitializes
    failed(e instanceof Error ? e.message : String(e));
  }
  return answer;
};
