//! Finding a session's rooms without asking every room: an index from revocation key to the
//! rooms that hold a socket with that key, sharded over many Durable Objects by a hash of the
//! key. This module is the index's logic apart from any object: the keys, the shard of a key,
//! a shard's entries, and a room's bookkeeping of what it has registered.
//!
//! * A socket's revocation keys are its sid and the value of each `revoke_by` path its session
//!   has ([`socket_keys`]). A revocation names exactly one key ([`target_key`]).
//! * A key lives on shard `hash(key) mod shards` ([`locate`]), so no object sees all traffic
//!   and a revocation touches one shard plus the rooms listed there.
//! * Shards store a one-way id of the key ([`key_id`]), never the sid itself.
//! * A room registers a key when its first socket with that key arrives and unregisters it a
//!   linger after the last one leaves ([`RoomKeys`]): a session that leaves and comes back
//!   within the linger costs no index write.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::RevokeTarget;

/// How long a room keeps a key registered after its last socket with that key left.
pub const LINGER_MS: i64 = 30_000;

/// The room's alarm that unregisters keys also takes those whose linger ends within this much
/// after it: in a room with a steady stream of departures it then fires every few seconds,
/// not once per key (each firing reads storage, writes it and asks the index). Unregistering
/// a key a little early is safe: no socket holds it; a rejoin then costs one registration.
pub const UNREGISTER_BATCH_MS: i64 = 5_000;

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
pub fn socket_keys(sid: &str, revoke_keys: &[(String, Value)]) -> Vec<String> {
    std::iter::once(sid_key(sid))
        .chain(
            revoke_keys
                .iter()
                .map(|(path, value)| field_key(path, value)),
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
/// what shards store, so a sid is kept nowhere new; and its shard, the first four bytes of the
/// hash modulo `shards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub id: String,
    pub shard: u32,
}

pub fn locate(key: &str, shards: u32) -> Located {
    let digest = Sha256::digest(key.as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    Located {
        id: crate::log::hex(&digest),
        shard: head % shards.max(1),
    }
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

/// The storage key of one (key id, room) entry in a shard; a prefix lists a key's rooms.
pub fn entry_storage_key(key_id: &str, room: &str) -> String {
    format!("{}{room}", entry_prefix(key_id))
}

pub fn entry_prefix(key_id: &str) -> String {
    format!("k:{key_id}:")
}

/// What a room has registered in the index, and what it must change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomKeys {
    /// Keys of the room's sockets and keys still registered: how many sockets have each,
    /// whether the index has it, and when a key whose last socket left is due to go.
    keys: BTreeMap<String, KeyState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct KeyState {
    sockets: usize,
    registered: bool,
    unregister_at: Option<i64>,
}

impl RoomKeys {
    /// Rebuilds the bookkeeping after the object woke or restarted, from the keys the room
    /// had registered (kept in storage) and the sockets now in the room: registered keys with
    /// no socket are due at once (when their last socket left is not known; counting a new
    /// linger from every restart kept a room that hibernated between a departure and its
    /// alarm from ever unregistering them); a socket's key that is not registered will be at
    /// the next arrival that carries it.
    pub fn rebuild<'a>(
        registered: impl IntoIterator<Item = String>,
        sockets: impl IntoIterator<Item = &'a [String]>,
        now_ms: i64,
    ) -> RoomKeys {
        let mut keys: BTreeMap<String, KeyState> = registered
            .into_iter()
            .map(|k| {
                let state = KeyState {
                    sockets: 0,
                    registered: true,
                    unregister_at: Some(now_ms),
                };
                (k, state)
            })
            .collect();
        for socket_keys in sockets {
            for key in socket_keys {
                let state = keys.entry(key.clone()).or_default();
                state.sockets += 1;
                state.unregister_at = None;
            }
        }
        RoomKeys { keys }
    }

    /// A socket with `keys` arrived: the keys the room must register now (not registered yet).
    pub fn arrive(&mut self, keys: &[String]) -> Vec<String> {
        let mut new = Vec::new();
        for key in keys {
            let state = self.keys.entry(key.clone()).or_default();
            state.sockets += 1;
            state.unregister_at = None;
            if !state.registered {
                state.registered = true;
                new.push(key.clone());
            }
        }
        new
    }

    /// A socket with `keys` left: keys whose last socket this was linger until `now + LINGER_MS`.
    /// Returns when the linger it started ends, if it started one (the room's alarm must wake
    /// by then).
    pub fn leave(&mut self, keys: &[String], now_ms: i64) -> Option<i64> {
        let mut started = None;
        for key in keys {
            if let Some(state) = self.keys.get_mut(key) {
                state.sockets = state.sockets.saturating_sub(1);
                if state.sockets == 0 {
                    state.unregister_at = Some(now_ms + LINGER_MS);
                    started = state.unregister_at;
                }
            }
        }
        started
    }

    /// What the alarm at `now` unregisters: the keys due by then, and those due within
    /// [`UNREGISTER_BATCH_MS`] after it (removed from the bookkeeping).
    pub fn due_at_alarm(&mut self, now_ms: i64) -> Vec<String> {
        self.due(now_ms + UNREGISTER_BATCH_MS)
    }

    /// Keys due to be unregistered at `now` (removed from the bookkeeping).
    pub fn due(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<(String, bool)> = self
            .keys
            .iter()
            .filter(|(_, s)| s.sockets == 0 && s.unregister_at.is_some_and(|at| at <= now_ms))
            .map(|(k, s)| (k.clone(), s.registered))
            .collect();
        for (key, _) in &gone {
            self.keys.remove(key);
        }
        gone.into_iter()
            .filter_map(|(k, registered)| registered.then_some(k))
            .collect()
    }

    /// Their registration failed: the next socket with these keys tries again.
    pub fn forget(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(state) = self.keys.get_mut(key) {
                state.registered = false;
            }
        }
    }

    /// When the next key is due, if any: the room's alarm must wake it then.
    pub fn next_due(&self) -> Option<i64> {
        self.keys.values().filter_map(|s| s.unregister_at).min()
    }

    /// Every key registered (or lingering).
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|(_, s)| s.registered)
            .map(|(k, _)| k.as_str())
    }
}

/// A room's requests to the index, sent one at a time and in the order they were asked for,
/// with the registrations that queue behind a request in flight merged into one (a group
/// commit): a burst of arrivals costs a few index requests, not one each.
///
/// It also closes a window [`RoomKeys`] alone leaves open: a socket whose key another arrival
/// is still registering waits for that request ([`Registration::wait`]), so no socket is handed
/// back before all its keys are in the index; and a key that comes back while its removal is
/// queued is added after that removal, never before it.
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

    /// A request that takes no other keys (a removal, a re-registration): after everything
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
    fn a_key_back_while_its_removal_is_queued_is_added_after_the_removal() {
        let mut q = IndexQueue::default();
        let first = arrive_new(&mut q, "sid:A").send.unwrap();
        q.take(first.id);
        let queued = arrive_new(&mut q, "sid:B").send.unwrap();
        let removal = q.exclusive();
        assert_eq!(removal.after, Some(queued.id));
        // Does not join the registration queued before the removal.
        let back = arrive_new(&mut q, "sid:Z");
        assert_eq!(back.send.map(|t| t.after), Some(Some(removal.id)));
        assert_eq!(q.take(queued.id), keys(&["sid:B"]));
    }

    #[test]
    fn keys_are_the_sid_and_each_revoke_by_value() {
        let keys = socket_keys("S1", &[("passport.user".into(), json!("u-42"))]);
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
        assert_eq!(entry_storage_key("k1", "room:a"), "k:k1:room:a");
        assert!(entry_storage_key("k1", "room:a").starts_with(&entry_prefix("k1")));
    }

    #[test]
    fn a_room_registers_a_key_once_and_unregisters_it_a_linger_after_the_last_socket() {
        let mut room = RoomKeys::default();
        let ada = vec!["sid:A".to_owned(), "field:u=1".to_owned()];
        let ada_tab = vec!["sid:A2".to_owned(), "field:u=1".to_owned()];
        assert_eq!(room.arrive(&ada), ada);
        assert_eq!(room.arrive(&ada_tab), ["sid:A2"]);
        // sid:A lingers (the room's alarm must wake by then); the user key still has a socket.
        assert_eq!(room.leave(&ada, 1_000), Some(1_000 + LINGER_MS));
        assert_eq!(room.next_due(), Some(1_000 + LINGER_MS));
        assert!(room.due(1_000 + LINGER_MS - 1).is_empty());
        // Back within the linger: no index write.
        assert!(room.arrive(&ada).is_empty());
        assert_eq!(room.leave(&ada, 2_000), Some(2_000 + LINGER_MS));
        assert_eq!(room.leave(&ada_tab, 2_000), Some(2_000 + LINGER_MS));
        // A socket the bookkeeping never counted starts no linger.
        assert_eq!(room.leave(&["sid:Z".to_owned()], 2_000), None);
        let mut due = room.due(2_000 + LINGER_MS);
        due.sort();
        assert_eq!(due, ["field:u=1", "sid:A", "sid:A2"]);
        assert_eq!(room.next_due(), None);
        assert_eq!(room.registered().count(), 0);
    }

    /// Found by tests/e2e/linger.test.mjs: a room without revalidation hibernates while a
    /// key lingers, so its alarm runs in a new object, which rebuilt the key as lingering from
    /// then, set the alarm a linger later, and so on: the key never left the index.
    #[test]
    fn regression_keys_rebuilt_after_eviction_without_sockets_are_due_at_once() {
        let sockets = [vec!["sid:B".to_owned()]];
        let mut room = RoomKeys::rebuild(
            ["sid:A".to_owned(), "sid:B".to_owned()],
            sockets.iter().map(Vec::as_slice),
            5_000,
        );
        assert_eq!(room.next_due(), Some(5_000));
        assert_eq!(room.due(5_000), ["sid:A"]);
        assert!(room.arrive(&sockets[0]).is_empty());
        room.forget(&sockets[0]);
        assert_eq!(room.arrive(&sockets[0]), sockets[0]);
        // A key back before the alarm is the room's again, not due.
        let mut back = RoomKeys::rebuild(["sid:A".to_owned()], std::iter::empty(), 5_000);
        assert!(back.arrive(&["sid:A".to_owned()]).is_empty());
        assert!(back.due(5_000).is_empty());
    }

    #[test]
    fn an_alarm_takes_the_keys_due_within_a_batch_window_so_departures_share_it() {
        let mut room = RoomKeys::default();
        let sockets: Vec<Vec<String>> = (0..4).map(|i| vec![format!("sid:{i}")]).collect();
        for keys in &sockets {
            room.arrive(keys);
        }
        // Departures a second apart, the last one after the window.
        for (i, keys) in sockets.iter().enumerate() {
            room.leave(
                keys,
                1_000 * i as i64 + if i == 3 { UNREGISTER_BATCH_MS } else { 0 },
            );
        }
        let mut due = room.due_at_alarm(LINGER_MS);
        due.sort();
        assert_eq!(due, ["sid:0", "sid:1", "sid:2"]);
        assert_eq!(
            room.next_due(),
            Some(3_000 + UNREGISTER_BATCH_MS + LINGER_MS)
        );
        assert!(room.due_at_alarm(LINGER_MS).is_empty());
    }

    /// Found under wrangler dev: rebuilt with the arriving socket already among the sockets,
    /// its keys counted as present and were never registered. A socket's key is registered
    /// only if storage says so.
    #[test]
    fn rebuilt_keys_of_sockets_are_not_taken_as_registered() {
        let sockets = [vec!["sid:C".to_owned()]];
        let mut room = RoomKeys::rebuild([], sockets.iter().map(Vec::as_slice), 0);
        assert_eq!(room.arrive(&sockets[0]), sockets[0]);
        assert_eq!(room.registered().collect::<Vec<_>>(), ["sid:C"]);
        // Unregistered keys that go are not unregistered from the index.
        let mut other = RoomKeys::rebuild([], sockets.iter().map(Vec::as_slice), 0);
        other.leave(&sockets[0], 0);
        assert!(other.due(LINGER_MS).is_empty());
        assert_eq!(other.next_due(), None);
    }
}
