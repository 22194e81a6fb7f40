//! The revocation index: `index_shards` Durable Objects (`RevocationIndex`, named `shard:<n>`),
//! each holding, for the rooms that hash to it, which revocation keys have a socket there.
//! See `crate::revocation` for the keys, the placement and a room's bookkeeping.
//!
//! A room's registration is one request to its shard (`/add`). A revocation asks the key's home
//! shard (`/find`), which lists its own entries of the key and asks every other shard
//! (`/rooms`) in parallel: the revoker's invocation makes one subrequest for the whole index,
//! the home shard's makes `shards - 1` (the free plan allows 50 a request: keep `index_shards`
//! at 50 or below there).
//!
//! A shard stores one entry per (key id, room): `k:<key id>:<room entry>`, so adding and
//! removing are single writes and a key's rooms are one prefix listing. A room entry is
//! `<namespace binding>/<room name>` (`ROOMS/room:lobby`), so a revocation knows which
//! namespace to ask. Key ids are one-way hashes: no sid is stored here.
//!
//! An entry's value is when it expires (the built-in Room's entries, which it refreshes, and an
//! app's room's that revalidates through the gate, which renews them), or `1` for none (an
//! app's room that does not say it revalidates, whose stale entries the revocation that meets
//! them removes).
//! Expired entries are not listed, and a shard's alarm deletes them every `SWEEP_EVERY_MS`
//! while it has entries that expire. `/entries` shows what a shard holds for a key id.

use std::cell::Cell;

use crate::revocation::{
    entry_live, entry_prefix, entry_storage_key, room_shard, Located, MAX_SHARDS, SWEEP_EVERY_MS,
};
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage,
};

use super::env;
use super::util;
use worker::js_sys;

/// DO storage writes at most 128 keys at once.
const STORAGE_BATCH: usize = 128;
/// Entries a sweep lists at a time.
const SWEEP_PAGE: usize = 1000;
/// Pages one alarm sweeps at most; then it stops and goes on `SWEEP_PAUSE_MS` later.
const SWEEP_PAGES: usize = 20;
const SWEEP_PAUSE_MS: u64 = 1000;
/// Storage: where an unfinished sweep goes on (a storage key, outside the entries).
const SWEEP_CURSOR_KEY: &str = "sweep_after";
/// Where all entries start (`entry_prefix` without a key id).
const ENTRIES_PREFIX: &str = "k:";
/// The value of an entry without expiry.
const NO_EXPIRY: f64 = 1.0;

#[derive(Serialize, Deserialize)]
struct Entries {
    /// Room entries (`<binding>/<room>`).
    rooms: Vec<String>,
    /// Key ids.
    ids: Vec<String>,
    /// When added entries expire (Unix ms); none: they do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

/// What a revocation asks a key's home shard (`/find`): the key's entries on every shard.
/// Sent as text, `<key id> <shard count> <the asked shard>`, and answered as a JSON list of
/// `<shard> <room entry>` (the shard that lists the entry): plain strings, so that no serde
/// code is built for either.
struct Find {
    id: String,
    shards: u32,
    shard: u32,
}

impl Find {
    fn encode(&self) -> String {
        format!("{} {} {}", self.id, self.shards, self.shard)
    }

    fn decode(text: &str) -> Option<Find> {
        let mut parts = text.split(' ');
        let find = Find {
            id: parts.next()?.to_owned(),
            shards: parts.next()?.parse().ok()?,
            shard: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(find)
    }
}

#[durable_object]
pub struct RevocationIndex {
    state: State,
    env: Env,
    /// This object made sure a sweep is scheduled.
    sweep_scheduled: Cell<bool>,
}

impl DurableObject for RevocationIndex {
    fn new(state: State, env: Env) -> Self {
        RevocationIndex {
            state,
            env,
            sweep_scheduled: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/add") | (Method::Post, "/remove") => {
                let Ok(entries) = util::json_body::<Entries>(&mut req).await else {
                    return Response::error("bad entries", 400);
                };
                let keys: Vec<String> = entries
                    .ids
                    .iter()
                    .flat_map(|id| {
                        entries
                            .rooms
                            .iter()
                            .map(move |room| entry_storage_key(id, room))
                    })
                    .collect();
                let adding = req.path() == "/add";
                let value = entries.until.map_or(NO_EXPIRY, |until| until as f64);
                for batch in keys.chunks(STORAGE_BATCH) {
                    if adding {
                        let batch = batch.iter().map(|k| (k.as_str(), value));
                        util::put_numbers(&storage, batch).await?;
                    } else {
                        storage.delete_multiple(batch.to_vec()).await?;
                    }
                }
                if adding && entries.until.is_some() {
                    self.schedule_sweep().await?;
                }
                Response::empty()
            }
            (Method::Post, "/rooms") => {
                let id = req.text().await?;
                Response::from_json(&self.rooms_of(&id).await?)
            }
            (Method::Post, "/entries") => {
                // What this shard holds for a key id, expired or not: `<value> <room entry>`
                // (the value: when it expires, Unix ms, or 1 for never). For tests and
                // operators; only the gate's own binding reaches it.
                let id = req.text().await?;
                let entries: Vec<String> = self
                    .entries_of_key(&id)
                    .await?
                    .into_iter()
                    .map(|(room, value)| format!("{} {room}", value as i64))
                    .collect();
                Response::from_json(&entries)
            }
            (Method::Post, "/find") => {
                let text = req.text().await.unwrap_or_default();
                let Some(find) = Find::decode(&text) else {
                    return Response::error("bad find", 400);
                };
                if find.shards > MAX_SHARDS || find.shard >= find.shards {
                    return Response::error("bad find: shard count", 400);
                }
                match self.find(&find).await {
                    Ok(found) => Response::from_json(&found),
                    // One shard that did not answer fails the whole listing: a revocation must
                    // not report the key's rooms done when some were not looked up.
                    Err(e) => Response::error(format!("index find: {e}"), 503),
                }
            }
            _ => Response::error("not found", 404),
        }
    }

    // No sockets and no alarms here, but a default handler panics if one ever fires.
    async fn websocket_message(&self, ws: WebSocket, _m: WebSocketIncomingMessage) -> Result<()> {
        ws.close(Some(1011), Some("not a room"))
    }

    async fn websocket_close(&self, _ws: WebSocket, _c: usize, _r: String, _w: bool) -> Result<()> {
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _e: worker::Error) -> Result<()> {
        Ok(())
    }

    /// The sweep: deletes the expired entries, a page at a time, and comes back while entries
    /// that expire remain. A shard with more entries than `SWEEP_PAGES` pages goes on from
    /// where it stopped a moment later (the place is kept in storage), so no alarm runs long.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let now = util::now_ms();
        let mut after = util::stored_text(&storage, SWEEP_CURSOR_KEY).await?;
        let mut expiring = false;
        for _ in 0..SWEEP_PAGES {
            let mut options = worker::ListOptions::new()
                .prefix(ENTRIES_PREFIX)
                .limit(SWEEP_PAGE);
            if let Some(after) = &after {
                options = options.start(after);
            }
            let page = storage.list_with_options(options).await?;
            let mut listed = 0;
            let mut expired = Vec::new();
            for (key, value) in entries_of(&page) {
                listed += 1;
                if !entry_live(value, now) {
                    expired.push(key.clone());
                } else if value != NO_EXPIRY {
                    expiring = true;
                }
                // The next page starts just after this key (`start` is inclusive).
                after = Some(key + "\0");
            }
            for batch in expired.chunks(STORAGE_BATCH) {
                storage.delete_multiple(batch.to_vec()).await?;
            }
            if listed < SWEEP_PAGE {
                // Done: the next sweep starts from the beginning.
                storage.delete(SWEEP_CURSOR_KEY).await?;
                self.sweep_scheduled.set(false);
                if expiring {
                    self.schedule_sweep().await?;
                }
                return Response::ok("");
            }
        }
        if let Some(after) = &after {
            storage.put_raw(SWEEP_CURSOR_KEY, after.as_str()).await?;
        }
        storage
            .set_alarm(std::time::Duration::from_millis(SWEEP_PAUSE_MS))
            .await?;
        self.sweep_scheduled.set(true);
        Response::ok("")
    }
}

impl RevocationIndex {
    /// Every (room entry, value) this shard holds for a key id, expired or not.
    async fn entries_of_key(&self, id: &str) -> Result<Vec<(String, f64)>> {
        let prefix = entry_prefix(id);
        let listed = self
            .state
            .storage()
            .list_with_options(worker::ListOptions::new().prefix(&prefix))
            .await?;
        Ok(entries_of(&listed)
            .filter_map(|(k, value)| Some((k.strip_prefix(&prefix)?.to_owned(), value)))
            .collect())
    }

    /// The live room entries this shard lists for a key id.
    async fn rooms_of(&self, id: &str) -> Result<Vec<String>> {
        let now = util::now_ms();
        Ok(self
            .entries_of_key(id)
            .await?
            .into_iter()
            .filter(|(_, value)| entry_live(*value, now))
            .map(|(room, _)| room)
            .collect())
    }

    /// A key's entries on every shard: this one's, and the others' asked in parallel.
    async fn find(&self, find: &Find) -> Result<Vec<String>> {
        let others = (0..find.shards)
            .filter(|&s| s != find.shard)
            .map(|shard| async move {
                let mut response = call(&self.env, shard, "/rooms", find.id.clone()).await?;
                let rooms: Vec<String> = util::json_answer(&mut response).await?;
                Ok((shard, rooms))
            });
        let (own, others) = futures_util::future::join(
            self.rooms_of(&find.id),
            futures_util::future::join_all(others),
        )
        .await;
        let mut found = Vec::new();
        for listed in std::iter::once(own.map(|rooms| (find.shard, rooms))).chain(others) {
            let (shard, rooms) = listed?;
            found.extend(rooms.into_iter().map(|room| format!("{shard} {room}")));
        }
        Ok(found)
    }

    /// Makes sure a sweep is scheduled (once per object: the alarm persists).
    async fn schedule_sweep(&self) -> Result<()> {
        if self.sweep_scheduled.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            let every = std::time::Duration::from_millis(SWEEP_EVERY_MS as u64);
            storage.set_alarm(every).await?;
        }
        self.sweep_scheduled.set(true);
        Ok(())
    }
}

/// (storage key, number) of a listing's entries; a value that is not a number counts as an
/// entry without expiry.
fn entries_of(listed: &js_sys::Map) -> impl Iterator<Item = (String, f64)> + '_ {
    listed.entries().into_iter().filter_map(|entry| {
        let pair: js_sys::Array = entry.ok()?.into();
        let key = pair.get(0).as_string()?;
        Some((key, pair.get(1).as_f64().unwrap_or(NO_EXPIRY)))
    })
}

/// The index entry of a room of a namespace.
pub fn room_entry(binding: &str, room: &str) -> String {
    format!("{binding}/{room}")
}

/// The namespace binding and room name of an index entry.
pub fn parse_room_entry(entry: &str) -> Option<(&str, &str)> {
    entry.split_once('/')
}

/// One request to a shard; an answer other than 2xx is an error, so that no caller takes a
/// failed shard's answer for an empty one.
async fn call(env: &Env, shard: u32, path: &str, body: String) -> Result<Response> {
    let req = util::post(&format!("https://index{path}"), Some(&body), &[])?;
    let response = env::index(env)?
        .id_from_name(&format!("shard:{shard}"))?
        .get_stub()?
        .fetch_with_request(req)
        .await?;
    match response.status_code() {
        200..=299 => Ok(response),
        status => Err(util::error(format!(
            "index {path} on shard {shard}: status {status}"
        ))),
    }
}

/// Adds the (key, room) entries of `keys` for one room entry, to expire at `until` (Unix ms;
/// none: never): one request, to the room's shard.
pub async fn add(
    env: &Env,
    shards: u32,
    room: &str,
    keys: &[String],
    until: Option<i64>,
) -> Result<()> {
    let ids = keys
        .iter()
        .map(|key| crate::revocation::key_id(key))
        .collect();
    let body = serde_json::to_string(&Entries {
        rooms: vec![room.to_owned()],
        ids,
        until,
    })
    .map_err(util::error)?;
    call(env, room_shard(room, shards), "/add", body).await?;
    Ok(())
}

/// Every (shard, room entry) that lists a located revocation key: one request, to the key's
/// home shard, which asks the others.
pub async fn rooms(env: &Env, shards: u32, key: &Located) -> Result<Vec<(u32, String)>> {
    let find = Find {
        id: key.id.clone(),
        shards: shards.max(1),
        shard: key.shard,
    };
    let mut response = call(env, key.shard, "/find", find.encode()).await?;
    let found: Vec<String> = util::json_answer(&mut response).await?;
    found
        .iter()
        .map(|listed| {
            let (shard, room) = listed.split_once(' ')?;
            Some((shard.parse().ok()?, room.to_owned()))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| util::error("index /find: bad answer"))
}

/// The shards, once each, of (shard, room entry) pairs: who a clean-up asks.
pub fn shards_of(entries: &[(u32, String)]) -> Vec<u32> {
    let mut shards: Vec<u32> = entries.iter().map(|(shard, _)| *shard).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

/// Removes stale entries of one key (rooms that held none of its sockets): one request per
/// shard they were listed on, one after the other (rare: a revocation that met stale entries).
pub async fn forget(env: &Env, key_id: &str, stale: &[(u32, String)]) -> Result<()> {
    for shard in shards_of(stale) {
        let rooms = stale.iter().filter(|(s, _)| *s == shard);
        let body = serde_json::to_string(&Entries {
            rooms: rooms.map(|(_, room)| room.clone()).collect(),
            ids: vec![key_id.to_owned()],
            until: None,
        })
        .map_err(util::error)?;
        call(env, shard, "/remove", body).await?;
    }
    Ok(())
}
