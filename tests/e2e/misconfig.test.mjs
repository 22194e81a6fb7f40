// A misconfigured gate never fails open: every handshake gets 500, and the reason is logged
// once per isolate, naming what is wrong. Two real misconfigurations: an empty secret list,
// and a SESSIONGATE var that is not a table. And a Worker without its KV binding: 503 for a
// valid session, after the request's own checks.

import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, SECRET_NEW, closeAll, gateInMiniflare, newSid, refuse, sessionRecord, signedCookie, startGate, upgradeLobby } from "./harness.mjs";

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

/** `logs` joined, once they hold `text` (3 s at most: the caller asserts on what they hold). */
async function logsWith(logs, text) {
  const deadline = Date.now() + 3000;
  while (!logs.join("").includes(text) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
  return logs.join("");
}

// The built Worker in Miniflare with no SESSIONS binding at all (wrangler dev always binds
// what wrangler.toml names): the gate reads KV through the raw binding, so its absence must
// still fail closed, after the request's own checks, with one log line naming it.
describe("no SESSIONS KV binding", () => {
  let mf;
  let base;
  const logs = [];
  before(async () => {
    mf = await gateInMiniflare({
      bindings: {
        SESSIONGATE: { key_prefix: "sess:", routes: [{ path: "/ws/rooms/:room" }] },
        SESSION_SECRETS: JSON.stringify([SECRET_NEW]),
      },
      logs,
      kvNamespaces: [],
    });
    base = await mf.ready;
  });
  after(async () => {
    await mf?.dispose();
  });

  it("a forged cookie is refused for its signature first; a valid one gets 503, never an admit", async () => {
    const forged = await upgradeLobby(mf, base, signedCookie(newSid(), "not the secret"));
    assert.equal(forged.status, 401);
    await forged.text();
    const valid = await upgradeLobby(mf, base, signedCookie(newSid()));
    assert.equal(valid.status, 503);
    await valid.text();
    const text = await logsWith(logs, "KV binding SESSIONS is not bound");
    assert.match(text, /KV binding SESSIONS is not bound/);
    assert.doesNotMatch(text, /"decision":"admit"/);
  });
});

// The build `wrangler deploy` runs (build/) has no demo sign-in in its wasm, so no config can
// turn one on in production: a config asking for it is refused whole, like any invalid one.
// The local environments' build (build/demo/, `scripts/build.sh --demo`) has it.
describe("the demo sign-in exists only in the demo build", () => {
  const demoBuild = join(ROOT, "build/demo");
  let mf;
  const logs = [];
  const start = async (dir, demo_login) => {
    await mf?.dispose();
    logs.length = 0;
    mf = await gateInMiniflare({
      dir,
      bindings: {
        SESSIONGATE: { key_prefix: "sess:", demo_login, routes: [{ path: "/ws/rooms/:room" }] },
        SESSION_SECRETS: JSON.stringify([SECRET_NEW]),
      },
      logs,
    });
    return mf.ready;
  };
  const login = async (base) => {
    const r = await mf.dispatchFetch(new URL("/demo/login", base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ada", roles: ["chat"] }),
    });
    return { status: r.status, cookie: r.headers.get("set-cookie"), body: await r.text() };
  };
  after(async () => {
    await mf?.dispose();
  });

  it("the deploy build with demo_login = true answers 500 to everything and logs why", async () => {
    const base = await start(join(ROOT, "build"), true);
    const r = await login(base);
    assert.equal(r.status, 500);
    assert.equal(r.cookie, null);
    const handshake = await upgradeLobby(mf, base, signedCookie(newSid()));
    assert.equal(handshake.status, 500);
    await handshake.text();
    assert.match(await logsWith(logs, "config_invalid"), /"sessiongate":"config_invalid".*demo_login = true, but this build has no demo sign-in/);
  });

  it("the deploy build with demo_login = false: /demo/login is 404", async () => {
    const base = await start(join(ROOT, "build"), false);
    const r = await login(base);
    assert.equal(r.status, 404);
    assert.equal(r.cookie, null);
  });

  it("the demo build with demo_login = true signs in", async () => {
    const base = await start(demoBuild, true);
    const r = await login(base);
    assert.equal(r.status, 200, r.body);
    assert.match(r.cookie, /^connect\.sid=s%3A/);
  });
});
