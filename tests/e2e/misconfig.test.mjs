// A misconfigured gate never fails open: every handshake gets 500, and the reason is logged
// once per isolate, naming what is wrong. Two real misconfigurations: an empty secret list,
// and a SESSIONGATE var that is not a table.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newSid, refuse, sessionRecord, signedCookie, startGate } from "./harness.mjs";

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
