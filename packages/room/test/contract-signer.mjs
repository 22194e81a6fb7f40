// The GATE side of docs/ADMISSION.md v1, written from the contract with node:crypto (not with
// the package's WebCrypto code): what these tests sign is what the contract says.

import { createHmac, randomBytes } from "node:crypto";

export const b64u = (buf) => Buffer.from(buf).toString("base64url");
export const mac = (key, label, text) => b64u(createHmac("sha256", Buffer.from(key, "utf8")).update(`${label}.${text}`).digest());

export function newId() {
  return `c${randomBytes(6).toString("hex")}`;
}
export function newKeyId() {
  return randomBytes(32).toString("hex");
}

/** An admission object with contract defaults; `over` replaces fields. */
export function admission(over = {}) {
  const iat = over.iat ?? Date.now();
  return {
    v: 1,
    room: "lobby",
    id: newId(),
    route: "/ws/rooms/:room",
    params: { room: "lobby" },
    session: { passport: { user: "u-ada" }, user: { name: "ada" } },
    expires_at: iat + 3_600_000,
    revoke: [newKeyId()],
    ticket: `t.${randomBytes(24).toString("base64url")}`,
    iat,
    exp: iat + 30_000,
    nonce: b64u(randomBytes(16)),
    ...over,
  };
}

/** The headers the gate adds to a forwarded upgrade. */
export function admissionHeaders(key, body) {
  const value = b64u(Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8"));
  return {
    "x-sessiongate-admission": value,
    "x-sessiongate-signature": mac(key, "sessiongate-admission-v1", value),
  };
}

/** A control object with contract defaults. */
export function control(over = {}) {
  const iat = over.iat ?? Date.now();
  return { v: 1, op: "revoke", key: newKeyId(), iat, exp: iat + 30_000, nonce: b64u(randomBytes(16)), ...over };
}

export function controlHeaders(key, body) {
  const value = b64u(Buffer.from(JSON.stringify(body), "utf8"));
  return {
    "x-sessiongate-control": value,
    "x-sessiongate-signature": mac(key, "sessiongate-control-v1", value),
  };
}

export const CONTROL_URL = "https://sessiongate.internal/_sessiongate/control";

/**
 * The gate's revalidation endpoint as a fetch-like function: checks the room's signature, and
 * answers each ticket with `decide(ticket)` (a result object), signed. `status` overrides (503).
 */
export function revalidationEndpoint(key, decide, seen = []) {
  const endpoint = {
    status: 200,
    calls: seen,
    async fetch(url, init) {
      const body = init.body;
      const headers = new Headers(init.headers);
      const ok =
        String(url) === "https://sessiongate.internal/_sessiongate/revalidate" &&
        init.method === "POST" &&
        headers.get("x-sessiongate-signature") === mac(key, "sessiongate-revalidate-v1", body);
      seen.push({ ok, body: JSON.parse(body) });
      if (!ok) return new Response("bad signature", { status: 401 });
      if (endpoint.status !== 200) return new Response("store unavailable", { status: endpoint.status });
      const { tickets } = JSON.parse(body);
      const answer = JSON.stringify({ v: 1, results: tickets.map((t) => decide(t)) });
      return new Response(answer, {
        headers: { "content-type": "application/json", "x-sessiongate-signature": mac(key, "sessiongate-revalidated-v1", answer) },
      });
    },
  };
  return endpoint;
}
