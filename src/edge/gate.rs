//! The handshake: run the core decision on a request and forward admitted sockets to their
//! Room.

use std::borrow::Cow;

use crate::decision::{
    check_request, check_session, Admission, Denial, Handshake, Refusal, StoreError,
};
use crate::room::{Attachment, RequestFacts};
use serde_json::json;
use worker::{Env, Headers, KvStore, Request, Response, Result};

use super::util::{self, Settings};

/// Header that carries an admission from the Worker to the Room. Durable Objects are reachable
/// only through the binding, and the Worker strips every client-sent `x-sessiongate-*` header.
pub const ADMISSION_HEADER: &str = "x-sessiongate-admission";
const INTERNAL_HEADER_PREFIX: &str = "x-sessiongate-";

/// The room's view of an admission: the socket's attachment-to-be and how to refuse.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RoomAdmission {
    pub room: String,
    pub attachment: Attachment,
}

impl RoomAdmission {
    /// The header value: base64url of the JSON. Header values must be ASCII; the runtime warns
    /// about any other byte and prints the whole value, which holds the sid.
    pub fn encode(&self) -> std::result::Result<String, serde_json::Error> {
        use base64::Engine;
        let json = serde_json::to_vec(self)?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(value: &str) -> Option<RoomAdmission> {
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

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
        kv: env
            .kv("SESSIONS")
            .map_err(|e| format!("KV binding SESSIONS: {e}")),
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
    util::log_json(&json!({
        "sessiongate": "decision",
        "decision": "admit",
        "route": config.routes[admission.route].path.as_str(),
        "room": util::clip(&admission.room),
        "sid": util::sid_tag(&admission.sid),
    }));
    let attachment = attachment_for(&admission, settings, &handshake)?;
    // Client input is bounded already, so what overflows is the projected session: the config
    // exposes too much. 500, one short line, never an admit.
    if let Err(too_large) = attachment.check_size() {
        util::log_json(&json!({
            "sessiongate": "config",
            "room": util::clip(&admission.room),
            "error": too_large.to_string(),
            "session_bytes": attachment.session.to_string().len(),
            "sid": util::sid_tag(&admission.sid),
        }));
        return Response::error(
            "sessiongate: session projection too large (see the Worker's logs)",
            500,
        );
    }
    forward(req, env, admission.room, attachment).await
}

/// Logs a refusal (the failing rule or store error included, the sid only as its tag) and
/// answers it.
fn deny(denial: Denial, settings: &Settings) -> Result<Response> {
    if denial.refusal == Refusal::NoRoute {
        return Response::error("not found", 404);
    }
    let route = denial
        .route
        .map(|i| settings.config.routes[i].path.as_str());
    // The store's error may quote the key, which holds the sid: log only its tag.
    let detail = match (&denial.detail, &denial.sid) {
        (Some(d), Some(sid)) => Some(util::clip(&d.replace(sid.as_str(), "<sid>"))),
        (d, _) => d.as_deref().map(util::clip),
    };
    util::log_json(&json!({
        "sessiongate": "decision",
        "decision": "deny",
        "route": route,
        "status": denial.refusal.status(),
        "reason": denial.refusal.reason(),
        "check": denial.check().as_str(),
        "detail": detail,
        "sid": denial.sid.as_deref().map(util::sid_tag),
    }));
    util::refuse(denial.refusal, denial.deny_with)
}

fn attachment_for(
    admission: &Admission,
    settings: &Settings,
    handshake: &Handshake<'_>,
) -> Result<Attachment> {
    let config = &settings.config;
    let (header_names, uses_query) = config.request_subjects(admission.route);
    let headers = header_names
        .into_iter()
        .filter_map(|name| {
            handshake
                .headers
                .header(name)
                .map(|v| (name.to_owned(), v.into_owned()))
        })
        .collect();
    let session = &admission.projection;
    Ok(Attachment {
        id: format!("c{}", util::hex(&util::random_bytes::<6>()?)),
        session: session.clone(),
        sid: admission.sid.clone(),
        route: admission.route,
        params: admission.params.clone(),
        request: RequestFacts {
            query: if uses_query {
                handshake.query.to_owned()
            } else {
                String::new()
            },
            headers,
        },
        expires_at_ms: admission.expires_at_ms,
        revoke_keys: admission.revoke_keys.clone(),
        departed: false,
    })
}

async fn forward(
    req: Request,
    env: &Env,
    room: String,
    attachment: Attachment,
) -> Result<Response> {
    let stub = env
        .durable_object("ROOMS")?
        .id_from_name(&room)?
        .get_stub()?;
    let mut forwarded = req.clone_mut()?;
    let admission = RoomAdmission { room, attachment }
        .encode()
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
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
