// What a refused handshake costs the Worker (issue 13): forged cookies, the refusal a flood of
// them gets, Worker CPU per refusal against (b), the plain JavaScript Worker
// (benches/anchor/), which refuses the same request for the same reason. Figures only.
//
//   BENCH_RUNTIME=miniflare node benches/refusals.mjs [rounds=7] [handshakes=1000] [concurrency=8]
//   GATE_OTHER_BUILD=<dir> adds another build of the gate (as in vs_js.mjs)
//
// Each target in its own Miniflare (or `wrangler dev` without BENCH_RUNTIME), rounds
// interleaved, the order rotating. Worker CPU per refusal is the utime+stime delta of the
// target's workerd (/proc, 10 ms ticks) over the round, divided by the refusals. The gate logs
// every refusal (one line; refusals are always logged), (b) logs nothing: the gate's figure
// carries its log line.

import { fmt, handshake, median, range, rotate, runConcurrent, sleep, startTarget, cpuSnapshot, cpuDelta } from "./support.mjs";
import { newSid } from "../tests/e2e/harness.mjs";

const ROUNDS = Number(process.argv[2] ?? 7);
const COUNT = Number(process.argv[3] ?? 1000);
const CONCURRENCY = Number(process.argv[4] ?? 8);
const SETTLE_MS = 300;

const keys = ["gate", "b", ...(process.env.GATE_OTHER_BUILD ? ["other"] : [])];
const servers = {};
try {
  for (const key of keys) servers[key] = await startTarget(key, "refusals");
  // A cookie whose signature does not verify: the gate and (b) both refuse it before any read.
  const forged = () => `connect.sid=${encodeURIComponent(`s:${newSid()}.${"A".repeat(43)}`)}`;
  const one = (s) => () => handshake(`${s.wsBase}/ws/rooms/r${Math.floor(Math.random() * 20)}`, { cookie: forged(), origin: s.origin });
  for (const key of keys) {
    const warm = await runConcurrent(200, CONCURRENCY, one(servers[key]));
    console.log(`${servers[key].label.padEnd(10)} warm-up answers ${JSON.stringify(warm.outcomes)}`);
  }
  const rows = Object.fromEntries(keys.map((k) => [k, { cpu: [], rate: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    const line = [];
    for (const key of rotate(keys, r)) {
      const s = servers[key];
      const before = cpuSnapshot(s);
      const { seconds } = await runConcurrent(COUNT, CONCURRENCY, one(s));
      await sleep(SETTLE_MS);
      const cpu = cpuDelta(before, cpuSnapshot(s)).worker / COUNT;
      rows[key].cpu.push(cpu);
      rows[key].rate.push(COUNT / seconds);
      line.push(`${s.label.trim()} ${fmt(COUNT / seconds, 0)}/s cpu ${fmt(cpu, 3)} ms`);
    }
    console.log(`round ${r + 1}: ${line.join(" | ")}`);
  }
  const per = (key, what) => rows[key][what].map((v, i) => v / rows.b[what][i]);
  console.log(`\nmedians (${ROUNDS} rounds of ${COUNT} refusals, forged cookies):`);
  for (const key of keys) console.log(`  ${servers[key].label.padEnd(10)} ${fmt(median(rows[key].rate), 0)} refusals/s   worker CPU ${fmt(median(rows[key].cpu), 3)} ms a refusal`);
  console.log(`  worker CPU gate/(b): median ${fmt(median(per("gate", "cpu")), 2)}, per round ${range(per("gate", "cpu"))}; rate gate/(b) ${fmt(median(per("gate", "rate")), 2)}`);
  if (rows.other) {
    const vs = rows.other.cpu.map((v, i) => v / rows.gate.cpu[i]);
    console.log(`  other build (${process.env.GATE_OTHER_BUILD}) / gate: worker CPU ${fmt(median(vs), 2)} (per round ${range(vs)})`);
  }
} finally {
  for (const s of Object.values(servers)) await s.stop?.();
}
process.exit(0);
