//! The revocation index on paper, past what one machine can run: a simulation over the core's
//! index logic (`sessiongate::revocation`) of a deployment with 1,000,000 sockets in 100,000
//! rooms and 10 revocations a second. Prints figures; asserts nothing.
//!
//!   cargo bench --bench revocation_model [-- <shards>]      (default 64 shards)
//!
//! Assumptions (printed too): 200,000 users with 1 or 2 sessions each (a second device or
//! browser); each session's sockets sit in distinct rooms drawn with a skew (some rooms are
//! popular); a socket lives 10 minutes on average, so the whole population turns over every
//! 600 s; revocations name a user (passport.user) or a sid, half each.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use sessiongate::revocation::{
    key_id, room_shard, socket_keys, RoomKeys, ShardIndex, ENTRY_TTL_MS, REFRESH_AFTER_MS,
};

/// A shard sweeps as often as an entry lives (`SWEEP_EVERY_MS` of src/edge/revocation_index.js).
const SWEEP_EVERY_MS: i64 = ENTRY_TTL_MS;

const SOCKETS: usize = 1_000_000;
const ROOMS: usize = 100_000;
const USERS: usize = 200_000;
const SOCKET_LIFETIME_S: f64 = 600.0;
const REVOCATIONS_PER_S: f64 = 10.0;
/// Requests a second one Durable Object is comfortable with (Cloudflare's guidance for a
/// single object is around 1,000; keep headroom).
const OBJECT_COMFORT_RPS: f64 = 500.0;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A room with a skew: half the picks among the first 5% of rooms.
    fn room(&mut self) -> usize {
        if self.next().is_multiple_of(2) {
            self.below(ROOMS / 20)
        } else {
            self.below(ROOMS)
        }
    }
}

fn main() {
    let shards: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(64);
    let mut rng = Rng(0x005e_5510_947e);

    // Sessions: each user has 1 or 2.
    let mut sessions: Vec<(String, usize)> = Vec::new(); // (sid, user)
    for user in 0..USERS {
        for s in 0..(1 + rng.below(2)) {
            sessions.push((format!("sid-{user}-{s}"), user));
        }
    }
    // Sockets: spread over sessions, each in a room the session is not in yet.
    let mut rooms: Vec<RoomKeys> = vec![RoomKeys::default(); ROOMS];
    // Index entries of built-in rooms: `<binding>/<room>`, which also places them.
    let mut room_names: Vec<String> = (0..ROOMS).map(|r| format!("ROOMS/room:{r}")).collect();
    room_names.shrink_to_fit();
    let room_shards: Vec<u32> = room_names.iter().map(|r| room_shard(r, shards)).collect();
    let mut shard_index: Vec<ShardIndex> = vec![ShardIndex::default(); shards as usize];
    let mut shard_requests = vec![0u64; shards as usize];
    let mut session_rooms: HashMap<usize, Vec<usize>> = HashMap::new();
    let (mut index_adds, mut add_requests) = (0u64, 0u64);
    for i in 0..SOCKETS {
        let s = if i < sessions.len() {
            i
        } else {
            rng.below(sessions.len())
        };
        let (sid, user) = &sessions[s];
        let taken = session_rooms.entry(s).or_default();
        let mut room = rng.room();
        while taken.contains(&room) {
            room = rng.room();
        }
        taken.push(room);
        let keys = socket_keys(sid, &[("passport.user", json!(format!("u-{user}")))]);
        // The keys new to the room go in one request to the room's shard.
        let new = rooms[room].arrive(&keys, 0);
        let shard = room_shards[room] as usize;
        for key in &new {
            shard_index[shard].add(&key_id(key), &room_names[room]);
            index_adds += 1;
        }
        if !new.is_empty() {
            shard_requests[shard] += 1;
            add_requests += 1;
        }
    }

    // Revocations: objects touched = every shard (one asked by the revoker, the others by the
    // key's home shard) + the rooms they list.
    let mut by_user_rooms: Vec<usize> = Vec::new();
    let mut by_sid_rooms: Vec<usize> = Vec::new();
    for _ in 0..20_000 {
        let (sid, user) = &sessions[rng.below(sessions.len())];
        let user_key = format!("field:passport.user={}", json!(format!("u-{user}")));
        let sid_key = format!("sid:{sid}");
        for (key, out) in [(user_key, &mut by_user_rooms), (sid_key, &mut by_sid_rooms)] {
            let id = key_id(&key);
            out.push(shard_index.iter().map(|s| s.rooms(&id).len()).sum());
        }
    }
    let stats = |v: &mut Vec<usize>| {
        v.sort_unstable();
        let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
        (mean, v[v.len() * 99 / 100], *v.last().unwrap())
    };
    let (user_mean, user_p99, user_max) = stats(&mut by_user_rooms);
    let (sid_mean, sid_p99, sid_max) = stats(&mut by_sid_rooms);

    // Load: the population turns over every SOCKET_LIFETIME_S; a socket with keys new to its
    // room costs one add request (the model's arrivals come one by one: a burst into a room
    // shares requests); nothing is sent when it leaves (its entry expires, and the shard's
    // sweep deletes it: a storage delete, no request). Every REFRESH_AFTER_MS each occupied
    // room adds the keys of its sockets again: one request, to its shard.
    let handshakes_per_s = SOCKETS as f64 / SOCKET_LIFETIME_S;
    let writes_per_handshake = index_adds as f64 / SOCKETS as f64;
    let requests_per_handshake = add_requests as f64 / SOCKETS as f64;
    let refresh_s = REFRESH_AFTER_MS as f64 / 1000.0;
    let (mut refresh_requests, mut refresh_writes) = (0usize, 0usize);
    for (r, room) in rooms.iter_mut().enumerate() {
        let keys = room.refresh();
        if !keys.is_empty() {
            refresh_requests += 1;
            shard_requests[room_shards[r] as usize] += 1;
        }
        refresh_writes += keys.len();
    }
    let add_requests_per_s = requests_per_handshake * handshakes_per_s;
    let revocation_shard_requests_per_s = REVOCATIONS_PER_S * f64::from(shards);
    let total_requests_per_s =
        add_requests_per_s + refresh_requests as f64 / refresh_s + revocation_shard_requests_per_s;
    let total_writes_per_s =
        2.0 * writes_per_handshake * handshakes_per_s + refresh_writes as f64 / refresh_s; // adds, their sweeps, refreshes
                                                                                           // A shard's share of the adds and refreshes (the counts above, one pass of each), plus
                                                                                           // every revocation: each asks every shard.
    let busiest = *shard_requests.iter().max().unwrap() as f64
        / (add_requests as f64 + refresh_requests as f64);
    let busiest_rps =
        (total_requests_per_s - revocation_shard_requests_per_s) * busiest + REVOCATIONS_PER_S;
    let mean_rps = total_requests_per_s / f64::from(shards);
    // Entries of keys that left stay listed until they expire and the next sweep: on average
    // (TTL + sweep interval / 2) / socket lifetime as many stale rooms as rooms with sockets.
    let stale_per_live =
        (ENTRY_TTL_MS as f64 + SWEEP_EVERY_MS as f64 / 2.0) / 1000.0 / SOCKET_LIFETIME_S;
    let (key_ids, entries): (usize, usize) = shard_index
        .iter()
        .map(ShardIndex::size)
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    // The storage key and its value, a double (when the entry expires).
    // (`k:<key id>:<room entry>`, src/edge/revocation_index.js)
    let entry_bytes = format!("k:{}:room:12345", key_id("sid:x")).len() + 9;
    let mut per_shard_entries: BTreeMap<usize, usize> = BTreeMap::new();
    for s in &shard_index {
        *per_shard_entries.entry(s.size().1).or_default() += 1;
    }
    let max_entries = *per_shard_entries.keys().last().unwrap();

    println!("revocation index model: {SOCKETS} sockets, {ROOMS} rooms, {USERS} users, {} sessions, {shards} shards", sessions.len());
    println!("assumptions: socket lifetime {SOCKET_LIFETIME_S} s ({handshakes_per_s:.0} handshakes/s), {REVOCATIONS_PER_S} revocations/s");
    println!();
    println!("index adds per handshake            {writes_per_handshake:.2} entries in {requests_per_handshake:.2} requests (one to the room's shard; nothing when a socket leaves)");
    println!("refreshes                           every {refresh_s:.0} s: {refresh_requests} requests (one per occupied room) re-adding {refresh_writes} entries");
    println!("index requests per second, all      {total_requests_per_s:.0} ({add_requests_per_s:.0} adds, {:.0} refreshes, {revocation_shard_requests_per_s:.0} from revocations)", refresh_requests as f64 / refresh_s);
    println!("index storage writes per second     {total_writes_per_s:.0} (adds, as many sweep deletes, refreshes)");
    println!("  requests per shard: mean {mean_rps:.0}/s, busiest {busiest_rps:.0}/s (comfort {OBJECT_COMFORT_RPS:.0}/s per object: {})",
        if busiest_rps <= OBJECT_COMFORT_RPS { "within" } else { "OVER: raise index_shards" });
    println!("objects touched per revocation      by user: {shards} shards + {user_mean:.1} rooms (p99 {user_p99}, max {user_max}); by sid: {shards} shards + {sid_mean:.1} rooms (p99 {sid_p99}, max {sid_max})");
    println!("  of which the revoker's own subrequests: 1 (the key's home shard, which asks the other {}) + the rooms", shards.saturating_sub(1));
    println!("  plus stale rooms (left, entry not expired yet): about {stale_per_live:.1}x as many again, one wasted request each");
    println!("  whatever the number of occupied rooms ({ROOMS} here): the old directory asked all {ROOMS}");
    println!(
        "revocation requests per second      {:.0} to shards, {:.0} to rooms with sockets (about {:.0} with the stale ones)",
        revocation_shard_requests_per_s,
        REVOCATIONS_PER_S * (user_mean + sid_mean) / 2.0,
        REVOCATIONS_PER_S * (user_mean + sid_mean) / 2.0 * (1.0 + stale_per_live)
    );
    println!("storage                             {key_ids} key ids, {entries} (key, room) entries of ~{entry_bytes} B: {:.0} MB in all, {:.1} MB on the fullest shard ({max_entries} entries); with the stale entries about {:.1}x that",
        (entries * entry_bytes) as f64 / 1e6, (max_entries * entry_bytes) as f64 / 1e6, 1.0 + stale_per_live);
    println!("  per key: ~{entry_bytes} B per room it is in (a 64-hex key id, never the sid)");
}
