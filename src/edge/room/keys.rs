//! The room's side of the revocation index: it registers a revocation key (a sid, a
//! `revoke_by` value) when its first socket with that key arrives, and registers the keys of
//! its sockets again before their entries expire (the alarm; `revocation::RoomKeys`). Nothing
//! is sent when a socket leaves. Registration finishes before the client gets its socket, so
//! a revocation sent after that finds it (`wait_until` would leave a window in which a logout
//! right after joining misses the socket); it costs one index request, and only for keys new
//! to the room: a socket whose session or user is already here, or was since the last
//! refresh, costs none. Arrivals that come while a request is in flight are registered
//! together in the next one ([`IndexQueue`]): a burst costs a few requests, not one each.
//! Storage holds one number for all of it, the floor (`ix_floor`), so the room knows after an
//! eviction that the keys of its sockets are registered; the counts are rebuilt from the
//! sockets.

use std::cell::RefCell;

use crate::log::{Clipped, LogEvent};
use crate::revocation::{IndexQueue, RoomKeys, Turn, ENTRY_TTL_MS};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, Result};

use super::members::Member;
use super::{Room, ROOM_NAME_KEY};
use crate::edge::index;
use crate::edge::util::{self, Settings};

/// Storage: the floor of the room's registrations (`RoomKeys`), Unix ms. Deleted when a
/// registration failed, so that a new object does not take its keys as registered.
const FLOOR_KEY: &str = "ix_floor";
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
    /// after the object (re)started; `arriving` is a socket accepted but not counted yet. Keys
    /// registered under another shard count than `shards` are taken as not registered (the
    /// alarm then registers them again under this one).
    async fn ensure_keys(&self, shards: u32, arriving: Option<&str>) -> Result<()> {
        if self.keys.borrow().is_some() {
            return Ok(());
        }
        let stored = self
            .state
            .storage()
            .get_multiple(vec![FLOOR_KEY, SHARDS_KEY])
            .await?;
        let number = |key: &str| stored.get(&key.into()).as_f64();
        let stored_shards = number(SHARDS_KEY).map(|n| n as u32);
        let floor = number(FLOOR_KEY)
            .map(|n| n as i64)
            .filter(|_| stored_shards == Some(shards));
        let members = self.members();
        let sockets = members
            .iter()
            .filter(|m| Some(m.id()) != arriving)
            .map(|m| &*m.keys);
        let rebuilt = RoomKeys::rebuild(floor, sockets);
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
        let shards = settings.config.index_shards;
        self.ensure_keys(shards, Some(arrived.id())).await?;
        let new = match self.keys.borrow_mut().as_mut() {
            Some(keys) => keys.arrive(&arrived.keys, util::now_ms()),
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
        let sent_at = util::now_ms();
        let until = sent_at + ENTRY_TTL_MS;
        if let Err(e) = index::add(&self.env, shards, &entry, keys, Some(until)).await {
            // Revocation falls back on revalidation for these sockets until the alarm, due at
            // once now, or the next socket with these keys registers them again; a new object
            // must not take them as registered either.
            if let Some(room_keys) = self.keys.borrow_mut().as_mut() {
                room_keys.forget(keys);
            }
            let _ = storage.delete(FLOOR_KEY).await;
            log_index_error("register", &e);
            return Ok(());
        }
        let first = self
            .keys
            .borrow_mut()
            .as_mut()
            .and_then(|k| k.registered_at(sent_at));
        if let Some(floor) = first {
            self.store_floor(floor, shards).await?;
        }
        Ok(())
    }

    /// The floor and the shard count it holds for: one write.
    async fn store_floor(&self, floor: i64, shards: u32) -> Result<()> {
        let storage = self.state.storage();
        let entries = [(FLOOR_KEY, floor as f64), (SHARDS_KEY, f64::from(shards))];
        util::put_numbers(&storage, entries).await
    }

    /// Sockets left: nothing is sent; their keys stay registered until the next refresh.
    pub(super) fn keys_leave(&self, gone: &[&[String]]) {
        if let Some(keys) = self.keys.borrow_mut().as_mut() {
            for socket_keys in gone {
                keys.leave(socket_keys);
            }
        }
    }

    /// When the keys of the room's sockets are due to be registered again, for the alarm.
    pub(super) async fn keys_next_due(&self, settings: &Settings) -> Option<i64> {
        let shards = settings.config.index_shards;
        self.ensure_keys(shards, None).await.ok()?;
        self.keys.borrow().as_ref()?.next_due()
    }

    /// The alarm: if the refresh is due, register the keys of the room's sockets again (one
    /// turn in the room's index requests, after those queued) and raise the floor.
    pub(super) async fn keys_on_alarm(&self, settings: &Settings, now: i64) -> Result<()> {
        let due = self.keys_next_due(settings).await;
        if due.is_none_or(|at| at > now) {
            return Ok(());
        }
        let requests = &self.index_requests;
        let turn = requests.exclusive_turn().await;
        let done = self.refresh(settings).await;
        requests.finish(turn.id);
        done
    }

    async fn refresh(&self, settings: &Settings) -> Result<()> {
        let storage = self.state.storage();
        let Some(room) = util::stored_text(&storage, ROOM_NAME_KEY)
            .await
            .ok()
            .flatten()
        else {
            // Its first registration stores the name before it sends anything, so this is a
            // failed write: try again later, not at every alarm (a refresh due at once would
            // set the next alarm a millisecond later).
            if let Some(room_keys) = self.keys.borrow_mut().as_mut() {
                room_keys.refresh_failed(util::now_ms());
            }
            return Ok(());
        };
        let entry = index::room_entry(crate::edge::env::ROOMS, &room);
        let shards = settings.config.index_shards;
        let started = util::now_ms();
        let keys = match self.keys.borrow_mut().as_mut() {
            Some(keys) => keys.refresh(),
            None => return Ok(()),
        };
        let until = started + ENTRY_TTL_MS;
        let sent = if keys.is_empty() {
            Ok(())
        } else {
            index::add(&self.env, shards, &entry, &keys, Some(until)).await
        };
        match sent {
            Ok(()) => {
                if let Some(room_keys) = self.keys.borrow_mut().as_mut() {
                    room_keys.refreshed(started, &keys);
                }
                self.store_floor(started, shards).await
            }
            Err(e) => {
                if let Some(room_keys) = self.keys.borrow_mut().as_mut() {
                    room_keys.refresh_failed(util::now_ms());
                }
                Err(e)
            }
        }
    }
}

fn log_index_error(what: &str, e: &worker::Error) {
    util::log(&LogEvent::Room {
        room: None,
        error: Clipped::of(&format!("index {what}: {e}")),
    });
}
