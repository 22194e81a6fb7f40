// The RFC 6455 client handshake, seen by the Worker as the client sent it. `wrangler dev`'s
// proxy re-does every upgrade as a GET with a key of its own, so these run the built Worker
// in Miniflare directly (workerd's own socket, no dev proxy) and speak raw HTTP/1.1 over TCP.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { gateInMiniflare, newSid, sessionRecord, signedCookie } from "./harness.mjs";

const KEY = "dGhlIHNhbXBsZSBub25jZQ=="; // RFC 6455 section 1.3's sample nonce
let mf;
let url;
const logs = [];

before(async () => {
  mf = await gateInMiniflare({
    bindings: {
      SESSIONGATE: { key_prefix: "sess:", log_admissions: 1, routes: [{ path: "/ws/rooms/:room" }] },
      SESSION_SECRETS: JSON.stringify(["e2e new secret"]),
    },
    logs,
  });
  url = await mf.ready;
});
after(async () => {
  await mf?.dispose();
});

/** Sends one raw request; resolves to { status, headers } of the answer's head. */
function raw(lines) {
  return new Promise((ok, fail) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(lines.join("\r\n") + "\r\n\r\n"));
    let head = "";
    const timer = setTimeout(() => { socket.destroy(); fail(new Error(`no answer: ${head.slice(0, 80)}`)); }, 10_000);
    socket.on("data", (d) => {
      head += d;
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      socket.destroy();
      const [status, ...rest] = head.slice(0, end).split("\r\n");
      const headers = Object.fromEntries(rest.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      ok({ status: Number(status.split(" ")[1]), headers });
    });
    socket.on("error", fail);
  });
}

function handshake({ method = "GET", upgrade = "websocket", connection = "Upgrade", version = "13", key = KEY, cookie } = {}) {
  const lines = [`${method} /ws/rooms/lobby HTTP/1.1`, `Host: ${url.host}`];
  if (upgrade !== null) lines.push(`Upgrade: ${upgrade}`);
  if (connection !== null) lines.push(`Connection: ${connection}`);
  if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
  if (key !== null) lines.push(`Sec-WebSocket-Key: ${key}`);
  if (cookie) lines.push(`Cookie: ${cookie}`);
  return raw(lines);
}

describe("RFC 6455 handshake, without the dev proxy", () => {
  it("a valid handshake with a valid session is switched (101)", async () => {
    const sid = newSid();
    await (await mf.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord()));
    const r = await handshake({ cookie: signedCookie(sid) });
    assert.equal(r.status, 101);
  });

  it("a Sec-WebSocket-Key that is not the base64 of 16 bytes is 400, before the session is read", async () => {
    const sid = newSid();
    await (await mf.getKVNamespace("SESSIONS")).put(`sess:${sid}`, JSON.stringify(sessionRecord()));
    for (const key of [null, "", "short", "AAAAAAAAAAAAAAAAAAAAAAA=", "dGhlIHNhbXBsZSBub25jZQ"]) {
      const r = await handshake({ key, cookie: signedCookie(sid) });
      assert.equal(r.status, 400, `key ${JSON.stringify(key)}`);
    }
  });

  it("a Sec-WebSocket-Version other than 13 is 426 naming version 13", async () => {
    for (const version of [null, "8", "12"]) {
      const r = await handshake({ version });
      assert.equal(r.status, 426, `version ${version}`);
      assert.equal(r.headers["sec-websocket-version"], "13");
    }
  });

  it("without Connection: upgrade it is not an upgrade (426)", async () => {
    const r = await handshake({ connection: "keep-alive" });
    assert.equal(r.status, 426);
    // The Worker sets `Upgrade: websocket` on this 426; workerd drops it as a hop-by-hop header.
  });

  it("no refusal here accepted a socket or reached the Room", () => {
    const text = logs.join("");
    assert.match(text, /"reason":"bad websocket handshake"/);
    assert.equal((text.match(/"decision":"admit"/g) ?? []).length, 1, "only the valid handshake was admitted");
  });
});
