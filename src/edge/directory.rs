//! The directory of occupied rooms, for revocation.
//!
//! Revoking a session must reach every room where it has a socket. A room registers here when
//! its first socket arrives and leaves 30 s after its last one goes (an alarm), so the
//! directory costs a write per change of occupancy, not per handshake, and a room that
//! empties and fills again does not pay it at all. A revocation asks the directory for the
//! occupied rooms and asks each of them, in parallel, to close the matching sockets. A stale
//! entry (a room evicted without leaving) only costs one wasted request, after which the room
//! leaves again.

use crate::log::{Clipped, LogEvent};
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State,
};

use super::{env, util};

/// The one directory object's name.
const DIRECTORY_NAME: &str = "directory";
const ROOM_PREFIX: &str = "room:";

#[durable_object]
pub struct Directory {
    state: State,
}

impl DurableObject for Directory {
    fn new(state: State, _env: Env) -> Self {
        Directory { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/add") | (Method::Post, "/remove") => {
                let room = req.text().await?;
                let key = format!("{ROOM_PREFIX}{room}");
                if req.path() == "/add" {
                    storage.put(&key, 1).await?;
                } else {
                    storage.delete(&key).await?;
                }
                Response::empty()
            }
            (Method::Get, "/rooms") => {
                let listed = storage
                    .list_with_options(worker::ListOptions::new().prefix(ROOM_PREFIX))
                    .await?;
                let rooms: Vec<String> = listed
                    .keys()
                    .into_iter()
                    .filter_map(|k| k.ok()?.as_string())
                    .filter_map(|k| k.strip_prefix(ROOM_PREFIX).map(str::to_owned))
                    .collect();
                Response::from_json(&json!({ "rooms": rooms }))
            }
            _ => Response::error("not found", 404),
        }
    }
}

fn stub(env: &Env) -> Result<worker::Stub> {
    env::directory(env)?
        .id_from_name(DIRECTORY_NAME)?
        .get_stub()
}

/// Adds (`occupied`) or removes a room. Failures are logged, not fatal: revocation falls back
/// on revalidation for a room it cannot find.
pub async fn register(env: &Env, room: &str, occupied: bool) {
    let path = if occupied { "/add" } else { "/remove" };
    let result = async {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(room.into()));
        let req = Request::new_with_init(&format!("https://directory{path}"), &init)?;
        stub(env)?.fetch_with_request(req).await
    }
    .await;
    if let Err(e) = result {
        util::log(&LogEvent::Directory {
            error: Clipped::of(&e.to_string()),
        });
    }
}

/// The rooms that have sockets.
pub async fn rooms(env: &Env) -> Result<Vec<String>> {
    let mut response = stub(env)?.fetch_with_str("https://directory/rooms").await?;
    let body: serde_json::Value = response.json().await?;
    Ok(body["rooms"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}
