// How often a room's client frames ask the runtime for a socket's stored attachment. The room
// finds a frame's sender by the id its attachment starts with; `deserializeAttachment` copies
// the whole attachment (about 600 B) out of the runtime, so the id is remembered by socket
// (`members::stored_id`) and only a socket's first frame reads it. Before that, every frame did:
// 20 reads for 20 frames. Runs the built Worker in Miniflare with
// `WebSocket.prototype.deserializeAttachment` counted (a line to the log per call) in a copy of
// build/index.js.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, SECRET_NEW, gateInMiniflare, newSid, sessionRecord, signedCookie, upgradeLobby } from "./harness.mjs";

const COUNTED =
  "const countedRead = WebSocket.prototype.deserializeAttachment; WebSocket.prototype.deserializeAttachment = function () { console.log('attachment read'); return countedRead.call(this); };\n";
const FRAMES = 20;

describe("attachment reads of a room's client frames", () => {
  let mf;
  let base;
  let dir;
  const logs = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sessiongate-attachment-reads-"));
    cpSync(join(ROOT, "build/index.js"), join(dir, "index.js"));
    cpSync(join(ROOT, "build/index_bg.wasm"), join(dir, "index_bg.wasm"));
    writeFileSync(join(dir, "index.js"), COUNTED + readFileSync(join(dir, "index.js"), "utf8"));
    mf = await gateInMiniflare({
      dir,
      bindings: {
        // Two batches of frames from one socket, more than the default rate limit allows.
        SESSIONGATE: {
          key_prefix: "sess:",
          revalidate_seconds: 0,
          rate_limit: { messages: 1000, per_seconds: 10 },
          routes: [{ path: "/ws/rooms/:room" }],
        },
        SESSION_SECRETS: JSON.stringify([SECRET_NEW]),
      },
      logs,
    });
    base = await mf.ready;
  });
  after(async () => {
    await mf?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A socket admitted to the lobby, its frames collected, once its welcome came. */
  async function member(user) {
    const sid = newSid();
    await (await mf.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord({ user })));
    const res = await upgradeLobby(mf, base, signedCookie(sid));
    assert.equal(res.status, 101);
    const ws = res.webSocket;
    const frames = [];
    ws.addEventListener("message", (e) => frames.push(JSON.parse(e.data)));
    ws.accept();
    const welcome = await until(() => frames.find((f) => f.type === "welcome"), "the welcome");
    return { ws, frames, id: welcome.id };
  }

  async function until(found, what, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = found();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
      await new Promise((ok) => setTimeout(ok, 20));
    }
  }

  /** The attachment reads logged while `act` ran, once the log lines stopped arriving. */
  async function readsDuring(act) {
    await settle();
    logs.length = 0;
    await act();
    await settle();
    return (logs.join("").match(/attachment read/g) ?? []).length;
  }

  // The log lines arrive through workerd's stdout, after the frames.
  async function settle() {
    let seen = -1;
    while (logs.length !== seen) {
      seen = logs.length;
      await new Promise((ok) => setTimeout(ok, 300));
    }
  }

  it("reads a sender's attachment at its first frame only, not at every frame", async () => {
    const a = await member("u-reads-a");
    const b = await member("u-reads-b");
    await until(() => a.frames.find((f) => f.type === "join" && f.id === b.id), "join of b");
    const send = (batch) => async () => {
      for (let n = 0; n < FRAMES; n++) b.ws.send(JSON.stringify({ type: "send", to: a.id, data: { batch, n } }));
      await until(() => a.frames.filter((f) => f.type === "message" && f.data.batch === batch).length === FRAMES, `${FRAMES} messages of batch ${batch}`);
      const from = a.frames.filter((f) => f.type === "message" && f.data.batch === batch).map((f) => f.from.id);
      assert.deepEqual(new Set(from), new Set([b.id]), "every frame from its sender");
    };
    const first = await readsDuring(send(1));
    assert.ok(first <= 1, `${first} attachment reads for ${FRAMES} frames of one socket`);
    const then = await readsDuring(send(2));
    assert.equal(then, 0, `${then} attachment reads for ${FRAMES} more frames`);
    a.ws.close(1000);
    b.ws.close(1000);
  });
});
