// What a session read costs an Express app, printed as figures, not asserted:
//   node benches/store_reads.mjs [reads per round=200] [rounds=5]
// In each round, interleaved: `get` through SessiongateStore (HTTP to the gate under
// `wrangler dev`, which reads local KV) and `get` on express-session's MemoryStore (what
// `mirror` keeps reads on). Also counts the gate writes that 100 touches cause with the
// default throttle. Local figures: a real deployment adds the app-to-edge round trip to every
// read through the gate, which is why `mirror` keeps reads on the app's own store.

import { createRequire } from "node:module";
import { STORE_TOKEN, newSid, sessionRecord, startGate } from "../tests/e2e/harness.mjs";

const require = createRequire(import.meta.url);
const session = require("express-session");
const { SessiongateStore } = require("../packages/express-store/index.cjs");

const perRound = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 5);

const gate = await startGate("bench-store");
try {
  const viaGate = new SessiongateStore({ url: gate.base, token: STORE_TOKEN });
  const memory = new session.MemoryStore();
  const sid = newSid();
  const record = sessionRecord();
  await new Promise((ok, fail) => viaGate.set(sid, record, (e) => (e ? fail(e) : ok())));
  await new Promise((ok) => memory.set(sid, record, ok));
  const get = (store) => new Promise((ok, fail) => store.get(sid, (e, s) => (e || !s ? fail(e ?? new Error("absent")) : ok(s))));
  const time = async (store) => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) await get(store);
    return Number(process.hrtime.bigint() - started) / 1e3 / perRound; // µs per read
  };
  await time(viaGate); // warm up
  const rows = [];
  for (let r = 0; r < rounds; r++) {
    const g = await time(viaGate);
    const m = await time(memory);
    rows.push({ g, m });
    console.log(`round ${r + 1}: gate ${g.toFixed(0)} µs/read, MemoryStore ${m.toFixed(1)} µs/read, ratio ${(g / m).toFixed(0)}x`);
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`median: gate ${median(rows.map((x) => x.g)).toFixed(0)} µs/read (anchor: MemoryStore ${median(rows.map((x) => x.m)).toFixed(1)} µs/read)`);

  // Writes that 100 touches cause: the session's expiry moves 10 s per touch, as a
  // request every 10 s would with express-session's default rolling expiry.
  const puts = () => gate.logLines().filter((l) => l.sessiongate === "store" && l.op === "put").length;
  await gate.waitLog((l) => l.sessiongate === "store" && l.op === "put");
  const before = puts();
  const touchSid = newSid();
  const start = Date.now();
  for (let i = 0; i < 100; i++) {
    const s = sessionRecord({ expires: start + 3_600_000 + i * 10_000 });
    await new Promise((ok, fail) => viaGate.touch(touchSid, s, (e) => (e ? fail(e) : ok())));
  }
  await new Promise((ok) => setTimeout(ok, 500));
  console.log(`100 touches of one session in a row: ${puts() - before} gate writes (throttle: touchShare 0.1, at most 1/s per session)`);
} finally {
  await gate.stop();
}
