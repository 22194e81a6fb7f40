// Fan-out in one room (issue 13): the gate's Room against the JavaScript Durable Object of
// anchor (b) (benches/anchor/worker.js), printed as figures beside their anchors, nothing
// asserted:
//
//   node benches/fanout.mjs [sockets=1000] [broadcasts=20] [rounds=3]
//   node benches/fanout.mjs 300 10 2          # the short form, about two minutes
//   GATE_OTHER_BUILD=<dir> node benches/fanout.mjs ...   # and another build of the gate
//
// Each under its own `wrangler dev` (the gate with --env bench: 1,000 sockets a room, no
// revalidation). In each round, for each of the two in turn (the order alternates):
//   fill       open `sockets` sockets into a new room, 16 handshakes in flight, one session
//              each; "admitted" is when the last welcome arrived, "settled" when every join
//              frame did too (each arrival is announced to everyone already there: n(n-1)/2)
//   broadcast  socket 0 sends {"type":"broadcast","data":{k,t}} `broadcasts` times, one at a
//              time; first / last delivery = when the first / last of the other sockets got its
//              {"type":"message",...} (every one must, exactly once), times taken here
//   CPU        utime+stime of the Worker's workerd (/proc/<pid>/stat, 10 ms ticks) over the
//              fill (per socket) and over the broadcasts (per broadcast)
// Then every socket is dropped and the next waits until that workerd is idle again.
// The clients share the machine (and Node's one thread) with both Workers: figures are local.

import WebSocket from "ws";
import { CPU_RESOLUTION_MS, cpuDelta, cpuSnapshot, fmt, gateAndAnchor, median, range, reportGateTroubles, reportOtherBuild, rotate, seedSessions, sleep, startTarget } from "./support.mjs";

const SOCKETS = Number(process.argv[2] ?? 1000);
const BROADCASTS = Number(process.argv[3] ?? 20);
const ROUNDS = Number(process.argv[4] ?? 3);
const OPEN_CONCURRENCY = 16;
const PAUSE_MS = 20; // between broadcasts
const TIMEOUT_MS = 60_000;

const ANCHOR = {
  fill: "issue 13 measured gate/JS 1.34-1.49; target <= 1.0",
  first: "issue 13 measured gate/JS 1.7-2.0; target <= 1.0",
  cpu: "issue 13 measured gate/JS 1.25; target <= 1.0",
};

/** One room's sockets as seen from here. */
class Room {
  constructor(server, name) {
    this.server = server;
    this.url = `${server.wsBase}/ws/rooms/${name}`;
    this.sockets = [];
    this.joins = 0;
    this.errors = [];
    this.unexpectedCloses = 0;
    this.closing = false;
    this.pending = null; // { key, sentAt, first, last, got: Set }
    this.extensions = null;
  }

  open(index, cookie) {
    return new Promise((ok, fail) => {
      const ws = new WebSocket(this.url, { headers: { cookie, origin: this.server.origin }, handshakeTimeout: 30_000 });
      ws.once("unexpected-response", (_q, res) => fail(new Error(`socket ${index}: HTTP ${res.statusCode}`)));
      ws.once("error", (e) => fail(new Error(`socket ${index}: ${e.message}`)));
      ws.once("message", (data) => {
        const welcome = JSON.parse(data.toString());
        if (welcome.type !== "welcome") return fail(new Error(`socket ${index}: first frame ${data}`));
        this.extensions ??= ws.extensions || "none";
        ws.on("message", (d) => this.onFrame(index, d.toString()));
        ws.on("close", () => {
          if (!this.closing) this.unexpectedCloses++;
        });
        ok(ws);
      });
    });
  }

  onFrame(index, text) {
    const now = performance.now();
    const frame = JSON.parse(text);
    if (frame.type === "join") {
      this.joins++;
    } else if (frame.type === "message") {
      const p = this.pending;
      if (!p || frame.data?.k !== p.key || index === 0 || p.got.has(index)) {
        this.errors.push(`socket ${index}: unexpected ${text.slice(0, 120)}`);
        return;
      }
      p.got.add(index);
      p.first ??= now - p.sentAt;
      p.last = now - p.sentAt;
      if (p.got.size === this.sockets.length - 1) p.done();
    } else if (frame.type !== "leave") {
      this.errors.push(`socket ${index}: ${text.slice(0, 120)}`);
    }
  }

  async fill(cookies) {
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: OPEN_CONCURRENCY }, async () => {
        while (next < SOCKETS) {
          const i = next++;
          this.sockets[i] = await this.open(i, cookies[i]);
        }
      }),
    );
    const admitted = performance.now() - started;
    const expectedJoins = (SOCKETS * (SOCKETS - 1)) / 2;
    while (this.joins < expectedJoins && performance.now() - started - admitted < TIMEOUT_MS) await sleep(5);
    if (this.joins !== expectedJoins) this.errors.push(`${this.joins} join frames of ${expectedJoins}`);
    return { admitted, settled: performance.now() - started };
  }

  broadcast(seq) {
    return new Promise((ok) => {
      const key = `b${seq}`;
      const timer = setTimeout(() => {
        this.errors.push(`broadcast ${key}: ${this.pending.got.size} of ${this.sockets.length - 1} deliveries in ${TIMEOUT_MS} ms`);
        this.pending.done();
      }, TIMEOUT_MS);
      this.pending = {
        key,
        got: new Set(),
        first: null,
        last: null,
        sentAt: performance.now(),
        done: () => {
          clearTimeout(timer);
          const p = this.pending;
          ok({ first: p.first, last: p.last });
        },
      };
      this.sockets[0].send(JSON.stringify({ type: "broadcast", data: { k: key, t: Date.now() } }));
    });
  }

  drop() {
    this.closing = true;
    for (const ws of this.sockets) ws?.terminate();
  }
}

/** Waits until the Worker's workerd used less than 20 ms of CPU in half a second (or 60 s passed). */
async function quiet(server) {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const a = cpuSnapshot(server);
    await sleep(500);
    if (cpuDelta(a, cpuSnapshot(server)).worker < 20 || performance.now() > deadline) return;
  }
}

console.log(`## fan-out: ${SOCKETS} sockets in one room, ${BROADCASTS} broadcasts each to the ${SOCKETS - 1} others, ${ROUNDS} rounds interleaved`);
// GATE_OTHER_BUILD=<dir> (index.js and index_bg.wasm): another build of the gate as a third
// target, to compare two builds in one run (printed as other/gate).
const keys = gateAndAnchor();
const servers = {};
let failed = false;
try {
  for (const key of keys) servers[key] = await startTarget(key, "fanout");
  // One session per socket, the same sessions in both KVs.
  const cookies = await seedSessions(servers, SOCKETS, "fan");
  for (const key of keys) {
    // Warm the isolate and the Durable Object namespace.
    const warm = new Room(servers[key], `warm-${Date.now().toString(36)}`);
    for (let i = 0; i < 10; i++) warm.sockets.push(await warm.open(i, cookies[i]));
    warm.drop();
  }

  const rows = Object.fromEntries(keys.map((key) => [key, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const key of rotate(keys, r)) {
      const s = servers[key];
      await quiet(s);
      const room = new Room(s, `fan-${r}-${Date.now().toString(36)}`);
      const c0 = cpuSnapshot(s);
      const fill = await room.fill(cookies);
      const c1 = cpuSnapshot(s);
      const deliveries = [];
      for (let b = 0; b < BROADCASTS; b++) {
        deliveries.push(await room.broadcast(b));
        await sleep(PAUSE_MS);
      }
      const c2 = cpuSnapshot(s);
      const row = {
        admitted: fill.admitted,
        settled: fill.settled,
        fillCpu: cpuDelta(c0, c1).worker / SOCKETS,
        first: median(deliveries.map((d) => d.first)),
        last: median(deliveries.map((d) => d.last)),
        cpu: cpuDelta(c1, c2).worker / BROADCASTS,
        proxyCpu: cpuDelta(c1, c2).proxy / BROADCASTS,
        errors: room.errors.length + room.unexpectedCloses,
      };
      rows[key].push(row);
      console.log(
        `round ${r + 1} ${s.label.padEnd(7)} fill: admitted ${fmt(row.admitted / 1000, 2)} s, settled ${fmt(row.settled / 1000, 2)} s, ${fmt(row.fillCpu, 2)} ms CPU/socket | ` +
          `broadcast: first ${fmt(row.first, 1)} ms, last ${fmt(row.last, 1)} ms (medians), ${fmt(row.cpu, 1)} ms worker CPU (proxy ${fmt(row.proxyCpu, 1)})` +
          `${row.errors ? ` | ${room.errors.length} errors, ${room.unexpectedCloses} unexpected closes: ${room.errors.slice(0, 3).join("; ")}` : ""}` +
          `${r === 0 ? ` | extensions: ${room.extensions}` : ""}`,
      );
      if (row.errors) failed = true;
      room.drop();
    }
  }

  const med = (key, field) => median(rows[key].map((x) => x[field]));
  const ratios = (field) => rows.gate.map((g, r) => g[field] / rows.b[r][field]);
  const line = (what, field, unit, digits, anchor = "") =>
    console.log(
      `  ${what.padEnd(30)} gate ${fmt(med("gate", field), digits).padStart(8)} ${unit}  JS ${fmt(med("b", field), digits).padStart(8)} ${unit}  ` +
        `gate/JS ${fmt(med("gate", field) / med("b", field), 2)} (per round ${range(ratios(field))})${anchor ? `   [${anchor}]` : ""}`,
    );
  console.log("");
  console.log(`medians of ${ROUNDS} rounds (CPU resolution ${fmt(CPU_RESOLUTION_MS / BROADCASTS, 2)} ms per broadcast, ${fmt(CPU_RESOLUTION_MS / SOCKETS, 3)} ms per socket):`);
  line("fill, all admitted", "admitted", "ms", 0, ANCHOR.fill);
  line("fill, every join delivered", "settled", "ms", 0);
  line("fill, worker CPU per socket", "fillCpu", "ms", 2);
  line("broadcast, first delivery", "first", "ms", 1, ANCHOR.first);
  line("broadcast, last delivery", "last", "ms", 1);
  line("broadcast, worker CPU", "cpu", "ms", 1, ANCHOR.cpu);
  reportOtherBuild(rows, [["fill admitted", "admitted"], ["fill CPU", "fillCpu"], ["broadcast first", "first"], ["broadcast CPU", "cpu"]]);
  reportGateTroubles(servers.gate);
  if (failed) console.log("  (some deliveries were missing, duplicated or unexpected: see the rounds above)");
} finally {
  for (const s of Object.values(servers)) await s.stop();
}
process.exit(0);
