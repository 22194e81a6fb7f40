// Anchor (b) of issue 13: the gate's job written the way a Cloudflare user would write it in
// plain JavaScript, and (c) its pass-through (PASS_THROUGH = "true": no checks, straight to
// the Durable Object). Bundled by wrangler itself (no build step); see benches/anchor/README.md.
//
//   route /ws/rooms/:room ─▶ Upgrade ─▶ Origin ─▶ npm `cookie` parse ─▶ express-session's
//   `s:` + cookie-signature unsign (WebCrypto HMAC-SHA256, crypto.subtle.timingSafeEqual, every
//   secret of SESSION_SECRETS) ─▶ KV get `sess:<sid>` ─▶ JSON.parse ─▶ cookie.expires ─▶ one
//   rule (passport.user exists) ─▶ Room Durable Object, the projected session in a header.
//
// (d) (REVOCATION_INDEX = "true") adds what the gate's revocation index costs a handshake, done
// the way a user would in JavaScript: the Worker passes the socket's revocation keys (its sid and
// its passport.user, as the gate names them) to the Room, which sends the keys new to it, as
// SHA-256 ids, to the RevocationIndex shard of the room (a hash of the room, of 16, as the
// gate places them) and waits for the write before the 101, as the gate does. No refresh and
// no revocation endpoint: only what a handshake pays.
//
// The Room is the chat app of docs/PROTOCOL.md done the edge-chat-demo way: acceptWebSocket
// (hibernation API), serializeAttachment of { id, session }, members kept in a Map (rebuilt
// from getWebSockets() when the object wakes), welcome with the peers, join/leave to the
// others, broadcast: one JSON.stringify, then a send to every other member.

import { parse } from "cookie";
import { DurableObject } from "cloudflare:workers";

const COOKIE_NAME = "connect.sid";
const KEY_PREFIX = "sess:";
const ROUTE = /^\/ws\/rooms\/([A-Za-z0-9_-]{1,64})$/;
const encoder = new TextEncoder();

// HMAC keys imported once per isolate (and again if the secrets change).
let keyCache = { raw: null, keys: null };
async function hmacKeys(raw) {
  if (keyCache.raw !== raw) {
    const secrets = JSON.parse(raw);
    const keys = await Promise.all(
      secrets.map((s) => crypto.subtle.importKey("raw", encoder.encode(s), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
    );
    keyCache = { raw, keys };
  }
  return keyCache.keys;
}

function base64NoPad(buffer) {
  let binary = "";
  for (const b of new Uint8Array(buffer)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/=+$/, "");
}

// cookie-signature's unsign: split at the last ".", sign again, compare the whole string in
// constant time (lengths first, as cookie-signature does).
async function unsign(input, keys) {
  const dot = input.lastIndexOf(".");
  if (dot < 0) return false;
  const value = input.slice(0, dot);
  const given = encoder.encode(input);
  for (const key of keys) {
    const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(value));
    const expected = encoder.encode(value + "." + base64NoPad(mac));
    if (expected.byteLength === given.byteLength && crypto.subtle.timingSafeEqual(expected, given)) return value;
  }
  return false;
}

const refuse = (status, reason) => new Response(reason, { status });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const route = ROUTE.exec(url.pathname);
    if (!route) return refuse(404, "not found");
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return refuse(426, "upgrade required");
    const room = env.ROOMS.get(env.ROOMS.idFromName(`room:${route[1]}`));
    if (env.PASS_THROUGH === "true") return room.fetch(request);

    const origin = request.headers.get("Origin");
    if (origin !== null && origin !== url.origin) return refuse(403, "origin not allowed");

    const raw = parse(request.headers.get("Cookie") ?? "")[COOKIE_NAME];
    if (!raw || !raw.startsWith("s:")) return refuse(401, "missing cookie");
    const sid = await unsign(raw.slice(2), await hmacKeys(env.SESSION_SECRETS));
    if (sid === false) return refuse(401, "bad signature");

    const stored = await env.SESSIONS.get(KEY_PREFIX + sid);
    if (stored === null) return refuse(401, "unknown session");
    let session;
    try {
      session = JSON.parse(stored);
    } catch {
      return refuse(401, "unknown session");
    }
    const expires = session?.cookie?.expires;
    if (expires != null && !(Date.parse(expires) > Date.now())) return refuse(401, "session expired");
    if (session.passport?.user == null) return refuse(403, "rule denied");

    // What the room and the peers see (the gate's `expose`).
    const projected = { passport: { user: session.passport.user }, user: { name: session.user?.name, roles: session.user?.roles } };
    const headers = new Headers(request.headers);
    headers.set("X-Session", JSON.stringify(projected));
    if (env.REVOCATION_INDEX === "true") {
      headers.set("X-Room", `ROOMS/room:${route[1]}`);
      headers.set("X-Keys", JSON.stringify([`sid:${sid}`, `field:passport.user=${JSON.stringify(session.passport.user)}`]));
    }
    return room.fetch(new Request(request, { headers }));
  },
};

const INDEX_SHARDS = 16;
const ENTRY_TTL_MS = 10 * 60 * 1000;

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const shardOf = (digest) => new DataView(digest.buffer).getUint32(0) % INDEX_SHARDS;

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.members = new Map(); // WebSocket -> { id, session, keys }
    this.keyCounts = new Map(); // revocation key -> sockets here with it ((d) only)
    for (const ws of ctx.getWebSockets()) {
      const me = ws.deserializeAttachment();
      if (me) {
        this.members.set(ws, me);
        for (const key of me.keys ?? []) this.keyCounts.set(key, (this.keyCounts.get(key) ?? 0) + 1);
      }
    }
  }

  // (d): the keys new to the room go to the room's index shard before the socket is accepted.
  async register(room, keys) {
    const fresh = keys.filter((key) => !this.keyCounts.get(key));
    for (const key of keys) this.keyCounts.set(key, (this.keyCounts.get(key) ?? 0) + 1);
    if (fresh.length === 0) return;
    try {
      const ids = await Promise.all(fresh.map(async (key) => hex(await sha256(key))));
      const shard = shardOf(await sha256(room));
      const index = this.env.INDEX.get(this.env.INDEX.idFromName(`shard:${shard}`));
      // A method call on the shard's stub (RPC), as the gate's rooms make it; it throws if
      // the write failed.
      await index.add(room, ids, Date.now() + ENTRY_TTL_MS);
    } catch (e) {
      // No socket then: the keys it counted are not here.
      this.forget(keys);
      throw e;
    }
  }

  forget(keys) {
    for (const key of keys) {
      const left = (this.keyCounts.get(key) ?? 1) - 1;
      if (left > 0) this.keyCounts.set(key, left);
      else this.keyCounts.delete(key);
    }
  }

  async fetch(request) {
    const session = JSON.parse(request.headers.get("X-Session") ?? "null");
    const keys = JSON.parse(request.headers.get("X-Keys") ?? "[]");
    if (keys.length) await this.register(request.headers.get("X-Room"), keys);
    const { 0: client, 1: server } = new WebSocketPair();
    const me = { id: crypto.randomUUID(), session, keys };
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(me);
    const peers = [];
    for (const peer of this.members.values()) peers.push({ id: peer.id, session: peer.session });
    server.send(JSON.stringify({ type: "welcome", id: me.id, session, peers }));
    this.broadcast(JSON.stringify({ type: "join", id: me.id, session }), null);
    this.members.set(server, me);
    return new Response(null, { status: 101, webSocket: client });
  }

  broadcast(text, except) {
    for (const ws of this.members.keys()) {
      if (ws === except) continue;
      try {
        ws.send(text);
      } catch {
        // gone meanwhile: its close handler tells the others
      }
    }
  }

  webSocketMessage(ws, message) {
    const me = this.members.get(ws);
    if (!me) return;
    const error = (reason) => ws.send(JSON.stringify({ type: "error", reason }));
    if (typeof message !== "string") return error("binary frames are not supported");
    let frame;
    try {
      frame = JSON.parse(message);
    } catch {
      return error("frame is not JSON");
    }
    if (frame?.type === "broadcast") {
      this.broadcast(JSON.stringify({ type: "message", from: { id: me.id, session: me.session }, data: frame.data }), ws);
    } else if (frame?.type === "send") {
      for (const [peer, other] of this.members) {
        if (other.id === frame.to) return peer.send(JSON.stringify({ type: "message", from: { id: me.id, session: me.session }, data: frame.data }));
      }
      error(`no peer "${frame.to}" in this room`);
    } else {
      error(`unknown frame type "${frame?.type}"`);
    }
  }

  webSocketClose(ws, code, reason) {
    this.depart(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }

  webSocketError(ws) {
    this.depart(ws);
  }

  depart(ws) {
    const me = this.members.get(ws);
    if (!me) return;
    this.members.delete(ws);
    this.forget(me.keys ?? []);
    this.broadcast(JSON.stringify({ type: "leave", id: me.id }), null);
  }
}

// (d): one shard of the revocation index: an entry per (key id, room), its value when it
// expires, written in one put, as the gate's shard stores them.
export class RevocationIndex extends DurableObject {
  async add(room, ids, until) {
    const entries = {};
    for (const id of ids) entries[`k:${id}:${room}`] = until;
    await this.ctx.storage.put(entries);
  }
}
