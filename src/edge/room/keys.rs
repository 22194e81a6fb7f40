//! The room's side of the revocation index: it registers a revocation key (a sid, a
//! `revoke_by` value) when its first socket with that key arrives, and unregisters it a linger
//! after the last such socket left (the alarm). Registration finishes before the client gets
//! its socket, so a revocation sent after that finds it (`wait_until` would leave a window in
//! which a logout right after joining misses the socket); it costs one index request, and only
//! for keys new to the room: a socket whose session or user is already here, or left less than
//! the linger ago, costs none. Arrivals that come while a request is in flight are registered
//! together in the next one ([`IndexQueue`]): a burst costs a few requests, not one each.
//! What is registered is kept in storage (`ix:<key>`), so the room knows it after an eviction;
//! the counts are rebuilt from the sockets.

use std::cell::RefCell;

use crate::log::{Clipped, LogEvent};
use crate::revocation::{IndexQueue, RoomKeys, Turn};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, Result};

use super::members::Member;
use super::{Room, ROOM_NAME_KEY};
use crate::edge::index;
use crate::edge::util::{self, Settings};

/// Storage: a registered key.
const REGISTERED_PREFIX: &str = "ix:";
/// Storage: the shard count the keys were registered under.
const SHARDS_KEY: &str = "ix_shards";
/// How long a request waits for the one queued before it. An index request answers in
/// milliseconds; past this, order gives way to liveness (the arrival's own request still
/// goes, and a revocation meanwhile falls back on revalidation, as for a failed request).
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The order of the room's index requests ([`IndexQueue`]) and, for each request queued, a
/// promise that settles when it finished: arrivals and the alarm run in the same object and
/// await each other's requests through them.
#[derive(Default)]
pub(super) struct IndexRequests {
    queue: RefCell<IndexQueue>,
    /// (request, its promise, what settles it); a handful at most.
    finished: RefCell<Vec<(u64, js_sys::Promise, js_sys::Function)>>,
}

impl IndexRequests {
    /// Request `id` was queued: from now on its finish can be awaited.
    fn queued(&self, id: u64) {
        let mut settle = None;
        let promise = js_sys::Promise::new(&mut |resolve, _reject| settle = Some(resolve));
        if let Some(settle) = settle {
            self.finished.borrow_mut().push((id, promise, settle));
        }
    }

    /// Waits until request `id` finished (at once if it has), for at most `WAIT_LIMIT`: a
    /// request that never settled must not hold up every later arrival in the room.
    async fn finish_of(&self, id: Option<u64>) {
        let pending = id.and_then(|id| {
            let finished = self.finished.borrow();
            finished.iter().find(|f| f.0 == id).map(|f| f.1.clone())
        });
        if let Some(promise) = pending {
            // It is only ever resolved.
            let settled = JsFuture::from(promise);
            let limit = worker::Delay::from(WAIT_LIMIT);
            futures_util::future::select(std::pin::pin!(settled), std::pin::pin!(limit)).await;
        }
    }

    /// Request `id` finished, whichever way: wake who waits for it.
    fn finish(&self, id: u64) {
        self.queue.borrow_mut().finish(id);
        let settle = {
            let mut finished = self.finished.borrow_mut();
            let at = finished.iter().position(|f| f.0 == id);
            at.map(|i| finished.swap_remove(i).2)
        };
        if let Some(settle) = settle {
            let _ = settle.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
    }

    /// A request of the alarm's: after every one queued, and joined by none.
    async fn exclusive_turn(&self) -> Turn {
        let turn = self.queue.borrow_mut().exclusive();
        self.queued(turn.id);
        self.finish_of(turn.after).await;
        turn
    }
}

impl Room {
    /// The bookkeeping, rebuilt from storage and the open sockets the first time it is needed
    /// after the object (re)started; `arriving` is a socket accepted but not counted yet.
    async fn ensure_keys(&self, arriving: Option<&str>) -> Result<()> {
        if self.keys.borrow().is_some() {
            return Ok(());
        }
        let listed = self
            .state
            .storage()
            .list_with_options(worker::ListOptions::new().prefix(REGISTERED_PREFIX))
            .await?;
        let registered: Vec<String> = listed
            .keys()
            .into_iter()
            .filter_map(|k| k.ok()?.as_string())
            .filter_map(|k| k.strip_prefix(REGISTERED_PREFIX).map(str::to_owned))
            .collect();
        let members = self.members();
        let sockets = members
            .iter()
            .filter(|m| Some(m.id()) != arriving)
            .map(|m| &*m.keys);
        let rebuilt = RoomKeys::rebuild(registered, sockets, util::now_ms());
        self.keys.borrow_mut().get_or_insert(rebuilt);
        Ok(())
    }

    /// A socket arrived: register the keys the room did not hold yet, and wait until every key
    /// of the socket is in the index (also those another arrival is registering).
    pub(super) async fn keys_arrive(
        &self,
        settings: &Settings,
        room: &str,
        arrived: &Member,
    ) -> Result<()> {
        self.ensure_keys(Some(arrived.id())).await?;
        let new = match self.keys.borrow_mut().as_mut() {
            Some(keys) => keys.arrive(&arrived.keys),
            None => return Ok(()),
        };
        let requests = &self.index_requests;
        let registration = requests.queue.borrow_mut().register(new, &arrived.keys);
        let mut sent = Ok(());
        if let Some(turn) = registration.send {
            requests.queued(turn.id);
            requests.finish_of(turn.after).await;
            let keys = requests.queue.borrow_mut().take(turn.id);
            sent = self.register(settings, room, &keys).await;
            requests.finish(turn.id);
        }
        for id in registration.wait {
            requests.finish_of(Some(id)).await;
        }
        sent
    }

    /// One registration request: `keys` of every arrival that joined it.
    async fn register(&self, settings: &Settings, room: &str, keys: &[String]) -> Result<()> {
        let storage = self.state.storage();
        if !self.remembered.borrow().room_name_stored {
            if util::stored_text(&storage, ROOM_NAME_KEY)
                .await
                .ok()
                .flatten()
                .is_none()
            {
                storage.put_raw(ROOM_NAME_KEY, room).await?;
            }
            self.remembered.borrow_mut().room_name_stored = true;
        }
        let shards = settings.config.index_shards;
        let entry = index::room_entry(crate::edge::env::ROOMS, room);
        if let Err(e) = index::update(&self.env, shards, &entry, keys, true).await {
            // Revocation falls back on revalidation for these sockets; the next socket with
            // these keys tries again.
            if let Some(room_keys) = self.keys.borrow_mut().as_mut() {
                room_keys.forget(keys);
            }
            log_index_error("register", &e);
            return Ok(());
        }
        // The marks and, if this object has not stored it yet, the shard count: one write.
        let marks = marks(keys);
        let shards_entry = (self.remembered.borrow().shards != Some(shards))
            .then_some((SHARDS_KEY, f64::from(shards)));
        let entries = marks.iter().map(|mark| (mark.as_str(), 1.0));
        util::put_numbers(&storage, entries.chain(shards_entry)).await?;
        self.remembered.borrow_mut().shards = Some(shards);
        Ok(())
    }

    /// Sockets left: their keys start lingering (no storage, no request yet).
    /// Returns when the first linger they started ends, if they started one.
    pub(super) fn keys_leave(&self, gone: &[&[String]]) -> Option<i64> {
        let mut keys = self.keys.borrow_mut();
        let keys = keys.as_mut()?;
        let now = util::now_ms();
        let mut started: Option<i64> = None;
        for socket_keys in gone {
            if let Some(ends) = keys.leave(socket_keys, now) {
                started = Some(started.map_or(ends, |s| s.min(ends)));
            }
        }
        started
    }

    /// Whether the bookkeeping is built (after a restart it is at the first need).
    pub(super) fn keys_known(&self) -> bool {
        self.keys.borrow().is_some()
    }

    /// When the next lingering key is due, for the alarm.
    pub(super) async fn keys_next_due(&self) -> Option<i64> {
        self.ensure_keys(None).await.ok()?;
        self.keys.borrow().as_ref()?.next_due()
    }

    /// The alarm: unregister the keys whose linger is over; re-register everything if the
    /// shard count changed since the keys were registered. One turn in the room's index
    /// requests, so a key that comes back meanwhile is added after its removal.
    pub(super) async fn keys_on_alarm(&self, settings: &Settings, now: i64) -> Result<()> {
        self.ensure_keys(None).await?;
        let requests = &self.index_requests;
        let turn = requests.exclusive_turn().await;
        let done = self.unregister_due(settings, now).await;
        requests.finish(turn.id);
        done
    }

    async fn unregister_due(&self, settings: &Settings, now: i64) -> Result<()> {
        let storage = self.state.storage();
        let Some(room) = util::stored_text(&storage, ROOM_NAME_KEY)
            .await
            .ok()
            .flatten()
        else {
            return Ok(());
        };
        let entry = index::room_entry(crate::edge::env::ROOMS, &room);
        let shards = settings.config.index_shards;
        let due = match self.keys.borrow_mut().as_mut() {
            Some(keys) => keys.due_at_alarm(now),
            None => Vec::new(),
        };
        if !due.is_empty() {
            storage.delete_multiple(marks(&due)).await?;
            index::update(&self.env, shards, &entry, &due, false).await?;
        }
        let registered_under = util::stored_number(&storage, SHARDS_KEY)
            .await
            .ok()
            .flatten();
        if registered_under.is_some_and(|n| n != f64::from(shards)) {
            let all: Vec<String> = match self.keys.borrow().as_ref() {
                Some(keys) => keys.registered().map(str::to_owned).collect(),
                None => Vec::new(),
            };
            index::update(&self.env, shards, &entry, &all, true).await?;
            storage.put_raw(SHARDS_KEY, shards).await?;
            self.remembered.borrow_mut().shards = Some(shards);
        }
        Ok(())
    }
}

/// The storage keys that mark `keys` as registered.
fn marks(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| format!("{REGISTERED_PREFIX}{k}"))
        .collect()
}

fn log_index_error(what: &str, e: &worker::Error) {
    util::log(&LogEvent::Room {
        room: None,
        error: Clipped::of(&format!("index {what}: {e}")),
    });
}
