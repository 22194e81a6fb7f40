//! Finding a session's rooms without asking every room: an index from revocation key to the
//! rooms that hold a socket with that key, spread over many Durable Objects (shards). This
//! module is the index's logic apart from any object: the keys, where entries live, a shard's
//! entries, and a room's bookkeeping of what it has registered.
//!
//! * A socket's revocation keys are its sid and the value of each `revoke_by` path its session
//!   has ([`socket_keys`]). A revocation names exactly one key ([`target_key`]).
//! * A room's entries live on shard `hash(room) mod shards` ([`room_shard`]): an arrival, or a
//!   refresh of all the room's keys, is one request whatever keys it carries. Placing entries
//!   by key instead made a new session's arrival two requests (its sid and its user fall on
//!   different shards) and a refresh one per shard the room's keys fall on; those requests were
//!   most of a new session's handshake. The price is paid by revocations, which are rare next
//!   to handshakes: a revocation asks the key's home shard ([`locate`]), which asks every other
//!   shard in parallel and answers for all (`shards` requests, one of them the revoker's), then
//!   the rooms listed. No object sees all traffic: rooms spread over the shards.
//! * Shards store a one-way id of the key ([`key_id`]), never the sid itself. The shards
//!   themselves (their storage, entry expiry, the sweep) are JavaScript:
//!   `src/edge/revocation_index.js`.
//! * A room registers a key when its first socket with that key arrives ([`RoomKeys`]). An
//!   entry expires `ENTRY_TTL_MS` after it was written; the room registers the keys of its
//!   sockets again every `REFRESH_AFTER_MS`, and nothing is sent when a socket leaves: a key
//!   that left stays listed until its entry expires (a revocation that meets such a stale
//!   entry asks that one room, which answers that it holds none, and removes the entry).
//!   Removing entries at departure cost every visit of a key to a room a second index
//!   request, a storage write and delete in the room and an alarm.
//! * An app's own room (a route's `target`) does not talk to the index; the gate registers its
//!   sockets' keys at admission and renews them when the room revalidates through the gate.
//!   A room that says how often it revalidates (`sessiongate-room` does, docs/ADMISSION.md)
//!   gets entries that expire ([`app_entry_until`]), renewed by the first revalidation after
//!   each `REFRESH_AFTER_MS` boundary ([`renewal_due`]); one that does not say gets entries
//!   without expiry, since nothing would renew them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::RevokeTarget;
use crate::json_read::{self, Fields};

/// The body of a revocation (`POST /_sessiongate/revoke`): `{"sid": "..."}` or
/// `{"session": {"field": "passport.user", "equals": "u-42"}}`, with `"delete_session": true`
/// to delete the KV keys of the sessions closed.
#[derive(Debug, PartialEq)]
pub struct RevokeRequest {
    pub sid: Option<String>,
    pub session: Option<FieldMatch>,
    pub delete_session: bool,
}

#[derive(Debug, PartialEq)]
pub struct FieldMatch {
    pub field: String,
    pub equals: Value,
}

impl RevokeRequest {
    /// The body; `None` for anything else, an unknown field included (a misspelled
    /// `delete_session` must not revoke without deleting).
    pub fn from_value(value: Value) -> Option<RevokeRequest> {
        let mut f = Fields::of(value)?;
        let request = RevokeRequest {
            sid: f.optional("sid", json_read::string)?,
            session: f.optional("session", FieldMatch::from_value)?,
            delete_session: f.or_default("delete_session", json_read::boolean)?,
        };
        f.is_empty().then_some(request)
    }
}

impl FieldMatch {
    fn from_value(value: Value) -> Option<FieldMatch> {
        let mut f = Fields::of(value)?;
        let field = FieldMatch {
            field: f.string("field")?,
            equals: f.take("equals")?,
        };
        f.is_empty().then_some(field)
    }
}

/// How long an index entry is listed after it was written. Longer: fewer refreshes of
/// occupied rooms; shorter: a revocation meets fewer stale rooms (each costs it one request).
pub const ENTRY_TTL_MS: i64 = 10 * 60 * 1000;

/// A room registers the keys of its sockets again this long after the last time (its floor):
/// half the lifetime, so that a late or failed alarm has time to try again before any entry
/// of a socket expires.
pub const REFRESH_AFTER_MS: i64 = ENTRY_TTL_MS / 2;

/// After a failed refresh, the next try.
pub const REFRESH_RETRY_MS: i64 = 60_000;

/// The most index shards: a revocation's home shard asks every other one, and a Durable
/// Object request may make at most 1,000 subrequests (50 on the free plan).
pub const MAX_SHARDS: u32 = 1000;

/// The revocation key of a sid.
pub fn sid_key(sid: &str) -> String {
    format!("sid:{sid}")
}

/// The revocation key of a session field's value: the path and the value's JSON text (serde
/// writes object keys sorted, so equal values have equal keys).
pub fn field_key(path: &str, value: &Value) -> String {
    format!("field:{path}={value}")
}

/// Every key a socket can be revoked by: its sid, then each `revoke_by` value it has.
pub fn socket_keys<P: AsRef<str>>(sid: &str, revoke_keys: &[(P, Value)]) -> Vec<String> {
    std::iter::once(sid_key(sid))
        .chain(
            revoke_keys
                .iter()
                .map(|(path, value)| field_key(path.as_ref(), value)),
        )
        .collect()
}

/// The one key a revocation looks up.
pub fn target_key(target: &RevokeTarget) -> String {
    match target {
        RevokeTarget::Sid(sid) => sid_key(sid),
        RevokeTarget::Field { field, equals } => field_key(field, equals),
    }
}

/// A key's place in the index, from one SHA-256 of the key: its one-way id (hex), which is
/// what shards store, so a sid is kept nowhere new; and its home shard, the first four bytes of
/// the hash modulo `shards`, which answers a revocation of the key for all shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub id: String,
    pub shard: u32,
}

pub fn locate(key: &str, shards: u32) -> Located {
    let digest = Sha256::digest(key.as_bytes());
    Located {
        id: crate::log::hex(&digest),
        shard: shard_of(&digest, shards),
    }
}

/// The shard that holds every entry of a room (its index entry, `<binding>/<room>`).
pub fn room_shard(room_entry: &str, shards: u32) -> u32 {
    shard_of(&Sha256::digest(room_entry.as_bytes()), shards)
}

fn shard_of(digest: &[u8], shards: u32) -> u32 {
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    head % shards.max(1)
}

/// A key's one-way id alone (what an app's room tags its sockets with).
pub fn key_id(key: &str) -> String {
    locate(key, 1).id
}

/// A shard's entries in memory: key id to rooms. The Durable Object keeps the same entries in
/// its storage, one storage key per (key id, room), so adding and removing are single writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    entries: BTreeMap<String, BTreeSet<String>>,
}

impl ShardIndex {
    pub fn add(&mut self, key_id: &str, room: &str) -> bool {
        self.entries
            .entry(key_id.to_owned())
            .or_default()
            .insert(room.to_owned())
    }

    pub fn remove(&mut self, key_id: &str, room: &str) -> bool {
        let Some(rooms) = self.entries.get_mut(key_id) else {
            return false;
        };
        let removed = rooms.remove(room);
        if rooms.is_empty() {
            self.entries.remove(key_id);
        }
        removed
    }

    pub fn rooms(&self, key_id: &str) -> Vec<String> {
        self.entries
            .get(key_id)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// (key ids, room entries) held.
    pub fn size(&self) -> (usize, usize) {
        (
            self.entries.len(),
            self.entries.values().map(BTreeSet::len).sum(),
        )
    }
}

/// What a room has registered in the index, and what it must send: registrations of keys new
/// to the room, and a refresh of every key it holds before their entries expire.
///
/// The floor: every registration the room counts on was sent at or after it, so every key
/// it holds is listed until at least `floor + ENTRY_TTL_MS`. Only the floor is kept in storage
/// (one number), so after an eviction the keys of the room's sockets are registered still;
/// keys without a socket are forgotten (their entries expire; a socket that brings one back
/// registers it again). A refresh re-registers the keys that have a socket, drops the others
/// and raises the floor to when it started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomKeys {
    /// Keys of the room's sockets and keys registered since the floor: how many sockets have
    /// each, and whether it is registered (or being registered).
    keys: BTreeMap<String, KeyState>,
    floor: Option<i64>,
    /// After a failed refresh: not again before this.
    retry_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct KeyState {
    sockets: usize,
    registered: bool,
}

impl RoomKeys {
    /// Rebuilds the bookkeeping after the object woke or restarted, from the floor kept in
    /// storage and the sockets now in the room. With a floor, the sockets' keys are
    /// registered (each was when its socket arrived, or by a refresh since); without one
    /// (nothing ever registered, or registered by a build that kept no floor), they are due
    /// for a refresh at once.
    pub fn rebuild<'a>(
        floor: Option<i64>,
        sockets: impl IntoIterator<Item = &'a [String]>,
    ) -> RoomKeys {
        let mut keys: BTreeMap<String, KeyState> = BTreeMap::new();
        for socket_keys in sockets {
            for key in socket_keys {
                let state = keys.entry(key.clone()).or_default();
                state.sockets += 1;
                state.registered = floor.is_some();
            }
        }
        RoomKeys {
            keys,
            floor,
            retry_at: None,
        }
    }

    /// A socket with `keys` arrived at `now_ms`: the keys the room must register now (not
    /// registered yet). Keys without a socket count as registered only while the refresh is not
    /// overdue: in a room that stayed empty (no sockets, so no alarm to refresh) past
    /// `REFRESH_AFTER_MS`, their entries may be expiring or gone.
    pub fn arrive(&mut self, keys: &[String], now_ms: i64) -> Vec<String> {
        if self
            .floor
            .is_some_and(|floor| now_ms >= floor + REFRESH_AFTER_MS)
        {
            self.keys.retain(|_, s| s.sockets > 0);
            // Nothing registered is left (the room was empty): the floor starts again with
            // this arrival's registration, instead of a refresh due at once after it.
            if !self.keys.values().any(|s| s.registered) {
                self.floor = None;
            }
        }
        let mut new = Vec::new();
        for key in keys {
            let state = self.keys.entry(key.clone()).or_default();
            state.sockets += 1;
            if !state.registered {
                state.registered = true;
                new.push(key.clone());
            }
        }
        new
    }

    /// A registration sent at `sent_at_ms` was listed. The first one in a room (or in a room
    /// that reopened after its refresh was due) sets the floor; returns the new floor then (to
    /// be stored).
    pub fn registered_at(&mut self, sent_at_ms: i64) -> Option<i64> {
        if self.floor.is_some() {
            return None;
        }
        self.floor = Some(sent_at_ms);
        self.floor
    }

    /// A socket with `keys` left. Its keys stay registered: a socket that brings one back
    /// before the next refresh costs no request, and nothing is sent for a departure.
    pub fn leave(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(state) = self.keys.get_mut(key) {
                state.sockets = state.sockets.saturating_sub(1);
            }
        }
    }

    /// Their registration failed: the next socket with these keys, or the next refresh, tries
    /// again.
    pub fn forget(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(state) = self.keys.get_mut(key) {
                state.registered = false;
            }
        }
    }

    /// When the room must refresh, if it holds any socket: `REFRESH_AFTER_MS` after the floor,
    /// at once if a socket's key is not registered (no floor, a failed registration), never
    /// sooner than a failed refresh allows. An empty room needs no alarm for its keys.
    pub fn next_due(&self) -> Option<i64> {
        let mut present = self.keys.values().filter(|s| s.sockets > 0).peekable();
        present.peek()?;
        let all_registered = present.all(|s| s.registered);
        let due = match self.floor {
            Some(floor) if all_registered => floor + REFRESH_AFTER_MS,
            _ => i64::MIN,
        };
        Some(due.max(self.retry_at.unwrap_or(i64::MIN)))
    }

    /// A refresh starts: the keys to register again, those of the room's sockets. Keys
    /// without a socket are dropped: their entries expire, and a socket that brings one back
    /// registers it again.
    pub fn refresh(&mut self) -> Vec<String> {
        self.keys.retain(|_, s| s.sockets > 0);
        self.keys.keys().cloned().collect()
    }

    /// The refresh of `keys` that started at `started_ms` was listed: they are registered,
    /// and the floor rises to then (keys registered since were sent later).
    pub fn refreshed(&mut self, started_ms: i64, keys: &[String]) {
        for key in keys {
            if let Some(state) = self.keys.get_mut(key) {
                state.registered = true;
            }
        }
        self.floor = Some(started_ms);
        self.retry_at = None;
    }

    /// The refresh failed at `now_ms`: the keys keep their entries until the old floor's
    /// expire, and the next try is `REFRESH_RETRY_MS` later.
    pub fn refresh_failed(&mut self, now_ms: i64) {
        self.retry_at = Some(now_ms + REFRESH_RETRY_MS);
    }

    /// The floor, if there is one.
    #[cfg(test)]
    pub fn floor(&self) -> Option<i64> {
        self.floor
    }

    /// Every key the room holds registered, with or without a socket.
    #[cfg(test)]
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|(_, s)| s.registered)
            .map(|(k, _)| k.as_str())
    }
}

/// The longest revalidation interval an app's room may announce (seconds): one day. A room
/// that revalidates less often gets entries without expiry, as one that does not say.
pub const MAX_REVALIDATE_EVERY_S: i64 = 86_400;

/// An app room's revalidation interval as it announces it (whole seconds, in the 101's
/// `x-sessiongate-revalidate` header or the revalidation body's `every`), in ms; `None` for
/// anything else.
pub fn revalidate_every_ms(seconds: i64) -> Option<i64> {
    // `then`, not `then_some`: the product must not be computed for a huge number.
    (1..=MAX_REVALIDATE_EVERY_S)
        .contains(&seconds)
        .then(|| seconds * 1000)
}

/// When an app room's entries written at `now_ms` expire, for a room that revalidates every
/// `every_ms`: renewals come at the first revalidation after each `REFRESH_AFTER_MS` boundary,
/// at most `REFRESH_AFTER_MS + every_ms` apart, so an entry lives `ENTRY_TTL_MS` (two such
/// boundaries) plus two intervals: one late or missed renewal does not let it lapse.
pub fn app_entry_until(now_ms: i64, every_ms: i64) -> i64 {
    now_ms + ENTRY_TTL_MS + 2 * every_ms
}

/// Whether an app room's revalidation at `now_ms`, `every_ms` after the one before, renews its
/// entries: when a `REFRESH_AFTER_MS` boundary fell within the interval. A room's entries are
/// then written about as often as the built-in Room refreshes its own, whatever its interval.
pub fn renewal_due(now_ms: i64, every_ms: i64) -> bool {
    every_ms >= REFRESH_AFTER_MS
        || now_ms.div_euclid(REFRESH_AFTER_MS) != (now_ms - every_ms).div_euclid(REFRESH_AFTER_MS)
}

/// A room's requests to the index, sent one at a time and in the order they were asked for,
/// with the registrations that queue behind a request in flight merged into one (a group
/// commit): a burst of arrivals costs a few index requests, not one each.
///
/// It also closes a window [`RoomKeys`] alone leaves open: a socket whose key another arrival
/// is still registering waits for that request ([`Registration::wait`]), so no socket is handed
/// back before all its keys are in the index; and a key that comes back while a refresh is
/// queued is added after that refresh, never before it.
///
/// The room runs the requests; this only says who sends what after whom. Ids name requests.
#[derive(Debug, Default)]
pub struct IndexQueue {
    next_id: u64,
    /// The registration still taking keys: queued behind another request, not sent yet.
    open: Option<u64>,
    /// Keys of each queued registration, until its sender takes them.
    queued: Vec<(u64, Vec<String>)>,
    /// The request queued last: the next one is sent after it finished.
    last: Option<u64>,
    /// Keys being registered, with the request that carries them. Vectors, not maps: they
    /// hold a burst's keys at most, and a map type of its own here cost the wasm 5 KB.
    pending: Vec<(String, u64)>,
}

/// A request this caller sends itself: `id`, once `after` (if any) finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    pub id: u64,
    pub after: Option<u64>,
}

/// What an arrival must do before its socket is handed back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// Requests of other arrivals that carry this socket's keys: wait until they finished.
    pub wait: Vec<u64>,
    /// The registration this arrival sends (its keys and those that join it meanwhile).
    pub send: Option<Turn>,
}

impl IndexQueue {
    /// An arrival: `new` are the keys [`RoomKeys::arrive`] said to register, `all` every key of
    /// the socket. New keys join the registration still queued, or start one.
    pub fn register(&mut self, new: Vec<String>, all: &[String]) -> Registration {
        let mut wait = Vec::new();
        for (key, carrier) in &self.pending {
            if all.contains(key) && !wait.contains(carrier) {
                wait.push(*carrier);
            }
        }
        if new.is_empty() {
            return Registration { wait, send: None };
        }
        let (id, send) = match self.open {
            Some(id) => (id, None),
            None => {
                let turn = self.turn();
                self.open = Some(turn.id);
                self.queued.push((turn.id, Vec::new()));
                (turn.id, Some(turn))
            }
        };
        self.pending.extend(new.iter().map(|key| (key.clone(), id)));
        if let Some((_, keys)) = self.queued.iter_mut().find(|(queued, _)| *queued == id) {
            keys.extend(new);
        }
        if send.is_none() && !wait.contains(&id) {
            wait.push(id);
        }
        Registration { wait, send }
    }

    /// A request that takes no other keys (a refresh): after everything
    /// queued so far, and nothing queued later joins a registration before it.
    pub fn exclusive(&mut self) -> Turn {
        self.open = None;
        self.turn()
    }

    /// The sender of registration `id` sends it now: no key joins it any more; its keys.
    pub fn take(&mut self, id: u64) -> Vec<String> {
        if self.open == Some(id) {
            self.open = None;
        }
        match self.queued.iter().position(|(queued, _)| *queued == id) {
            Some(i) => self.queued.swap_remove(i).1,
            None => Vec::new(),
        }
    }

    /// Request `id` finished (either way): its keys are no longer pending.
    pub fn finish(&mut self, id: u64) {
        self.pending.retain(|(_, carrier)| *carrier != id);
        if self.last == Some(id) {
            self.last = None;
        }
    }

    fn turn(&mut self) -> Turn {
        let id = self.next_id;
        self.next_id += 1;
        Turn {
            id,
            after: self.last.replace(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_revocation_body_names_a_sid_or_a_field_and_nothing_else() {
        let read = |v: Value| RevokeRequest::from_value(v);
        assert_eq!(
            read(json!({"sid": "s1", "delete_session": true})),
            Some(RevokeRequest {
                sid: Some("s1".into()),
                session: None,
                delete_session: true
            })
        );
        assert_eq!(
            read(json!({"session": {"field": "passport.user", "equals": 42}, "sid": null})),
            Some(RevokeRequest {
                sid: None,
                session: Some(FieldMatch {
                    field: "passport.user".into(),
                    equals: json!(42)
                }),
                delete_session: false,
            })
        );
        for bad in [
            json!([]),
            json!("s1"),
            json!({"sid": 1}),
            json!({"sid": "s1", "delete_sesion": true}),
            json!({"sid": "s1", "delete_session": "yes"}),
            json!({"sid": "s1", "delete_session": null}),
            json!({"session": {"field": "passport.user"}}),
            json!({"session": {"field": "passport.user", "equals": 1, "also": 2}}),
            json!({"session": "passport.user"}),
        ] {
            assert_eq!(read(bad.clone()), None, "{bad}");
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    /// A socket with one key the room does not hold yet.
    fn arrive_new(q: &mut IndexQueue, key: &str) -> Registration {
        q.register(keys(&[key]), &keys(&[key]))
    }

    #[test]
    fn an_arrival_with_nothing_queued_sends_its_keys_at_once() {
        let mut q = IndexQueue::default();
        let r = arrive_new(&mut q, "sid:A");
        let turn = r.send.expect("sends");
        assert_eq!((turn.after, r.wait.len()), (None, 0));
        assert_eq!(q.take(turn.id), keys(&["sid:A"]));
        q.finish(turn.id);
        // Nothing pending or queued afterwards: the next one sends at once too.
        let next = arrive_new(&mut q, "sid:B");
        assert_eq!(next.send.map(|t| t.after), Some(None));
    }

    #[test]
    fn arrivals_behind_a_request_in_flight_are_sent_as_one() {
        let mut q = IndexQueue::default();
        let first = arrive_new(&mut q, "sid:A").send.unwrap();
        q.take(first.id); // in flight
        let second = arrive_new(&mut q, "sid:B");
        let leader = second.send.expect("the first behind it sends the next");
        assert_eq!(leader.after, Some(first.id));
        let third = q.register(
            keys(&["sid:C", "field:u=1"]),
            &keys(&["sid:C", "field:u=1"]),
        );
        assert_eq!(
            third,
            Registration {
                wait: vec![leader.id],
                send: None
            }
        );
        q.finish(first.id);
        assert_eq!(q.take(leader.id), keys(&["sid:B", "sid:C", "field:u=1"]));
        // Taken: a later arrival queues a new request behind it.
        let fourth = arrive_new(&mut q, "sid:D");
        assert_eq!(fourth.send.map(|t| t.after), Some(Some(leader.id)));
    }

    #[test]
    fn regression_a_socket_whose_key_is_being_registered_waits_for_that_request() {
        // Before: RoomKeys marked the key registered at the first arrival, so a second socket
        // of the same session got its 101 while the index did not list the room yet.
        let mut q = IndexQueue::default();
        let first = arrive_new(&mut q, "sid:A").send.unwrap();
        q.take(first.id);
        let same = q.register(vec![], &keys(&["sid:A"]));
        assert_eq!(
            same,
            Registration {
                wait: vec![first.id],
                send: None
            }
        );
        q.finish(first.id);
        assert_eq!(
            q.register(vec![], &keys(&["sid:A"])),
            Registration::default()
        );
    }

    #[test]
    fn a_key_back_while_a_refresh_is_queued_is_added_after_the_refresh() {
        let mut q = IndexQueue::default();
        let first = arrive_new(&mut q, "sid:A").send.unwrap();
        q.take(first.id);
        let queued = arrive_new(&mut q, "sid:B").send.unwrap();
        let refresh = q.exclusive();
        assert_eq!(refresh.after, Some(queued.id));
        // Does not join the registration queued before the refresh.
        let back = arrive_new(&mut q, "sid:Z");
        assert_eq!(back.send.map(|t| t.after), Some(Some(refresh.id)));
        assert_eq!(q.take(queued.id), keys(&["sid:B"]));
    }

    #[test]
    fn keys_are_the_sid_and_each_revoke_by_value() {
        let keys = socket_keys("S1", &[("passport.user", json!("u-42"))]);
        assert_eq!(keys, ["sid:S1", "field:passport.user=\"u-42\""]);
        assert_eq!(target_key(&RevokeTarget::Sid("S1".into())), keys[0]);
        let by_user = RevokeTarget::Field {
            field: "passport.user".into(),
            equals: json!("u-42"),
        };
        assert_eq!(target_key(&by_user), keys[1]);
        // Equal objects are equal keys whatever their key order.
        let a: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(field_key("x", &a), field_key("x", &b));
        // Numbers as JSON has them: 1 and 1.0 are different values, as in a revocation match.
        assert_ne!(field_key("x", &json!(1)), field_key("x", &json!(1.0)));
    }

    #[test]
    fn key_ids_hide_the_sid_and_shards_spread_keys() {
        let id = key_id("sid:XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG");
        assert_eq!(id.len(), 64);
        assert!(!id.contains("XYxA"));
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[locate(&format!("sid:{i}"), 16).shard as usize] += 1;
        }
        // Within 10% of even.
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(locate("anything", 1).shard, 0);
        let at = locate("sid:x", 16);
        // The shard is the hash's first four bytes (the id's first 8 hex digits), mod shards.
        assert_eq!(at.id, key_id("sid:x"));
        assert_eq!(at.shard, u32::from_str_radix(&at.id[..8], 16).unwrap() % 16);
        assert_eq!(locate("anything", 0).shard, 0);
    }

    #[test]
    fn rooms_spread_over_the_shards_and_keep_theirs() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[room_shard(&format!("ROOMS/room:{i}"), 16) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
        // The same hash as a key's: the room entry's first four bytes, mod shards.
        let entry = "ROOMS/room:lobby";
        let head = u32::from_str_radix(&key_id(entry)[..8], 16).unwrap();
        assert_eq!(room_shard(entry, 16), head % 16);
        assert_eq!(room_shard(entry, 16), room_shard(entry, 16));
        assert_eq!(room_shard(entry, 0), 0);
    }

    #[test]
    fn a_shard_lists_a_keys_rooms_and_forgets_empty_keys() {
        let mut shard = ShardIndex::default();
        assert!(shard.add("k1", "room:a"));
        assert!(!shard.add("k1", "room:a"));
        shard.add("k1", "room:b");
        assert_eq!(shard.rooms("k1"), ["room:a", "room:b"]);
        assert!(shard.remove("k1", "room:a"));
        assert!(shard.remove("k1", "room:b"));
        assert_eq!(shard.size(), (0, 0));
        assert!(!shard.remove("k1", "room:b"));
    }

    #[test]
    fn a_room_registers_a_key_once_and_sends_nothing_when_its_sockets_leave() {
        let mut room = RoomKeys::default();
        let ada = vec!["sid:A".to_owned(), "field:u=1".to_owned()];
        let ada_tab = vec!["sid:A2".to_owned(), "field:u=1".to_owned()];
        assert_eq!(room.arrive(&ada, 0), ada);
        assert_eq!(room.arrive(&ada_tab, 0), ["sid:A2"]);
        // The first registration listed sets the floor; later ones do not move it.
        assert_eq!(room.registered_at(1_000), Some(1_000));
        assert_eq!(room.registered_at(2_000), None);
        assert_eq!(room.next_due(), Some(1_000 + REFRESH_AFTER_MS));
        room.leave(&ada);
        room.leave(&ada_tab);
        // An empty room needs no alarm for its keys; a socket back costs no request.
        assert_eq!(room.next_due(), None);
        assert!(room.arrive(&ada, 0).is_empty());
        // A socket the bookkeeping never counted changes nothing.
        room.leave(&["sid:Z".to_owned()]);
        assert_eq!(room.next_due(), Some(1_000 + REFRESH_AFTER_MS));
    }

    /// Found reading the change that made entries expire: a room that emptied sets no alarm, so
    /// nothing refreshes; a key it still remembered as registered came back after its entry
    /// had expired and was not registered again, so a revocation would have missed its socket.
    #[test]
    fn regression_a_key_back_in_a_room_that_stayed_empty_past_the_refresh_is_registered_again() {
        let mut room = RoomKeys::default();
        let ada = vec!["sid:A".to_owned()];
        room.arrive(&ada, 0);
        room.registered_at(0);
        room.leave(&ada);
        assert_eq!(room.next_due(), None, "an empty room sets no alarm");
        assert!(
            room.arrive(&ada, REFRESH_AFTER_MS - 1).is_empty(),
            "still listed"
        );
        room.leave(&ada);
        assert_eq!(room.arrive(&ada, ENTRY_TTL_MS + 1), ada);
        // A key with a socket stays registered (the alarm, due at once, refreshes it).
        let mut busy = RoomKeys::default();
        busy.arrive(&ada, 0);
        busy.registered_at(0);
        assert!(busy.arrive(&ada, ENTRY_TTL_MS).is_empty());
        assert_eq!(busy.next_due(), Some(REFRESH_AFTER_MS));
    }

    /// A room visited every ten minutes: each visit registers its key, and that registration
    /// is the new floor, not followed by a refresh of the same key at once.
    #[test]
    fn a_room_that_reopens_after_its_refresh_was_due_starts_its_floor_again() {
        let mut room = RoomKeys::default();
        let ada = vec!["sid:A".to_owned()];
        let bo = vec!["sid:B".to_owned()];
        room.arrive(&ada, 0);
        room.registered_at(0);
        room.leave(&ada);
        let later = 2 * ENTRY_TTL_MS;
        assert_eq!(room.arrive(&bo, later), bo);
        assert_eq!(room.next_due(), Some(i64::MIN), "due at once until listed");
        assert_eq!(room.registered_at(later + 5), Some(later + 5));
        assert_eq!(room.next_due(), Some(later + 5 + REFRESH_AFTER_MS));
        // A room that kept a registered socket keeps its floor: its refresh is due.
        let mut busy = RoomKeys::default();
        busy.arrive(&ada, 0);
        busy.registered_at(0);
        assert_eq!(busy.arrive(&bo, later), bo);
        assert_eq!(busy.registered_at(later + 5), None);
        assert_eq!(busy.next_due(), Some(REFRESH_AFTER_MS));
    }

    #[test]
    fn a_refresh_registers_the_keys_of_sockets_again_and_forgets_the_others() {
        let mut room = RoomKeys::default();
        let stays = vec!["sid:S".to_owned(), "field:u=1".to_owned()];
        let went = vec!["sid:W".to_owned(), "field:u=1".to_owned()];
        room.arrive(&stays, 0);
        room.arrive(&went, 0);
        room.registered_at(0);
        room.leave(&went);
        let mut again = room.refresh();
        again.sort();
        assert_eq!(again, ["field:u=1", "sid:S"]);
        room.refreshed(REFRESH_AFTER_MS, &again);
        assert_eq!(room.floor(), Some(REFRESH_AFTER_MS));
        assert_eq!(room.next_due(), Some(2 * REFRESH_AFTER_MS));
        // sid:W's entry is left to expire: if it comes back, it is registered again.
        assert_eq!(room.arrive(&went, 0), ["sid:W"]);
    }

    #[test]
    fn a_failed_refresh_is_tried_again_a_minute_later_and_the_floor_stays() {
        let mut room = RoomKeys::default();
        room.arrive(&["sid:S".to_owned()], 0);
        room.registered_at(0);
        room.refresh();
        room.refresh_failed(REFRESH_AFTER_MS);
        assert_eq!(room.floor(), Some(0));
        assert_eq!(room.next_due(), Some(REFRESH_AFTER_MS + REFRESH_RETRY_MS));
    }

    #[test]
    fn a_failed_registration_makes_the_refresh_due_at_once() {
        let mut room = RoomKeys::default();
        let keys = vec!["sid:S".to_owned()];
        room.arrive(&keys, 0);
        room.registered_at(0);
        room.arrive(&["sid:T".to_owned()], 0);
        room.forget(&["sid:T".to_owned()]);
        assert_eq!(room.next_due(), Some(i64::MIN));
        let again = room.refresh();
        assert_eq!(again.len(), 2);
        room.refreshed(10, &again);
        assert_eq!(room.next_due(), Some(10 + REFRESH_AFTER_MS));
    }

    /// After an eviction, with the floor from storage: the sockets' keys are registered (no
    /// request for a socket of the same session); keys that had left are not known any more
    /// and are registered again if they come back.
    #[test]
    fn rebuilt_with_a_floor_the_keys_of_sockets_are_registered() {
        let sockets = [vec!["sid:B".to_owned()]];
        let mut room = RoomKeys::rebuild(Some(5_000), sockets.iter().map(Vec::as_slice));
        assert_eq!(room.next_due(), Some(5_000 + REFRESH_AFTER_MS));
        assert!(room.arrive(&sockets[0], 0).is_empty());
        assert_eq!(room.arrive(&["sid:A".to_owned()], 0), ["sid:A"]);
        assert_eq!(room.registered_at(9_000), None, "the floor stays");
    }

    /// Without a floor (a room whose keys a build before entry expiry registered, or whose
    /// registration failed before an eviction), the keys of its sockets may be missing from
    /// the index or listed without expiry: they are refreshed at once, and an arrival with
    /// one of them registers it.
    #[test]
    fn rebuilt_without_a_floor_the_keys_of_sockets_are_due_at_once() {
        let sockets = [vec!["sid:C".to_owned()]];
        let mut room = RoomKeys::rebuild(None, sockets.iter().map(Vec::as_slice));
        assert_eq!(room.next_due(), Some(i64::MIN));
        assert_eq!(room.arrive(&sockets[0], 0), sockets[0]);
        assert_eq!(room.registered().collect::<Vec<_>>(), ["sid:C"]);
        assert_eq!(room.registered_at(7), Some(7));
        // Without a socket, nothing is due.
        assert_eq!(RoomKeys::rebuild(None, std::iter::empty()).next_due(), None);
    }

    #[test]
    fn an_app_room_revalidating_every_minute_renews_once_per_boundary_and_never_lapses() {
        let every = revalidate_every_ms(60).unwrap();
        let start = 3 * REFRESH_AFTER_MS + 17_000;
        let mut until = app_entry_until(start, every);
        let mut renewals = 0;
        for n in 1..=60 {
            let now = start + n * every;
            assert!(
                now < until,
                "entries lapsed before the revalidation at {now}"
            );
            if renewal_due(now, every) {
                renewals += 1;
                until = app_entry_until(now, every);
            }
        }
        // An hour of revalidations: one renewal per 5-minute boundary, as the built-in Room.
        assert_eq!(renewals, 12);
    }

    #[test]
    fn one_missed_renewal_does_not_let_an_app_rooms_entries_lapse() {
        let every = revalidate_every_ms(90).unwrap();
        let written = REFRESH_AFTER_MS; // renewed just after a boundary
        let until = app_entry_until(written, every);
        // The revalidation after the next boundary failed; the one after the boundary after
        // that comes at the latest an interval past it.
        let next_but_one = 3 * REFRESH_AFTER_MS + every - 1;
        assert!(renewal_due(next_but_one, every));
        assert!(next_but_one < until);
    }

    #[test]
    fn an_interval_past_a_boundary_renews_at_every_revalidation() {
        let every = revalidate_every_ms(600).unwrap();
        assert!((0..5).all(|n| renewal_due(n * every + 1, every)));
        assert!(app_entry_until(0, every) > REFRESH_AFTER_MS + every);
    }

    #[test]
    fn a_revalidation_interval_outside_one_second_to_one_day_is_not_one() {
        assert_eq!(revalidate_every_ms(1), Some(1000));
        assert_eq!(revalidate_every_ms(86_400), Some(86_400_000));
        for bad in [0, -1, 86_401, i64::MAX, i64::MIN] {
            assert_eq!(revalidate_every_ms(bad), None, "{bad}");
        }
    }
}
