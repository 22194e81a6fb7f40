//! The `[vars.SESSIONGATE]` table of `wrangler.toml`, checked and compiled once.
//!
//! Wrangler hands `[vars]` tables to the Worker as JSON objects, and the CLI reads the same
//! table from TOML, so both compile from a [`serde_json::Value`]. Compilation walks the whole
//! table and reports EVERY problem with its key path (`routes[1].require[0]: unknown operator
//! "eq"`); a misspelled key is an error, never silently ignored, and an invalid config is
//! never used (the Worker answers 500 rather than fail open).

use serde_json::{Map, Value};

use crate::glob::Glob;
use crate::route::{PathPattern, Template};
use crate::rules::{Condition, Expected, Operator, RuleSet, Subject};

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
    pub session_paths: crate::session::PathSet,
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

const TOP_KEYS: &[&str] = &[
    "cookie_name",
    "cookie_format",
    "key_prefix",
    "allowed_origins",
    "allow_missing_origin",
    "allow_own_origin",
    "expose",
    "revoke_by",
    "deny_with",
    "cache_ttl",
    "store_max_ttl_seconds",
    "demo_login",
    "require",
    "include",
    "exclude",
    "routes",
    "max_message_bytes",
    "rate_limit",
    "revalidate_seconds",
    "max_connections_per_session",
    "max_connections_per_room",
];
const ROUTE_KEYS: &[&str] = &[
    "path",
    "room",
    "require",
    "include",
    "exclude",
    "deny_with",
    "app",
];
const RATE_KEYS: &[&str] = &["messages", "per_seconds"];
const SUBJECTS: &[&str] = &["session", "param", "query", "header"];
const OPERATORS: &[&str] = &[
    "exists",
    "equals",
    "not_equals",
    "in",
    "contains",
    "matches",
    "gt",
    "gte",
    "lt",
    "lte",
];

/// Collects errors while walking the table.
#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
}

impl Checker {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, known: &[&str], at: &str) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = suggestion(key, known)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.error(join(at, key), format!("unknown key{hint}"));
            }
        }
    }

    fn string(&mut self, map: &Map<String, Value>, key: &str, at: &str) -> Option<String> {
        match map.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(
                    join(at, key),
                    format!("expected a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, map: &Map<String, Value>, key: &str, at: &str) -> Option<bool> {
        match map.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(
                    join(at, key),
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn integer(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let value = map.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    join(at, key),
                    format!("expected a whole number from {min} to {max}, found {value}"),
                );
                None
            }
        }
    }

    fn array<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Option<&'v [Value]> {
        match map.get(key)? {
            Value::Array(items) => Some(items),
            other => {
                self.error(
                    join(at, key),
                    format!("expected an array, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn dot_paths(&mut self, map: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
        let items = self.array(map, key, "")?;
        let mut paths = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(p) if !p.is_empty() && !p.split('.').any(str::is_empty) => {
                    paths.push(p.clone())
                }
                other => self.error(
                    format!("{key}[{i}]"),
                    format!("expected a dot path such as \"user.name\", found {other}"),
                ),
            }
        }
        Some(paths)
    }

    fn cookie_format(
        &mut self,
        map: &Map<String, Value>,
    ) -> Option<crate::cookie_format::CookieFormat> {
        use crate::cookie_format::CookieFormat;
        let name = self.string(map, "cookie_format", "")?;
        let found = CookieFormat::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f);
        if found.is_none() {
            let names: Vec<String> = CookieFormat::ALL
                .iter()
                .map(|(_, n)| format!("{n:?}"))
                .collect();
            self.error(
                "cookie_format",
                format!("expected one of {}, found {name:?}", names.join(", ")),
            );
        }
        found
    }

    fn room_app(&mut self, map: &Map<String, Value>, at: &str) -> Option<RoomApp> {
        let name = self.string(map, "app", at)?;
        let found = RoomApp::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(app, _)| *app);
        if found.is_none() {
            let names: Vec<String> = RoomApp::ALL.iter().map(|(_, n)| format!("{n:?}")).collect();
            self.error(
                join(at, "app"),
                format!("expected one of {}, found {name:?}", names.join(", ")),
            );
        }
        found
    }

    fn deny_with(&mut self, map: &Map<String, Value>, at: &str) -> Option<DenyWith> {
        match self.string(map, "deny_with", at)?.as_str() {
            "status" => Some(DenyWith::Status),
            "close" => Some(DenyWith::Close),
            other => {
                self.error(
                    join(at, "deny_with"),
                    format!("expected \"status\" or \"close\", found {other:?}"),
                );
                None
            }
        }
    }

    fn rule_set(&mut self, map: &Map<String, Value>, at: &str, params: &[&str]) -> RuleSet {
        let mut set = RuleSet::default();
        for (key, list) in [
            ("require", &mut set.require),
            ("include", &mut set.include),
            ("exclude", &mut set.exclude),
        ] {
            let Some(items) = self.array(map, key, at) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let here = format!("{}[{i}]", join(at, key));
                if let Some(condition) = self.condition(item, &here, params) {
                    list.push(condition);
                }
            }
        }
        set
    }

    fn condition(&mut self, item: &Value, at: &str, params: &[&str]) -> Option<Condition> {
        let Value::Object(map) = item else {
            self.error(at, format!("expected a table like {{ session = \"passport.user\", exists = true }}, found {}", kind(item)));
            return None;
        };
        let subjects: Vec<&String> = map
            .keys()
            .filter(|k| SUBJECTS.contains(&k.as_str()))
            .collect();
        let operators: Vec<&String> = map
            .keys()
            .filter(|k| OPERATORS.contains(&k.as_str()))
            .collect();
        let mut ok = true;
        for key in map.keys() {
            if SUBJECTS.contains(&key.as_str()) || OPERATORS.contains(&key.as_str()) {
                continue;
            }
            ok = false;
            let (what, known) = if subjects.is_empty() && suggestion(key, SUBJECTS).is_some() {
                ("subject", SUBJECTS)
            } else {
                ("operator", OPERATORS)
            };
            let hint = suggestion(key, known)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            self.error(at, format!("unknown {what} \"{key}\"{hint}"));
        }
        if subjects.len() != 1 {
            ok = false;
            if subjects.is_empty() {
                self.error(
                    at,
                    "needs exactly one subject: session, param, query or header",
                );
            } else {
                self.error(
                    at,
                    format!(
                        "has {} subjects; each condition checks exactly one",
                        subjects.len()
                    ),
                );
            }
        }
        if operators.len() != 1 {
            if operators.is_empty() {
                if ok {
                    self.error(at, "needs exactly one operator: exists, equals, not_equals, in, contains, matches, gt, gte, lt or lte");
                }
            } else {
                self.error(
                    at,
                    format!(
                        "has {} operators; write one condition per operator",
                        operators.len()
                    ),
                );
            }
            ok = false;
        }
        if !ok {
            return None;
        }
        let subject_key = subjects[0].as_str();
        let operator_key = operators[0].as_str();
        let subject_at = join(at, subject_key);
        let subject_name = match &map[subject_key] {
            Value::String(s) if !s.is_empty() => s.clone(),
            other => {
                self.error(
                    subject_at,
                    format!("expected a non-empty string, found {}", kind(other)),
                );
                return None;
            }
        };
        let subject = match subject_key {
            "session" => {
                if subject_name.split('.').any(str::is_empty) {
                    self.error(subject_at, format!("bad dot path {subject_name:?}"));
                    return None;
                }
                Subject::Session(subject_name)
            }
            "param" => {
                if !params.contains(&subject_name.as_str()) {
                    self.error(
                        subject_at,
                        format!(
                            "no path parameter {subject_name:?} (route has: {})",
                            list_or_none(params)
                        ),
                    );
                    return None;
                }
                Subject::Param(subject_name)
            }
            "query" => Subject::Query(subject_name),
            _ => Subject::Header(subject_name.to_ascii_lowercase()),
        };
        let op_at = join(at, operator_key);
        let raw = &map[operator_key];
        let operator = match operator_key {
            "exists" => match raw {
                Value::Bool(b) => Operator::Exists(*b),
                other => {
                    self.error(
                        op_at,
                        format!("expected true or false, found {}", kind(other)),
                    );
                    return None;
                }
            },
            "equals" => Operator::Equals(self.expected(raw, &op_at, params)?),
            "not_equals" => Operator::NotEquals(self.expected(raw, &op_at, params)?),
            "contains" => Operator::Contains(self.expected(raw, &op_at, params)?),
            "in" => match raw {
                Value::Array(items) if !items.is_empty() => {
                    let mut list = Vec::with_capacity(items.len());
                    for (i, v) in items.iter().enumerate() {
                        list.push(self.expected(v, &format!("{op_at}[{i}]"), params)?);
                    }
                    Operator::In(list)
                }
                other => {
                    self.error(
                        op_at,
                        format!("expected a non-empty array, found {}", kind(other)),
                    );
                    return None;
                }
            },
            "matches" => {
                let Value::String(pattern) = raw else {
                    self.error(
                        op_at,
                        format!("expected a glob string, found {}", kind(raw)),
                    );
                    return None;
                };
                let template = self.template(pattern, &op_at, params)?;
                let compiled = if template.has_placeholders() {
                    template
                        .check_glob()
                        .map(|()| Operator::MatchesTemplate(template))
                } else {
                    Glob::new(&literal_text(&template)).map(Operator::Matches)
                };
                match compiled {
                    Ok(operator) => operator,
                    Err(e) => {
                        self.error(op_at, format!("bad glob {pattern:?}: {e}"));
                        return None;
                    }
                }
            }
            _ => match raw.as_f64() {
                Some(n) if raw.is_number() && n.is_finite() => match operator_key {
                    "gt" => Operator::Gt(n),
                    "gte" => Operator::Gte(n),
                    "lt" => Operator::Lt(n),
                    _ => Operator::Lte(n),
                },
                _ => {
                    self.error(op_at, format!("expected a number, found {}", kind(raw)));
                    return None;
                }
            },
        };
        let text = format!("{} {} {}", subject_key_text(&subject), operator_key, raw);
        Some(Condition {
            subject,
            operator,
            text,
        })
    }

    fn expected(&mut self, raw: &Value, at: &str, params: &[&str]) -> Option<Expected> {
        match raw {
            Value::String(s) => {
                let template = self.template(s, at, params)?;
                Some(if template.has_placeholders() {
                    Expected::Template(template)
                } else {
                    // `{{` and `}}` mean literal braces here as next to a placeholder.
                    Expected::Json(Value::String(literal_text(&template)))
                })
            }
            Value::Null => {
                self.error(
                    at,
                    "null is not a value to compare with (use exists = false)",
                );
                None
            }
            other => Some(Expected::Json(other.clone())),
        }
    }

    fn template(&mut self, text: &str, at: &str, params: &[&str]) -> Option<Template> {
        match Template::new(text) {
            Ok(t) => {
                let mut ok = true;
                for name in t.placeholders() {
                    if !params.contains(&name) {
                        ok = false;
                        self.error(
                            at,
                            format!(
                                "placeholder {{{name}}} names no path parameter (route has: {})",
                                list_or_none(params)
                            ),
                        );
                    }
                }
                ok.then_some(t)
            }
            Err(e) => {
                self.error(at, format!("{e} in {text:?}"));
                None
            }
        }
    }
}

/// The text of a template without placeholders (its `{{` and `}}` unescaped).
fn literal_text(template: &Template) -> String {
    template
        .render(&crate::route::Params::default())
        .map(|t| t.into_owned())
        .unwrap_or_default()
}

fn subject_key_text(subject: &Subject) -> String {
    subject.to_string()
}

fn list_or_none(params: &[&str]) -> String {
    if params.is_empty() {
        "none".to_owned()
    } else {
        params.join(", ")
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// The known key closest to a misspelled one: one it abbreviates, or one at most two edits away.
fn suggestion<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    // An abbreviation ("eq" for "equals") beats any typo; otherwise the nearest typo.
    let score = |k: &str| {
        if key.len() >= 2 && k.starts_with(key) {
            Some(0)
        } else {
            Some(edit_distance(key, k)).filter(|d| *d <= 2)
        }
    };
    known
        .iter()
        .filter_map(|k| score(k).map(|s| (s, *k)))
        .min_by_key(|(s, _)| *s)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// A cookie name is an RFC 6265 token.
fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// An allowed origin is `scheme://host[:port]`, possibly with `*` wildcards, no path.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin == "*" {
        return None;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some("an origin is scheme://host[:port], e.g. https://app.example.com");
    };
    if scheme.is_empty() || rest.is_empty() {
        return Some("an origin is scheme://host[:port], e.g. https://app.example.com");
    }
    if rest.contains('/') {
        return Some("an origin has no path or trailing '/' (browsers send scheme://host[:port])");
    }
    if origin.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("browsers send origins in lower case");
    }
    None
}

impl Config {
    /// Compiles the `[vars.SESSIONGATE]` table.
    pub fn from_value(value: &Value) -> Result<Config, ConfigErrors> {
        let Value::Object(map) = value else {
            return Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("SESSIONGATE must be a table, found {}", kind(value)),
            }]));
        };
        let mut c = Checker::default();
        c.unknown_keys(map, TOP_KEYS, "");

        let defaults = RoomSettings::default();
        let cookie_name = c
            .string(map, "cookie_name", "")
            .unwrap_or_else(|| "connect.sid".to_owned());
        if !valid_cookie_name(&cookie_name) {
            c.error(
                "cookie_name",
                format!("{cookie_name:?} is not a cookie name"),
            );
        }
        let cookie_format = c.cookie_format(map).unwrap_or_default();
        let key_prefix = c
            .string(map, "key_prefix", "")
            .unwrap_or_else(|| "sess:".to_owned());
        let mut allowed_origins = Vec::new();
        if let Some(items) = c.array(map, "allowed_origins", "") {
            for (i, item) in items.iter().enumerate() {
                let at = format!("allowed_origins[{i}]");
                let Value::String(origin) = item else {
                    c.error(at, format!("expected a string, found {}", kind(item)));
                    continue;
                };
                if let Some(problem) = origin_problem(origin) {
                    c.error(at, format!("{origin:?}: {problem}"));
                    continue;
                }
                match Glob::new(origin) {
                    Ok(g) => allowed_origins.push(g),
                    Err(e) => c.error(at, format!("bad glob {origin:?}: {e}")),
                }
            }
        }
        let allow_missing_origin = c.boolean(map, "allow_missing_origin", "").unwrap_or(true);
        let allow_own_origin = c.boolean(map, "allow_own_origin", "").unwrap_or(true);
        if !allow_own_origin && allowed_origins.is_empty() {
            c.error(
                "allow_own_origin",
                "false with no allowed_origins would refuse every browser: list the public origin(s) in allowed_origins",
            );
        }
        let expose = c.dot_paths(map, "expose").unwrap_or_default();
        let revoke_by = c
            .dot_paths(map, "revoke_by")
            .unwrap_or_else(|| vec!["passport.user".to_owned()]);
        let deny_with = c.deny_with(map, "").unwrap_or(DenyWith::Status);
        let cache_ttl = c
            .integer(map, "cache_ttl", "", 30, 365 * 86_400)
            .map(|n| n as u32);
        let demo_login = c.boolean(map, "demo_login", "").unwrap_or(false);
        let store_max_ttl_seconds = c.integer(map, "store_max_ttl_seconds", "", 60, 365 * 86_400);

        let mut room = defaults.clone();
        if let Some(n) = c.integer(map, "max_message_bytes", "", 1, 1024 * 1024) {
            room.max_message_bytes = n as usize;
        }
        if let Some(n) = c.integer(map, "revalidate_seconds", "", 0, 86_400) {
            if n != 0 && n < 5 {
                c.error(
                    "revalidate_seconds",
                    "expected 0 (off) or at least 5: every tick reads KV",
                );
            }
            room.revalidate_seconds = n as u32;
        }
        if let Some(n) = c.integer(map, "max_connections_per_session", "", 0, 32_768) {
            room.max_connections_per_session = n as u32;
        }
        if let Some(n) = c.integer(map, "max_connections_per_room", "", 0, 32_768) {
            room.max_connections_per_room = n as u32;
        }
        match map.get("rate_limit") {
            None => {}
            Some(Value::Object(rate)) => {
                c.unknown_keys(rate, RATE_KEYS, "rate_limit");
                if let Some(n) = c.integer(rate, "messages", "rate_limit", 1, 1_000_000) {
                    room.rate_limit_messages = n as u32;
                }
                if let Some(n) = c.integer(rate, "per_seconds", "rate_limit", 1, 3600) {
                    room.rate_limit_window_ms = n * 1000;
                }
            }
            Some(other) => c.error(
                "rate_limit",
                format!(
                    "expected a table like {{ messages = 30, per_seconds = 10 }}, found {}",
                    kind(other)
                ),
            ),
        }

        // Routes first: global rules may use a parameter only if every route captures it.
        let mut routes = Vec::new();
        let mut shapes: Vec<(String, usize)> = Vec::new();
        let mut compiled_paths: Vec<Option<PathPattern>> = Vec::new();
        let route_items = c.array(map, "routes", "").unwrap_or(&[]);
        if !map.contains_key("routes") || route_items.is_empty() {
            c.error(
                "routes",
                "no routes: add at least one [[vars.SESSIONGATE.routes]] with a path",
            );
        }
        for (i, item) in route_items.iter().enumerate() {
            let at = format!("routes[{i}]");
            let Value::Object(route) = item else {
                c.error(at, format!("expected a table, found {}", kind(item)));
                compiled_paths.push(None);
                continue;
            };
            c.unknown_keys(route, ROUTE_KEYS, &at);
            let path = match c.string(route, "path", &at) {
                None => {
                    if !route.contains_key("path") {
                        c.error(
                            join(&at, "path"),
                            "missing: every route needs a path such as \"/ws/rooms/:room\"",
                        );
                    }
                    None
                }
                Some(p) => {
                    match PathPattern::new(&p) {
                        Ok(pattern) => {
                            let shape = pattern.shape();
                            if let Some((_, first)) = shapes.iter().find(|(s, _)| *s == shape) {
                                c.error(join(&at, "path"), format!("{p:?} duplicates routes[{first}].path: it could never match"));
                            } else {
                                shapes.push((shape, i));
                            }
                            Some(pattern)
                        }
                        Err(e) => {
                            c.error(join(&at, "path"), format!("{e} in {p:?}"));
                            None
                        }
                    }
                }
            };
            compiled_paths.push(path);
        }
        let all_params: Vec<&str> = match compiled_paths.first() {
            Some(Some(first)) => first
                .param_names()
                .filter(|n| {
                    compiled_paths
                        .iter()
                        .all(|p| p.as_ref().is_some_and(|p| p.param_names().any(|m| m == *n)))
                })
                .collect(),
            _ => Vec::new(),
        };
        let rules = c.rule_set(map, "", &all_params);
        for (i, (item, path)) in route_items.iter().zip(&compiled_paths).enumerate() {
            let (Value::Object(route), Some(path)) = (item, path) else {
                continue;
            };
            let at = format!("routes[{i}]");
            let params: Vec<&str> = path.param_names().collect();
            let room_text = c
                .string(route, "room", &at)
                .unwrap_or_else(|| path.as_str().to_owned());
            let room_template = c.template(&room_text, &join(&at, "room"), &params);
            if room_text.is_empty() {
                c.error(join(&at, "room"), "a room name cannot be empty");
            }
            let route_rules = c.rule_set(route, &at, &params);
            let route_deny = c.deny_with(route, &at).unwrap_or(deny_with);
            let app = c.room_app(route, &at).unwrap_or_default();
            if let Some(room) = room_template {
                routes.push(Route {
                    path: path.clone(),
                    room,
                    rules: route_rules,
                    deny_with: route_deny,
                    app,
                });
            }
        }

        if !c.errors.is_empty() {
            return Err(ConfigErrors(c.errors));
        }
        let mut session_paths = crate::session::PathSet::default();
        for path in expose.iter().chain(&revoke_by) {
            session_paths.insert(path);
        }
        for set in std::iter::once(&rules).chain(routes.iter().map(|r| &r.rules)) {
            for c in set.require.iter().chain(&set.include).chain(&set.exclude) {
                if let Subject::Session(path) = &c.subject {
                    session_paths.insert(path);
                }
            }
        }
        Ok(Config {
            session_paths,
            cookie_name,
            cookie_format,
            key_prefix,
            allowed_origins,
            allow_missing_origin,
            allow_own_origin,
            expose,
            revoke_by,
            deny_with,
            cache_ttl,
            store_max_ttl_seconds,
            demo_login,
            rules,
            routes,
            room,
        })
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
    pub fn request_subjects(&self, route: usize) -> (Vec<&str>, bool) {
        let mut headers = Vec::new();
        let mut query = false;
        let sets = [&self.rules, &self.routes[route].rules];
        for set in sets {
            for c in set.require.iter().chain(&set.include).chain(&set.exclude) {
                match &c.subject {
                    Subject::Header(h) if !headers.contains(&h.as_str()) => {
                        headers.push(h.as_str())
                    }
                    Subject::Query(_) => query = true,
                    _ => {}
                }
            }
        }
        (headers, query)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(value: Value) -> Vec<String> {
        match Config::from_value(&value) {
            Ok(_) => vec![],
            Err(ConfigErrors(list)) => list.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn minimal() -> Value {
        json!({"routes": [{"path": "/ws/rooms/:room", "room": "{room}"}]})
    }

    #[test]
    fn defaults_are_the_secure_ones() {
        let c = Config::from_value(&minimal()).unwrap();
        assert_eq!(c.cookie_name, "connect.sid");
        assert_eq!(c.key_prefix, "sess:");
        assert!(c.allowed_origins.is_empty());
        assert!(c.expose.is_empty());
        assert_eq!(c.deny_with, DenyWith::Status);
        assert_eq!(c.cache_ttl, None);
        assert!(!c.demo_login);
        assert_eq!(c.room, RoomSettings::default());
    }

    #[test]
    fn unknown_operator_names_its_key_path() {
        let e = errors(json!({"routes": [
            {"path": "/a"},
            {"path": "/b/:id", "require": [{"session": "user.id", "eq": "{id}"}]}
        ]}));
        assert_eq!(
            e,
            vec!["routes[1].require[0]: unknown operator \"eq\" (did you mean \"equals\"?)"]
        );
    }

    #[test]
    fn misspelled_keys_are_never_ignored() {
        let e = errors(json!({"cookie_nam": "x", "routes": [{"path": "/a", "requires": []}]}));
        assert_eq!(
            e,
            vec![
                "cookie_nam: unknown key (did you mean \"cookie_name\"?)",
                "routes[0].requires: unknown key (did you mean \"require\"?)"
            ]
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let e = errors(json!({
            "deny_with": "drop",
            "allowed_origins": ["https://app.example.com/", "https://[x"],
            "cache_ttl": 5,
            "routes": [
                {"path": "/ws/:room", "room": "{rom}"},
                {"path": "/ws/:other"},
                {"path": "ws"},
                {"path": "/x/:a", "include": [{"param": "a", "matches": "[a"}], "exclude": [{"header": "x", "gt": "3"}]},
                {"room": "r"}
            ]
        }));
        let expected = [
            "allowed_origins[0]: \"https://app.example.com/\": an origin has no path or trailing '/' (browsers send scheme://host[:port])",
            "allowed_origins[1]: bad glob \"https://[x\": unclosed '[' in glob",
            "deny_with: expected \"status\" or \"close\", found \"drop\"",
            "cache_ttl: expected a whole number from 30 to 31536000, found 5",
            "routes[1].path: \"/ws/:other\" duplicates routes[0].path: it could never match",
            "routes[2].path: path must start with '/' in \"ws\"",
            "routes[4].path: missing: every route needs a path such as \"/ws/rooms/:room\"",
            "routes[0].room: placeholder {rom} names no path parameter (route has: room)",
            "routes[3].include[0].matches: bad glob \"[a\": unclosed '[' in glob",
            "routes[3].exclude[0].gt: expected a number, found a string",
        ];
        for want in expected {
            assert!(
                e.iter().any(|got| got == want),
                "missing {want:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), expected.len(), "{e:#?}");
    }

    #[test]
    fn conditions_need_one_subject_and_one_operator() {
        let e = errors(json!({"routes": [{"path": "/a", "require": [
            {"exists": true},
            {"session": "a", "query": "b", "exists": true},
            {"session": "a"},
            {"session": "a", "exists": true, "equals": 1},
            {"sesion": "a", "exists": true},
            "text",
            {"session": "a..b", "exists": true},
            {"session": "a", "in": []},
            {"session": "a", "equals": null},
            {"param": "room", "exists": true}
        ]}]}));
        assert_eq!(
            e,
            vec![
                "routes[0].require[0]: needs exactly one subject: session, param, query or header",
                "routes[0].require[1]: has 2 subjects; each condition checks exactly one",
                "routes[0].require[2]: needs exactly one operator: exists, equals, not_equals, in, contains, matches, gt, gte, lt or lte",
                "routes[0].require[3]: has 2 operators; write one condition per operator",
                "routes[0].require[4]: unknown subject \"sesion\" (did you mean \"session\"?)",
                "routes[0].require[4]: needs exactly one subject: session, param, query or header",
                "routes[0].require[5]: expected a table like { session = \"passport.user\", exists = true }, found a string",
                "routes[0].require[6].session: bad dot path \"a..b\"",
                "routes[0].require[7].in: expected a non-empty array, found an array",
                "routes[0].require[8].equals: null is not a value to compare with (use exists = false)",
                "routes[0].require[9].param: no path parameter \"room\" (route has: none)",
            ]
        );
    }

    #[test]
    fn global_rules_may_use_only_params_every_route_has() {
        let value = json!({
            "require": [{"param": "room", "matches": "public-*"}],
            "routes": [{"path": "/a/:room"}, {"path": "/b/:room/:x"}]
        });
        assert!(Config::from_value(&value).is_ok());
        let e = errors(json!({
            "require": [{"param": "x", "exists": true}],
            "routes": [{"path": "/a/:room"}, {"path": "/b/:room/:x"}]
        }));
        assert_eq!(
            e,
            vec!["require[0].param: no path parameter \"x\" (route has: room)"]
        );
    }

    #[test]
    fn no_routes_is_an_error() {
        assert_eq!(
            errors(json!({})),
            vec!["routes: no routes: add at least one [[vars.SESSIONGATE.routes]] with a path"]
        );
        assert_eq!(
            errors(json!([])),
            vec!["SESSIONGATE must be a table, found an array"]
        );
    }

    #[test]
    fn room_settings_and_route_overrides() {
        let c = Config::from_value(&json!({
            "deny_with": "close",
            "rate_limit": {"messages": 5, "per_seconds": 2},
            "max_connections_per_room": 3,
            "routes": [{"path": "/a"}, {"path": "/b", "deny_with": "status"}]
        }))
        .unwrap();
        assert_eq!(c.room.rate_limit_messages, 5);
        assert_eq!(c.room.rate_limit_window_ms, 2000);
        assert_eq!(c.room.max_connections_per_room, 3);
        assert_eq!(c.routes[0].deny_with, DenyWith::Close);
        assert_eq!(c.routes[1].deny_with, DenyWith::Status);
        assert_eq!(c.routes[0].app, RoomApp::Chat);
    }

    #[test]
    fn route_app_is_chat_by_default_and_unknown_apps_are_listed() {
        let c = Config::from_value(&json!({
            "routes": [{"path": "/a"}, {"path": "/b", "app": "counter"}]
        }))
        .unwrap();
        assert_eq!(
            (c.routes[0].app, c.routes[1].app),
            (RoomApp::Chat, RoomApp::Counter)
        );
        assert_eq!(
            errors(json!({"routes": [{"path": "/a", "app": "game"}]})),
            ["routes[0].app: expected one of \"chat\", \"counter\", found \"game\""]
        );
        assert_eq!(
            errors(json!({"rate_limit": {"mesages": 5}, "routes": [{"path": "/a"}]})),
            vec!["rate_limit.mesages: unknown key (did you mean \"messages\"?)"]
        );
    }
}
