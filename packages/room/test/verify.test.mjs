// Verification of admissions and controls against the contract (test/contract-signer.mjs signs
// as the gate does), tags and attachment sizes.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ATTACHMENT_BUDGET,
  AdmissionError,
  NonceCache,
  attachmentFor,
  attachmentSize,
  b64uDecode,
  b64uEncode,
  buildTags,
  mac as roomMac,
  tagForKey,
  verifyAdmission,
  verifyControl,
  verifyMac,
} from "../core.js";
import * as gate from "./contract-signer.mjs";

const KEY = "admission key for the tests";
const URL_ = "https://app.example.com/ws/rooms/lobby";

const upgrade = (headers) => new Request(URL_, { headers: { upgrade: "websocket", ...headers } });
const signed = (over, key = KEY) => upgrade(gate.admissionHeaders(key, gate.admission(over)));
const opts = (extra = {}) => ({ key: KEY, nonces: new NonceCache(), ...extra });
const refused = (reason, status = 401) => (e) => e instanceof AdmissionError && e.reason === reason && e.status === status;

describe("mac", () => {
  it("is the contract's b64u(HMAC-SHA256(key, label + '.' + text)), 43 characters", async () => {
    const m = await roomMac(KEY, "sessiongate-revalidate-v1", '{"v":1,"tickets":[]}');
    assert.equal(m, gate.mac(KEY, "sessiongate-revalidate-v1", '{"v":1,"tickets":[]}'));
    assert.equal(m.length, 43);
    assert.ok(await verifyMac([KEY], "sessiongate-revalidate-v1", '{"v":1,"tickets":[]}', m));
    assert.ok(!(await verifyMac([KEY], "sessiongate-revalidated-v1", '{"v":1,"tickets":[]}', m)), "labels separate");
  });
  it("refuses non-canonical and malformed signatures", async () => {
    const m = gate.mac(KEY, "l", "t");
    const last = m.at(-1);
    const twin = "AEIMQUYcgkosw048".includes(last) ? m.slice(0, -1) + String.fromCharCode(last.charCodeAt(0) + 1) : null;
    if (twin) assert.ok(!(await verifyMac([KEY], "l", "t", twin)), "same bytes, other spelling");
    for (const bad of ["", m + "=", m.slice(1), m.replace(/./, "+"), `${m.slice(0, 42)}/`]) {
      assert.ok(!(await verifyMac([KEY], "l", "t", bad)), bad);
    }
  });
  it("b64u round-trips and refuses padding and foreign alphabets", () => {
    const bytes = new Uint8Array([251, 255, 0, 1, 2]);
    assert.deepEqual(b64uDecode(b64uEncode(bytes)), bytes);
    assert.equal(b64uDecode("+/8="), null);
    assert.equal(b64uDecode("A"), null);
  });
});

describe("verifyAdmission", () => {
  it("returns a valid admission, frozen", async () => {
    const body = gate.admission({ session: { user: { name: "Usuário ✓" } } });
    const a = await verifyAdmission(upgrade(gate.admissionHeaders(KEY, body)), opts({ room: "lobby" }));
    assert.deepEqual({ ...a }, body);
    assert.ok(Object.isFrozen(a));
  });
  it("accepts any key of a rotation list", async () => {
    const a = await verifyAdmission(signed({}, "old key"), opts({ key: ["new key", "old key"] }));
    assert.equal(a.v, 1);
  });
  it("refuses a forged signature", async () => {
    const h = gate.admissionHeaders(KEY, gate.admission());
    const other = gate.admissionHeaders(KEY, gate.admission({ session: { user: { name: "root" } } }));
    await assert.rejects(verifyAdmission(upgrade({ ...h, "x-sessiongate-signature": other["x-sessiongate-signature"] }), opts()), refused("bad signature"));
    const tampered = { ...h, "x-sessiongate-admission": h["x-sessiongate-admission"].slice(0, -2) + "AA" };
    await assert.rejects(verifyAdmission(upgrade(tampered), opts()), refused("bad signature"));
  });
  it("refuses a signature made with another key, or with the control label", async () => {
    await assert.rejects(verifyAdmission(signed({}, "wrong key"), opts()), refused("bad signature"));
    const value = gate.b64u(JSON.stringify(gate.admission()));
    const crossLabel = { "x-sessiongate-admission": value, "x-sessiongate-signature": gate.mac(KEY, "sessiongate-control-v1", value) };
    await assert.rejects(verifyAdmission(upgrade(crossLabel), opts()), refused("bad signature"));
  });
  it("refuses unsigned admissions", async () => {
    const h = gate.admissionHeaders(KEY, gate.admission());
    await assert.rejects(verifyAdmission(upgrade({}), opts()), refused("unsigned"));
    await assert.rejects(verifyAdmission(upgrade({ "x-sessiongate-admission": h["x-sessiongate-admission"] }), opts()), refused("unsigned"));
    await assert.rejects(verifyAdmission(upgrade({ "x-sessiongate-signature": h["x-sessiongate-signature"] }), opts()), refused("unsigned"));
  });
  it("refuses an expired admission and one that expires too late", async () => {
    await assert.rejects(verifyAdmission(signed({ iat: Date.now() - 31_000 }), opts()), refused("expired"));
    await assert.rejects(verifyAdmission(signed({ exp: Date.now() + 3_600_000 }), opts()), refused("expires too late"));
    const t = Date.now();
    await assert.rejects(verifyAdmission(signed({ iat: t }), opts({ now: () => t + 30_000 })), refused("expired"));
    await verifyAdmission(signed({ iat: t }), opts({ now: () => t + 29_999 }));
  });
  it("refuses a replayed nonce, until it expires from the cache", async () => {
    const o = opts();
    const body = gate.admission();
    await verifyAdmission(upgrade(gate.admissionHeaders(KEY, body)), o);
    await assert.rejects(verifyAdmission(upgrade(gate.admissionHeaders(KEY, body)), o), refused("replayed"));
    const other = gate.admission({ nonce: body.nonce, id: gate.newId() });
    await assert.rejects(verifyAdmission(upgrade(gate.admissionHeaders(KEY, other)), o), refused("replayed"));
  });
  it("does not remember the nonce of a refused admission", async () => {
    const o = opts({ room: "lobby" });
    const body = gate.admission({ room: "elsewhere" });
    await assert.rejects(verifyAdmission(upgrade(gate.admissionHeaders(KEY, body)), o), refused("wrong room"));
    await verifyAdmission(upgrade(gate.admissionHeaders(KEY, { ...body, room: "lobby" })), o);
  });
  it("refuses the wrong room when the room is known, and skips the check when not", async () => {
    await assert.rejects(verifyAdmission(signed({ room: "lobby2" }), opts({ room: "lobby" })), refused("wrong room"));
    await verifyAdmission(signed({ room: "lobby2" }), opts());
  });
  it("refuses another version", async () => {
    for (const v of [2, 0, "1", null, undefined]) {
      await assert.rejects(verifyAdmission(signed({ v }), opts()), refused("unsupported version"), String(v));
    }
  });
  it("refuses bad base64 and bad JSON, even when signed", async () => {
    const sign = (value) => upgrade({ "x-sessiongate-admission": value, "x-sessiongate-signature": gate.mac(KEY, "sessiongate-admission-v1", value) });
    for (const value of ["eyJ2IjoxfQ==", "eyJ2Ijox+Q", "not base64!", gate.b64u("{nope"), gate.b64u("[1]"), gate.b64u("null"), gate.b64u(Buffer.from([0xff, 0xfe]))]) {
      await assert.rejects(verifyAdmission(sign(value), opts()), refused("malformed"), value);
    }
  });
  it("refuses malformed fields", async () => {
    const cases = [
      { room: 7 }, { id: "" }, { id: "c 1" }, { id: "x".repeat(65) }, { route: null }, { params: [] }, { session: "ada" },
      { expires_at: "soon" }, { revoke: "k" }, { revoke: [""] }, { ticket: 1 }, { iat: "now" }, { exp: null },
      { nonce: "short" }, { nonce: "has spaces in it, 1234" },
    ];
    for (const over of cases) await assert.rejects(verifyAdmission(signed(over), opts()), refused("malformed"), JSON.stringify(over));
  });
  it("refuses an admission whose session already expired; expires_at null never expires", async () => {
    await assert.rejects(verifyAdmission(signed({ expires_at: Date.now() - 1 }), opts()), refused("session expired"));
    assert.equal((await verifyAdmission(signed({ expires_at: null }), opts())).expires_at, null);
  });
  it("refuses a huge header before any HMAC or decoding", async () => {
    const h = gate.admissionHeaders(KEY, gate.admission({ session: { blob: "x".repeat(20_000) } }));
    await assert.rejects(verifyAdmission(upgrade(h), opts()), refused("too large"));
    await verifyAdmission(upgrade(h), opts({ maxBytes: 64_000 }));
  });
  it("without a key refuses everything with status 500 (never fail open)", async () => {
    for (const key of [undefined, "", [], [""]]) {
      await assert.rejects(verifyAdmission(signed({}), opts({ key })), refused("no admission key configured", 500));
    }
  });
});

describe("NonceCache", () => {
  it("is bounded: full of live nonces it refuses, expired ones are dropped", () => {
    const c = new NonceCache({ max: 3 });
    assert.equal(c.add("a", 100, 0), "ok");
    assert.equal(c.add("b", 200, 0), "ok");
    assert.equal(c.add("c", 300, 0), "ok");
    assert.equal(c.add("d", 300, 50), "full");
    assert.equal(c.add("a", 300, 50), "seen");
    assert.equal(c.add("d", 400, 150), "ok", "a expired at 100 and was dropped");
    assert.equal(c.size, 3);
    assert.equal(c.add("a", 500, 150), "full", "b, c, d still live");
    assert.equal(c.add("a", 500, 250), "ok", "b expired: room again; a nonce past its exp may come again (its admission could not)");
    assert.equal(c.add("x", 999, 1000), "ok");
    assert.equal(c.size, 1);
  });
});

describe("verifyControl", () => {
  const req = (headers, method = "POST") => new Request(gate.CONTROL_URL, { method, headers });
  it("returns a valid revoke control", async () => {
    const body = gate.control();
    const c = await verifyControl(req(gate.controlHeaders(KEY, body)), opts());
    assert.deepEqual({ ...c }, body);
  });
  it("refuses forged, wrong-key, unsigned, stale, replayed and malformed controls", async () => {
    const o = opts();
    const body = gate.control();
    const h = gate.controlHeaders(KEY, body);
    await assert.rejects(verifyControl(req({ ...h, "x-sessiongate-signature": gate.controlHeaders(KEY, gate.control())["x-sessiongate-signature"] }), o), refused("bad signature"));
    await assert.rejects(verifyControl(req(gate.controlHeaders("wrong key", body)), o), refused("bad signature"));
    await assert.rejects(verifyControl(req({ "x-sessiongate-control": h["x-sessiongate-control"] }), o), refused("unsigned"));
    await assert.rejects(verifyControl(req(gate.controlHeaders(KEY, gate.control({ iat: Date.now() - 40_000 }))), o), refused("expired"));
    await assert.rejects(verifyControl(req(gate.controlHeaders(KEY, gate.control({ v: 2 }))), o), refused("unsupported version"));
    await assert.rejects(verifyControl(req(gate.controlHeaders(KEY, gate.control({ key: 5 }))), o), refused("malformed"));
    await verifyControl(req(h), o);
    await assert.rejects(verifyControl(req(h), o), refused("replayed"));
  });
  it("an admission's signature does not make a control", async () => {
    const value = gate.b64u(JSON.stringify(gate.control()));
    const h = { "x-sessiongate-control": value, "x-sessiongate-signature": gate.mac(KEY, "sessiongate-admission-v1", value) };
    await assert.rejects(verifyControl(req(h), opts()), refused("bad signature"));
  });
  it("returns unknown ops for the caller to answer", async () => {
    const c = await verifyControl(req(gate.controlHeaders(KEY, gate.control({ op: "drain" }))), opts());
    assert.equal(c.op, "drain");
  });
});

describe("tags", () => {
  it("are sg plus one k:<id> per revocation key", async () => {
    const k = [gate.newKeyId(), gate.newKeyId()];
    const { tags, overflow } = await buildTags([...k, k[0]]);
    assert.deepEqual(tags, ["sg", `k:${k[0]}`, `k:${k[1]}`]);
    assert.deepEqual(overflow, []);
  });
  it("never exceed 10 (reserved slots included); keys that do not fit overflow", async () => {
    const keys = Array.from({ length: 12 }, gate.newKeyId);
    let r = await buildTags(keys);
    assert.equal(r.tags.length, 10);
    assert.deepEqual(r.overflow, keys.slice(9));
    r = await buildTags(keys, ["team:a", "role:admin"], { reserved: 1 });
    assert.equal(r.tags.length, 9);
    assert.deepEqual(r.tags.slice(-2), ["team:a", "role:admin"]);
    assert.deepEqual(r.overflow, keys.slice(6));
    for (const t of r.tags) assert.ok(t.length <= 256);
    await assert.rejects(buildTags([], Array.from({ length: 9 }, (_, i) => `t${i}`), { reserved: 1 }), TypeError);
    await assert.rejects(buildTags([], ["sg"]), TypeError);
    await assert.rejects(buildTags([], ["k:forged"]), TypeError);
    await assert.rejects(buildTags([], ["x".repeat(257)]), TypeError);
  });
  it("hash keys that do not fit a tag, the same way every time", async () => {
    const long = "k".repeat(300);
    const t = await tagForKey(long);
    assert.match(t, /^k:#[0-9a-f]{64}$/);
    assert.equal(t, await tagForKey(long));
    assert.match(await tagForKey("with space"), /^k:#/);
    assert.match(await tagForKey("#looks-hashed"), /^k:#[0-9a-f]{64}$/);
    assert.equal(await tagForKey("a".repeat(254)), `k:${"a".repeat(254)}`);
  });
});

describe("attachments", () => {
  it("hold id, session, expires_at, ticket, route, params; never the nonce or signature", () => {
    const a = gate.admission();
    const att = attachmentFor(a);
    assert.deepEqual(Object.keys(att), ["id", "session", "expires_at", "ticket", "route", "params"]);
    assert.deepEqual(Object.keys(attachmentFor(a, ["k"], { x: 1 })), [...Object.keys(att), "rk", "state"]);
  });
  it("a typical one is well inside the 2 KB budget; size counts UTF-8 bytes", () => {
    const size = attachmentSize(attachmentFor(gate.admission()));
    assert.ok(size < 400, `${size}`);
    assert.equal(attachmentSize({ s: "é" }), 10);
    assert.equal(ATTACHMENT_BUDGET, 2048);
  });
});
