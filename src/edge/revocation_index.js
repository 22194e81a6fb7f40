// The revocation index's shards: `index_shards` Durable Objects (`RevocationIndex`, named
// `shard:<n>`), each holding, for the rooms that hash to it, which revocation keys have a
// socket there. The gate's Rust code asks them (src/edge/index.rs: `add`, `rooms`, `forget`;
// the keys, their ids and the placement are `crate::revocation`'s); this object only stores
// and lists, so it is JavaScript: no wasm call, no Rust future, none of their code in the wasm.
// scripts/lean-shim.mjs puts this file into the Worker's module and exports the class.
//
// Requests (all POST, from the gate's own binding), and the one method:
//   /add, /remove  {"rooms": [room entry], "ids": [key id], "until": ms?}: one storage key per
//                  (key id, room entry), `k:<key id>:<room entry>`, whose value is when it
//                  expires (Unix ms), or NO_EXPIRY; answered 200 with no body
//   add(body)      a method (RPC) taking /add's body: what the gate calls, without a Request
//                  and a Response around it; throws on a body that is not one. /add stays for
//                  a gate of an earlier version, which a deploy may still run beside this one
//   /rooms         <key id>: the live room entries this shard lists for it (JSON list)
//   /find          `<key id> <shard count> <this shard>`: the key's live entries on every shard,
//                  this one's and the others' (asked in parallel, `/rooms`), as a JSON list of
//                  `<shard> <room entry>`; a shard that does not answer fails the whole
//                  listing (503), so that no revocation takes its rooms for done
//   /entries       <key id>: every entry, expired or not, as `<value> <room entry>` (tests,
//                  operators)
// A room entry is `<namespace binding>/<room name>`; key ids are one-way hashes: no sid is
// stored here. Expired entries are not listed, and the alarm deletes them every
// SWEEP_EVERY_MS while the shard has entries that expire.

/** The value of an entry without expiry (an app's room that does not say it revalidates). */
export const NO_EXPIRY = 1;
/** `crate::revocation::MAX_SHARDS`: the config refuses more shards; a `/find` naming more is
 * refused here too. */
export const MAX_SHARDS = 1000;
/** How often a shard with expiring entries sweeps: as often as an entry lives
 * (`crate::revocation::ENTRY_TTL_MS`, 10 minutes). */
export const SWEEP_EVERY_MS = 10 * 60 * 1000;
/** Storage writes at most 128 keys at once. */
export const STORAGE_BATCH = 128;
/** Entries a sweep lists at a time, and pages one alarm sweeps at most; then it stops, keeps
 * its place under SWEEP_CURSOR_KEY and goes on SWEEP_PAUSE_MS later, so no alarm runs long. */
export const SWEEP_PAGE = 1000;
export const SWEEP_PAGES = 20;
export const SWEEP_PAUSE_MS = 1000;
const SWEEP_CURSOR_KEY = "sweep_after";
/** Where all entries start (an entry's storage key without its key id). */
const ENTRIES_PREFIX = "k:";

const entryPrefix = (id) => `${ENTRIES_PREFIX}${id}:`;

/** An entry's value is live: no expiry (a value below 1e12, as NO_EXPIRY), or not yet passed. */
export const entryLive = (value, now) => value < 1e12 || value > now;

/** A stored value as an entry's: a number, or (anything else) no expiry. */
const entryValue = (value) => (typeof value === "number" ? value : NO_EXPIRY);

/** `write(batch)` for each batch of `keys` the storage takes at once, one after the other. */
async function inBatches(keys, write) {
  for (let at = 0; at < keys.length; at += STORAGE_BATCH) await write(keys.slice(at, at + STORAGE_BATCH));
}

const isStrings = (list) => Array.isArray(list) && list.every((item) => typeof item === "string");

/** `/add` and `/remove`'s body, or null when it is not one. */
function readEntries(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (body === null || typeof body !== "object" || !isStrings(body.rooms) || !isStrings(body.ids)) return null;
  const until = body.until ?? null;
  if (until !== null && !Number.isSafeInteger(until)) return null;
  return { rooms: body.rooms, ids: body.ids, until };
}

/** `/find`'s text, `<key id> <shard count> <this shard>`, or null. */
function readFind(text) {
  const parts = text.split(" ");
  const count = (part) => (/^\+?\d{1,10}$/.test(part) ? Number(part) : NaN);
  if (parts.length !== 3) return null;
  const [id, shards, shard] = [parts[0], count(parts[1]), count(parts[2])];
  if (!(shards <= 0xffffffff && shard <= 0xffffffff)) return null;
  return { id, shards, shard };
}

const text = (body, status) => new Response(body, { status });
const json = (value) => new Response(JSON.stringify(value), { headers: { "content-type": "application/json" } });

export class RevocationIndex {
  constructor(state, env) {
    this.storage = state.storage;
    this.env = env;
    /** This object made sure a sweep is scheduled (the alarm persists). */
    this.sweepScheduled = false;
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (request.method !== "POST") return text("not found", 404);
    switch (path) {
      case "/add":
      case "/remove": {
        const entries = readEntries(await request.text());
        if (entries === null) return text("bad entries", 400);
        await this.write(entries, path === "/add");
        return new Response(null);
      }
      case "/rooms":
        return json(await this.roomsOf(await request.text(), Date.now()));
      case "/entries": {
        const entries = await this.entriesOf(await request.text());
        return json(entries.map(([room, value]) => `${Math.trunc(value)} ${room}`));
      }
      case "/find": {
        const find = readFind(await request.text());
        if (find === null) return text("bad find", 400);
        if (find.shards > MAX_SHARDS || find.shard >= find.shards) return text("bad find: shard count", 400);
        try {
          return json(await this.find(find));
        } catch (e) {
          return text(`index find: ${e instanceof Error ? e.message : String(e)}`, 503);
        }
      }
      default:
        return text("not found", 404);
    }
  }

  /** `/add` as a method, for a caller that holds this object's stub (the gate): the
   * same body, without a Request and a Response around it on either side. Throws on a body
   * that is not one. */
  async add(body) {
    const entries = typeof body === "string" ? readEntries(body) : null;
    if (entries === null) throw new Error("index add: bad entries");
    await this.write(entries, true);
  }

  /** Adds (or removes) the (key id, room entry) entries of `entries`. */
  async write(entries, adding) {
    const keys = entries.ids.flatMap((id) => entries.rooms.map((room) => entryPrefix(id) + room));
    const value = entries.until ?? NO_EXPIRY;
    await inBatches(keys, (batch) =>
      adding ? this.storage.put(Object.fromEntries(batch.map((key) => [key, value]))) : this.storage.delete(batch),
    );
    if (adding && entries.until !== null) await this.scheduleSweep();
  }

  /** The sweep: deletes the expired entries a page at a time, and comes back while entries
   * that expire remain. */
  async alarm() {
    const now = Date.now();
    const cursor = await this.storage.get(SWEEP_CURSOR_KEY);
    let after = typeof cursor === "string" ? cursor : undefined;
    let expiring = false;
    for (let page = 0; page < SWEEP_PAGES; page++) {
      const listed = await this.storage.list({ prefix: ENTRIES_PREFIX, limit: SWEEP_PAGE, ...(after === undefined ? {} : { start: after }) });
      const expired = [];
      for (const [key, stored] of listed) {
        const value = entryValue(stored);
        if (!entryLive(value, now)) expired.push(key);
        else if (value !== NO_EXPIRY) expiring = true;
        // The next page starts just after this key (`start` is inclusive).
        after = `${key}\0`;
      }
      await inBatches(expired, (batch) => this.storage.delete(batch));
      if (listed.size < SWEEP_PAGE) {
        // Done: the next sweep starts from the beginning.
        await this.storage.delete(SWEEP_CURSOR_KEY);
        this.sweepScheduled = false;
        if (expiring) await this.scheduleSweep();
        return;
      }
    }
    if (after !== undefined) await this.storage.put(SWEEP_CURSOR_KEY, after);
    await this.storage.setAlarm(Date.now() + SWEEP_PAUSE_MS);
    this.sweepScheduled = true;
  }

  /** Every [room entry, value] this shard holds for a key id, expired or not. */
  async entriesOf(id) {
    const prefix = entryPrefix(id);
    const listed = await this.storage.list({ prefix });
    return [...listed].map(([key, stored]) => [key.slice(prefix.length), entryValue(stored)]);
  }

  /** The live room entries this shard lists for a key id. */
  async roomsOf(id, now) {
    return (await this.entriesOf(id)).filter(([, value]) => entryLive(value, now)).map(([room]) => room);
  }

  /** A key's live entries on every shard, as `<shard> <room entry>`. */
  async find({ id, shards, shard }) {
    const now = Date.now();
    const others = [];
    for (let other = 0; other < shards; other++) if (other !== shard) others.push(this.askShard(other, id));
    const listed = await Promise.all([this.roomsOf(id, now).then((rooms) => [shard, rooms]), ...others]);
    return listed.flatMap(([from, rooms]) => rooms.map((room) => `${from} ${room}`));
  }

  /** [shard, its live room entries of a key id]; an answer other than 2xx is an error, so that
   * a failed shard's answer is never taken for an empty one. */
  async askShard(shard, id) {
    const index = this.env.INDEX;
    const response = await index.get(index.idFromName(`shard:${shard}`)).fetch("https://index/rooms", { method: "POST", body: id });
    if (!response.ok) throw new Error(`index /rooms on shard ${shard}: status ${response.status}`);
    const rooms = await response.json();
    if (!isStrings(rooms)) throw new Error(`index /rooms on shard ${shard}: bad answer`);
    return [shard, rooms];
  }

  /** Makes sure a sweep is scheduled (once per object: the alarm persists). */
  async scheduleSweep() {
    if (this.sweepScheduled) return;
    if ((await this.storage.getAlarm()) === null) await this.storage.setAlarm(Date.now() + SWEEP_EVERY_MS);
    this.sweepScheduled = true;
  }
}
