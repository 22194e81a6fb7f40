//! The revocation index's clients: `index_shards` Durable Objects (`RevocationIndex`, named
//! `shard:<n>`), each holding, for the rooms that hash to it, which revocation keys have a
//! socket there. See `crate::revocation` for the keys, the placement and a room's bookkeeping.
//! The shards are JavaScript (`revocation_index.js`, which has the requests' formats): they
//! store and list, and need nothing of the wasm.
//!
//! A room's registration is one call of its shard's `add` method (RPC: `/add`'s body, without a
//! request around it; the shards' class extends the runtime's `DurableObject` for it, in
//! `scripts/lean-shim.mjs`). A revocation asks the key's home shard (`/find`), which lists its
//! own entries of the key and asks every other shard (`/rooms`) in parallel: the revoker's
//! invocation makes one subrequest for the whole index, the home shard's makes `shards - 1`
//! (the free plan allows 50 a request: keep `index_shards` at 50 or below there).
//!
//! What a shard stores, how entries expire and the sweep are `revocation_index.js`'s. A room
//! entry is `<namespace binding>/<room name>` (`ROOMS/room:lobby`), so a revocation knows which
//! namespace to ask.

use crate::revocation::{room_shard, Located};
use serde::Serialize;
use worker::js_sys::Promise;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Env, Request, Response, Result};

use super::env;
use super::util;

/// `/add` and `/remove`'s body.
#[derive(Serialize)]
struct Entries {
    /// Room entries (`<binding>/<room>`).
    rooms: Vec<String>,
    /// Key ids.
    ids: Vec<String>,
    /// When added entries expire (Unix ms); none: they do not.
    #[serde(skip_serializing_if = "Option::is_none")]
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
}

/// The index entry of a room of a namespace.
pub fn room_entry(binding: &str, room: &str) -> String {
    format!("{binding}/{room}")
}

/// The namespace binding and room name of an index entry.
pub fn parse_room_entry(entry: &str) -> Option<(&str, &str)> {
    entry.split_once('/')
}

/// A request to a shard: its stub and the request, for the caller to send.
fn request(env: &Env, shard: u32, path: &str, body: &str) -> Result<(worker::Stub, Request)> {
    let req = util::post(&format!("https://index{path}"), Some(body), &[])?;
    Ok((shard_stub(env, shard)?, req))
}

/// The stub of shard `shard` (the object named `shard:<n>`).
fn shard_stub(env: &Env, shard: u32) -> Result<worker::Stub> {
    env::index(env)?
        .id_from_name(&format!("shard:{shard}"))?
        .get_stub()
}

/// One request to a shard; an answer other than 2xx is an error, so that no caller takes a
/// failed shard's answer for an empty one.
async fn call(env: &Env, shard: u32, path: &str, body: String) -> Result<Response> {
    let (stub, req) = request(env, shard, path, &body)?;
    let response = stub.fetch_with_request(req).await?;
    match response.status_code() {
        200..=299 => Ok(response),
        status => Err(util::error(format!(
            "index {path} on shard {shard}: status {status}"
        ))),
    }
}

#[wasm_bindgen]
extern "C" {
    /// A shard's stub, as the runtime hands it over: its methods are calls on the shard (RPC).
    type ShardStub;
    /// `RevocationIndex.add`: `/add`'s body, without a request and a response around it. The
    /// runtime answers with its own thenable, not a `Promise`; `JsFuture` awaits it through
    /// its `then`, all it calls.
    #[wasm_bindgen(method, catch, js_name = add)]
    fn add_entries(this: &ShardStub, body: &str) -> std::result::Result<Promise, JsValue>;
}

/// The stub of the shard an `add` of the entries of `keys` for one room entry goes to (the
/// room's), and its body: `until` is when they expire (Unix ms; none: never).
///
/// A method call rather than a `/add` request (the revocation's rarer ones stay requests): no
/// Request or Response to make, send and read on either side of the index's most frequent
/// call, which a new session's handshake waits for.
pub fn add_call(
    env: &Env,
    shards: u32,
    room: &str,
    keys: &[String],
    until: Option<i64>,
) -> Result<(JsValue, String)> {
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
    let stub = shard_stub(env, room_shard(room, shards))?;
    Ok((stub.into_rpc(), body))
}

/// Adds the entries of `keys` for one room entry (see [`add_call`]): one call, to the room's
/// shard.
pub async fn add(
    env: &Env,
    shards: u32,
    room: &str,
    keys: &[String],
    until: Option<i64>,
) -> Result<()> {
    let (stub, body) = add_call(env, shards, room, keys, until)?;
    let added = stub.unchecked_into::<ShardStub>().add_entries(&body)?;
    JsFuture::from(added).await?;
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
    let found = crate::json_read::strings(util::json_answer(&mut response).await?)
        .ok_or_else(|| util::error("index /find: bad answer"))?;
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
