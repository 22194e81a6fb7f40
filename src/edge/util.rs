//! Shared pieces of the Worker layer: the per-isolate settings, time, randomness, logging,
//! and the one place a refusal becomes a Response.

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::{Config, DenyWith};
use crate::decision::Refusal;
use crate::signature::Secrets;
use worker::{js_sys, wasm_bindgen::JsCast, Env, Response, Result, WebSocketPair};

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
            log_json(&serde_json::json!({"sessiongate": "config_invalid", "error": message}));
        }
        *cell.borrow_mut() = Some(compiled.clone());
        compiled
    })
}

fn compile(env: &Env) -> std::result::Result<Rc<Settings>, String> {
    let value: serde_json::Value = env
        .object_var("SESSIONGATE")
        .map_err(|e| format!("[vars.SESSIONGATE] is missing or not a table: {e}"))?;
    let config = Config::from_value(&value).map_err(|e| format!("[vars.SESSIONGATE]: {e}"))?;
    let raw = env
        .secret("SESSION_SECRETS")
        .map_err(|_| {
            "SESSION_SECRETS is not set (wrangler secret put SESSION_SECRETS, or .dev.vars locally)"
                .to_owned()
        })?
        .to_string();
    let secrets = Secrets::from_env_value(&raw)
        .map_err(|e| format!("SESSION_SECRETS: {e} (a JSON array of strings, or one string)"))?;
    Ok(Rc::new(Settings { config, secrets }))
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
        .map_err(|_| worker::Error::RustError("crypto.getRandomValues is not a function".into()))?;
    let array = js_sys::Uint8Array::new_with_length(N as u32);
    get.call1(&crypto, &array)?;
    let mut out = [0u8; N];
    array.copy_to(&mut out);
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A short, one-way tag for a sid in logs: the first 8 hex digits of its SHA-256. A sid has
/// 192 random bits, so the tag links log lines without revealing anything usable.
pub fn sid_tag(sid: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(sid.as_bytes())[..4])
}

/// A client-controlled text as it may appear in a log line: at most 64 bytes once
/// JSON-escaped (control characters take 6 each), so a line stays short whatever the input.
pub fn clip(text: &str) -> String {
    const MAX_BYTES: usize = 64;
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += crate::decision::json_char_len(c);
        if used > MAX_BYTES {
            return format!("{}... ({} bytes)", &text[..at], text.len());
        }
    }
    text.to_owned()
}

pub fn log_json(value: &serde_json::Value) {
    worker::console_log!("{}", value);
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
