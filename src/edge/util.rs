//! Shared pieces of the Worker layer: the per-isolate settings, time, randomness, logging,
//! errors, and the one place a refusal becomes a Response.

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::{Config, DenyWith};
use crate::decision::Refusal;
use crate::log::LogEvent;
use crate::signature::Secrets;
use worker::{js_sys, wasm_bindgen::JsCast, Env, Response, Result, WebSocketPair};

use super::env::{CONFIG_VAR, SESSION_SECRETS};

/// The compiled config and prepared secrets, once per isolate.
pub struct Settings {
    pub config: Config,
    pub secrets: Secrets,
}

thread_local! {
    static SETTINGS: RefCell<Option<std::result::Result<Rc<Settings>, String>>> = const { RefCell::new(None) };
}

/// Compiles `[vars.SESSIONGATE]` and `SESSION_SECRETS` the first time an isolate needs them.
/// An error is kept too: the config does not change within an isolate.
pub fn settings(env: &Env) -> std::result::Result<Rc<Settings>, String> {
    SETTINGS.with(|cell| {
        if let Some(done) = cell.borrow().as_ref() {
            return done.clone();
        }
        let compiled = compile(env);
        if let Err(message) = &compiled {
            // One clear line per isolate; every request then answers 500.
            log(&LogEvent::ConfigInvalid { error: message });
        }
        *cell.borrow_mut() = Some(compiled.clone());
        compiled
    })
}

/// [`settings`] ahead of the first request (at load): kept when the config compiles; an error
/// is neither kept nor logged, so the first request meets it as before.
pub fn compile_settings_ahead(env: &Env) {
    SETTINGS.with(|cell| {
        if cell.borrow().is_some() {
            return;
        }
        if let Ok(compiled) = compile(env) {
            *cell.borrow_mut() = Some(Ok(compiled));
        }
    });
}

/// Why a config with `demo_login = true` is refused by a build without the demo.
const DEMO_NOT_BUILT: &str = "demo_login = true, but this build has no demo sign-in (the build `wrangler deploy` runs leaves it out; `bash scripts/build.sh --demo` builds it, for local use only)";

fn compile(env: &Env) -> std::result::Result<Rc<Settings>, String> {
    let value = config_value(env)?;
    let config = Config::from_value(&value).map_err(|e| format!("[vars.{CONFIG_VAR}]: {e}"))?;
    if config.demo_login && !cfg!(feature = "demo") {
        // A config that asks for the demo in a build without it is most likely a local config
        // deployed: refuse it whole rather than serve with it.
        return Err(format!("[vars.{CONFIG_VAR}]: {DEMO_NOT_BUILT}"));
    }
    let raw = env
        .secret(SESSION_SECRETS)
        .map_err(|_| {
            format!("{SESSION_SECRETS} is not set (wrangler secret put {SESSION_SECRETS}, or .dev.vars locally)")
        })?
        .to_string();
    let secrets = Secrets::from_env_value(&raw)
        .map_err(|e| format!("{SESSION_SECRETS}: {e} (a JSON array of strings, or one string)"))?;
    Ok(Rc::new(Settings { config, secrets }))
}

/// `[vars.SESSIONGATE]` as JSON. Read with one `JSON.stringify` rather than `Env::object_var`,
/// which walks the object field by field through serde-wasm-bindgen.
fn config_value(env: &Env) -> std::result::Result<serde_json::Value, String> {
    let raw = js_sys::Reflect::get(env, &CONFIG_VAR.into()).unwrap_or_default();
    if raw.is_undefined() {
        return Err(format!("[vars.{CONFIG_VAR}] is missing"));
    }
    if !raw.is_object() || js_sys::Array::is_array(&raw) {
        return Err(format!("[vars.{CONFIG_VAR}] is not a table"));
    }
    let json = js_sys::JSON::stringify(&raw)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| format!("[vars.{CONFIG_VAR}] cannot be read as JSON"))?;
    serde_json::from_str(&json).map_err(|e| format!("[vars.{CONFIG_VAR}]: {e}"))
}

pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Cryptographically random bytes from the runtime's `crypto.getRandomValues`.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let global = js_sys::global();
    let crypto = js_sys::Reflect::get(&global, &"crypto".into())?;
    let get = js_sys::Reflect::get(&crypto, &"getRandomValues".into())?
        .dyn_into::<js_sys::Function>()
        .map_err(|_| error("crypto.getRandomValues is not a function"))?;
    let array = js_sys::Uint8Array::new_with_length(N as u32);
    get.call1(&crypto, &array)?;
    let mut out = [0u8; N];
    array.copy_to(&mut out);
    Ok(out)
}

/// A request to a Durable Object (`url` only names the path), made with the runtime's own
/// `RequestInit`: `worker::RequestInit` converts through serde-wasm-bindgen (its `cf`
/// options), about 11 KB of wasm for two fields.
pub fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<worker::Request> {
    let init = worker::web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&body.into());
    }
    if !headers.is_empty() {
        let js_headers = worker::web_sys::Headers::new()?;
        for (name, value) in headers {
            js_headers.set(name, value)?;
        }
        init.set_headers(&js_headers);
    }
    let req = worker::web_sys::Request::new_with_str_and_init(url, &init)?;
    Ok(req.into())
}

/// A POST to a Durable Object (see [`request`]).
pub fn post(url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Result<worker::Request> {
    request("POST", url, body, headers)
}

/// Writes one log line (the kinds are documented in `crate::log`).
pub fn log(event: &LogEvent<'_>) {
    worker::console_log!("{}", event.to_line());
}

/// Any error as a `worker::Error`, for `?` in handlers.
pub fn error(e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

/// The one place a refusal becomes a response: an HTTP status, or (close mode) a socket
/// that is accepted and closed at once with 4000 + status and the short reason.
pub fn refuse(refusal: Refusal, deny_with: DenyWith) -> Result<Response> {
    // A request that is not a WebSocket upgrade cannot be answered with a socket.
    if deny_with == DenyWith::Close && refusal.can_close() {
        let pair = WebSocketPair::new()?;
        pair.server.accept()?;
        pair.server
            .close(Some(refusal.close_code()), Some(refusal.reason()))?;
        return Response::from_websocket(pair.client);
    }
    let mut response = Response::error(refusal.reason(), refusal.status())?;
    match refusal {
        Refusal::StoreUnavailable => response.headers_mut().set("Retry-After", "5")?,
        // RFC 9110 asks a 426 to name the protocol. No `Connection: Upgrade`: workerd would
        // then take the answer to a POST for a WebSocket upgrade and fail it.
        Refusal::NotUpgrade => response.headers_mut().set("Upgrade", "websocket")?,
        // RFC 6455 4.4: name the version this server speaks.
        Refusal::UnsupportedVersion => response.headers_mut().set("Sec-WebSocket-Version", "13")?,
        _ => {}
    }
    Ok(response)
}

/// A JSON response with a status.
pub fn json_response(value: &serde_json::Value, status: u16) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

/// `{"error": message}` with `status`: written directly, without building a JSON value (each
/// `json!` is its own code in the wasm).
pub fn error_json(message: &str, status: u16) -> Result<Response> {
    let body = format!("{{\"error\":{}}}", serde_json::Value::from(message));
    let mut response = Response::ok(body)?.with_status(status);
    response
        .headers_mut()
        .set("content-type", "application/json")?;
    Ok(response)
}

/// A request's JSON body, as a `Value` its format reads (`crate::json_read`). Read as text and
/// parsed by serde_json: `Request::json` parses in JavaScript and converts the result through
/// serde-wasm-bindgen.
pub async fn json_body(req: &mut worker::Request) -> Result<serde_json::Value> {
    let text = req.text().await?;
    serde_json::from_str(&text).map_err(error)
}

/// A response's JSON body (see [`json_body`]).
pub async fn json_answer(res: &mut Response) -> Result<serde_json::Value> {
    let text = res.text().await?;
    serde_json::from_str(&text).map_err(error)
}

/// The value stored under `key` (`undefined` when there is none), as the runtime holds it:
/// the room stores only numbers and strings, which need no serde-wasm-bindgen.
pub async fn stored(storage: &worker::Storage, key: &str) -> Result<worker::wasm_bindgen::JsValue> {
    let promise = storage.as_raw().get(key)?;
    Ok(worker::wasm_bindgen_futures::JsFuture::from(promise).await?)
}

/// The number stored under `key`, if there is one.
pub async fn stored_number(storage: &worker::Storage, key: &str) -> Result<Option<f64>> {
    Ok(stored(storage, key).await?.as_f64())
}

/// The text stored under `key`, if there is one.
pub async fn stored_text(storage: &worker::Storage, key: &str) -> Result<Option<String>> {
    Ok(stored(storage, key).await?.as_string())
}

/// Stores each `(key, number)` in one write. (`Storage::put_multiple` with a map would hand
/// the runtime a JS `Map`, which it reads as an object with no keys and stores nothing.)
pub async fn put_numbers<'a>(
    storage: &worker::Storage,
    entries: impl IntoIterator<Item = (&'a str, f64)>,
) -> Result<()> {
    let object = js_sys::Object::new();
    for (key, number) in entries {
        js_sys::Reflect::set(&object, &key.into(), &number.into())?;
    }
    storage.put_multiple_raw(object).await
}

thread_local! {
    static ADMISSIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One call in `every` (per isolate) says yes: `log_admissions` sampling. 0 never, 1 always.
pub fn sample(every: u32) -> bool {
    match every {
        0 => false,
        1 => true,
        n => ADMISSIONS.with(|count| {
            let next = (count.get() + 1) % n;
            count.set(next);
            next == 0
        }),
    }
}

/// Does the request carry `Authorization: Bearer <token>`? Compared as digests, in constant
/// time (`ADMIN_TOKEN`, `STORE_TOKEN`).
pub fn has_bearer(req: &worker::Request, token: &str) -> Result<bool> {
    let presented = req.headers().get("authorization")?.unwrap_or_default();
    let bearer = presented.strip_prefix("Bearer ").unwrap_or("");
    Ok(crate::signature::bearer_matches(bearer, token))
}

/// The answer to a missing or wrong bearer token.
pub fn unauthorized() -> Result<Response> {
    let mut response = error_json("unauthorized", 401)?;
    response.headers_mut().set("WWW-Authenticate", "Bearer")?;
    Ok(response)
}
