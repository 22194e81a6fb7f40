//! The `[vars.SESSIONGATE]` table of `wrangler.toml`, checked and compiled once.
//!
//! Wrangler hands `[vars]` tables to the Worker as JSON objects, and the CLI reads the same
//! table from TOML, so both compile from a [`serde_json::Value`]. Compilation walks the whole
//! table and reports EVERY problem with its key path (`routes[1].require[0]: unknown operator
//! "eq"`); a misspelled key is an error, never silently ignored, and an invalid config is
//! never used (the Worker answers 500 rather than fail open).
//!
//! This file holds what a compiled config is; `check.rs` walks the table and builds it, with
//! `read.rs` reading single values, and `tests.rs` pins the messages. Rule conditions compile
//! in [`crate::rules`], beside the operators they make.

mod check;
mod read;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::glob::Glob;
use crate::route::{PathPattern, Template};
use crate::rules::{RuleSet, Subject};

/// How a refused handshake is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyWith {
    /// An HTTP status (401, 403, ...). Clear for non-browser clients and logs; a browser's
    /// WebSocket only sees a failed connection.
    Status,
    /// Accept the socket and close it at once with 4401/4403/4429/4503 and a short reason,
    /// which browsers can read.
    Close,
}

/// Limits and behaviour of the Room Durable Object.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSettings {
    /// Largest client frame accepted, in bytes; larger ones get an error frame.
    pub max_message_bytes: usize,
    /// At most `rate_limit_messages` client frames per `rate_limit_window_ms` per socket;
    /// beyond that the socket is closed with 1008.
    pub rate_limit_messages: u32,
    pub rate_limit_window_ms: u64,
    /// Seconds between re-reads of the sockets' sessions from KV (0 disables revalidation).
    pub revalidate_seconds: u32,
    /// Sockets one session may hold in one room (0: no limit).
    pub max_connections_per_session: u32,
    /// Sockets one room may hold (0: no limit; the platform's own cap is 32,768).
    pub max_connections_per_room: u32,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            max_message_bytes: 16 * 1024,
            rate_limit_messages: 30,
            rate_limit_window_ms: 10_000,
            revalidate_seconds: 60,
            max_connections_per_session: 8,
            max_connections_per_room: 1000,
        }
    }
}

/// One gated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub path: PathPattern,
    /// Durable Object name for an admitted socket.
    pub room: Template,
    pub rules: RuleSet,
    pub deny_with: DenyWith,
    /// What the Room does with the sockets it holds (`app = "chat"`, the default).
    pub app: RoomApp,
    /// A Durable Object namespace binding to forward admitted sockets to instead of the
    /// built-in Room (`target = "GAME_ROOMS"`): an app's own room, in this Worker or another
    /// (`script_name`), that verifies the signed admission of docs/ADMISSION.md.
    pub target: Option<String>,
}

/// The behaviour of a route's Room: its protocol with the clients. The engine around it
/// (admission, limits, expiry, revalidation, revocation) is the same for every app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomApp {
    /// Presence and chat: `welcome`/`join`/`leave`, `broadcast` and direct `send`.
    #[default]
    Chat,
    /// A shared counter: every socket sees one number that any of them may add to.
    Counter,
}

impl RoomApp {
    /// Every app, with its config name: what error messages list.
    pub const ALL: [(RoomApp, &'static str); 2] =
        [(RoomApp::Chat, "chat"), (RoomApp::Counter, "counter")];

    pub fn as_str(self) -> &'static str {
        match self {
            RoomApp::Chat => "chat",
            RoomApp::Counter => "counter",
        }
    }
}

/// The compiled configuration. Defaults are the secure ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Name of express-session's cookie. Default `connect.sid`, express-session's own.
    pub cookie_name: String,
    /// How the cookie's value carries the signed sid. Default (and today the only one)
    /// `express-session`.
    pub cookie_format: crate::cookie_format::CookieFormat,
    /// KV key of a session is `key_prefix + sid`. Default `sess:` (connect-redis's).
    pub key_prefix: String,
    /// Origins allowed to open sockets (globs such as `https://*.example.com`). Empty (the
    /// default) allows only the gate's own origin.
    pub allowed_origins: Vec<Glob>,
    /// A handshake with no `Origin` header at all. Browsers always send one on WebSocket
    /// handshakes, and cross-site WebSocket hijacking needs a browser, so a missing Origin
    /// comes from a non-browser client that holds the cookie itself: allowed by default
    /// (still needs a valid session). Set false to require an Origin.
    pub allow_missing_origin: bool,
    /// Allow the origin the request was addressed to (scheme and `Host`). Safe on Cloudflare:
    /// a request reaches the Worker only through a hostname routed to it (workers.dev, a
    /// custom domain, a route), and a browser always sets `Host` to the page it connects to
    /// and `Origin` to the page it runs, so a foreign page never matches. Default true; set
    /// false to pin the allowed origins to exactly `allowed_origins` (for instance when
    /// another Worker forwards requests with URLs of its own choosing).
    pub allow_own_origin: bool,
    /// Session paths the Room (and every peer) sees. Default none.
    pub expose: Vec<String>,
    /// Default answer to a refused handshake; routes may override. Default `status`.
    pub deny_with: DenyWith,
    /// KV `cacheTtl` in seconds (at least 30). Default none: every read is fresh, which is
    /// what revocation wants.
    pub cache_ttl: Option<u32>,
    /// Longest KV TTL the session store endpoints give a session, in seconds (at least 60).
    /// Default none: until `cookie.expires`, and no expiry for a browser-session cookie.
    pub store_max_ttl_seconds: Option<u64>,
    /// How many Durable Objects the revocation index is spread over (by a hash of each
    /// revocation key). Default 16; about 64 for a million sockets (see the README's cost
    /// model). Rooms register their keys under the count they run with, so change it while
    /// rooms are empty, or accept that revocations miss sockets admitted before the change
    /// until those sockets reconnect.
    pub index_shards: u32,
    /// Log one admitted handshake in this many (100, the default; 1: every one; 0: none). A
    /// log line per admission costs throughput at high rates; refusals are always logged.
    pub log_admissions: u32,
    /// `POST /demo/login` and friends. NEVER in production. Default false.
    pub demo_login: bool,
    /// Session paths a revocation may name (`{"session": {"field": "passport.user", ...}}`);
    /// their values are kept with each socket but never shown to peers. Default
    /// `["passport.user"]`, where Passport keeps the user id.
    pub revoke_by: Vec<String>,
    /// Rules every route applies before its own.
    pub rules: RuleSet,
    pub routes: Vec<Route>,
    pub room: RoomSettings,
    /// Every session path the config reads (rules, `expose`, `revoke_by`, `cookie.expires`):
    /// the handshake decodes only these.
    pub session_paths: crate::session_view::PathSet,
    /// `expose` as ids in `session_paths`, in the same order.
    pub expose_ids: Vec<crate::session_view::PathId>,
    /// `revoke_by` as ids in `session_paths`, in the same order.
    pub revoke_by_ids: Vec<crate::session_view::PathId>,
    /// Per route: the header names and whether the query its rules (global ones included)
    /// read, worked out once: what a socket keeps for revalidation, and what the bounds check.
    pub kept: Vec<(Vec<String>, bool)>,
}

/// One problem, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Compiles the `[vars.SESSIONGATE]` table.
    pub fn from_value(value: &Value) -> Result<Config, ConfigErrors> {
        check::config(value)
    }

    /// The KV key of a session: `key_prefix + sid`, as the Express app's store writes it.
    pub fn session_key(&self, sid: &str) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + sid.len());
        key.push_str(&self.key_prefix);
        key.push_str(sid);
        key
    }

    /// Header names and whether the query string matter to the rules of a route (global ones
    /// included): what a socket keeps so the Room can re-run the rules later.
    pub fn request_subjects(&self, route: usize) -> (&[String], bool) {
        let (headers, query) = &self.kept[route];
        (headers, *query)
    }

    /// Compiles a config given as JSON text (how the Worker gets it).
    pub fn from_json(text: &str) -> Result<Config, ConfigErrors> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("SESSIONGATE is not JSON: {e}"),
            }])
        })?;
        Config::from_value(&value)
    }
}

/// The header names and whether the query two rule sets read (global, then a route's).
pub(crate) fn kept_request(global: &RuleSet, route: &RuleSet) -> (Vec<String>, bool) {
    let mut headers: Vec<String> = Vec::new();
    let mut query = false;
    for set in [global, route] {
        for (_, _, c) in set.conditions() {
            match &c.subject {
                Subject::Header(h) if !headers.contains(h) => headers.push(h.clone()),
                Subject::Query(_) => query = true,
                _ => {}
            }
        }
    }
    (headers, query)
}
