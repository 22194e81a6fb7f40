//! The handshake decision: everything the gate decides, except the KV read itself, which goes
//! through the small [`SessionStore`] trait.
//!
//! Checks run in this order, and the first that fails decides (statuses from the design):
//!
//! | check | fails when | status |
//! | --- | --- | --- |
//! | route | no route pattern matches the path | 404 |
//! | upgrade | not a `GET` with `Upgrade: websocket` and `Connection: upgrade` | 426 |
//! | upgrade | `Sec-WebSocket-Version` is not 13 | 426 |
//! | upgrade | `Sec-WebSocket-Key` does not decode to 16 bytes | 400 |
//! | bounds | a path parameter over 256 bytes, or a query (1,024) or header (256) the rules read and the Room would keep | 414 / 431 |
//! | origin | `Origin` is neither the gate's own nor allowed | 403 |
//! | cookie | no session cookie | 401 |
//! | signature | no `s:` prefix, or a bad signature | 401 |
//! | store | KV could not be read | 503 (fail closed) |
//! | session | no such session, unreadable, or `cookie.expires` passed | 401 |
//! | rules | global, then route `require`/`exclude`/`include` | 403 |

use serde_json::Value;

use crate::config::{Config, DenyWith};
use crate::rules::{HeaderLookup, RuleContext, RuleFailure, RuleKind};
use crate::session::Session;
use crate::signature::Secrets;

/// A session store: KV in the Worker, a map in tests.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no Send bound wanted.
pub trait SessionStore {
    /// The stored session JSON at `key`, `Ok(None)` if there is none, `Err` if the store could
    /// not answer (the gate then fails closed with 503).
    async fn load(&self, key: &str) -> Result<Option<String>, StoreError>;
}

/// The store could not answer. The text goes to logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// What the gate sees of a handshake request.
pub struct Handshake<'a> {
    pub method: &'a str,
    /// Path without the query string, as sent (percent-encoded).
    pub path: &'a str,
    /// Query string without the `?` (may be empty).
    pub query: &'a str,
    pub headers: &'a dyn HeaderLookup,
    /// The gate's own origin (`https://gate.example.com`), always allowed.
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
    /// The HTTP status of the design's table.
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoRoute => 404,
            Refusal::ParamTooLong | Refusal::QueryTooLong => 414,
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
    pub check: Check,
    /// The matched route, if any.
    pub route: Option<usize>,
    /// How to answer (the route's `deny_with`, or the global one before a route matched).
    pub deny_with: DenyWith,
    /// For logs only: the rule that failed, or the store's error.
    pub detail: Option<String>,
    /// The sid, once the cookie verified (for a log hash; never logged itself).
    pub sid: Option<String>,
}

/// An admitted handshake: where it goes and what the Room may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub route: usize,
    pub room: String,
    pub sid: String,
    /// Only the `expose` paths of the session.
    pub projection: Value,
    /// `cookie.expires` of the session (Unix ms), for closing the socket on time.
    pub expires_at_ms: Option<i64>,
    /// Path parameters, kept so the Room can re-run the route's rules later.
    pub params: Vec<(String, String)>,
    /// Values of the `revoke_by` paths present in the session.
    pub revoke_keys: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Admit(Admission),
    Deny(Denial),
}

/// Receives every step of a decision; `()` ignores them (the hot path), the CLI prints them.
pub trait Trace {
    fn step(&mut self, check: &str, held: bool, detail: &str);

    /// False when steps are thrown away, so callers skip formatting them.
    fn enabled(&self) -> bool {
        true
    }
}

impl Trace for () {
    #[inline(always)]
    fn step(&mut self, _: &str, _: bool, _: &str) {}

    #[inline(always)]
    fn enabled(&self) -> bool {
        false
    }
}

/// A trace collected as lines.
#[derive(Debug, Default)]
pub struct TraceLines(pub Vec<(String, bool, String)>);

impl Trace for TraceLines {
    fn step(&mut self, check: &str, held: bool, detail: &str) {
        self.0.push((check.to_owned(), held, detail.to_owned()));
    }
}

/// Longest percent-decoded path parameter, in bytes. Parameters name rooms and are kept with
/// every socket; the attachment has a 2 KB budget.
pub const MAX_PARAM_BYTES: usize = 256;
/// Longest query string kept for revalidation (only when the route's rules read the query).
pub const MAX_QUERY_BYTES: usize = 1024;
/// Longest value of a header the rules read (and the Room keeps for revalidation).
pub const MAX_HEADER_BYTES: usize = 256;

/// Is this a complete RFC 6455 client handshake (section 4.2.1)? A `GET`, `Upgrade` naming
/// `websocket`, `Connection` naming `upgrade`, `Sec-WebSocket-Version: 13` and a
/// `Sec-WebSocket-Key` that is the base64 of 16 bytes.
pub fn websocket_handshake(method: &str, headers: &dyn HeaderLookup) -> Result<(), Refusal> {
    let has_token = |name: &str, token: &str| {
        headers
            .header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !method.eq_ignore_ascii_case("GET")
        || !has_token("upgrade", "websocket")
        || !has_token("connection", "upgrade")
    {
        return Err(Refusal::NotUpgrade);
    }
    if headers
        .header("sec-websocket-version")
        .as_deref()
        .map(str::trim)
        != Some("13")
    {
        return Err(Refusal::UnsupportedVersion);
    }
    let key = headers.header("sec-websocket-key");
    let key = key.as_deref().map(str::trim).unwrap_or("");
    // 16 bytes are 24 base64 characters, the last two `==`.
    use base64::Engine;
    let decoded = (key.len() == 24)
        .then(|| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .flatten();
    if decoded.is_none_or(|bytes| bytes.len() != 16) {
        return Err(Refusal::BadHandshake);
    }
    Ok(())
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
    if params.iter().any(|(_, v)| v.len() > MAX_PARAM_BYTES) {
        return Err(Refusal::ParamTooLong);
    }
    let (header_names, uses_query) = config.request_subjects(route_index);
    if uses_query && query.len() > MAX_QUERY_BYTES {
        return Err(Refusal::QueryTooLong);
    }
    if header_names.iter().any(|name| {
        headers
            .header(name)
            .is_some_and(|v| v.len() > MAX_HEADER_BYTES)
    }) {
        return Err(Refusal::HeaderTooLong);
    }
    Ok(())
}

/// Is this origin allowed by the config (or the gate's own)?
pub fn origin_allowed(config: &Config, origin: &str, own_origin: &str) -> bool {
    (config.allow_own_origin && origin == own_origin)
        || config.allowed_origins.iter().any(|g| g.is_match(origin))
}

/// Decides one handshake. `now_ms` is the current Unix time in milliseconds.
pub async fn decide<S: SessionStore, T: Trace>(
    req: &Handshake<'_>,
    store: &S,
    secrets: &Secrets,
    config: &Config,
    now_ms: i64,
    trace: &mut T,
) -> Decision {
    let deny = |refusal, check, route: Option<usize>, detail: Option<String>, sid: Option<&str>| {
        let deny_with = route.map_or(config.deny_with, |i| config.routes[i].deny_with);
        Decision::Deny(Denial {
            refusal,
            check,
            route,
            deny_with,
            detail,
            sid: sid.map(str::to_owned),
        })
    };

    // 1. route
    let matched = config
        .routes
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.path.match_path(req.path).map(|p| (i, r, p)));
    let Some((route_index, route, params)) = matched else {
        trace.step("route", false, req.path);
        return deny(Refusal::NoRoute, Check::Route, None, None, None);
    };
    trace.step("route", true, route.path.as_str());
    let at = Some(route_index);

    // 2. upgrade: the whole RFC 6455 client handshake, so that no socket is accepted (and
    // no `join` announced) for a handshake the platform would then fail.
    let upgrade = websocket_handshake(req.method, req.headers);
    trace.step(
        "upgrade",
        upgrade.is_ok(),
        upgrade.map_or_else(Refusal::reason, |()| "RFC 6455 handshake"),
    );
    if let Err(refusal) = upgrade {
        return deny(refusal, Check::Upgrade, at, None, None);
    }

    // 3. bounds: everything the client controls that the Room would keep with the socket.
    let bounds = check_bounds(config, route_index, &params, req.query, req.headers);
    trace.step(
        "bounds",
        bounds.is_ok(),
        bounds.map_or_else(Refusal::reason, |()| "parameters, query and headers"),
    );
    if let Err(refusal) = bounds {
        return deny(refusal, Check::Bounds, at, None, None);
    }

    // 4. origin
    match req.headers.header("origin") {
        Some(origin) => {
            let ok = origin_allowed(config, &origin, req.own_origin);
            trace.step("origin", ok, &origin);
            if !ok {
                return deny(
                    Refusal::OriginNotAllowed,
                    Check::Origin,
                    at,
                    Some(origin.into_owned()),
                    None,
                );
            }
        }
        None => {
            trace.step(
                "origin",
                config.allow_missing_origin,
                "no Origin header (allow_missing_origin)",
            );
            if !config.allow_missing_origin {
                return deny(Refusal::OriginNotAllowed, Check::Origin, at, None, None);
            }
        }
    }

    // 5. cookie, 6. signature
    let cookie_header = req.headers.header("cookie");
    let raw = cookie_header
        .as_deref()
        .and_then(|h| crate::cookie::find(h, &config.cookie_name));
    trace.step("cookie", raw.is_some(), &config.cookie_name);
    let Some(raw) = raw else {
        return deny(Refusal::MissingCookie, Check::Cookie, at, None, None);
    };
    let sid = secrets.unsign_cookie(&raw);
    trace.step(
        "signature",
        sid.is_some(),
        if raw.starts_with("s:") {
            "signed value"
        } else {
            "no s: prefix"
        },
    );
    let Some(sid) = sid else {
        return deny(Refusal::BadSignature, Check::Signature, at, None, None);
    };

    // 7. store
    let key = config.session_key(sid);
    let stored = match store.load(&key).await {
        Ok(stored) => stored,
        Err(e) => {
            trace.step("store", false, &e.0);
            return deny(
                Refusal::StoreUnavailable,
                Check::Store,
                at,
                Some(e.0),
                Some(sid),
            );
        }
    };
    trace.step(
        "store",
        stored.is_some(),
        if stored.is_some() {
            "found"
        } else {
            "no such key"
        },
    );
    let Some(stored) = stored else {
        return deny(Refusal::UnknownSession, Check::Session, at, None, Some(sid));
    };

    // 8. session
    let session = match Session::from_json_paths(&stored, &config.session_paths) {
        Ok(s) => s,
        Err(e) => {
            trace.step("session", false, &e.to_string());
            return deny(
                Refusal::UnreadableSession,
                Check::Session,
                at,
                Some(e.to_string()),
                Some(sid),
            );
        }
    };
    let expired = session.is_expired(now_ms);
    if trace.enabled() {
        let expiry = session.expires_at_ms().map_or_else(
            || "no expiry (browser-session cookie)".to_owned(),
            crate::time::format_rfc3339_ms,
        );
        trace.step("expiry", !expired, &expiry);
    }
    if expired {
        return deny(Refusal::SessionExpired, Check::Session, at, None, Some(sid));
    }

    // 9. rules
    let ctx = RuleContext {
        session: &session,
        params: &params,
        query: req.query,
        headers: req.headers,
    };
    if let Err(failure) = check_rules(config, route_index, &ctx, trace) {
        return deny(
            Refusal::RuleDenied,
            Check::Rules,
            at,
            Some(failure),
            Some(sid),
        );
    }

    let Some(room) = route.room.render(&params) else {
        // Config validation guarantees every placeholder is a parameter of the route.
        return deny(
            Refusal::NoRoute,
            Check::Route,
            at,
            Some("room template".into()),
            Some(sid),
        );
    };
    trace.step("room", true, &room);
    Decision::Admit(Admission {
        route: route_index,
        room: room.into_owned(),
        sid: sid.to_owned(),
        projection: session.project(&config.expose),
        expires_at_ms: session.expires_at_ms(),
        params: params
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        revoke_keys: config
            .revoke_by
            .iter()
            .filter_map(|path| session.get(path).map(|v| (path.clone(), v.clone())))
            .collect(),
    })
}

/// Global rules, then the route's. `Err` names the failing rule with its key path, e.g.
/// `routes[0].require[1] (session user.roles contains "chat")`.
pub fn check_rules<T: Trace>(
    config: &Config,
    route_index: usize,
    ctx: &RuleContext<'_>,
    trace: &mut T,
) -> Result<(), String> {
    // The route's scope is named only when something is reported: no formatting per handshake.
    let scopes = [
        (None, &config.rules),
        (Some(route_index), &config.routes[route_index].rules),
    ];
    let prefix = |scope: Option<usize>| scope.map_or_else(String::new, |i| format!("routes[{i}]."));
    for (scope, rules) in scopes {
        let result = rules.check(ctx, |o| {
            if !trace.enabled() {
                return;
            }
            // An exclude condition passes when it does not hold.
            let passed = o.held != (o.kind == RuleKind::Exclude);
            let held = if o.held { "held" } else { "did not hold" };
            let name = format!("{}{}[{}]", prefix(scope), o.kind.as_str(), o.index);
            trace.step(&name, passed, &format!("{} ({held})", o.text));
        });
        if let Err(RuleFailure { kind, index, text }) = result {
            return Err(format!(
                "{}{}[{index}] ({text})",
                prefix(scope),
                kind.as_str()
            ));
        }
    }
    Ok(())
}

/// Re-checks an admitted socket's session later (revalidation): the same expiry and rules,
/// with the parameters kept from the handshake. Header and query conditions see what the
/// handshake sent (`headers`, `query`).
pub fn recheck(
    config: &Config,
    route_index: usize,
    params: &crate::route::Params<'_, '_>,
    query: &str,
    headers: &dyn HeaderLookup,
    stored: Option<&str>,
    now_ms: i64,
) -> Result<(), (Refusal, Option<String>)> {
    let stored = stored.ok_or((Refusal::SessionRevoked, None))?;
    let session = Session::from_json_paths(stored, &config.session_paths)
        .map_err(|e| (Refusal::UnreadableSession, Some(e.to_string())))?;
    if session.is_expired(now_ms) {
        return Err((Refusal::SessionExpired, None));
    }
    if route_index >= config.routes.len() {
        return Err((Refusal::NoRoute, None));
    }
    let ctx = RuleContext {
        session: &session,
        params,
        query,
        headers,
    };
    check_rules(config, route_index, &ctx, &mut ()).map_err(|f| (Refusal::RuleDenied, Some(f)))
}
