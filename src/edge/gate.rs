//! The handshake: run the core decision on a request and forward admitted sockets to their
//! Room.

use std::borrow::Cow;

use crate::decision::{decide, Admission, Decision, Handshake, Refusal, SessionStore, StoreError};
use crate::room::{Attachment, RequestFacts};
use serde_json::json;
use worker::{Env, Headers, KvStore, Request, Response, Result};

use super::util::{self, Settings};

/// Header that carries an admission from the Worker to the Room. Durable Objects are reachable
/// only through the binding, and the Worker overwrites any client-sent copy.
pub const ADMISSION_HEADER: &str = "x-sessiongate-admission";

/// The room's view of an admission: the socket's attachment-to-be and how to refuse.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RoomAdmission {
    pub room: String,
    pub attachment: Attachment,
}

struct WorkerHeaders<'a>(&'a Headers);

impl crate::rules::HeaderLookup for WorkerHeaders<'_> {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        self.0.get(lower_case_name).ok().flatten().map(Cow::Owned)
    }
}

/// Sessions in Workers KV.
pub struct KvSessions {
    pub kv: KvStore,
    pub cache_ttl: Option<u32>,
}

impl SessionStore for KvSessions {
    async fn load(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        let mut get = self.kv.get(key);
        if let Some(ttl) = self.cache_ttl {
            get = get.cache_ttl(u64::from(ttl));
        }
        get.text().await.map_err(|e| StoreError(e.to_string()))
    }
}

pub fn sessions(env: &Env, settings: &Settings) -> Result<KvSessions> {
    Ok(KvSessions {
        kv: env.kv("SESSIONS")?,
        cache_ttl: settings.config.cache_ttl,
    })
}

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
    // A KV binding that cannot even be opened is the store failing: 503, never admit.
    let store = match sessions(env, settings) {
        Ok(store) => store,
        Err(e) => {
            util::log_json(
                &json!({"sessiongate": "decision", "decision": "deny", "status": 503, "reason": "session store unavailable", "detail": e.to_string()}),
            );
            return util::refuse(Refusal::StoreUnavailable, config.deny_with);
        }
    };
    let decision = decide(
        &handshake,
        &store,
        &settings.secrets,
        config,
        util::now_ms(),
        &mut (),
    )
    .await;
    match decision {
        Decision::Deny(denial) if denial.refusal == Refusal::NoRoute => {
            Response::error("not found", 404)
        }
        Decision::Deny(denial) => {
            let route = denial.route.map(|i| config.routes[i].path.as_str());
            // The store's error may quote the key, which holds the sid: log only its tag.
            let detail = match (&denial.detail, &denial.sid) {
                (Some(d), Some(sid)) => Some(d.replace(sid.as_str(), "<sid>")),
                (d, _) => d.clone(),
            };
            util::log_json(&json!({
                "sessiongate": "decision",
                "decision": "deny",
                "route": route,
                "status": denial.refusal.status(),
                "reason": denial.refusal.reason(),
                "check": denial.check.as_str(),
                "detail": detail,
                "sid": denial.sid.as_deref().map(util::sid_tag),
            }));
            util::refuse(denial.refusal, denial.deny_with)
        }
        Decision::Admit(admission) => {
            util::log_json(&json!({
                "sessiongate": "decision",
                "decision": "admit",
                "route": config.routes[admission.route].path.as_str(),
                "room": admission.room,
                "sid": util::sid_tag(&admission.sid),
            }));
            let attachment = attachment_for(&admission, settings, &handshake)?;
            forward(req, env, admission.room, attachment).await
        }
    }
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
    let admission = serde_json::to_string(&RoomAdmission { room, attachment })
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    forwarded.headers_mut()?.set(ADMISSION_HEADER, &admission)?;
    stub.fetch_with_request(forwarded).await
}
