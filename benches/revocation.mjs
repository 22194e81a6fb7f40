// Revocation cost against the number of occupied rooms, under `wrangler dev --env soak` (one
// gate; [env.soak] in wrangler.toml: 1,000 sockets a room, no per-session limit). Prints
// figures and asserts nothing timed; exits 1 only if a revocation fails to close what it
// should (a socket of the target not closed with 4401 "session revoked", an answer whose
// `closed` is not 3 or whose `failed` is not 0) or closes what it should not (any other socket).
//
//   node benches/revocation.mjs [occupied=2000] [small=20] [rounds=5]
//
// Each revocation runs with exactly `occupied` (or `small`) rooms holding one socket each:
// occupied - 4 filler rooms (sessions of other users, 10 rooms per session) and 4 rooms opened
// for that revocation:
//   by user  (`{"session": {"field": "passport.user", "equals": <user>}}`): a fresh user with
//            two sessions, one with sockets in 2 rooms, one in a 3rd; the 4th room holds a
//            socket of another fresh user;
//   by sid   (`{"sid": <sid>}`): a fresh session with sockets in 3 rooms; the 4th room holds a
//            socket of the same user's other session, which must stay open.
// Either way the answer should be closed 3, rooms 3, shards 16, requests 19 (the index's 16
// shards, one asked by the gate and the others by the key's home shard, then the 3 rooms),
// whatever the number of occupied rooms.
//
// Sizes alternate by round (small, large | large, small | ...): the gate grows from `small` to
// `occupied` rooms by opening filler sockets and shrinks back by closing them, 16 at a time
// either way (the rates are printed); then it waits until a probe handshake is fast again, so
// the small size is measured on a quiet gate. (Emptied rooms send nothing to the index: their
// entries expire 10 minutes later, and the fillers' keys are never revoked.)
// Each round revokes once by user and once by sid at each size. A target handshake that is
// lost (no answer in 15 s) is retried in a fresh room and printed as a note.
// Latency is taken here, on one clock: from just before the POST is sent to its answer, and
// to each target socket's close frame (the harness records the close frame as the close; see
// tests/e2e/README.md).

import { loadavg } from "node:os";
import { randomBytes } from "node:crypto";
import { admit, sessionRecord, newSid, signedCookie, sleep, startGate } from "../tests/e2e/harness.mjs";
import { rssLine, workerdRss } from "./support.mjs";

const OCCUPIED = Number(process.argv[2] ?? 2000);
const SMALL = Number(process.argv[3] ?? 20);
const ROUNDS = Number(process.argv[4] ?? 5);
const OPEN_CONCURRENCY = 16;
// [env.soak] leaves index_shards at its default.
const SHARDS = 16;
const ROOMS_PER_FILLER_SESSION = 10;
const TARGET_ROOMS = 4; // per revocation: 3 to close, 1 to keep
const CLOSE_TIMEOUT_MS = 30_000; // a socket not closed by then counts as not closed
const SETTLE_MS = 3000; // after growing, at least
const SHRINK_SETTLE_MS = SETTLE_MS; // after shrinking, at least
const PROBE_MS = 500; // and until a handshake completes this fast
const PAUSE_MS = 500; // between revocations
const WITHIN_MS = 1000;

if (!(SMALL >= TARGET_ROOMS && OCCUPIED >= SMALL && ROUNDS >= 1)) {
  console.error(`usage: node benches/revocation.mjs [occupied=2000] [small=20] [rounds=5] (${TARGET_ROOMS} <= small <= occupied)`);
  process.exit(2);
}

/* ---------------------------------------------------------------------- helpers */

const median = (xs) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const range = (xs) => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)}` : "-");
const distinct = (xs) => [...new Set(xs)].join("/");
const pad = (v, n) => String(v).padEnd(n);

/** Runs `count` tasks, `concurrency` at a time. */
async function pool(count, concurrency, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/* ------------------------------------------------------------------------- run */

const tag = randomBytes(3).toString("hex");
const failures = [];
const warnings = [];
const results = []; // { size, mode, round, answerMs, closesMs: [..], body }

console.log(`revocation: ${OCCUPIED} and ${SMALL} occupied rooms (one socket each), ${ROUNDS} rounds, each revoking once by user and once by sid at each size; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const gate = await startGate("revocation", { env: "soak" });
try {
  await sleep(1000);
  console.log(`workerd RSS, gate idle:                  ${rssLine(workerdRss(gate))}`);
  const ws = (room) => `${gate.wsBase}/ws/rooms/${room}`;

  // Filler sockets: rooms fill-<i>, sessions of users u-fill-<n> (10 rooms per session).
  const fillerCount = OCCUPIED - TARGET_ROOMS;
  const smallFillers = SMALL - TARGET_ROOMS;
  const fillerCookies = [];
  for (let s = 0; s < Math.ceil(fillerCount / ROOMS_PER_FILLER_SESSION); s++) {
    const sid = newSid();
    await gate.putSession(sid, sessionRecord({ user: `u-fill-${tag}-${s}`, name: `filler ${s}` }));
    fillerCookies.push(signedCookie(sid));
  }
  const fillers = new Array(fillerCount).fill(null); // Conn, or null while not open
  let openFillers = 0;

  /** Opens fillers [openFillers, upTo): returns the open rate. */
  async function growTo(upTo) {
    const from = openFillers;
    const started = Date.now();
    await pool(upTo - from, OPEN_CONCURRENCY, async (k) => {
      const i = from + k;
      fillers[i] = await admit(ws(`fill-${tag}-${i}`), { cookie: fillerCookies[Math.floor(i / ROOMS_PER_FILLER_SESSION)], origin: gate.origin, timeoutMs: 30_000 });
    });
    openFillers = upTo;
    const seconds = (Date.now() - started) / 1000;
    return `opened ${upTo - from} filler sockets (${upTo - from} rooms) in ${seconds.toFixed(1)} s: ${((upTo - from) / seconds).toFixed(0)}/s at ${OPEN_CONCURRENCY} at a time`;
  }

  /**
   * Closes fillers [downTo, openFillers) as clients leave: a clean close (1000), 16 at a time,
   * each waiting for the room's answering close frame (at most 10 s), then the TCP connection
   * is dropped. Dropping ~2,000 connections at once instead stalls the local runtime for up to
   * a minute (every room's close handler writes its storage), and handshakes sent meanwhile
   * are lost.
   */
  async function shrinkTo(downTo) {
    const leaving = fillers.slice(downTo, openFillers);
    fillers.fill(null, downTo, openFillers);
    openFillers = downTo;
    const started = Date.now();
    let unanswered = 0;
    await pool(leaving.length, OPEN_CONCURRENCY, async (k) => {
      const conn = leaving[k];
      conn.ws.close(1000, "bench shrinks");
      const info = await Promise.race([conn.closed, sleep(10_000).then(() => null)]);
      if (!info) unanswered++;
      conn.terminate();
    });
    const seconds = (Date.now() - started) / 1000;
    return `closed ${leaving.length} filler sockets in ${seconds.toFixed(1)} s: ${(leaving.length / seconds).toFixed(0)}/s at ${OPEN_CONCURRENCY} at a time${unanswered ? ` (${unanswered} got no close frame back within 10 s)` : ""}`;
  }

  /**
   * Waits at least `atLeast` ms from `since`, and until a handshake into a probe room (the gate,
   * KV, a Room and the index) completes within PROBE_MS (the probe socket is dropped at once).
   * Returns when the first fast probe completed, in ms from `since`.
   */
  const probe = await gate.newSession({ user: `u-probe-${tag}`, name: "Probe" });
  async function settle(since, atLeast = SETTLE_MS) {
    const deadline = Date.now() + 180_000;
    let responsive = null;
    while (Date.now() < deadline) {
      const started = Date.now();
      const conn = await admit(ws(`probe-${tag}`), { cookie: probe.cookie, origin: gate.origin, timeoutMs: 30_000 }).catch(() => null);
      conn?.terminate();
      if (conn && Date.now() - started <= PROBE_MS) {
        responsive = Date.now() - since;
        break;
      }
      await sleep(200);
    }
    if (responsive === null) warnings.push(`the gate did not answer a handshake within ${PROBE_MS} ms for 180 s`);
    await sleep(since + atLeast - Date.now());
    return responsive;
  }

  /** admit(), retried into a fresh room if the handshake is lost (counted and printed). */
  let lostHandshakes = 0;
  async function admitTarget(room, cookie) {
    for (let attempt = 1; ; attempt++) {
      const name = attempt === 1 ? room : `${room}-retry${attempt - 1}`;
      try {
        return { room: name, conn: await admit(ws(name), { cookie, origin: gate.origin, timeoutMs: 15_000 }) };
      } catch (e) {
        lostHandshakes++;
        warnings.push(`handshake into ${name} lost (${e.message.split(": ").pop()}); retried in a fresh room`);
        console.log(`  note: handshake into ${name} lost (${e.message.split(": ").pop()}), retrying in a fresh room`);
        if (attempt >= 3) throw e;
      }
    }
  }

  /** Filler sockets that closed while open (none should). */
  const closedFillers = () => fillers.slice(0, openFillers).filter((c) => c.closeInfo !== null);

  async function revokeOnce(size, mode, round) {
    const user = `u-target-${tag}-${size}-${round}-${mode}`;
    const rooms = Array.from({ length: TARGET_ROOMS }, (_, k) => `t-${tag}-${size}-${round}-${mode}-${k}`);
    const open = async (cookies) => {
      const opened = await Promise.all(rooms.map((r, k) => admitTarget(r, cookies[k])));
      opened.forEach((o, k) => (rooms[k] = o.room));
      return opened.map((o) => o.conn);
    };
    let targets;
    let keeper;
    let body;
    if (mode === "user") {
      const laptop = await gate.newSession({ user, name: "Target" });
      const phone = await gate.newSession({ user, name: "Target" });
      const other = await gate.newSession({ user: `${user}-other`, name: "Other" });
      const conns = await open([laptop.cookie, laptop.cookie, phone.cookie, other.cookie]);
      targets = conns.slice(0, 3);
      keeper = conns[3];
      body = { session: { field: "passport.user", equals: user } };
    } else {
      const main = await gate.newSession({ user, name: "Target" });
      const sibling = await gate.newSession({ user, name: "Target" });
      const conns = await open([main.cookie, main.cookie, main.cookie, sibling.cookie]);
      targets = conns.slice(0, 3);
      keeper = conns[3];
      body = { sid: main.sid };
    }
    await sleep(PAUSE_MS);
    const occupied = openFillers + TARGET_ROOMS;

    const sentAt = Date.now();
    const res = await gate.revoke(body);
    const answerMs = res.at - sentAt;
    const infos = await Promise.all(targets.map((c) => c.waitClose(CLOSE_TIMEOUT_MS).catch(() => null)));
    let answer = {};
    try {
      answer = JSON.parse(res.body);
    } catch {
      /* reported below */
    }
    const closesMs = infos.map((i) => (i ? i.at - sentAt : null));
    const what = `${occupied} rooms, round ${round}, by ${mode}`;
    const problems = [];
    if (res.status !== 200) problems.push(`answer ${res.status} ${res.body}`);
    if (answer.closed !== 3 || answer.failed !== 0) problems.push(`answer closed ${answer.closed}, failed ${answer.failed} (expected 3, 0)`);
    infos.forEach((info, k) => {
      if (!info) problems.push(`target socket ${k} (${rooms[k]}) still open ${CLOSE_TIMEOUT_MS} ms after the revocation`);
      else if (info.code !== 4401 || info.reason !== "session revoked") problems.push(`target socket ${k} closed with ${info.code} ${JSON.stringify(info.reason)} (${info.how})`);
    });
    // What must stay: the 4th room's socket and every filler. The 4th is also pinged (a note
    // if no echo comes, since that is timing, not revocation).
    const keeperWhat = `the ${mode === "sid" ? "same user's other session's" : "other user's"} socket`;
    if (keeper.closeInfo) problems.push(`${keeperWhat} was closed: ${keeper.closeInfo.code} ${keeper.closeInfo.reason}`);
    else {
      await keeper.ping(CLOSE_TIMEOUT_MS).catch((e) => {
        if (keeper.closeInfo) problems.push(`${keeperWhat} was closed: ${keeper.closeInfo.code} ${keeper.closeInfo.reason}`);
        else warnings.push(`${what}: ${keeperWhat} stayed open but did not echo a ping: ${e.message}`);
      });
    }
    const wronglyClosed = closedFillers();
    if (wronglyClosed.length) problems.push(`${wronglyClosed.length} filler sockets closed, e.g. ${wronglyClosed[0].url}: ${wronglyClosed[0].closeInfo.code} ${wronglyClosed[0].closeInfo.reason}`);
    for (const p of problems) failures.push(`${what}: ${p}`);
    if (answer.requests !== SHARDS + 3 || answer.rooms !== 3 || answer.shards !== SHARDS) {
      warnings.push(`${what}: requests ${answer.requests}, rooms ${answer.rooms}, shards ${answer.shards} (expected ${SHARDS + 3}, 3, ${SHARDS})`);
    }
    const lastClose = closesMs.includes(null) ? null : Math.max(...closesMs);
    results.push({ size: occupied, mode, round, answerMs, closesMs, lastClose, body: answer });
    console.log(
      `  ${pad(what, 30)} answer ${pad(`${answerMs} ms`, 7)} closes ${closesMs.map((m) => (m === null ? "never" : `${m}`)).join("/")} ms` +
        `${lastClose !== null && lastClose <= WITHIN_MS ? "" : " (NOT all within 1 s)"}` +
        `  requests ${answer.requests} shards ${answer.shards} rooms ${answer.rooms} closed ${answer.closed} failed ${answer.failed}` +
        `${problems.length ? `  FAILED: ${problems.join("; ")}` : ""}`,
    );
    for (const c of [...targets, keeper]) c.terminate(); // wrangler dev keeps closed sockets' TCP open
  }

  async function phase(size, round) {
    const want = size === OCCUPIED ? fillerCount : smallFillers;
    if (openFillers < want) {
      console.log(`round ${round}: ${await growTo(want)}`);
      const settled = await settle(Date.now());
      console.log(`round ${round}: workerd RSS, ${openFillers + TARGET_ROOMS} rooms:  ${rssLine(workerdRss(gate))}; a probe handshake within ${PROBE_MS} ms ${settled} ms after the last open`);
    } else if (openFillers > want) {
      console.log(`round ${round}: ${await shrinkTo(want)}`);
      const settled = await settle(Date.now(), SHRINK_SETTLE_MS);
      console.log(`round ${round}: a probe handshake within ${PROBE_MS} ms ${settled} ms after the last close`);
    }
    await revokeOnce(size, "user", round);
    await sleep(PAUSE_MS);
    await revokeOnce(size, "sid", round);
    await sleep(PAUSE_MS);
  }

  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? [SMALL, OCCUPIED] : [OCCUPIED, SMALL];
    for (const size of order) await phase(size, round);
  }
  console.log(`workerd RSS, end (${openFillers + TARGET_ROOMS} rooms): ${rssLine(workerdRss(gate))}`);
  if (lostHandshakes) console.log(`lost handshakes (retried): ${lostHandshakes}`);
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} (1, 5, 15 min; the machine has other users)`);

  // The table: per size, both modes together and each apart.
  console.log("");
  console.log("| occupied rooms | revocations | answer ms, median (min-max) | last close ms, median (min-max) | all 3 closed within 1 s | DO requests | rooms | shards |");
  console.log("| ---: | --- | --- | --- | --- | --- | --- | --- |");
  for (const size of [SMALL, OCCUPIED]) {
    for (const mode of ["user", "sid", null]) {
      const rows = results.filter((r) => r.size === size && (mode === null || r.mode === mode));
      if (!rows.length) continue;
      const answers = rows.map((r) => r.answerMs);
      const lasts = rows.filter((r) => r.lastClose !== null).map((r) => r.lastClose);
      const within = rows.filter((r) => r.lastClose !== null && r.lastClose <= WITHIN_MS).length;
      console.log(
        `| ${size.toLocaleString("en-US")} | ${rows.length} ${mode === null ? "(all)" : `by ${mode}`} | ${median(answers)} (${range(answers)}) | ${median(lasts)} (${range(lasts)}) | ${within} of ${rows.length} | ` +
          `${distinct(rows.map((r) => r.body.requests))} | ${distinct(rows.map((r) => r.body.rooms))} | ${distinct(rows.map((r) => r.body.shards))} |`,
      );
    }
  }
  console.log("");

  // The Worker's log: kinds of lines, and anything that looks wrong.
  const lines = gate.logLines();
  const kinds = {};
  for (const l of lines) kinds[l.sessiongate] = (kinds[l.sessiongate] ?? 0) + 1;
  const errorLines = lines.filter((l) => l.error !== undefined || l.sessiongate === "revalidation" || (l.sessiongate === "decision" && l.decision !== "admit"));
  const badRaw = gate.output().split("\n").filter((l) => /panic|RuntimeError|unreachable|Durable Object reset|exceeded|Uncaught|Network connection lost/i.test(l));
  console.log(`Worker log: ${lines.length} JSON lines (${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ")}); ${errorLines.length} error/deny/revalidation lines${errorLines.length ? `, e.g. ${JSON.stringify(errorLines[0]).slice(0, 200)}` : ""}; ${badRaw.length} panic/RuntimeError/Uncaught lines${badRaw.length ? `, e.g. ${badRaw[0].slice(0, 200)}` : ""} (${gate.logFile})`);
} catch (e) {
  console.error(`revocation: ${e.stack ?? e}`);
  failures.push(`run aborted: ${e.message}`);
} finally {
  await gate.stop();
}
for (const w of warnings) console.log(`note: ${w}`);
if (failures.length) {
  for (const f of failures) console.log(`FAILED: ${f}`);
  console.log(`revocation: FAILED (${failures.length} problems)`);
  process.exit(1);
}
console.log("revocation: every revocation closed exactly the target's 3 sockets with 4401 \"session revoked\"");
