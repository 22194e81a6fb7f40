// sessiongate-room core: the room's side of docs/ADMISSION.md (v1), with no dependency on
// `cloudflare:workers`, so it runs (and is unit-tested) in Node 20 as well as in workerd.
// Crypto is WebCrypto only: HMAC-SHA256 through `crypto.subtle`, verified with
// `crypto.subtle.verify` (constant time).

export const ADMISSION_HEADER = "x-sessiongate-admission";
export const CONTROL_HEADER = "x-sessiongate-control";
export const SIGNATURE_HEADER = "x-sessiongate-signature";
/** On the 101: how often (whole seconds) this room revalidates through the gate, so that the gate lets the socket's revocation index entries expire and renews them. */
export const REVALIDATE_HEADER = "x-sessiongate-revalidate";
export const CONTROL_PATH = "/_sessiongate/control";
export const REVALIDATE_URL = "https://sessiongate.internal/_sessiongate/revalidate";
export const LABELS = Object.freeze({
  admission: "sessiongate-admission-v1",
  control: "sessiongate-control-v1",
  revalidate: "sessiongate-revalidate-v1",
  revalidated: "sessiongate-revalidated-v1",
});
/** The tag every socket the gate admitted carries. */
export const GATE_TAG = "sg";
export const MAX_TAGS = 10;
export const MAX_TAG_LENGTH = 256;
export const ATTACHMENT_BUDGET = 2048;
export const MAX_ADMISSION_BYTES = 16384;
/** Admissions live 30 s (`exp` = `iat` + 30,000); one whose `exp` is further away than this is refused. */
export const MAX_LIFETIME_MS = 60_000;
export const REVALIDATE_BATCH = 100;
/** The longest interval a room may announce (a day): a room revalidating less often announces none. */
export const MAX_REVALIDATE_EVERY_SECONDS = 86_400;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const B64U = /^[A-Za-z0-9_-]*$/;
const MAC_SHAPE = /^[A-Za-z0-9_-]{43}$/;

// ---------------------------------------------------------------------------------------------
// base64url and HMAC

/** base64url without padding. */
export function b64uEncode(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = "";
  for (let i = 0; i < view.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, view.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Strict base64url decoding (no padding, canonical last character); `null` when malformed. */
export function b64uDecode(text) {
  if (typeof text !== "string" || !B64U.test(text) || text.length % 4 === 1) return null;
  let binary;
  try {
    binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return null;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  // Refuse non-canonical encodings (unused low bits set): one value, one spelling.
  if (b64uEncode(bytes) !== text) return null;
  return bytes;
}

const keyCache = new Map();
function hmacKey(secret) {
  let key = keyCache.get(secret);
  if (!key) {
    if (keyCache.size > 16) keyCache.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keyCache.set(secret, key);
  }
  return key;
}

/** Normalizes the `key` option to a non-empty list of secrets (the first signs, all verify). */
export function keyList(key) {
  const list = Array.isArray(key) ? key : key === undefined || key === null ? [] : [key];
  return list.filter((k) => typeof k === "string" && k.length > 0);
}

/** `mac(label, text)` of docs/ADMISSION.md: b64u(HMAC-SHA256(key, label + "." + text)), 43 chars. */
export async function mac(key, label, text) {
  const [secret] = keyList(key);
  if (!secret) throw new TypeError("sessiongate: no admission key");
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`${label}.${text}`));
  return b64uEncode(sig);
}

/** Checks a `mac(label, text)` against every key, in constant time (`crypto.subtle.verify`). */
export async function verifyMac(key, label, text, signature) {
  if (typeof signature !== "string" || !MAC_SHAPE.test(signature)) return false;
  const sig = b64uDecode(signature);
  if (!sig || sig.length !== 32) return false;
  const data = encoder.encode(`${label}.${text}`);
  let ok = false;
  for (const secret of keyList(key)) {
    if (await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, data)) ok = true;
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Refusals and the nonce cache

/** A refused admission or control. `status` is 401 (500 when the room itself is misconfigured). */
export class AdmissionError extends Error {
  constructor(reason, status = 401) {
    super(`sessiongate: ${reason}`);
    this.name = "AdmissionError";
    this.reason = reason;
    this.status = status;
  }
}

/**
 * Seen nonces, each kept until its `exp`, at most `max` of them. Bounded: when it is full of
 * nonces that have not expired, new ones are refused (fail closed) rather than old ones forgotten.
 */
export class NonceCache {
  #seen = new Map(); // nonce -> exp (insertion order is roughly exp order)
  constructor({ max = 10_000 } = {}) {
    this.max = max;
  }
  get size() {
    return this.#seen.size;
  }
  #prune(now, all) {
    for (const [nonce, exp] of this.#seen) {
      if (exp <= now) this.#seen.delete(nonce);
      else if (!all) break;
    }
  }
  /** `"ok"` (remembered), `"seen"` (a replay) or `"full"`. */
  add(nonce, exp, now = Date.now()) {
    this.#prune(now, false);
    const known = this.#seen.get(nonce);
    if (known !== undefined && known > now) return "seen";
    if (this.#seen.size >= this.max) {
      this.#prune(now, true);
      if (this.#seen.size >= this.max) return "full";
    }
    this.#seen.set(nonce, exp);
    return "ok";
  }
  has(nonce, now = Date.now()) {
    const exp = this.#seen.get(nonce);
    return exp !== undefined && exp > now;
  }
}

/** The cache `verifyAdmission`/`verifyControl` use when not given one (one per isolate). */
export const defaultNonces = new NonceCache();

// ---------------------------------------------------------------------------------------------
// Verification

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isTime = (v) => typeof v === "number" && Number.isFinite(v);
const clock = (now) => (typeof now === "function" ? now() : typeof now === "number" ? now : Date.now());

async function openSigned(request, header, label, options) {
  const keys = keyList(options.key);
  if (keys.length === 0) throw new AdmissionError("no admission key configured", 500);
  const value = request.headers.get(header);
  const signature = request.headers.get(SIGNATURE_HEADER);
  if (value === null || signature === null) throw new AdmissionError("unsigned");
  const max = options.maxBytes ?? MAX_ADMISSION_BYTES;
  if (value.length > max) throw new AdmissionError("too large");
  if (!(await verifyMac(keys, label, value, signature))) throw new AdmissionError("bad signature");
  const bytes = b64uDecode(value);
  let body;
  try {
    body = bytes && JSON.parse(strictUtf8.decode(bytes));
  } catch {
    body = null;
  }
  if (!isObject(body)) throw new AdmissionError("malformed");
  if (body.v !== 1) throw new AdmissionError("unsupported version");
  return body;
}

function checkFreshness(body, options) {
  const now = clock(options.now);
  if (!isTime(body.iat) || !isTime(body.exp)) throw new AdmissionError("malformed");
  if (body.exp <= now) throw new AdmissionError("expired");
  if (body.exp - now > MAX_LIFETIME_MS) throw new AdmissionError("expires too late");
  if (typeof body.nonce !== "string" || body.nonce.length < 16 || body.nonce.length > 128 || !B64U.test(body.nonce)) {
    throw new AdmissionError("malformed");
  }
  return now;
}

function remember(body, options, now) {
  const verdict = (options.nonces ?? defaultNonces).add(body.nonce, body.exp, now);
  if (verdict === "seen") throw new AdmissionError("replayed");
  if (verdict === "full") throw new AdmissionError("too many admissions in flight");
}

/**
 * Verifies the forwarded upgrade's admission (docs/ADMISSION.md section 1) and returns it
 * (frozen). Throws an `AdmissionError` (`reason`, `status`) when it must be refused: unsigned,
 * bad signature (any key), malformed, `v` not 1, expired, replayed nonce, or `room` not
 * `options.room` (when given). The nonce is remembered only when everything else holds.
 */
export async function verifyAdmission(request, options = {}) {
  const a = await openSigned(request, ADMISSION_HEADER, LABELS.admission, options);
  const now = checkFreshness(a, options);
  if (
    typeof a.room !== "string" ||
    typeof a.id !== "string" ||
    !/^[A-Za-z0-9_-]{1,64}$/.test(a.id) ||
    typeof a.route !== "string" ||
    !isObject(a.params) ||
    !isObject(a.session) ||
    !(a.expires_at === null || isTime(a.expires_at)) ||
    !Array.isArray(a.revoke) ||
    !a.revoke.every((k) => typeof k === "string" && k.length > 0) ||
    typeof a.ticket !== "string"
  ) {
    throw new AdmissionError("malformed");
  }
  if (options.room !== undefined && options.room !== null && a.room !== options.room) {
    throw new AdmissionError("wrong room");
  }
  if (a.expires_at !== null && a.expires_at <= now) throw new AdmissionError("session expired");
  remember(a, options, now);
  return Object.freeze(a);
}

/**
 * Verifies a control request (docs/ADMISSION.md section 2) and returns the control (frozen).
 * Throws an `AdmissionError` like `verifyAdmission`. Unknown `op`s are returned, not refused:
 * the caller answers them (400).
 */
export async function verifyControl(request, options = {}) {
  const c = await openSigned(request, CONTROL_HEADER, LABELS.control, options);
  const now = checkFreshness(c, options);
  if (typeof c.op !== "string") throw new AdmissionError("malformed");
  if (c.op === "revoke" && (typeof c.key !== "string" || c.key.length === 0)) throw new AdmissionError("malformed");
  remember(c, options, now);
  return Object.freeze(c);
}

// ---------------------------------------------------------------------------------------------
// Tags and attachments

const PLAIN_TAG = /^[\x21-\x7e]+$/;

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The tag for a revocation key id: `k:<id>`, or `k:#<sha256 hex>` for ids that do not fit a tag. */
export async function tagForKey(key) {
  if (key.length <= MAX_TAG_LENGTH - 2 && PLAIN_TAG.test(key) && !key.startsWith("#")) return `k:${key}`;
  return `k:#${hex(await crypto.subtle.digest("SHA-256", encoder.encode(key)))}`;
}

/**
 * The tags for an admitted socket: `sg`, one `k:<key>` per revocation key, then `extra` (the
 * app's own). At most 10 in all, `reserved` of them taken by someone else (partyserver's id
 * tag); keys that do not fit are returned in `overflow` (keep them in the attachment: the room
 * still finds them on revocation). Throws when the app's tags alone do not fit or are invalid.
 */
export async function buildTags(revoke = [], extra = [], { reserved = 0 } = {}) {
  for (const t of extra) {
    if (typeof t !== "string" || t.length === 0 || t.length > MAX_TAG_LENGTH) {
      throw new TypeError(`sessiongate: a tag must be a string of 1-${MAX_TAG_LENGTH} characters`);
    }
    if (t === GATE_TAG || t.startsWith("k:")) throw new TypeError(`sessiongate: the tag ${JSON.stringify(t)} is reserved`);
  }
  const slots = MAX_TAGS - reserved - 1 - extra.length;
  if (slots < 0) throw new TypeError(`sessiongate: at most ${MAX_TAGS - reserved - 1} tags of your own`);
  const keys = [...new Set(revoke)];
  const tags = [GATE_TAG];
  for (const key of keys.slice(0, slots)) tags.push(await tagForKey(key));
  tags.push(...extra);
  return { tags, overflow: keys.slice(slots) };
}

/** What a socket keeps across hibernation: `{ id, session, expires_at, ticket, route, params }` (+ `rk`, `state`). */
export function attachmentFor(admission, overflow = [], state) {
  const att = {
    id: admission.id,
    session: admission.session,
    expires_at: admission.expires_at,
    ticket: admission.ticket,
    route: admission.route,
    params: admission.params,
  };
  if (overflow.length) att.rk = overflow;
  if (state !== undefined) att.state = state;
  return att;
}

/** Serialized size in bytes (JSON, UTF-8), what the 2 KB budget is checked against. */
export function attachmentSize(value) {
  return encoder.encode(JSON.stringify(value)).length;
}

// ---------------------------------------------------------------------------------------------
// Requests

export const isUpgrade = (request) => request.headers.get("Upgrade")?.toLowerCase() === "websocket";
export const isControl = (request) => !isUpgrade(request) && new URL(request.url).pathname === CONTROL_PATH;

const json = (body, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

function clipReason(reason) {
  let r = String(reason ?? "");
  while (encoder.encode(r).length > 123) r = r.slice(0, -1);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Connections and the Gate

const tickets = new WeakMap(); // Connection -> ticket: never enumerable, never in toJSON
const gates = new WeakMap(); // Connection -> Gate

/** One admitted socket as the room sees it. `JSON.stringify(conn)` gives `{ id, session }`. */
export class Connection {
  constructor(gate, socket, record, room, keys) {
    this.socket = socket;
    this.id = record.id;
    this.session = record.session;
    this.room = room;
    this.route = record.route;
    this.params = record.params;
    this.expiresAt = record.expires_at;
    /** Revocation key ids known in memory (all of them for sockets admitted since the last wake). */
    this.keys = keys;
    this.closed = false;
    this._state = record.state;
    tickets.set(this, record.ticket);
    gates.set(this, gate);
  }
  /** The app's own state for this socket (kept in the attachment, inside the 2 KB budget). */
  get state() {
    return this._state;
  }
  setState(state) {
    gates.get(this).setState(this, state);
    return state;
  }
  send(message) {
    try {
      this.socket.send(message);
      return true;
    } catch {
      return false;
    }
  }
  close(code = 1000, reason = "") {
    gates.get(this).close(this, code, reason);
  }
  toJSON() {
    return { id: this.id, session: this.session };
  }
}

const OPEN = 1;
const RESERVED_CLOSE = new Set([1005, 1006, 1015]);

/**
 * Everything a gated room does, independent of the class it lives in: admission, acceptance
 * (hibernation API), in-memory membership rebuilt from attachments once per wake, control
 * requests, expiry and revalidation alarms. `GatedRoom` and `withSessiongate` delegate to it.
 *
 * `ctx` is the Durable Object state; `env` its bindings; `options` as in the README; `hooks`:
 * `onJoin(conn)`, `onLeave(conn, code, reason)` (called once per socket, whatever closed it).
 * `adapter` (for integrations): `read(ws)` the record from a socket's attachment, `write(ws, record)`.
 */
export class Gate {
  #ctx;
  #env;
  #byWs = new Map();
  #byId = new Map();
  #loaded = false;
  #alarmAt; // undefined: unknown (read once per wake); null: none set
  #nextRevalidation;
  #pinnedRoom;
  #warned = new Set();

  constructor(ctx, env, options = {}, hooks = {}, adapter = {}) {
    this.#ctx = ctx;
    this.#env = env;
    this.options = options;
    this.hooks = hooks;
    this.adapter = adapter;
    this.nonces = options.nonces ?? new NonceCache({ max: options.maxNonces ?? 10_000 });
  }

  now() {
    return clock(this.options.now);
  }
  log(entry) {
    const log = this.options.log ?? ((e) => console.log(JSON.stringify(e)));
    if (log) log({ sessiongate: "room", room: this.name, ...entry });
  }
  warnOnce(what, entry) {
    if (this.#warned.has(what)) return;
    this.#warned.add(what);
    this.log(entry);
  }
  /** This object's name (`ctx.id.name`), or the room of the first admission when the runtime does not say. */
  get name() {
    return this.#ctx.id?.name ?? this.#pinnedRoom;
  }
  keys() {
    const k = this.options.key;
    return keyList(typeof k === "function" ? k(this.#env) : k === undefined ? this.#env?.ADMISSION_KEY : k);
  }
  get revalidateMs() {
    const s = this.options.revalidateSeconds ?? 60;
    return s > 0 ? s * 1000 : 0;
  }
  /**
   * Whole seconds between revalidations, as this room tells the gate (the 101's
   * `x-sessiongate-revalidate`, the revalidation's `every`); 0 when it does not revalidate (no
   * interval, an interval past a day, or no binding to the gate): the gate then keeps the
   * socket's index entries forever.
   */
  get revalidateEverySeconds() {
    if (!this.revalidateMs || typeof this.#env?.[this.options.gateBinding ?? "GATE"]?.fetch !== "function") return 0;
    const every = Math.ceil(this.revalidateMs / 1000);
    // The gate refuses a revalidation whose `every` is past a day: such a room does not say.
    return every <= MAX_REVALIDATE_EVERY_SECONDS ? every : 0;
  }
  /** Marks an accepting 101 with `x-sessiongate-revalidate` (see `revalidateEverySeconds`); returns it. */
  announce(response) {
    const every = this.revalidateEverySeconds;
    if (response?.status === 101 && every > 0) {
      try {
        response.headers.set(REVALIDATE_HEADER, String(every));
      } catch {
        // immutable headers: the gate keeps the entries without expiry, as for a room that does not say
      }
    }
    return response;
  }

  // -- membership ----------------------------------------------------------------------------

  #read(ws) {
    if (this.adapter.read) return this.adapter.read(ws);
    try {
      return ws.deserializeAttachment();
    } catch {
      return null;
    }
  }
  /** Rebuilds membership from the sockets' attachments: once per wake (`getWebSockets` wakes them all). */
  load() {
    if (this.#loaded) return;
    this.#loaded = true;
    for (const ws of this.#ctx.getWebSockets(GATE_TAG)) {
      if (this.#byWs.has(ws) || ws.readyState !== OPEN) continue;
      const record = this.#read(ws);
      if (!record || typeof record.id !== "string") continue;
      this.#add(ws, record, record.rk ?? []);
    }
  }
  #add(ws, record, keys) {
    const conn = new Connection(this, ws, record, this.name, keys);
    conn.overflow = record.rk ?? [];
    this.#byWs.set(ws, conn);
    this.#byId.set(conn.id, conn);
    return conn;
  }
  #remove(conn) {
    if (conn.closed) return false;
    conn.closed = true;
    this.#byWs.delete(conn.socket);
    if (this.#byId.get(conn.id) === conn) this.#byId.delete(conn.id);
    return true;
  }
  /** Registers a socket someone else accepted (partyserver); `record` is its attachment record. */
  register(ws, record, keys) {
    this.load();
    return this.#add(ws, record, keys);
  }
  connectionOf(ws) {
    return this.#find(ws);
  }
  /** By socket; if the runtime handed us another object for the same socket, by its attachment's id. */
  #find(ws) {
    this.load();
    let conn = this.#byWs.get(ws);
    if (conn || !ws) return conn;
    const id = this.#read(ws)?.id;
    conn = id === undefined ? undefined : this.#byId.get(id);
    if (conn) {
      this.#byWs.delete(conn.socket);
      conn.socket = ws;
      this.#byWs.set(ws, conn);
    }
    return conn;
  }
  connection(id) {
    this.load();
    const conn = this.#byId.get(id);
    return conn && conn.socket.readyState === OPEN ? conn : undefined;
  }
  connections() {
    this.load();
    const out = [];
    for (const conn of this.#byWs.values()) if (conn.socket.readyState === OPEN) out.push(conn);
    return out;
  }
  sessions() {
    return this.connections().map((c) => ({ id: c.id, session: c.session }));
  }
  get size() {
    this.load();
    return this.#byWs.size;
  }

  // -- admission and acceptance --------------------------------------------------------------

  /** Verifies the upgrade's admission: the admission, or a `Response` (401, 500) to answer with. */
  async admit(request) {
    try {
      const admission = await verifyAdmission(request, {
        key: this.keys(),
        room: this.name,
        nonces: this.nonces,
        now: this.options.now,
        maxBytes: this.options.maxAdmissionBytes,
      });
      if (this.#ctx.id?.name === undefined) this.#pinnedRoom ??= admission.room;
      return admission;
    } catch (e) {
      if (!(e instanceof AdmissionError)) throw e;
      if (e.status === 500) {
        this.warnOnce("key", { error: "no ADMISSION_KEY: every admission is refused (set the secret, or the `key` option)" });
      } else {
        this.log({ refused: e.reason });
      }
      return new Response(e.status === 500 ? "sessiongate: room misconfigured" : `sessiongate: ${e.reason}`, {
        status: e.status,
      });
    }
  }

  /** The attachment record for an admission, or a 500 `Response` when it is over budget. */
  recordFor(admission, overflow = [], extraBytes = 0) {
    const record = attachmentFor(admission, overflow);
    const bytes = attachmentSize(record) + extraBytes;
    const budget = this.options.maxAttachmentBytes ?? ATTACHMENT_BUDGET;
    if (bytes > budget) {
      this.log({
        error: `socket attachment is ${bytes} bytes, over the ${budget}-byte budget: expose fewer or smaller session fields`,
      });
      return new Response("sessiongate: session projection too large (see the Worker's logs)", { status: 500 });
    }
    return record;
  }

  /**
   * Accepts an admitted socket with the hibernation API: tags `sg` + `k:<key>`..., the attachment,
   * membership, the alarm, then `onJoin`. Returns `{ client, conn }` or `{ response }` (500).
   */
  async accept(admission) {
    let tags;
    let overflow;
    try {
      const extra = this.options.tags ? await this.options.tags(admission) : [];
      ({ tags, overflow } = await buildTags(admission.revoke, extra ?? []));
    } catch (e) {
      this.log({ error: String(e?.message ?? e) });
      return { response: new Response("sessiongate: room misconfigured (see the Worker's logs)", { status: 500 }) };
    }
    const record = this.recordFor(admission, overflow);
    if (record instanceof Response) return { response: record };
    const [client, server] = this.options.createPair ? this.options.createPair() : Object.values(new WebSocketPair());
    this.load();
    this.#ctx.acceptWebSocket(server, tags);
    server.serializeAttachment(record);
    const conn = this.#add(server, record, [...new Set(admission.revoke)]);
    await this.schedule();
    try {
      await this.hooks.onJoin?.(conn);
    } catch (e) {
      this.log({ error: `onJoin threw: ${e?.message ?? e}` });
      this.close(conn, 1011, "internal error");
    }
    return { client, conn };
  }

  setState(conn, state) {
    const record = { ...(this.#read(conn.socket) ?? {}), state };
    if (state === undefined) delete record.state;
    const budget = this.options.maxAttachmentBytes ?? ATTACHMENT_BUDGET;
    const bytes = attachmentSize(record);
    if (bytes > budget) throw new RangeError(`sessiongate: state makes the attachment ${bytes} bytes, over ${budget}`);
    if (this.adapter.write) this.adapter.write(conn.socket, record);
    else conn.socket.serializeAttachment(record);
    conn._state = state;
  }

  // -- closing -------------------------------------------------------------------------------

  /** Closes a socket (membership first, then `onLeave` once). */
  close(conn, code = 1000, reason = "") {
    const fresh = this.#remove(conn);
    try {
      conn.socket.close(code, clipReason(reason));
    } catch {
      // already closing
    }
    if (fresh) this.#leave(conn, code, reason);
    return fresh;
  }
  #leave(conn, code, reason) {
    try {
      const r = this.hooks.onLeave?.(conn, code, reason);
      if (r && typeof r.then === "function") r.catch((e) => this.log({ error: `onLeave threw: ${e?.message ?? e}` }));
    } catch (e) {
      this.log({ error: `onLeave threw: ${e?.message ?? e}` });
    }
  }
  /** Forgets a socket that is closing (membership, then `onLeave` once) without touching it. */
  forget(ws, code, reason) {
    const conn = this.#find(ws);
    if (conn && this.#remove(conn)) this.#leave(conn, code, reason);
    return conn;
  }
  /** `webSocketClose`: forget the socket, `onLeave`, and answer the peer's close frame. */
  closed(ws, code, reason) {
    const conn = this.forget(ws, code, reason);
    if (!RESERVED_CLOSE.has(code)) {
      try {
        ws.close(code, reason);
      } catch {
        // already closed
      }
    }
    return conn;
  }
  /** `webSocketError`: the socket is gone. */
  errored(ws) {
    return this.forget(ws, 1006, "error");
  }
  /** The connection a message came from, or `undefined` (unknown, or expired: then closed 4401). */
  receiving(ws) {
    const conn = this.#find(ws);
    if (!conn) return undefined;
    if (conn.expiresAt !== null && conn.expiresAt <= this.now()) {
      this.close(conn, 4401, "session expired");
      return undefined;
    }
    return conn;
  }

  // -- control requests ----------------------------------------------------------------------

  async control(request) {
    if (request.method !== "POST") return new Response("sessiongate: POST only", { status: 405 });
    let control;
    try {
      control = await verifyControl(request, {
        key: this.keys(),
        nonces: this.nonces,
        now: this.options.now,
        maxBytes: this.options.maxAdmissionBytes,
      });
    } catch (e) {
      if (!(e instanceof AdmissionError)) throw e;
      this.log({ refused_control: e.reason });
      return json({ error: e.status === 500 ? "room misconfigured" : e.reason }, e.status);
    }
    if (control.op === "revoke") return json({ closed: await this.revoke(control.key) });
    return json({ error: "unknown op" }, 400);
  }

  /** Closes every socket carrying revocation key `key` with 4401 `session revoked`; the count. */
  async revoke(key, code = 4401, reason = "session revoked") {
    this.load();
    const victims = new Set();
    for (const ws of this.#ctx.getWebSockets(await tagForKey(key))) {
      const conn = this.#byWs.get(ws);
      if (conn) victims.add(conn);
    }
    for (const conn of this.#byWs.values()) {
      if (conn.keys.includes(key) || conn.overflow.includes(key)) victims.add(conn);
    }
    let closed = 0;
    for (const conn of victims) if (this.close(conn, code, reason)) closed++;
    return closed;
  }

  // -- alarms: expiry and revalidation -------------------------------------------------------

  /** Sets the object's alarm at the earliest expiry or the next revalidation, if that is sooner than the one set. */
  async schedule() {
    this.load();
    const now = this.now();
    let next = Infinity;
    for (const conn of this.#byWs.values()) if (conn.expiresAt !== null && conn.expiresAt < next) next = conn.expiresAt;
    if (this.revalidateMs && this.#byWs.size > 0) {
      this.#nextRevalidation ??= now + this.revalidateMs;
      next = Math.min(next, this.#nextRevalidation);
    }
    if (next === Infinity) return;
    if (this.#alarmAt === undefined) this.#alarmAt = (await this.#ctx.storage.getAlarm()) ?? null;
    if (this.#alarmAt === null || this.#alarmAt > next || this.#alarmAt < now - 60_000) {
      this.#alarmAt = next;
      await this.#ctx.storage.setAlarm(next);
    }
  }

  /** The alarm: close expired sockets (4401 `session expired`), revalidate when due, set the next one. */
  async alarm() {
    this.#alarmAt = null;
    this.load();
    const now = this.now();
    for (const conn of [...this.#byWs.values()]) {
      if (conn.expiresAt !== null && conn.expiresAt <= now) this.close(conn, 4401, "session expired");
    }
    if (this.revalidateMs && this.#byWs.size > 0 && (this.#nextRevalidation ?? 0) <= now) {
      this.#nextRevalidation = now + this.revalidateMs;
      await this.revalidate();
    }
    if (this.#byWs.size === 0) this.#nextRevalidation = undefined;
    await this.schedule();
  }

  /**
   * Asks the gate (service binding `gateBinding`, default `GATE`) whether the sockets' sessions
   * still hold, 100 tickets a request; closes each socket whose result is not ok with its code and
   * reason. A 503, another status, a network error or an answer without a valid signature keep
   * every socket. Returns the number closed.
   */
  async revalidate() {
    this.load();
    const name = this.options.gateBinding ?? "GATE";
    const binding = this.#env?.[name];
    if (!binding || typeof binding.fetch !== "function") {
      this.warnOnce("binding", { error: `no service binding ${name}: sockets are not revalidated` });
      return 0;
    }
    const keys = this.keys();
    if (keys.length === 0) return 0;
    const byTicket = new Map();
    for (const conn of this.#byWs.values()) {
      const t = tickets.get(conn);
      if (!byTicket.has(t)) byTicket.set(t, []);
      byTicket.get(t).push(conn);
    }
    const all = [...byTicket.keys()];
    let closed = 0;
    for (let i = 0; i < all.length; i += REVALIDATE_BATCH) {
      const batch = all.slice(i, i + REVALIDATE_BATCH);
      const results = await this.#ask(binding, keys, batch);
      if (!results) continue;
      batch.forEach((ticket, j) => {
        const r = results[j];
        if (isObject(r) && r.ok === true) return;
        const code = Number.isInteger(r?.code) && r.code >= 4000 && r.code <= 4999 ? r.code : 4401;
        const reason = typeof r?.reason === "string" ? r.reason : "session no longer valid";
        for (const conn of byTicket.get(ticket)) if (this.close(conn, code, reason)) closed++;
      });
    }
    return closed;
  }

  async #ask(binding, keys, batch) {
    const every = this.revalidateEverySeconds;
    const body = JSON.stringify(every > 0 ? { v: 1, tickets: batch, every } : { v: 1, tickets: batch });
    let res;
    let text;
    try {
      res = await binding.fetch(REVALIDATE_URL, {
        method: "POST",
        headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await mac(keys, LABELS.revalidate, body) },
        body,
      });
      text = await res.text();
    } catch (e) {
      this.log({ revalidate: "gate unreachable", error: String(e?.message ?? e) });
      return null;
    }
    if (res.status !== 200) {
      this.log({ revalidate: `gate answered ${res.status}`, kept: batch.length });
      return null;
    }
    if (!(await verifyMac(keys, LABELS.revalidated, text, res.headers.get(SIGNATURE_HEADER)))) {
      this.log({ revalidate: "answer without a valid signature", kept: batch.length });
      return null;
    }
    let answer;
    try {
      answer = JSON.parse(text);
    } catch {
      answer = null;
    }
    if (!isObject(answer) || answer.v !== 1 || !Array.isArray(answer.results) || answer.results.length !== batch.length) {
      this.log({ revalidate: "malformed answer", kept: batch.length });
      return null;
    }
    return answer.results;
  }
}

/** Resolves a class's `static sessiongate` options (an object, or a function of `env`). */
export function resolveOptions(options, env) {
  return typeof options === "function" ? options(env) ?? {} : options ?? {};
}
