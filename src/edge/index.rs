//! The revocation index: `index_shards` Durable Objects (`RevocationIndex`, named `shard:<n>`),
//! each holding, for the revocation keys that hash to it, the rooms with a socket of that key.
//! See `crate::revocation` for the keys, the sharding and a room's bookkeeping.
//!
//! A shard stores one entry per (key id, room): `k:<key id>:<room entry>`, so adding and
//! removing are single writes and a key's rooms are one prefix listing. A room entry is
//! `<namespace binding>/<room name>` (`ROOMS/room:lobby`), so a revocation knows which
//! namespace to ask. Key ids are one-way hashes: no sid is stored here.

use std::collections::BTreeMap;

use crate::revocation::{entry_prefix, entry_storage_key, locate, Located};
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage,
};

use super::env;
use super::util;

/// DO storage writes at most 128 keys at once.
const STORAGE_BATCH: usize = 128;

#[derive(Serialize, Deserialize)]
struct Entries {
    /// Room entries (`<binding>/<room>`).
    rooms: Vec<String>,
    /// Key ids.
    ids: Vec<String>,
}

#[durable_object]
pub struct RevocationIndex {
    state: State,
}

impl DurableObject for RevocationIndex {
    fn new(state: State, _env: Env) -> Self {
        RevocationIndex { state }
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
                for batch in keys.chunks(STORAGE_BATCH) {
                    if req.path() == "/add" {
                        util::put_numbers(&storage, batch.iter().map(|k| (k.as_str(), 1.0)))
                            .await?;
                    } else {
                        storage.delete_multiple(batch.to_vec()).await?;
                    }
                }
                Response::empty()
            }
            (Method::Post, "/rooms") => {
                let id = req.text().await?;
                let prefix = entry_prefix(&id);
                let listed = storage
                    .list_with_options(worker::ListOptions::new().prefix(&prefix))
                    .await?;
                let rooms: Vec<String> = listed
                    .keys()
                    .into_iter()
                    .filter_map(|k| k.ok()?.as_string())
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
                    .collect();
                Response::from_json(&rooms)
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

    async fn alarm(&self) -> Result<Response> {
        Response::ok("")
    }
}

/// The index entry of a room of a namespace.
pub fn room_entry(binding: &str, room: &str) -> String {
    format!("{binding}/{room}")
}

/// The namespace binding and room name of an index entry.
pub fn parse_room_entry(entry: &str) -> Option<(&str, &str)> {
    entry.split_once('/')
}

async fn call(env: &Env, shard: u32, path: &str, body: String) -> Result<Response> {
    let req = util::post(&format!("https://index{path}"), Some(&body), &[])?;
    env::index(env)?
        .id_from_name(&format!("shard:{shard}"))?
        .get_stub()?
        .fetch_with_request(req)
        .await
}

/// Adds (`add`) or removes the (key, room) entries of `keys` for one room entry: one request
/// per shard the keys fall on. Returns how many requests it made.
pub async fn update(
    env: &Env,
    shards: u32,
    room: &str,
    keys: &[String],
    add: bool,
) -> Result<usize> {
    let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for key in keys {
        let Located { id, shard } = locate(key, shards);
        by_shard.entry(shard).or_default().push(id);
    }
    let path = if add { "/add" } else { "/remove" };
    let calls = by_shard.into_iter().map(|(shard, ids)| {
        let body = serde_json::to_string(&Entries {
            rooms: vec![room.to_owned()],
            ids,
        })
        .unwrap_or_default();
        call(env, shard, path, body)
    });
    let results = futures_util::future::join_all(calls).await;
    let requests = results.len();
    for result in results {
        let response = result?;
        if response.status_code() != 200 && response.status_code() != 204 {
            return Err(util::error(format!(
                "index {path}: status {}",
                response.status_code()
            )));
        }
    }
    Ok(requests)
}

/// The room entries listed for a located revocation key.
pub async fn rooms(env: &Env, key: &Located) -> Result<Vec<String>> {
    let mut response = call(env, key.shard, "/rooms", key.id.clone()).await?;
    util::json_answer(&mut response).await
}

/// Removes stale entries of one key (rooms that held none of its sockets): one request.
pub async fn forget(env: &Env, key: &Located, rooms: Vec<String>) -> Result<()> {
    let body = serde_json::to_string(&Entries {
        rooms,
        ids: vec![key.id.clone()],
    })
    .map_err(util::error)?;
    call(env, key.shard, "/remove", body).await.map(|_| ())
}
