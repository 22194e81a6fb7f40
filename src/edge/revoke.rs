//! `POST /_sessiongate/revoke`: close every socket of a session, or of a user, in every room,
//! now. Authorized by the `ADMIN_TOKEN` Worker secret; without it the endpoint does not exist.

use crate::config::Config;
use crate::engine::RevokeTarget;
use crate::log::{Clipped, LogEvent, Revoke};
use crate::revocation::{locate, target_key, FieldMatch, RevokeRequest};
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response, Result};

use super::env;
use super::room::REVOKE_PATH;
use super::util::{self, json_response, Settings};

pub const PATH: &str = "/_sessiongate/revoke";
/// Where an app's room takes the gate's control requests (docs/ADMISSION.md section 2).
const CONTROL_PATH: &str = "/_sessiongate/control";
const CONTROL_HEADER: &str = "x-sessiongate-control";

pub async fn handle(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let Some(token) = env::token(env, env::ADMIN_TOKEN) else {
        return Response::error("not found", 404);
    };
    if req.method() != Method::Post {
        return util::error_json("use POST", 405);
    }
    if !util::has_bearer(&req, &token)? {
        util::log(&LogEvent::Revoke(Revoke::Error {
            error: Clipped::of("bad or missing token"),
        }));
        return util::unauthorized();
    }
    let body = util::json_body(&mut req).await.ok();
    let Some(body) = body.and_then(RevokeRequest::from_value) else {
        return bad_request();
    };
    let target = match (body.sid, body.session) {
        (Some(sid), None) if !sid.is_empty() => RevokeTarget::Sid(sid),
        (None, Some(FieldMatch { field, equals })) if !field.is_empty() => {
            if !settings.config.revoke_by.contains(&field) {
                return json_response(
                    &json!({"error": format!("field {field:?} is not in revoke_by: only revoke_by fields are indexed (add it there)")}),
                    400,
                );
            }
            RevokeTarget::Field { field, equals }
        }
        _ => return bad_request(),
    };
    let outcome = match revoke(env, &settings.config, &target).await {
        Ok(outcome) => outcome,
        // The index could not list the key's rooms (a shard did not answer): no room was
        // asked, so nothing was closed. A clear answer the caller can retry on, not a thrown
        // error (the runtime's bare 500).
        Err(e) => {
            util::log(&LogEvent::Revoke(Revoke::Error {
                error: Clipped::of(&format!("index: {e}")),
            }));
            return util::error_json(
                "the revocation index did not answer: nothing was closed, try again",
                503,
            );
        }
    };
    let mut deleted = 0;
    if body.delete_session {
        let kv = env::sessions(env).map_err(util::error)?;
        let mut sids = outcome.sids.clone();
        if let RevokeTarget::Sid(sid) = &target {
            if !sids.contains(sid) {
                sids.push(sid.clone());
            }
        }
        for sid in &sids {
            if kv.delete(&settings.config.session_key(sid)).await.is_err() {
                // The sockets are closed; the sessions are not all deleted. A retry closes
                // nothing more and deletes again. (The store's error may name the key: not
                // logged.)
                util::log(&LogEvent::Revoke(Revoke::Error {
                    error: Clipped::of("session store: a delete failed"),
                }));
                return json_response(
                    &json!({
                        "error": "the sockets were closed but the session store did not delete every session: try again",
                        "closed": outcome.closed,
                        "deleted": deleted,
                    }),
                    503,
                );
            }
            deleted += 1;
        }
    }
    util::log(&LogEvent::Revoke(Revoke::Done {
        closed: outcome.closed,
        rooms: outcome.rooms,
        failed: outcome.failed,
        deleted,
    }));
    json_response(
        &json!({
            "closed": outcome.closed,
            "rooms": outcome.rooms,
            "shards": outcome.shards,
            "requests": outcome.requests,
            "failed": outcome.failed,
            "deleted": deleted,
        }),
        200,
    )
}

fn bad_request() -> Result<Response> {
    util::error_json("body must be {\"sid\": \"...\"} or {\"session\": {\"field\": \"passport.user\", \"equals\": ...}}, optionally with \"delete_session\": true", 400)
}

pub struct Outcome {
    pub closed: u64,
    /// Rooms the index listed for the key (each was asked).
    pub rooms: usize,
    /// Index shards asked (all: one by the revoker, the others by the key's home shard).
    pub shards: usize,
    /// Durable Object requests made in all: shards, rooms, and the clean-up of stale entries
    /// (one per shard that listed them).
    pub requests: usize,
    /// Rooms that did not answer: their sockets may still be open.
    pub failed: usize,
    pub sids: Vec<String>,
}

/// Finds the key's rooms in the index (every shard, through the key's home shard) and asks
/// only those, in parallel, to close the matching sockets. A listed room that held none of
/// them is a stale entry (the key's sockets left it before the entry expired, or an app's
/// room that does not renew its entries, which then do not expire): it cost this one request
/// and is removed. An error means
/// the index did not list the rooms, and no room was asked; a room that did not answer is
/// counted in `failed` instead.
pub async fn revoke(env: &Env, config: &Config, target: &RevokeTarget) -> Result<Outcome> {
    let key = locate(&target_key(target), config.index_shards);
    let found = super::index::rooms(env, config.index_shards, &key).await?;
    // A room is asked once even if two shards list it (entries placed by key by earlier
    // builds, beside the room's own shard); a stale one is removed from each.
    let mut rooms: Vec<String> = found.iter().map(|(_, entry)| entry.clone()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let body = serde_json::to_string(target).map_err(util::error)?;
    let admission_key = env::token(env, env::ADMISSION_KEY);
    let calls = rooms.iter().map(|entry| {
        let body = &body;
        let key = &key;
        let admission_key = admission_key.as_deref();
        async move {
            let (binding, room) = super::index::parse_room_entry(entry)
                .ok_or_else(|| util::error("bad index entry"))?;
            let req = if binding == env::ROOMS {
                util::post(&format!("https://room{REVOKE_PATH}"), Some(body), &[])?
            } else {
                // An app's own room: the signed control of docs/ADMISSION.md.
                let secret =
                    admission_key.ok_or_else(|| util::error("ADMISSION_KEY is not set"))?;
                let control = crate::admission::revoke_control(
                    secret,
                    &key.id,
                    util::now_ms(),
                    &util::random_bytes::<16>()?,
                );
                util::post(
                    &format!("https://sessiongate.internal{CONTROL_PATH}"),
                    None,
                    &[
                        (CONTROL_HEADER, &control.value),
                        (super::gate::SIGNATURE_HEADER, &control.signature),
                    ],
                )?
            };
            let mut response = env
                .durable_object(binding)?
                .id_from_name(room)?
                .get_stub()?
                .fetch_with_request(req)
                .await?;
            if response.status_code() != 200 {
                return Err(util::error(format!(
                    "room answered {}",
                    response.status_code()
                )));
            }
            util::json_answer(&mut response).await
        }
    });
    let mut outcome = Outcome {
        closed: 0,
        rooms: rooms.len(),
        shards: config.index_shards as usize,
        requests: config.index_shards as usize + rooms.len(),
        failed: 0,
        sids: Vec::new(),
    };
    let mut stale = Vec::new();
    for (entry, result) in rooms
        .iter()
        .zip(futures_util::future::join_all(calls).await)
    {
        match result {
            Ok(answer) => {
                let closed = answer["closed"].as_u64().unwrap_or(0);
                if closed == 0 {
                    let listed = found.iter().filter(|(_, e)| e == entry);
                    stale.extend(listed.cloned());
                }
                outcome.closed += closed;
                for sid in answer["sids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !outcome.sids.iter().any(|s| s == sid) {
                        outcome.sids.push(sid.to_owned());
                    }
                }
            }
            Err(e) => {
                outcome.failed += 1;
                util::log(&LogEvent::Revoke(Revoke::Error {
                    error: Clipped::of(&e.to_string()),
                }));
            }
        }
    }
    if !stale.is_empty() {
        outcome.requests += super::index::shards_of(&stale).len();
        if let Err(e) = super::index::forget(env, &key.id, &stale).await {
            util::log(&LogEvent::Revoke(Revoke::Error {
                error: Clipped::of(&format!("index clean-up: {e}")),
            }));
        }
    }
    Ok(outcome)
}
