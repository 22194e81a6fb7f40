//! The handshake decision, apart from any I/O, in two pure steps around the caller's one
//! store read (the tungstenite way: `create_response(&Request)` apart from the write):
//!
//! 1. [`check_request`]: from the request to the session key to load, or a refusal
//!    (route, upgrade, bounds, origin, cookie, signature);
//! 2. the caller reads the key (KV in the Worker, a map in tests, a file in the CLI);
//! 3. [`check_session`]: from what the store answered and the clock to the admission, or a
//!    refusal (store, session, expiry, rules, room). Revalidation ([`recheck`]) reuses it.
//!
//! Checks run in this order, and the first that fails decides (README.md, "How a handshake is
//! decided", lists the same statuses with the close codes of `deny_with = "close"`):
//!
//! | check | fails when | status |
//! | --- | --- | --- |
//! | route | no route pattern matches the path | 404 |
//! | upgrade | not a `GET` with `Upgrade: websocket` and `Connection: upgrade` | 426 |
//! | upgrade | `Sec-WebSocket-Version` is not 13 | 426 |
//! | upgrade | `Sec-WebSocket-Key` does not decode to 16 bytes | 400 |
//! | bounds | a path parameter over 256 bytes, a query (1,024) or header (256) the rules read and the Room would keep, or all of them over 1,024 (JSON-escaped, as kept) | 414 / 431 |
//! | origin | `Origin` is neither the gate's own nor allowed | 403 |
//! | cookie | no session cookie | 401 |
//! | signature | no `s:` prefix, or a bad signature | 401 |
//! | store | the store could not answer | 503 (fail closed) |
//! | session | no such session, unreadable, or `cookie.expires` passed | 401 |
//! | rules | global, then route `require`/`exclude`/`include` | 403 |

use std::borrow::Cow;

use serde_json::Value;

use crate::config::{Config, DenyWith};
use crate::route::Params;
use crate::rules::{HeaderLookup, RuleContext, RuleFailure};
use crate::session_view::SessionView;
use crate::signature::Secrets;

/// The store could not answer. The text goes to logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// What the store answered for a session key: the stored JSON, `None` if there is none, or an
/// error if it could not answer (the gate then fails closed with 503).
pub type Stored<'a> = Result<Option<&'a str>, StoreError>;

/// The origin, path and query of a URL as the runtime serializes it (WHATWG: the host is
/// already ASCII and lower case, a default port is already left out, `?` and `#` inside the
/// path are percent-encoded), without a URL parser: `https://gate.example.com/ws/a?v=2#x` is
/// `("https://gate.example.com", "/ws/a", "v=2")`. Parsing URLs again would bring the `url`
/// crate and its Unicode tables into the wasm for nothing.
pub fn split_url(url: &str) -> (&str, &str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let origin = &url[..path_start];
    let rest = &url[path_start..];
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (origin, if path.is_empty() { "/" } else { path }, query)
}

/// What the gate sees of a handshake request.
pub struct Handshake<'a> {
    pub method: &'a str,
    /// Path without the query string, as sent (percent-encoded).
    pub path: &'a str,
    /// Query string without the `?` (may be empty).
    pub query: &'a str,
    pub headers: &'a dyn HeaderLookup,
    /// The gate's own origin (`https://gate.example.com`), allowed unless `allow_own_origin`
    /// is false.
    pub own_origin: &'a str,
}

/// Which check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Route,
    Upgrade,
    Bounds,
    Origin,
    Cookie,
    Signature,
    Store,
    Session,
    Rules,
    /// The Room's own limits (sockets per session, per room).
    Limits,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Route => "route",
            Check::Bounds => "bounds",
            Check::Upgrade => "upgrade",
            Check::Origin => "origin",
            Check::Cookie => "cookie",
            Check::Signature => "signature",
            Check::Store => "store",
            Check::Session => "session",
            Check::Rules => "rules",
            Check::Limits => "limits",
        }
    }
}

/// Why a handshake (or, later, a live socket) is refused. The one place that maps a refusal
/// to an HTTP status and a WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoRoute,
    ParamTooLong,
    QueryTooLong,
    HeaderTooLong,
    RequestTooLong,
    NotUpgrade,
    UnsupportedVersion,
    BadHandshake,
    OriginNotAllowed,
    MissingCookie,
    BadSignature,
    UnknownSession,
    UnreadableSession,
    SessionExpired,
    SessionRevoked,
    RuleDenied,
    StoreUnavailable,
    TooManyForSession,
    RoomFull,
}

impl Refusal {
    /// The HTTP status README.md's "How a handshake is decided" gives this refusal.
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoRoute => 404,
            Refusal::ParamTooLong | Refusal::QueryTooLong | Refusal::RequestTooLong => 414,
            Refusal::HeaderTooLong => 431,
            Refusal::NotUpgrade | Refusal::UnsupportedVersion => 426,
            Refusal::BadHandshake => 400,
            Refusal::OriginNotAllowed | Refusal::RuleDenied => 403,
            Refusal::MissingCookie
            | Refusal::BadSignature
            | Refusal::UnknownSession
            | Refusal::UnreadableSession
            | Refusal::SessionExpired
            | Refusal::SessionRevoked => 401,
            Refusal::StoreUnavailable => 503,
            Refusal::TooManyForSession | Refusal::RoomFull => 429,
        }
    }

    /// The check that refuses this way.
    pub fn check(self) -> Check {
        match self {
            Refusal::NoRoute => Check::Route,
            Refusal::NotUpgrade | Refusal::UnsupportedVersion | Refusal::BadHandshake => {
                Check::Upgrade
            }
            Refusal::ParamTooLong
            | Refusal::QueryTooLong
            | Refusal::HeaderTooLong
            | Refusal::RequestTooLong => Check::Bounds,
            Refusal::OriginNotAllowed => Check::Origin,
            Refusal::MissingCookie => Check::Cookie,
            Refusal::BadSignature => Check::Signature,
            Refusal::StoreUnavailable => Check::Store,
            Refusal::UnknownSession
            | Refusal::UnreadableSession
            | Refusal::SessionExpired
            | Refusal::SessionRevoked => Check::Session,
            Refusal::RuleDenied => Check::Rules,
            Refusal::TooManyForSession | Refusal::RoomFull => Check::Limits,
        }
    }

    /// The close code of `deny_with = "close"`: 4000 + the status.
    pub fn close_code(self) -> u16 {
        4000 + self.status()
    }

    /// Can this refusal be answered with a socket (`deny_with = "close"`)? Not when there is
    /// no valid WebSocket handshake to accept: the platform would fail the upgrade.
    pub fn can_close(self) -> bool {
        !matches!(
            self,
            Refusal::NoRoute
                | Refusal::NotUpgrade
                | Refusal::UnsupportedVersion
                | Refusal::BadHandshake
        )
    }

    /// The short reason sent to the client (never which rule failed).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoRoute => "no route",
            Refusal::ParamTooLong => "path parameter too long",
            Refusal::QueryTooLong => "query too long",
            Refusal::HeaderTooLong => "header too long",
            Refusal::RequestTooLong => "request too long",
            Refusal::NotUpgrade => "websocket upgrade required",
            Refusal::UnsupportedVersion => "unsupported websocket version",
            Refusal::BadHandshake => "bad websocket handshake",
            Refusal::OriginNotAllowed => "origin not allowed",
            Refusal::MissingCookie => "missing cookie",
            Refusal::BadSignature => "bad signature",
            Refusal::UnknownSession => "unknown session",
            Refusal::UnreadableSession => "unreadable session",
            Refusal::SessionExpired => "session expired",
            Refusal::SessionRevoked => "session revoked",
            Refusal::RuleDenied => "rule denied",
            Refusal::StoreUnavailable => "session store unavailable",
            Refusal::TooManyForSession => "too many connections for this session",
            Refusal::RoomFull => "room is full",
        }
    }
}

/// A refused handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub refusal: Refusal,
    /// The matched route, if any.
    pub route: Option<usize>,
    /// How to answer (the route's `deny_with`, or the global one before a route matched).
    pub deny_with: DenyWith,
    /// For logs only: the rule that failed, or the store's error.
    pub detail: Option<String>,
    /// The sid, once the cookie verified (for a log hash; never logged itself).
    pub sid: Option<String>,
}

impl Denial {
    /// Which check refused.
    pub fn check(&self) -> Check {
        self.refusal.check()
    }
}

/// A session's store key, `key_prefix + sid`, holding the sid as its tail: one string for
/// both, built once the cookie verified.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    key: String,
    sid_at: usize,
}

impl SessionKey {
    pub fn new(key_prefix: &str, sid: &str) -> SessionKey {
        let mut key = String::with_capacity(key_prefix.len() + sid.len());
        key.push_str(key_prefix);
        key.push_str(sid);
        SessionKey {
            key,
            sid_at: key_prefix.len(),
        }
    }

    /// The store key to load: `key_prefix + sid`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The verified sid.
    pub fn sid(&self) -> &str {
        &self.key[self.sid_at..]
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionKey").field(&self.key).finish()
    }
}

/// An admitted handshake: where it goes and what the Room may see. Borrows from the config
/// and the request (the room's name and the path parameters, unless they needed decoding);
/// [`Attachment::for_admission`](crate::engine::Attachment::for_admission) makes what the
/// Room keeps of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission<'a> {
    pub route: usize,
    pub room: Cow<'a, str>,
    /// The session's store key, and its sid.
    pub session: SessionKey,
    /// Only the `expose` paths of the session.
    pub projection: Value,
    /// `cookie.expires` of the session (Unix ms), for closing the socket on time.
    pub expires_at_ms: Option<i64>,
    /// Path parameters, kept so the Room can re-run the route's rules later.
    pub params: Params<'a, 'a>,
    /// Values of the `revoke_by` paths present in the session, by path.
    pub revoke_keys: Vec<(&'a str, Value)>,
}

impl Admission<'_> {
    /// The verified sid.
    pub fn sid(&self) -> &str {
        self.session.sid()
    }
}

/// A whole decision: the admission, or the refusal.
pub type Decision<'a> = Result<Admission<'a>, Denial>;

/// Both steps for a caller whose store answers at once (tests, the CLI, benchmarks):
/// `load` gets the key [`check_request`] chose.
pub fn decide<'a>(
    req: &Handshake<'a>,
    secrets: &Secrets,
    config: &'a Config,
    now_ms: i64,
    load: impl FnOnce(&str) -> Result<Option<String>, StoreError>,
) -> Decision<'a> {
    let checked = check_request(req, secrets, config)?;
    let stored = load(checked.key());
    check_session(
        checked,
        stored.as_ref().map(Option::as_deref).map_err(Clone::clone),
        config,
        now_ms,
    )
}

/// Longest path parameter, in bytes as the Room keeps it (percent-decoded, then JSON-escaped:
/// a `\` counts 2, a control character up to 6). Parameters name rooms and are kept with
/// every socket, whose attachment has a 2 KB budget.
pub const MAX_PARAM_BYTES: usize = 256;
/// Longest query string kept for revalidation (only when the route's rules read the query),
/// JSON-escaped.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Longest value of a header the rules read (and the Room keeps for revalidation),
/// JSON-escaped.
pub const MAX_HEADER_BYTES: usize = 256;
/// Everything a client controls that a socket keeps, together (parameters, query, headers),
/// JSON-escaped: what is left of the 2 KB attachment is the projected session's.
pub const MAX_KEPT_BYTES: usize = 1024;

/// The bytes `c` takes inside a JSON string as serde_json writes it.
pub fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The bytes `text` takes inside a JSON string (without the quotes): [`json_char_len`] of
/// each char, counted by bytes (a char at or above U+0080 is its UTF-8 bytes, each counted
/// once), so nothing is decoded.
pub fn json_len(text: &str) -> usize {
    let mut len = text.len();
    for &b in text.as_bytes() {
        len += match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..0x20 => 5,
            _ => 0,
        };
    }
    len
}

/// `text.trim()`, without looking for Unicode whitespace when both ends are visible ASCII
/// (every char `trim` removes starts with a byte at or below 0x20 or at or above 0x80).
fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if (0x21..0x7f).contains(first) && (0x21..0x7f).contains(last) => text,
        [only] if (0x21..0x7f).contains(only) => text,
        _ => text.trim(),
    }
}

/// Is this a complete RFC 6455 client handshake (section 4.2.1)? A `GET`, `Upgrade` naming
/// `websocket`, `Connection` naming `upgrade`, `Sec-WebSocket-Version: 13` and a
/// `Sec-WebSocket-Key` that is the base64 of 16 bytes.
pub fn websocket_handshake(method: &str, headers: &dyn HeaderLookup) -> Result<(), Refusal> {
    // A value that is the token alone (the usual case) needs no splitting. The tokens are
    // lower case, so only the value's bytes need lowering.
    let is_token = |text: &str, token: &str| {
        text.len() == token.len()
            && text
                .bytes()
                .zip(token.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    };
    let has_token = |name: &str, token: &str| {
        headers
            .header(name)
            .is_some_and(|v| is_token(&v, token) || v.split(',').any(|t| is_token(trim(t), token)))
    };
    if !method.eq_ignore_ascii_case("GET")
        || !has_token("upgrade", "websocket")
        || !has_token("connection", "upgrade")
    {
        return Err(Refusal::NotUpgrade);
    }
    if headers.header("sec-websocket-version").as_deref().map(trim) != Some("13") {
        return Err(Refusal::UnsupportedVersion);
    }
    let key = headers.header("sec-websocket-key");
    if !is_nonce(key.as_deref().map(trim).unwrap_or("")) {
        return Err(Refusal::BadHandshake);
    }
    Ok(())
}

/// Is this the standard base64 of 16 bytes, as the base64 crate's `STANDARD` engine decodes
/// it: 24 characters, 22 of the alphabet and `==`, and the bits of the last character that
/// fall past the 16th byte zero (canonical). Checked in place, without decoding.
fn is_nonce(key: &str) -> bool {
    /// Each byte's value as a base64 digit, or 64 for a byte that is not one.
    const SEXTET: [u8; 256] = {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut table = [64u8; 256];
        let mut i = 0;
        while i < 64 {
            table[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    match key.as_bytes() {
        [chars @ .., b'=', b'='] if chars.len() == 22 => {
            chars.iter().all(|&c| SEXTET[usize::from(c)] < 64)
                && SEXTET[usize::from(chars[21])] & 0x0f == 0
        }
        _ => false,
    }
}

/// Bounds what a client controls before it reaches the Room: path parameters always, the
/// query and headers only where the route's rules read them (that is when they are kept).
pub fn check_bounds(
    config: &Config,
    route_index: usize,
    params: &crate::route::Params<'_, '_>,
    query: &str,
    headers: &dyn HeaderLookup,
) -> Result<(), Refusal> {
    let mut kept = 0;
    for (_, value) in params.iter() {
        let len = json_len(value);
        if len > MAX_PARAM_BYTES {
            return Err(Refusal::ParamTooLong);
        }
        kept += len;
    }
    let (header_names, uses_query) = config.request_subjects(route_index);
    if uses_query {
        let len = json_len(query);
        if len > MAX_QUERY_BYTES {
            return Err(Refusal::QueryTooLong);
        }
        kept += len;
    }
    for name in header_names {
        if let Some(value) = headers.header(name) {
            let len = json_len(&value);
            if len > MAX_HEADER_BYTES {
                return Err(Refusal::HeaderTooLong);
            }
            kept += len;
        }
    }
    if kept > MAX_KEPT_BYTES {
        return Err(Refusal::RequestTooLong);
    }
    Ok(())
}

/// Is this origin allowed by the config (or the gate's own)?
pub fn origin_allowed(config: &Config, origin: &str, own_origin: &str) -> bool {
    (config.allow_own_origin && origin == own_origin)
        || config.allowed_origins.iter().any(|g| g.is_match(origin))
}

/// A request that passed every check that needs no store: which route, its parameters, and
/// the verified sid, whose key the caller loads next.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    pub route: usize,
    pub params: Params<'a, 'a>,
    /// What the rules may read of the request (the handshake's, or the ones a socket kept).
    pub query: &'a str,
    pub headers: &'a dyn HeaderLookup,
    /// The session's store key, and its sid.
    pub session: SessionKey,
}

impl std::fmt::Debug for dyn HeaderLookup + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<headers>")
    }
}

impl Checked<'_> {
    /// The store key to load: `key_prefix + sid`.
    pub fn key(&self) -> &str {
        self.session.key()
    }

    /// The verified sid.
    pub fn sid(&self) -> &str {
        self.session.sid()
    }
}

fn denial(config: &Config, refusal: Refusal, route: Option<usize>) -> Denial {
    Denial {
        refusal,
        route,
        deny_with: route.map_or(config.deny_with, |i| config.routes[i].deny_with),
        detail: None,
        sid: None,
    }
}

/// Step 1: every check that needs no store, in order. `Ok` says which key to load.
pub fn check_request<'a>(
    req: &Handshake<'a>,
    secrets: &Secrets,
    config: &'a Config,
) -> Result<Checked<'a>, Denial> {
    let (route, params) = config
        .routes
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.path.match_path(req.path).map(|p| (i, p)))
        .ok_or_else(|| denial(config, Refusal::NoRoute, None))?;
    let deny = |refusal| denial(config, refusal, Some(route));
    websocket_handshake(req.method, req.headers).map_err(deny)?;
    check_bounds(config, route, &params, req.query, req.headers).map_err(deny)?;
    let origin_ok = match req.headers.header("origin") {
        Some(origin) => origin_allowed(config, &origin, req.own_origin),
        None => config.allow_missing_origin,
    };
    if !origin_ok {
        let mut d = deny(Refusal::OriginNotAllowed);
        d.detail = req.headers.header("origin").map(|o| o.into_owned());
        return Err(d);
    }
    let header = req.headers.header("cookie");
    // The cookie's value is decoded on the stack when it fits; the one string made is the key.
    let session = header
        .as_deref()
        .and_then(|h| {
            crate::cookie::with_value(h, &config.cookie_name, |value| {
                config
                    .cookie_format
                    .sid(secrets, value)
                    .map(|sid| SessionKey::new(&config.key_prefix, sid))
            })
        })
        .ok_or_else(|| deny(Refusal::MissingCookie))?
        .ok_or_else(|| deny(Refusal::BadSignature))?;
    Ok(Checked {
        route,
        params,
        query: req.query,
        headers: req.headers,
        session,
    })
}

/// Step 2: from what the store answered for [`Checked::key`] and the clock, the admission.
pub fn check_session<'a>(
    checked: Checked<'a>,
    stored: Stored<'_>,
    config: &'a Config,
    now_ms: i64,
) -> Result<Admission<'a>, Denial> {
    let deny = |refusal, detail: Option<String>| Denial {
        detail,
        sid: Some(checked.sid().to_owned()),
        ..denial(config, refusal, Some(checked.route))
    };
    let stored = stored
        .map_err(|e| deny(Refusal::StoreUnavailable, Some(e.0)))?
        .ok_or_else(|| deny(Refusal::UnknownSession, None))?;
    let session = SessionView::decode(stored, &config.session_paths)
        .map_err(|e| deny(Refusal::UnreadableSession, Some(e.to_string())))?;
    if session.is_expired(now_ms) {
        return Err(deny(Refusal::SessionExpired, None));
    }
    let ctx = RuleContext {
        session: &session,
        params: &checked.params,
        query: checked.query,
        headers: checked.headers,
    };
    check_rules(config, checked.route, &ctx).map_err(|f| deny(Refusal::RuleDenied, Some(f)))?;
    let room = config.routes[checked.route]
        .room
        .render_kept(&checked.params)
        // Config checking guarantees every placeholder names a parameter of the route.
        .ok_or_else(|| deny(Refusal::NoRoute, Some("room template".into())))?;
    let projection = session.project(&config.expose_ids);
    let expires_at_ms = session.expires_at_ms();
    let mut revoke_keys = Vec::new();
    for (path, &id) in config.revoke_by.iter().zip(&config.revoke_by_ids) {
        if let Some(value) = session.get(id) {
            revoke_keys.push((path.as_str(), value.to_value()));
        }
    }
    Ok(Admission {
        route: checked.route,
        room,
        session: checked.session,
        projection,
        expires_at_ms,
        params: checked.params,
        revoke_keys,
    })
}

/// Global rules, then the route's. `Err` names the failing rule with its key path, e.g.
/// `routes[0].require[1] (session user.roles contains "chat")`.
pub fn check_rules(config: &Config, route: usize, ctx: &RuleContext<'_>) -> Result<(), String> {
    let scopes = [
        (None, &config.rules),
        (Some(route), &config.routes[route].rules),
    ];
    for (scope, rules) in scopes {
        if let Err(RuleFailure { kind, index, text }) = rules.check(ctx, |_| {}) {
            let prefix = scope.map_or_else(String::new, |i| format!("routes[{i}]."));
            return Err(format!("{prefix}{}[{index}] ({text})", kind.as_str()));
        }
    }
    Ok(())
}

/// Re-checks an admitted socket's session later (revalidation): step 2 again, with the
/// route, parameters, query and headers the socket kept. A session that is gone was revoked.
pub fn recheck(
    config: &Config,
    socket: &crate::engine::Attachment,
    stored: Stored<'_>,
    now_ms: i64,
) -> Result<(), (Refusal, Option<String>)> {
    readmit(config, socket, stored, now_ms).map(|_| ())
}

/// [`recheck`], answering the admission the socket would get now: its room and revocation keys
/// as the session stands (an app's room's revalidation renews its index entries with them).
pub fn readmit<'a>(
    config: &'a Config,
    socket: &'a crate::engine::Attachment,
    stored: Stored<'_>,
    now_ms: i64,
) -> Result<Admission<'a>, (Refusal, Option<String>)> {
    if socket.route >= config.routes.len() {
        return Err((Refusal::NoRoute, None));
    }
    let checked = Checked {
        route: socket.route,
        params: Params::from_pairs(&socket.params),
        query: &socket.request.query,
        headers: &socket.request.headers,
        session: SessionKey::new(&config.key_prefix, &socket.sid),
    };
    match check_session(checked, stored, config, now_ms) {
        Ok(admission) => Ok(admission),
        Err(d) if d.refusal == Refusal::UnknownSession => Err((Refusal::SessionRevoked, None)),
        Err(d) => Err((d.refusal, d.detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_counts_as_serde_json_writes() {
        let mut texts: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        texts.extend(["", "lobby", "é☃𝄞", "\"\\\n\u{7f}\u{80}\u{2028}"].map(String::from));
        for text in texts {
            let expected: usize = text.chars().map(json_char_len).sum();
            assert_eq!(json_len(&text), expected, "{text:?}");
            assert_eq!(
                json_len(&text),
                serde_json::to_string(&text).unwrap().len() - 2,
                "{text:?}"
            );
        }
    }

    #[test]
    fn nonce_check_is_a_base64_decode_to_16_bytes() {
        use base64::Engine;
        let decodes = |key: &str| {
            let mut nonce = [0u8; 18];
            key.len() == 24
                && base64::engine::general_purpose::STANDARD
                    .decode_slice(key, &mut nonce)
                    .ok()
                    == Some(16)
        };
        let valid = "dGhlIHNhbXBsZSBub25jZQ==";
        let replacements = "AQgwBRhx+/09-_= .\u{e9}";
        let mut keys = vec![
            valid.to_owned(),
            String::new(),
            "dGhlIHNhbXBsZSBub25jZQ=".into(),
        ];
        for at in 0..valid.len() {
            for c in replacements.chars() {
                let mut key: Vec<char> = valid.chars().collect();
                key[at] = c;
                keys.push(key.into_iter().collect());
            }
        }
        for key in keys {
            assert_eq!(is_nonce(&key), decodes(&key), "{key:?}");
        }
    }

    #[test]
    fn trim_is_str_trim() {
        for text in [
            "",
            " ",
            "x",
            " x",
            "x ",
            "\tx\n",
            "13",
            "\u{a0}13",
            "13\u{3000}",
            "\u{85}x",
            "x\u{2028}",
            "~",
            "\u{7f}",
            "é",
            " é ",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }
}
