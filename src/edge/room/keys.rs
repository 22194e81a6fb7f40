//! The room's side of the revocation index: it registers a revocation key (a sid, a
//! `revoke_by` value) when its first socket with that key arrives, and unregisters it a linger
//! after the last such socket left (the alarm). Registration finishes before the client gets
//! its socket, so a revocation sent after that finds it (`wait_until` would leave a window in
//! which a logout right after joining misses the socket); it costs one index request, and only
//! for keys new to the room: a socket whose session or user is already here, or left less than
//! the linger ago, costs none.
//! What is registered is kept in storage (`ix:<key>`), so the room knows it after an eviction;
//! the counts are rebuilt from the sockets.

use crate::log::{Clipped, LogEvent};
use crate::revocation::RoomKeys;
use worker::Result;

use super::members::Member;
use super::{Room, ROOM_NAME_KEY};
use crate::edge::index;
use crate::edge::util::{self, Settings};

/// Storage: a registered key.
const REGISTERED_PREFIX: &str = "ix:";
/// Storage: the shard count the keys were registered under.
const SHARDS_KEY: &str = "ix_shards";

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

    /// A socket arrived: register the keys the room did not hold yet.
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
        if new.is_empty() {
            return Ok(());
        }
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
        if let Err(e) = index::update(&self.env, shards, &entry, &new, true).await {
            // Revocation falls back on revalidation for this socket; the next socket with
            // these keys tries again.
            if let Some(keys) = self.keys.borrow_mut().as_mut() {
                keys.forget(&new);
            }
            log_index_error("register", &e);
            return Ok(());
        }
        // The marks and, if this object has not stored it yet, the shard count: one write.
        let marks: Vec<String> = new
            .iter()
            .map(|k| format!("{REGISTERED_PREFIX}{k}"))
            .collect();
        let shards_entry = (self.remembered.borrow().shards != Some(shards))
            .then_some((SHARDS_KEY, f64::from(shards)));
        let entries = marks.iter().map(|mark| (mark.as_str(), 1.0));
        util::put_numbers(&storage, entries.chain(shards_entry)).await?;
        self.remembered.borrow_mut().shards = Some(shards);
        Ok(())
    }

    /// Sockets left: their keys start lingering (no storage, no request yet).
    pub(super) fn keys_leave(&self, gone: &[&[String]]) {
        if let Some(keys) = self.keys.borrow_mut().as_mut() {
            let now = util::now_ms();
            for socket_keys in gone {
                keys.leave(socket_keys, now);
            }
        }
    }

    /// When the next lingering key is due, for the alarm.
    pub(super) async fn keys_next_due(&self) -> Option<i64> {
        self.ensure_keys(None).await.ok()?;
        self.keys.borrow().as_ref()?.next_due()
    }

    /// The alarm: unregister the keys whose linger is over; re-register everything if the
    /// shard count changed since the keys were registered.
    pub(super) async fn keys_on_alarm(&self, settings: &Settings, now: i64) -> Result<()> {
        self.ensure_keys(None).await?;
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
            Some(keys) => keys.due(now),
            None => Vec::new(),
        };
        if !due.is_empty() {
            let marks: Vec<String> = due
                .iter()
                .map(|k| format!("{REGISTERED_PREFIX}{k}"))
                .collect();
            storage.delete_multiple(marks).await?;
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

fn log_index_error(what: &str, e: &worker::Error) {
    util::log(&LogEvent::Room {
        room: None,
        error: Clipped::of(&format!("index {what}: {e}")),
    });
}
