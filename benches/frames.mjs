// Client frames in one room (issue 13): what a room spends on each frame a client sends, the
// gate's Room against the JavaScript Durable Object of anchor (b) (benches/anchor/worker.js),
// printed as figures beside their anchor, nothing asserted:
//
//   node benches/frames.mjs [senders=20] [frames=200] [rounds=3] [idle=0]
//   BENCH_RUNTIME=miniflare node benches/frames.mjs ...   # each in its own Miniflare
//   GATE_OTHER_BUILD=<dir> node benches/frames.mjs ...    # and another build of the gate
//   FRAMES_BINARY=<bytes> node benches/frames.mjs ...     # binary frames of that size instead
//
// fanout.mjs measures one frame in and 999 out; a chat's traffic is mostly the other way: many
// members sending, each frame going to few. In each round, for each target in turn (the order
// alternates): `senders` + 1 sockets join a new room, one session each, and `idle` more that
// only listen (a big room, in which finding a frame's sender and its peer must not cost a
// comparison with every member); every sender sends
// `frames` frames {"type":"send","to":<the receiver's id>,"data":{...}} to the one receiver, in
// bursts of 25 frames 50 ms apart (`sendPaced`: under [env.bench]'s rate limit of 1,000 frames
// a second a socket), all senders at once. The round ends when the receiver got every frame,
// each exactly once. Figures: the Worker's workerd CPU (utime+stime from /proc, 10 ms ticks)
// over the sending, per frame; and the time from the first send to the last delivery.
// With FRAMES_BINARY, every sender sends binary frames of that many bytes instead, which both
// rooms refuse with an `error` frame to the sender (the gate's for their size, past
// max_message_bytes): what a client flooding a room with large frames costs it. The round ends
// when every sender got an error frame for each of its frames.

import WebSocket from "ws";
import { CPU_RESOLUTION_MS, cpuDelta, cpuSnapshot, fmt, gateAndAnchor, median, range, reportGateTroubles, reportOtherBuild, rotate, runConcurrent, seedSessions, sendFrames, sendPaced, sleep, startTarget } from "./support.mjs";

const SENDERS = Number(process.argv[2] ?? 20);
const FRAMES = Number(process.argv[3] ?? 200);
const ROUNDS = Number(process.argv[4] ?? 3);
const IDLE = Number(process.argv[5] ?? 0);
const TIMEOUT_MS = 60_000;
const BINARY = Number(process.env.FRAMES_BINARY ?? 0);

/** A room of one receiver (socket 0) and `SENDERS` senders, as seen from here. */
class FrameRoom {
  constructor(server, name) {
    this.url = `${server.wsBase}/ws/rooms/${name}`;
    this.origin = server.origin;
    this.sockets = [];
    this.ids = [];
    this.got = new Set();
    /** With FRAMES_BINARY: the refusals each sender got. */
    this.refusals = new Array(SENDERS + 1).fill(0);
    this.refused = 0;
    this.errors = [];
    this.closing = false;
    this.delivered = null;
  }

  /** Opens socket `i` and reads its id from its welcome. */
  open(i, cookie) {
    return new Promise((ok, fail) => {
      const ws = new WebSocket(this.url, { headers: { cookie, origin: this.origin } });
      ws.once("unexpected-response", (_q, res) => fail(new Error(`socket ${i}: HTTP ${res.statusCode}`)));
      ws.once("error", (e) => fail(new Error(`socket ${i}: ${e.message}`)));
      ws.once("message", (data) => {
        const welcome = JSON.parse(data.toString());
        if (welcome.type !== "welcome" || typeof welcome.id !== "string") return fail(new Error(`socket ${i}: first frame ${data}`));
        ws.on("message", (d) => this.onFrame(i, d.toString()));
        ws.on("close", (code) => this.closing || this.errors.push(`socket ${i} closed (${code})`));
        this.sockets[i] = ws;
        this.ids[i] = welcome.id;
        ok();
      });
    });
  }

  onFrame(i, text) {
    const frame = JSON.parse(text);
    if (frame.type === "join" || frame.type === "leave") return;
    if (BINARY) {
      if (i === 0 || frame.type !== "error") return this.errors.push(`socket ${i}: ${text.slice(0, 120)}`);
      if (++this.refusals[i] > FRAMES) return this.errors.push(`socket ${i}: more refusals than frames`);
      if (++this.refused === SENDERS * FRAMES) this.delivered?.();
      return;
    }
    if (i !== 0 || frame.type !== "message") {
      this.errors.push(`socket ${i}: ${text.slice(0, 120)}`);
      return;
    }
    const key = `${frame.data?.s}:${frame.data?.n}`;
    if (this.got.has(key)) this.errors.push(`duplicate ${key}`);
    this.got.add(key);
    if (this.got.size === SENDERS * FRAMES) this.delivered?.();
  }

  /** Every sender sends its frames to the receiver; resolves with the ms to the last delivery. */
  async send() {
    const started = performance.now();
    const all = new Promise((ok) => {
      this.delivered = ok;
      setTimeout(() => {
        this.errors.push(`${BINARY ? this.refused : this.got.size} of ${SENDERS * FRAMES} frames ${BINARY ? "refused" : "delivered"} in ${TIMEOUT_MS} ms`);
        ok();
      }, TIMEOUT_MS).unref();
    });
    const payload = Buffer.alloc(BINARY, 7);
    await Promise.all(
      Array.from({ length: SENDERS }, (_, k) => {
        const ws = this.sockets[k + 1];
        return BINARY ? sendPaced(ws, FRAMES, () => payload) : sendFrames(ws, this.ids[0], FRAMES, k + 1);
      }),
    );
    await all;
    return performance.now() - started;
  }

  drop() {
    this.closing = true;
    for (const ws of this.sockets) ws?.terminate();
  }
}

console.log(`## client frames: ${SENDERS} senders x ${FRAMES} ${BINARY ? `binary frames of ${BINARY} B, each refused,` : "frames to one receiver"} in one room${IDLE ? ` with ${IDLE} more members` : ""}, ${ROUNDS} rounds interleaved`);
const keys = gateAndAnchor();
const servers = {};
let failed = false;
try {
  for (const key of keys) servers[key] = await startTarget(key, "frames");
  const cookies = await seedSessions(servers, SENDERS + 1 + IDLE, "frames");

  const rows = Object.fromEntries(keys.map((key) => [key, []]));
  // Round 0 warms each isolate, its Durable Object namespace and the frame path; not counted.
  for (let r = 0; r <= ROUNDS; r++) {
    for (const key of rotate(keys, r)) {
      const s = servers[key];
      const room = new FrameRoom(s, `frames-${r}-${Date.now().toString(36)}`);
      for (let i = 0; i <= SENDERS; i++) await room.open(i, cookies[i]);
      await runConcurrent(IDLE, 16, (j) => room.open(SENDERS + 1 + j, cookies[SENDERS + 1 + j]));
      await sleep(500 + 20 * IDLE); // the arrivals' bookkeeping and joins are not the frames'
      const c0 = cpuSnapshot(s);
      const ms = await room.send();
      const cpu = cpuDelta(c0, cpuSnapshot(s));
      room.drop();
      await sleep(500);
      if (r === 0) continue;
      const frames = SENDERS * FRAMES;
      const row = { cpu: (cpu.worker / frames) * 1000, ms, errors: room.errors.length };
      rows[key].push(row);
      console.log(
        `round ${r} ${s.label.padEnd(7)} ${frames} frames delivered in ${fmt(ms, 0)} ms, worker CPU ${fmt(row.cpu, 1)} µs a frame (proxy ${fmt((cpu.proxy / frames) * 1000, 1)})` +
          `${row.errors ? ` | ${room.errors.length} errors: ${room.errors.slice(0, 3).join("; ")}` : ""}`,
      );
      if (row.errors) failed = true;
    }
  }

  const med = (key, field) => median(rows[key].map((x) => x[field]));
  const ratios = (key, field) => rows[key].map((g, r) => g[field] / rows.b[r][field]);
  console.log("");
  console.log(`medians of ${ROUNDS} rounds (CPU resolution ${fmt((CPU_RESOLUTION_MS / (SENDERS * FRAMES)) * 1000, 1)} µs a frame):`);
  for (const [what, field, unit] of [
    ["worker CPU a frame", "cpu", "µs"],
    ["every frame delivered", "ms", "ms"],
  ]) {
    console.log(
      `  ${what.padEnd(24)} gate ${fmt(med("gate", field), 1).padStart(8)} ${unit}  JS ${fmt(med("b", field), 1).padStart(8)} ${unit}  ` +
        `gate/JS ${fmt(med("gate", field) / med("b", field), 2)} (per round ${range(ratios("gate", field))})`,
    );
  }
  reportOtherBuild(rows, [["CPU a frame", "cpu"], ["delivery", "ms"]]);
  reportGateTroubles(servers.gate);
  if (failed) console.log("  (some frames were missing, duplicated or unexpected: see the rounds above)");
} finally {
  for (const s of Object.values(servers)) await s.stop();
}
process.exit(0);
