//! `/_sessiongate/sessions/:sid`: the Express app's session store writes through the gate.
//!
//! `PUT` stores `JSON.stringify(session)` at `key_prefix + sid` with a TTL from
//! `cookie.expires`; `GET` reads it back; `DELETE` deletes it and closes every socket of the
//! session in every room at once (a logout reaches the edge as a push). Authorized by the
//! `STORE_TOKEN` Worker secret; without it the endpoints do not exist (404).

use crate::engine::RevokeTarget;
use crate::log::{Clipped, LogEvent, SidTag, Store};
use crate::store_api::{check_put, check_sid, StoreRequestError, MAX_BODY_BYTES, PATH_PREFIX};
use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::env;
use super::util::{self, json_response, Settings};

/// Answer header on a `GET` that found no session, so that a client can tell "no session"
/// from "no such endpoint" (both 404).
const ABSENT_HEADER: &str = "x-sessiongate-session";

pub async fn handle(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let Some(token) = env::token(env, env::STORE_TOKEN) else {
        return util::error_json("not found", 404);
    };
    if !util::has_bearer(&req, &token)? {
        util::log(&LogEvent::Store(Store::Error {
            error: "bad or missing token",
        }));
        return util::unauthorized();
    }
    let path = req.path();
    let sid = path.strip_prefix(PATH_PREFIX).unwrap_or("").to_owned();
    if let Err(e) = check_sid(&sid) {
        return refuse(&e);
    }
    let config = &settings.config;
    let key = config.session_key(&sid);
    let kv = match env::sessions(env) {
        Ok(kv) => kv,
        Err(e) => return unavailable("open", &sid, &e),
    };
    match req.method() {
        Method::Put => {
            let declared = req
                .headers()
                .get("content-length")?
                .and_then(|n| n.parse::<usize>().ok());
            if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
                return refuse(&StoreRequestError::TooLarge);
            }
            let Ok(body) = req.text().await else {
                return refuse(&StoreRequestError::NotAnObject);
            };
            let put = match check_put(&body, util::now_ms(), config.store_max_ttl_seconds) {
                Ok(put) => put,
                Err(e) => return refuse(&e),
            };
            if let Err(e) = kv.put(&key, &body, put.ttl_seconds).await {
                return unavailable("put", &sid, &e);
            }
            log("put", &sid, 200, None);
            json_response(
                &json!({"stored": true, "ttl_seconds": put.ttl_seconds}),
                200,
            )
        }
        Method::Get => match kv.get(&key, None).await {
            Ok(Some(text)) => {
                let mut response = Response::ok(text)?;
                response
                    .headers_mut()
                    .set("content-type", "application/json")?;
                Ok(response)
            }
            Ok(None) => {
                let mut response = util::error_json("no such session", 404)?;
                response.headers_mut().set(ABSENT_HEADER, "absent")?;
                Ok(response)
            }
            Err(e) => unavailable("get", &sid, &e),
        },
        Method::Delete => {
            // The key first, so a socket that reconnects meanwhile is refused; then every open
            // socket of the session. A logout that could not close them all is not a success.
            if let Err(e) = kv.delete(&key).await {
                return unavailable("delete", &sid, &e);
            }
            let outcome = super::revoke::revoke(env, config, &RevokeTarget::Sid(sid.clone())).await;
            match outcome {
                Ok(outcome) if outcome.failed == 0 => {
                    log("delete", &sid, 200, Some((outcome.closed, outcome.rooms)));
                    json_response(
                        &json!({"deleted": true, "closed": outcome.closed, "rooms": outcome.rooms}),
                        200,
                    )
                }
                Ok(outcome) => unavailable(
                    "delete",
                    &sid,
                    &format!(
                        "{} of {} rooms did not answer",
                        outcome.failed, outcome.rooms
                    ),
                ),
                Err(e) => unavailable("delete", &sid, &e.to_string()),
            }
        }
        _ => {
            let mut response = util::error_json("use GET, PUT or DELETE", 405)?;
            response.headers_mut().set("Allow", "GET, PUT, DELETE")?;
            Ok(response)
        }
    }
}

fn refuse(e: &StoreRequestError) -> Result<Response> {
    json_response(&json!({"error": e.to_string()}), e.status())
}

/// An operation that succeeded; a delete says how many sockets it closed in how many rooms.
fn log(op: &'static str, sid: &str, status: u16, closed_in: Option<(u64, usize)>) {
    util::log(&LogEvent::Store(Store::Done {
        op,
        status,
        closed: closed_in.map(|(closed, _)| closed),
        rooms: closed_in.map(|(_, rooms)| rooms),
        detail: None,
        sid: SidTag::of(sid),
    }));
}

/// KV or the rooms failed: 503 with Retry-After, so the store retries; never a success.
fn unavailable(op: &'static str, sid: &str, detail: &str) -> Result<Response> {
    util::log(&LogEvent::Store(Store::Done {
        op,
        status: 503,
        closed: None,
        rooms: None,
        detail: Some(Clipped::without_sid(detail, sid)),
        sid: SidTag::of(sid),
    }));
    let mut response = util::error_json("session store unavailable", 503)?;
    response.headers_mut().set("Retry-After", "1")?;
    Ok(response)
}
