//! The handshake: every decision here, its I/O in the JavaScript entry (`entry.js`), which
//! calls [`handshake_key`] (the checks that need no store, and the session's key), reads the
//! key from KV, calls [`handshake_admit`] (the session's checks, and where the socket goes),
//! and forwards: to the built-in Room, or to an app's room, whose socket's keys it then lists
//! in the index ([`app_index_add`]). The Rust `fetch` (`mod.rs`) serves every other path.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::decision::{check_request, check_session, Denial, Handshake, Refusal, StoreError};
use crate::engine::{connection_id, Attachment, RoomAdmission};
use crate::log::{self, Clipped, LogEvent, SidTag};
use worker::js_sys;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::{web_sys, Env, Request, Response, Result};

use super::env;
use super::kv::KvNamespace;
use super::util::{self, Settings};

/// Header that carries an admission from the Worker to the Room. Durable Objects are reachable
/// only through the binding, and the Worker strips every client-sent `x-sessiongate-*` header.
pub const ADMISSION_HEADER: &str = "x-sessiongate-admission";
/// The signature of what the gate sends an app's room (docs/ADMISSION.md).
pub const SIGNATURE_HEADER: &str = "x-sessiongate-signature";
/// On an app room's 101: how often (whole seconds) the room revalidates its sockets through the
/// gate, so that their index entries may expire and be renewed (docs/ADMISSION.md).
const REVALIDATE_HEADER: &str = "x-sessiongate-revalidate";
const INTERNAL_HEADER_PREFIX: &str = "x-sessiongate-";

/// The runtime's headers as the checks read them, each read once: every header read is a call
/// into the runtime and a string copied into the wasm, and step 2 runs step 1's checks again.
struct WorkerHeaders {
    runtime: web_sys::Headers,
    /// Every header read so far, by lower-case name: its value (trimmed), or `None` if absent.
    read: RefCell<Vec<(String, Option<String>)>>,
}

impl WorkerHeaders {
    fn of(runtime: web_sys::Headers) -> WorkerHeaders {
        WorkerHeaders {
            runtime,
            read: RefCell::new(Vec::new()),
        }
    }

    /// The header as the runtime has it, trimmed. RFC 9110: a field value has no surrounding
    /// whitespace; the runtime strips only the leading part.
    fn runtime_value(&self, lower_case_name: &str) -> Option<String> {
        let value = self.runtime.get(lower_case_name).ok().flatten()?;
        let trimmed = value.trim_matches([' ', '\t']);
        Some(if trimmed.len() == value.len() {
            value
        } else {
            trimmed.to_owned()
        })
    }
}

impl crate::rules::HeaderLookup for WorkerHeaders {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        let known = self
            .read
            .borrow()
            .iter()
            .find(|(name, _)| name == lower_case_name)
            .map(|(_, value)| value.clone());
        let value = match known {
            Some(value) => value,
            None => {
                let value = self.runtime_value(lower_case_name);
                let entry = (lower_case_name.to_owned(), value.clone());
                self.read.borrow_mut().push(entry);
                value
            }
        };
        value.map(Cow::Owned)
    }
}

/// Sessions in Workers KV. A binding that cannot be opened is kept as its error and reported
/// by the first read, so a handshake meets it only after route, upgrade, bounds, origin,
/// cookie and signature have passed, and is answered with its route's `deny_with`.
pub struct KvSessions {
    kv: std::result::Result<KvNamespace, String>,
    cache_ttl: Option<u32>,
}

impl KvSessions {
    /// The stored session JSON at `key`, `None` if there is none, `Err` if KV could not answer.
    pub async fn load(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        let kv = self.kv.as_ref().map_err(|e| StoreError(e.clone()))?;
        kv.get(key, self.cache_ttl).await.map_err(StoreError)
    }

    /// The read of `key` for the JavaScript entry to make, with the request step 1 read
    /// (`then`, for step 2): `[namespace, key, options, then]`, or `[why, key, undefined,
    /// then]` (`why` a string) when the binding cannot be opened, which the entry hands back to
    /// step 2 as the read's failure.
    fn read_for_entry(
        &self,
        key: &str,
        then: HandshakeRequest,
    ) -> std::result::Result<JsValue, JsValue> {
        let (namespace, options) = match &self.kv {
            Ok(kv) => {
                let namespace: &JsValue = kv.as_ref();
                let options = KvNamespace::read_options(self.cache_ttl).map_err(JsValue::from)?;
                (namespace.clone(), options)
            }
            Err(why) => (JsValue::from(why), JsValue::UNDEFINED),
        };
        let read = js_sys::Array::of3(&namespace, &key.into(), &options);
        read.push(&then.into());
        Ok(read.into())
    }
}

/// Reads each of `sids` once, in parallel: revalidation (the built-in Room's, and apps' rooms'
/// through `/_sessiongate/revalidate`).
pub async fn load_each<'a>(
    store: &KvSessions,
    config: &crate::config::Config,
    sids: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashMap<&'a str, std::result::Result<Option<String>, StoreError>> {
    let mut sids: Vec<&str> = sids.into_iter().collect();
    sids.sort_unstable();
    sids.dedup();
    let reads = sids.into_iter().map(|sid| async move {
        let key = config.session_key(sid);
        (sid, store.load(&key).await)
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

pub fn sessions(env: &Env, settings: &Settings) -> KvSessions {
    KvSessions {
        kv: env::sessions(env),
        cache_ttl: settings.config.cache_ttl,
    }
}

/// The runtime's request as the core reads it: its URL and method read once, its headers as
/// the checks ask for them (each once).
struct RuntimeRequest {
    url: String,
    method: String,
    headers: WorkerHeaders,
}

/// The client's request as step 1 read it (a [`RuntimeRequest`]), handed to the entry with the
/// read to make and taken back by step 2 (which frees it): step 2 runs step 1's checks again on
/// what step 1 read, without asking the runtime for the URL, the method or any header again.
#[wasm_bindgen]
pub struct HandshakeRequest(RuntimeRequest);

impl RuntimeRequest {
    fn of(req: &web_sys::Request) -> RuntimeRequest {
        RuntimeRequest {
            url: req.url(),
            method: req.method(),
            headers: WorkerHeaders::of(req.headers()),
        }
    }

    fn handshake(&self) -> Handshake<'_> {
        let (own_origin, path, query) = crate::decision::split_url(&self.url);
        Handshake {
            method: &self.method,
            path,
            query,
            headers: &self.headers,
            own_origin,
        }
    }
}

/// An answer as the JavaScript entry returns it: the runtime's `Response`.
fn answered(answer: Result<Response>) -> std::result::Result<JsValue, JsValue> {
    Ok(web_sys::Response::from(answer?).into())
}

/// A refusal as the JavaScript entry returns it.
fn refused(denial: Denial, settings: &Settings) -> std::result::Result<JsValue, JsValue> {
    answered(deny(denial, settings))
}

/// Compiles the config while the isolate loads (`scripts/lean-shim.mjs` calls it from the
/// module's top level with the runtime's `env`), so that the first request does not: its code
/// is most of what V8 compiles for an isolate's first request (benches/vs_js.mjs), and the
/// platform loads an isolate while the client's TLS handshake is still under way. Only a
/// config that compiles is kept: anything else is left to the first request, which compiles,
/// logs and keeps it as if nothing had run before (an `env` the load time sees differently
/// must never decide for the requests).
#[wasm_bindgen(js_name = compileSettings)]
pub fn compile_settings(env: &Env) {
    util::compile_settings_ahead(env);
}

/// Step 1 of a handshake, for the JavaScript entry (`entry.js`): every check that needs no
/// store. Answers the KV read to make next (`KvSessions::read_for_entry`); a refusal (a
/// `Response`); or `undefined` for a request the Rust `fetch` serves: another handler's path,
/// or any request while the config does not compile (`fetch` answers it with the 500).
#[wasm_bindgen(js_name = handshakeKey)]
pub fn handshake_key(req: &web_sys::Request, env: &Env) -> std::result::Result<JsValue, JsValue> {
    let Ok(settings) = util::settings(env) else {
        return Ok(JsValue::UNDEFINED);
    };
    let request = RuntimeRequest::of(req);
    let handshake = request.handshake();
    if super::served_elsewhere(handshake.path) {
        return Ok(JsValue::UNDEFINED);
    }
    let key = match check_request(&handshake, &settings.secrets, &settings.config) {
        Ok(checked) => checked.key().to_owned(),
        Err(denial) => return refused(denial, &settings),
    };
    sessions(env, &settings).read_for_entry(&key, HandshakeRequest(request))
}

/// Step 2, once the entry read the key step 1 named: `request` is step 1's reading of the
/// client's request (`undefined` when the instance was reinitialized since: then the request
/// is read again), `stored` the value read (`undefined` when there is none), `failure` why the
/// read failed. Checks the request again, on what step 1 read of it, rather than take any
/// result of step 1 back through JavaScript (the checks that need no store cost a few
/// microseconds), then the session. Answers a refusal (a `Response`), `[stub, request]` for
/// the entry to hand to the built-in Room (`stub.fetch(request)`), or `[stub, request,
/// registration]` for an app's room ([`to_app`]).
#[wasm_bindgen(js_name = handshakeAdmit)]
pub fn handshake_admit(
    req: &web_sys::Request,
    env: &Env,
    request: Option<HandshakeRequest>,
    stored: Option<String>,
    failure: Option<String>,
) -> std::result::Result<JsValue, JsValue> {
    let settings = util::settings(env)?;
    let config = &settings.config;
    let request = match request {
        Some(HandshakeRequest(request)) => request,
        None => RuntimeRequest::of(req),
    };
    let handshake = request.handshake();
    let checked = match check_request(&handshake, &settings.secrets, config) {
        Ok(checked) => checked,
        Err(denial) => return refused(denial, &settings),
    };
    let stored = match failure {
        Some(failure) => Err(StoreError(failure)),
        None => Ok(stored.as_deref()),
    };
    let admission = match check_session(checked, stored, config, util::now_ms()) {
        Ok(admission) => admission,
        Err(denial) => return refused(denial, &settings),
    };
    if util::sample(config.log_admissions) {
        util::log(&LogEvent::Decision(log::Decision::Admit {
            route: config.routes[admission.route].path.as_str(),
            room: Clipped::of(&admission.room),
            sid: SidTag::of(admission.sid()),
        }));
    }
    let id = connection_id(util::random_bytes()?);
    let attachment =
        Attachment::for_admission(id, &admission, config, handshake.headers, handshake.query);
    // Client input is bounded already, so what overflows is the projected session: the config
    // exposes too much. 500, one short line, never an admit.
    let stored = match attachment.to_stored() {
        Ok(stored) => stored,
        Err(too_large) => {
            return answered(too_large_session(&admission.room, &attachment, &too_large))
        }
    };
    if let Some(binding) = &config.routes[admission.route].target {
        return to_app(req, env, &settings, binding, &admission.room, &attachment);
    }
    // The built-in Room reads nothing of the client's request but the upgrade, so it gets a
    // new one carrying only that and the admission: no client header can reach it.
    let stub = env::rooms(env)?.id_from_name(&admission.room)?.get_stub()?;
    let encoded = RoomAdmission::encode(&admission.room, &stored).map_err(util::error)?;
    let forwarded = util::request(
        "GET",
        "https://room/",
        None,
        &[("upgrade", "websocket"), (ADMISSION_HEADER, &encoded)],
    )?;
    Ok(js_sys::Array::of2(&stub.into_rpc::<JsValue>(), forwarded.inner()).into())
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

/// The client's upgrade as an app's room may see it: every client-sent internal header
/// removed, and the cookie, which no room needs.
fn to_room(req: &Request) -> Result<Request> {
    let mut forwarded = req.clone_mut()?;
    let headers = forwarded.headers_mut()?;
    let internal: Vec<String> = headers
        .keys()
        .filter(|name| name.starts_with(INTERNAL_HEADER_PREFIX))
        .collect();
    for name in internal {
        headers.delete(&name)?;
    }
    headers.delete("cookie")?;
    Ok(forwarded)
}

/// An admitted handshake to an app's own room (a route's `target`): the client's upgrade with
/// the signed admission of docs/ADMISSION.md, `[stub, request, registration]` for the entry to
/// send, or a refusal when the target is misconfigured. The app's room does not talk to the
/// index, so once it took the socket the entry lists the socket's revocation keys there
/// ([`app_index_add`]), before the client gets its socket.
fn to_app(
    req: &web_sys::Request,
    env: &Env,
    settings: &Settings,
    binding: &str,
    room: &str,
    attachment: &Attachment,
) -> std::result::Result<JsValue, JsValue> {
    let route = settings.config.routes[attachment.route].path.as_str();
    let misconfigured = |error: &str| -> std::result::Result<JsValue, JsValue> {
        util::log(&LogEvent::Target { route, error });
        answered(Response::error(
            "sessiongate: route target unavailable (see the Worker's logs)",
            500,
        ))
    };
    let Some(key) = env::token(env, env::ADMISSION_KEY) else {
        return misconfigured("ADMISSION_KEY is not set (wrangler secret put ADMISSION_KEY)");
    };
    let Ok(namespace) = env.durable_object(binding) else {
        return misconfigured(&format!(
            "no Durable Object binding {binding:?} (durable_objects.bindings in wrangler.toml)"
        ));
    };
    let keys = crate::revocation::socket_keys(&attachment.sid, &attachment.revoke_keys);
    let ids: Vec<String> = keys.iter().map(|k| crate::revocation::key_id(k)).collect();
    let signed = crate::admission::admission(
        &key,
        room,
        route,
        attachment,
        &ids,
        util::now_ms(),
        &util::random_bytes::<16>()?,
    );
    let mut forwarded = to_room(&Request::from(Clone::clone(req)))?;
    let headers = forwarded.headers_mut()?;
    headers.set(ADMISSION_HEADER, &signed.value)?;
    headers.set(SIGNATURE_HEADER, &signed.signature)?;
    let stub = namespace.id_from_name(room)?.get_stub()?;
    let registration = AppRegistration {
        binding: binding.to_owned(),
        room: room.to_owned(),
        keys,
    };
    Ok(js_sys::Array::of3(
        &stub.into_rpc::<JsValue>(),
        forwarded.inner(),
        &registration.into(),
    )
    .into())
}

/// A socket an app's room is taking: what goes into the index for it, from step 2 to
/// [`app_index_add`] through the entry.
#[wasm_bindgen]
pub struct AppRegistration {
    binding: String,
    room: String,
    /// The socket's revocation keys.
    keys: Vec<String>,
}

/// Step 3 for an app's room that answered 101 (`answer`): the index `add` of the socket's
/// keys, `[stub, entries]` for the entry to call (`stub.add(entries)`; what it throws is its
/// failure, [`app_index_failed`]). A room whose 101 says how often it revalidates
/// (`REVALIDATE_HEADER`) gets entries that expire, renewed by its revalidations
/// (`revalidate.rs`); any other, entries without expiry, which the revocation that meets them
/// stale removes.
#[wasm_bindgen(js_name = appIndexAdd)]
pub fn app_index_add(
    env: &Env,
    registration: &AppRegistration,
    answer: &web_sys::Response,
) -> std::result::Result<JsValue, JsValue> {
    let settings = util::settings(env)?;
    let until = answer
        .headers()
        .get(REVALIDATE_HEADER)
        .ok()
        .flatten()
        .and_then(|every| every.trim().parse().ok())
        .and_then(crate::revocation::revalidate_every_ms)
        .map(|every| crate::revocation::app_entry_until(util::now_ms(), every));
    let entry = super::index::room_entry(&registration.binding, &registration.room);
    let shards = settings.config.index_shards;
    let (stub, entries) = super::index::add_call(env, shards, &entry, &registration.keys, until)?;
    Ok(js_sys::Array::of2(&stub, &entries.into()).into())
}

/// The index `add` of an app room's socket failed (`why`): logged. The room has the socket
/// and the client gets it: its keys are not listed, so a revocation reaches it only through
/// its room's revalidation.
#[wasm_bindgen(js_name = appIndexFailed)]
pub fn app_index_failed(registration: &AppRegistration, why: &str) {
    util::log(&LogEvent::Room {
        room: Some(Clipped::of(&registration.room)),
        error: Clipped::of(&format!("index register: {why}")),
    });
}
