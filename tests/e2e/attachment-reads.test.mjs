// How often a room's client frames ask the runtime for a socket's stored attachment. The room
// finds a frame's sender by the id its attachment starts with; `deserializeAttachment` copies
// the whole attachment (about 600 B) out of the runtime, so the id is remembered by socket
// (`members::stored_id`) and only a socket's first frame reads it. Before that, every frame did:
// 20 reads for 20 frames. Runs the built Worker in Miniflare with
// `WebSocket.prototype.deserializeAttachment` counted (a line to the log per call) in a copy of
// build/index.js (`countedGate`).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { admit, closeAll, countedGate, logsSettled, newSid, roomName, sessionRecord, signedCookie } from "./harness.mjs";

const COUNTED =
  "const countedRead = WebSocket.prototype.deserializeAttachment; WebSocket.prototype.deserializeAttachment = function () { console.log('attachment read'); return countedRead.call(this); };\n";
const FRAMES = 20;

describe("attachment reads of a room's client frames", () => {
  // Two batches of frames from one socket: more than the default rate limit allows.
  const gate = countedGate(COUNTED, {
    key_prefix: "sess:",
    revalidate_seconds: 0,
    rate_limit: { messages: 1000, per_seconds: 10 },
    routes: [{ path: "/ws/rooms/:room" }],
  });
  const logs = gate.logs;

  /** A socket admitted to `room` (a harness connection), once its welcome came. */
  async function member(room, user) {
    const sid = newSid();
    await (await gate.mf.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord({ user })));
    return admit(`ws://${gate.base.host}/ws/rooms/${room}`, { cookie: signedCookie(sid) });
  }

  /** The attachment reads logged while `act` ran, once the log lines stopped arriving. */
  async function readsDuring(act) {
    await logsSettled(logs);
    logs.length = 0;
    await act();
    await logsSettled(logs);
    return (logs.join("").match(/attachment read/g) ?? []).length;
  }

  it("reads a sender's attachment at its first frame only, not at every frame", async () => {
    const room = roomName();
    const a = await member(room, "u-reads-a");
    const b = await member(room, "u-reads-b");
    await a.waitType("join", (f) => f.id === b.id);
    const send = (batch) => async () => {
      for (let n = 0; n < FRAMES; n++) b.send({ type: "send", to: a.id, data: { batch, n } });
      for (let n = 0; n < FRAMES; n++) {
        const message = await a.waitType("message", (f) => f.data?.batch === batch && f.data.n === n);
        assert.equal(message.from.id, b.id, "every frame from its sender");
      }
    };
    const first = await readsDuring(send(1));
    assert.ok(first <= 1, `${first} attachment reads for ${FRAMES} frames of one socket`);
    const then = await readsDuring(send(2));
    assert.equal(then, 0, `${then} attachment reads for ${FRAMES} more frames`);
    await closeAll();
  });
});
