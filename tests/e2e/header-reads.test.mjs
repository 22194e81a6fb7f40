// How often an admitted handshake asks the runtime for a header. Each `Headers.get` is a call
// into workerd and a string copied into the wasm; the handshake's step 2 runs step 1's checks
// again, on what step 1 read (the request it hands the entry), so each header of the client's
// request is read once. Before that, step 2 read them all again: 13 reads for an admitted
// handshake where 7 do. Runs the built Worker in Miniflare with `Headers.prototype.get`
// counted (a line to the log per call) in a copy of build/index.js (`countedGate`).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { countedGate, logsSettled, newSid, sessionRecord, signedCookie, upgradeLobby } from "./harness.mjs";

const COUNTED = 'const countedGet = Headers.prototype.get; Headers.prototype.get = function (name) { console.log(`header read: ${name}`); return countedGet.call(this, name); };\n';

describe("header reads of an admitted handshake", () => {
  const gate = countedGate(COUNTED, { key_prefix: "sess:", routes: [{ path: "/ws/rooms/:room" }] });
  const logs = gate.logs;

  /** The headers read (by name, in order) while one admitted handshake was answered. */
  async function readsOfOneHandshake(sid) {
    logs.length = 0;
    const res = await upgradeLobby(gate.mf, gate.base, signedCookie(sid));
    assert.equal(res.status, 101);
    res.webSocket.accept();
    res.webSocket.close(1000);
    await logsSettled(logs);
    return [...logs.join("").matchAll(/header read: (\S+)/g)].map((m) => m[1]);
  }

  it("reads each header of the client's request once, though both steps check it", async () => {
    const sid = newSid();
    await (await gate.mf.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord()));
    for (let attempt = 0; attempt < 2; attempt++) {
      const reads = await readsOfOneHandshake(sid);
      const client = reads.filter((name) => !name.startsWith("x-sessiongate-"));
      assert.deepEqual(client, [...new Set(client)], `a header read twice: ${reads.join(", ")}`);
      for (const name of ["upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "origin", "cookie"]) {
        assert.ok(client.includes(name), `${name} is checked: ${reads.join(", ")}`);
      }
      // The Room reads its admission, once.
      assert.deepEqual(reads.filter((name) => name.startsWith("x-sessiongate-")), ["x-sessiongate-admission"]);
    }
  });
});
