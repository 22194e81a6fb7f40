// A misconfigured gate never fails open: every handshake gets 500, and the reason is logged
// once per isolate, naming what is wrong. Two real misconfigurations: an empty secret list,
// and a SESSIONGATE var that is not a table. And a Worker without its KV binding: 503 for a
// valid session, after the request's own checks.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { SECRET_NEW, closeAll, gateWorker, newSid, refuse, sessionRecord, signedCookie, startGate } from "./harness.mjs";

afterEach(closeAll);

async function expectConfigInvalid(gate, mentions) {
  const sid = newSid();
  await gate.putSession(sid, sessionRecord());
  for (let i = 0; i < 3; i++) {
    const r = await refuse(gate.wsBase + "/ws/rooms/lobby", { cookie: signedCookie(sid), origin: gate.origin });
    assert.equal(r.status, 500);
    assert.equal(r.body, "sessiongate: configuration invalid (see the Worker's logs)");
  }
  const line = await gate.waitLog((l) => l.sessiongate === "config_invalid", { what: "config_invalid line" });
  assert.match(line.error, mentions);
  const lines = gate.logLines().filter((l) => l.sessiongate === "config_invalid");
  assert.equal(lines.length, 1, "the reason is logged once per isolate, not per request");
  assert.equal(gate.logLines().filter((l) => l.decision === "admit").length, 0);
}

describe("misconfiguration fails closed", () => {
  let gate;
  after(async () => {
    await gate?.stop();
  });

  it("an empty SESSION_SECRETS list: 500 for every handshake, one log line", async () => {
    gate = await startGate("misconfig-secrets", { sessionSecrets: "[]" });
    await expectConfigInvalid(gate, /SESSION_SECRETS: no session secret configured/);
    await gate.stop();
    gate = null;
  });

  it("a SESSIONGATE var that is not a table: 500 for every handshake, one log line", async () => {
    gate = await startGate("misconfig-table", { extraArgs: ["--var", "SESSIONGATE:oops"] });
    await expectConfigInvalid(gate, /SESSIONGATE/);
  });
});

// The built Worker in Miniflare with no SESSIONS binding at all (wrangler dev always binds
// what wrangler.toml names): the gate reads KV through the raw binding, so its absence must
// still fail closed, after the request's own checks, with one log line naming it.
describe("no SESSIONS KV binding", () => {
  let mf;
  let base;
  const logs = [];
  before(async () => {
    mf = new Miniflare({
      ...gateWorker({
        bindings: {
          SESSIONGATE: { key_prefix: "sess:", routes: [{ path: "/ws/rooms/:room" }] },
          SESSION_SECRETS: JSON.stringify([SECRET_NEW]),
        },
      }),
      kvNamespaces: [],
      handleRuntimeStdio(stdout, stderr) {
        for (const stream of [stdout, stderr]) stream.on("data", (d) => logs.push(String(d)));
      },
    });
    base = await mf.ready;
  });
  after(async () => {
    await mf?.dispose();
  });

  const upgrade = (cookie) =>
    mf.dispatchFetch(new URL("/ws/rooms/lobby", base), {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...(cookie ? { cookie } : {}) },
    });

  it("a forged cookie is refused for its signature first; a valid one gets 503, never an admit", async () => {
    const forged = await upgrade(signedCookie(newSid(), "not the secret"));
    assert.equal(forged.status, 401);
    await forged.text();
    const valid = await upgrade(signedCookie(newSid()));
    assert.equal(valid.status, 503);
    await valid.text();
    const deadline = Date.now() + 3000;
    while (!logs.join("").includes("KV binding SESSIONS is not bound") && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
    const text = logs.join("");
    assert.match(text, /KV binding SESSIONS is not bound/);
    assert.doesNotMatch(text, /"decision":"admit"/);
  });
});
