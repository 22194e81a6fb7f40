//! `POST /_sessiongate/revalidate`: an app's room asks, through a service binding, whether its
//! sockets' sessions still hold (docs/ADMISSION.md section 3). The same check the built-in
//! Room runs every `revalidate_seconds`: each distinct session read once, then expiry and the
//! route's rules again. Signed both ways with `ADMISSION_KEY`; without it the endpoint does
//! not exist. A room that says how often it asks (`every`) has the revocation index entries of
//! its sockets that still hold renewed here, about every five minutes (`revocation::renewal_due`).

use crate::admission::{mac, revalidation, Ticket, REVALIDATED_LABEL};
use crate::decision::readmit;
use crate::log::{Clipped, LogEvent};
use crate::revocation::{app_entry_until, renewal_due};
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response, Result};

use super::env;
use super::gate::{load_each, sessions, SIGNATURE_HEADER};
use super::index;
use super::util::{self, Settings};

pub const PATH: &str = "/_sessiongate/revalidate";

/// Rooms whose entries one revalidation renews at most: a room sends its own tickets, so one;
/// a few more for a room that answers for several, and a bound on the subrequests either way.
const MAX_RENEWED_ROOMS: usize = 8;

pub async fn handle(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let Some(key) = env::token(env, env::ADMISSION_KEY) else {
        return util::error_json("not found", 404);
    };
    if req.method() != Method::Post {
        return util::error_json("use POST", 405);
    }
    let signature = req.headers().get(SIGNATURE_HEADER)?.unwrap_or_default();
    let body = req.text().await.unwrap_or_default();
    let Some(asked) = revalidation(&key, &body, &signature) else {
        return util::error_json("unsigned or malformed revalidation", 401);
    };
    let sockets: Vec<Option<Ticket>> = asked.tickets.iter().map(|t| Ticket::decode(t)).collect();
    let config = &settings.config;
    let store = sessions(env, settings);
    let sids = sockets.iter().flatten().map(|t| t.sid.as_str());
    let stored = load_each(&store, config, sids).await;
    if stored.values().any(|r| r.is_err()) {
        // The store did not answer: the room keeps its sockets and asks again next interval.
        let mut response = util::error_json("session store unavailable", 503)?;
        response.headers_mut().set("Retry-After", "5")?;
        return Ok(response);
    }
    let now = util::now_ms();
    let renew = asked.every_ms.filter(|&every| renewal_due(now, every));
    // (room entry, revocation keys) of the sockets that still hold, when renewing.
    let mut renewals: Vec<(String, Vec<String>)> = Vec::new();
    let results: Vec<Value> = sockets
        .iter()
        .map(|ticket| {
            let Some(ticket) = ticket else {
                return json!({"ok": false, "code": 4401, "reason": "unreadable session"});
            };
            let found = stored
                .get(ticket.sid.as_str())
                .and_then(|r| r.as_ref().ok());
            let value = found.and_then(|v| v.as_deref());
            let socket = ticket.as_attachment();
            match readmit(config, &socket, Ok(value), now) {
                Ok(admission) => {
                    let target = config.routes[admission.route].target.as_deref();
                    if let (Some(binding), Some(_)) = (target, renew) {
                        let entry = index::room_entry(binding, &admission.room);
                        let keys = ticket.renewal_keys(&admission.revoke_keys);
                        match renewals.iter_mut().find(|(e, _)| *e == entry) {
                            Some((_, listed)) => listed.extend(keys),
                            None => renewals.push((entry, keys)),
                        }
                    }
                    json!({"ok": true})
                }
                Err((refusal, _)) => json!({
                    "ok": false,
                    "code": refusal.close_code(),
                    "reason": refusal.reason(),
                }),
            }
        })
        .collect();
    if let Some(every) = renew {
        renew_entries(env, settings, renewals, app_entry_until(now, every)).await;
    }
    let answer = json!({"v": 1, "results": results}).to_string();
    let mut response = Response::ok(answer.clone())?;
    let headers = response.headers_mut();
    headers.set("content-type", "application/json")?;
    headers.set(SIGNATURE_HEADER, &mac(&key, REVALIDATED_LABEL, &answer))?;
    Ok(response)
}

/// Writes the renewed entries, one index request per room (at most `MAX_RENEWED_ROOMS`; a room
/// sends its own tickets, so one). A failure is logged and does not change the answer: the
/// room's sockets still hold, and the entries live two intervals past the next renewal
/// (`app_entry_until`).
async fn renew_entries(
    env: &Env,
    settings: &Settings,
    mut renewals: Vec<(String, Vec<String>)>,
    until: i64,
) {
    if renewals.len() > MAX_RENEWED_ROOMS {
        util::log(&LogEvent::Room {
            room: None,
            error: Clipped::of(&format!(
                "revalidation named {} rooms: the index entries of the first {MAX_RENEWED_ROOMS} renewed",
                renewals.len()
            )),
        });
        renewals.truncate(MAX_RENEWED_ROOMS);
    }
    let shards = settings.config.index_shards;
    for (entry, mut keys) in renewals {
        keys.sort_unstable();
        keys.dedup();
        if let Err(e) = index::add(env, shards, &entry, &keys, Some(until)).await {
            util::log(&LogEvent::Room {
                room: Some(Clipped::of(&entry)),
                error: Clipped::of(&format!("index renewal: {e}")),
            });
        }
    }
}
