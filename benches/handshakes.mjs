// Handshake throughput under `wrangler dev` (local workerd), printed as figures, not asserted:
//   node benches/handshakes.mjs [count=300] [concurrency=8]
// Three kinds of request on the same gate, in one run, so they compare like with like:
//   admitted  cookie + signature + KV read + rules + Durable Object hand-off + welcome frame,
//             into a new room each time, into 20 rooms that empty in between, and into 20
//             rooms that stay occupied
//   refused   401 before any KV read (no cookie): the gate's cheapest path through the Worker
//   static    GET / from static assets: wrangler's proxy and workerd alone, no Worker code
// Local throughput is bounded by wrangler's proxy and Miniflare, not by the gate.

import WebSocket from "ws";
import { httpRequest, newSid, sessionRecord, signedCookie, startGate } from "../tests/e2e/harness.mjs";

const count = Number(process.argv[2] ?? 300);
const concurrency = Number(process.argv[3] ?? 8);

function handshake(url, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const timer = setTimeout(() => { ws.terminate(); reject(new Error("timeout")); }, 15_000);
    ws.once("message", () => { clearTimeout(timer); ws.terminate(); resolve("admitted"); });
    ws.once("unexpected-response", (_req, res) => { clearTimeout(timer); res.resume(); ws.terminate(); resolve(res.statusCode); });
    ws.once("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

async function run(label, n, one) {
  let next = 0;
  const outcomes = new Map();
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const outcome = await one(i);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`${label.padEnd(9)} ${String(n).padStart(5)} requests  ${(n / seconds).toFixed(0).padStart(5)}/s  ` +
    `${((seconds * 1000 * concurrency) / n).toFixed(1).padStart(6)} ms each  ${JSON.stringify(Object.fromEntries(outcomes))}`);
}

const gate = await startGate("bench");
try {
  const sessions = [];
  for (let i = 0; i < count; i++) {
    const sid = newSid();
    await gate.putSession(sid, sessionRecord({ user: `u-bench-${i}` }));
    sessions.push(signedCookie(sid));
  }
  const origin = gate.origin;
  // Warm up the isolate and the Durable Object namespace.
  await run("warm-up", 20, (i) => handshake(`${gate.wsBase}/ws/rooms/warm-${i}`, { cookie: sessions[i], origin }));
  await run("static", count, () => httpRequest("GET", `${gate.base}/`).then((r) => r.status));
  await run("refused", count, (i) => handshake(`${gate.wsBase}/ws/rooms/bench-${i}`, { origin }));
  // A new room per handshake (a Durable Object starts, registers in the directory, sets its
  // alarm), then handshakes into 25 rooms that already exist.
  await run("admitted", count, (i) => handshake(`${gate.wsBase}/ws/rooms/bench-${i}`, { cookie: sessions[i], origin }));
  // Into 20 existing rooms that empty between handshakes (they stay in the revocation
  // directory for 30 s after emptying, so refilling them costs no directory request).
  await run("admitted", count, (i) => handshake(`${gate.wsBase}/ws/rooms/warm-${i % 20}`, { cookie: sessions[i], origin }));
  // The same into 20 rooms that each keep one socket open, so no room empties between
  // handshakes (an emptied room leaves the revocation directory, a refilled one rejoins).
  const anchors = [];
  for (let r = 0; r < 20; r++) {
    const sid = newSid();
    await gate.putSession(sid, sessionRecord({ user: `u-anchor-${r}` }));
    const ws = new WebSocket(`${gate.wsBase}/ws/rooms/kept-${r}`, { headers: { cookie: signedCookie(sid), origin } });
    await new Promise((ok, fail) => { ws.once("message", ok); ws.once("error", fail); });
    anchors.push(ws);
  }
  await run("admitted", count, (i) => handshake(`${gate.wsBase}/ws/rooms/kept-${i % 20}`, { cookie: sessions[i], origin }));
  anchors.forEach((ws) => ws.terminate());
} finally {
  await gate.stop();
}
