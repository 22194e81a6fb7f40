//! `POST /_sessiongate/revalidate`: an app's room asks, through a service binding, whether its
//! sockets' sessions still hold (docs/ADMISSION.md section 3). The same check the built-in
//! Room runs every `revalidate_seconds`: each distinct session read once, then expiry and the
//! route's rules again. Signed both ways with `ADMISSION_KEY`; without it the endpoint does
//! not exist.

use crate::admission::{mac, revalidation_tickets, Ticket, REVALIDATED_LABEL};
use crate::decision::recheck;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response, Result};

use super::env;
use super::gate::{load_each, sessions, SIGNATURE_HEADER};
use super::util::{self, Settings};

pub const PATH: &str = "/_sessiongate/revalidate";

pub async fn handle(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let Some(key) = env::token(env, env::ADMISSION_KEY) else {
        return util::error_json("not found", 404);
    };
    if req.method() != Method::Post {
        return util::error_json("use POST", 405);
    }
    let signature = req.headers().get(SIGNATURE_HEADER)?.unwrap_or_default();
    let body = req.text().await.unwrap_or_default();
    let Some(tickets) = revalidation_tickets(&key, &body, &signature) else {
        return util::error_json("unsigned or malformed revalidation", 401);
    };
    let sockets: Vec<Option<Ticket>> = tickets.iter().map(|t| Ticket::decode(t)).collect();
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
            match recheck(config, &ticket.as_attachment(), Ok(value), now) {
                Ok(()) => json!({"ok": true}),
                Err((refusal, _)) => json!({
                    "ok": false,
                    "code": refusal.close_code(),
                    "reason": refusal.reason(),
                }),
            }
        })
        .collect();
    let answer = json!({"v": 1, "results": results}).to_string();
    let mut response = Response::ok(answer.clone())?;
    let headers = response.headers_mut();
    headers.set("content-type", "application/json")?;
    headers.set(SIGNATURE_HEADER, &mac(&key, REVALIDATED_LABEL, &answer))?;
    Ok(response)
}
