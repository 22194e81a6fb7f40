//! The handshake: run the core decision on a request and forward admitted sockets to their
//! Room.

use std::borrow::Cow;

use crate::decision::{check_request, check_session, Denial, Handshake, Refusal, StoreError};
use crate::engine::{connection_id, Attachment, RoomAdmission};
use crate::log::{self, Clipped, LogEvent, SidTag};
use worker::{Env, Headers, KvStore, Request, Response, Result};

use super::env;
use super::util::{self, Settings};

/// Header that carries an admission from the Worker to the Room. Durable Objects are reachable
/// only through the binding, and the Worker strips every client-sent `x-sessiongate-*` header.
pub const ADMISSION_HEADER: &str = "x-sessiongate-admission";
const INTERNAL_HEADER_PREFIX: &str = "x-sessiongate-";

struct WorkerHeaders<'a>(&'a Headers);

impl crate::rules::HeaderLookup for WorkerHeaders<'_> {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        // RFC 9110: a field value has no surrounding whitespace; the runtime strips only the
        // leading part.
        let value = self.0.get(lower_case_name).ok().flatten()?;
        let trimmed = value.trim_matches([' ', '\t']);
        Some(Cow::Owned(if trimmed.len() == value.len() {
            value
        } else {
            trimmed.to_owned()
        }))
    }
}

/// Sessions in Workers KV. A binding that cannot be opened is kept as its error and reported
/// by the first read, so a handshake meets it only after route, upgrade, bounds, origin,
/// cookie and signature have passed, and is answered with its route's `deny_with`.
pub struct KvSessions {
    pub kv: std::result::Result<KvStore, String>,
    pub cache_ttl: Option<u32>,
}

impl KvSessions {
    /// The stored session JSON at `key`, `None` if there is none, `Err` if KV could not answer.
    pub async fn load(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        let kv = self.kv.as_ref().map_err(|e| StoreError(e.clone()))?;
        let mut get = kv.get(key);
        if let Some(ttl) = self.cache_ttl {
            get = get.cache_ttl(u64::from(ttl));
        }
        get.text().await.map_err(|e| StoreError(e.to_string()))
    }
}

pub fn sessions(env: &Env, settings: &Settings) -> KvSessions {
    KvSessions {
        kv: env::sessions(env).map_err(|e| format!("KV binding {}: {e}", env::SESSIONS)),
        cache_ttl: settings.config.cache_ttl,
    }
}

/// One handshake, top to bottom: the request checks, the one KV read, the session checks,
/// then the hand-off to the Room. Every refusal is answered in [`deny`].
pub async fn handle(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let config = &settings.config;
    let url = req.url()?;
    let own_origin = url.origin().ascii_serialization();
    let method = req.method();
    let headers = WorkerHeaders(req.headers());
    let handshake = Handshake {
        method: method.as_ref(),
        path: url.path(),
        query: url.query().unwrap_or(""),
        headers: &headers,
        own_origin: &own_origin,
    };
    let checked = match check_request(&handshake, &settings.secrets, config) {
        Ok(checked) => checked,
        Err(denial) => return deny(denial, settings),
    };
    let stored = sessions(env, settings).load(&checked.key(config)).await;
    let stored = stored.as_ref().map(Option::as_deref).map_err(Clone::clone);
    let admission = match check_session(&checked, stored, config, util::now_ms()) {
        Ok(admission) => admission,
        Err(denial) => return deny(denial, settings),
    };
    util::log(&LogEvent::Decision(log::Decision::Admit {
        route: config.routes[admission.route].path.as_str(),
        room: Clipped::of(&admission.room),
        sid: SidTag::of(&admission.sid),
    }));
    let id = connection_id(util::random_bytes()?);
    let attachment =
        Attachment::for_admission(id, &admission, config, handshake.headers, handshake.query);
    // Client input is bounded already, so what overflows is the projected session: the config
    // exposes too much. 500, one short line, never an admit.
    if let Err(too_large) = attachment.check_size() {
        return too_large_session(&admission.room, &attachment, &too_large);
    }
    let admission = RoomAdmission {
        room: admission.room,
        attachment,
    };
    forward(req, env, admission).await
}

/// Logs a refusal (the failing rule or store error included, the sid only as its tag) and
/// answers it.
fn deny(denial: Denial, settings: &Settings) -> Result<Response> {
    if denial.refusal == Refusal::NoRoute {
        return Response::error("not found", 404);
    }
    let sid = denial.sid.as_deref();
    util::log(&LogEvent::Decision(log::Decision::Deny {
        route: denial
            .route
            .map(|i| settings.config.routes[i].path.as_str()),
        room: None,
        status: denial.refusal.status(),
        reason: denial.refusal.reason(),
        check: denial.check().as_str(),
        // The store's error may quote the key, which holds the sid.
        detail: denial
            .detail
            .as_deref()
            .map(|d| Clipped::without_sid(d, sid.unwrap_or(""))),
        sid: sid.map(SidTag::of),
    }));
    util::refuse(denial.refusal, denial.deny_with)
}

/// The answer (and the log line) when a socket's attachment would not fit: the config exposes
/// too much of the session. Checked by the gate, and again by the room.
pub fn too_large_session(
    room: &str,
    attachment: &Attachment,
    too_large: &crate::engine::AttachmentTooLarge,
) -> Result<Response> {
    util::log(&LogEvent::Config {
        room: Clipped::of(room),
        error: too_large.to_string(),
        session_bytes: attachment.session.to_string().len(),
        sid: SidTag::of(&attachment.sid),
    });
    Response::error(
        "sessiongate: session projection too large (see the Worker's logs)",
        500,
    )
}

async fn forward(req: Request, env: &Env, admission: RoomAdmission) -> Result<Response> {
    let stub = env::rooms(env)?.id_from_name(&admission.room)?.get_stub()?;
    let mut forwarded = req.clone_mut()?;
    let admission = admission.encode().map_err(util::error)?;
    let headers = forwarded.headers_mut()?;
    // The Room trusts only what the gate sets: drop every client-sent internal header, and
    // the cookie, which the Room never needs (it holds the sid in the clear).
    let internal: Vec<String> = headers
        .keys()
        .filter(|name| name.starts_with(INTERNAL_HEADER_PREFIX))
        .collect();
    for name in internal {
        headers.delete(&name)?;
    }
    headers.delete("cookie")?;
    headers.set(ADMISSION_HEADER, &admission)?;
    stub.fetch_with_request(forwarded).await
}
