//! Checking the `[vars.SESSIONGATE]` table: every problem is collected with its key path, and
//! a [`Config`] is built only when there are none.

use serde_json::{Map, Value};

use super::{Config, ConfigError, ConfigErrors, DenyWith, RoomApp, RoomSettings, Route};
use crate::glob::Glob;
use crate::route::{PathPattern, Template};
use crate::rules::{self, json_kind, suggestion, Condition, RuleErrorAt, RuleSet, Subject};

const TOP_KEYS: &[&str] = &[
    "cookie_name",
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
                let hint = suggestion(key, known.iter().copied())
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
                    format!("expected a string, found {}", json_kind(other)),
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
                    format!("expected true or false, found {}", json_kind(other)),
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
                    format!("expected an array, found {}", json_kind(other)),
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
                match Condition::compile(item, params) {
                    Ok(condition) => list.push(condition),
                    Err(errors) => self.rule_errors(&here, errors),
                }
            }
        }
        set
    }

    /// Reports each problem of a rule condition or template at its key below `at`.
    fn rule_errors(&mut self, at: &str, errors: Vec<RuleErrorAt>) {
        for e in errors {
            self.error(join(at, &e.at), e.error.to_string());
        }
    }

    fn template(&mut self, text: &str, at: &str, params: &[&str]) -> Option<Template> {
        match rules::template(text, params) {
            Ok(t) => Some(t),
            Err(errors) => {
                for e in errors {
                    self.error(at, e.to_string());
                }
                None
            }
        }
    }
}

/// `at.key`, where either may be empty.
fn join(at: &str, key: &str) -> String {
    if key.is_empty() {
        at.to_owned()
    } else if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
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

/// Compiles the `[vars.SESSIONGATE]` table.
pub(super) fn config(value: &Value) -> Result<Config, ConfigErrors> {
    let Value::Object(map) = value else {
        return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("SESSIONGATE must be a table, found {}", json_kind(value)),
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
    let key_prefix = c
        .string(map, "key_prefix", "")
        .unwrap_or_else(|| "sess:".to_owned());
    let mut allowed_origins = Vec::new();
    if let Some(items) = c.array(map, "allowed_origins", "") {
        for (i, item) in items.iter().enumerate() {
            let at = format!("allowed_origins[{i}]");
            let Value::String(origin) = item else {
                c.error(at, format!("expected a string, found {}", json_kind(item)));
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
                json_kind(other)
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
            c.error(at, format!("expected a table, found {}", json_kind(item)));
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
            Some(p) => match PathPattern::new(&p) {
                Ok(pattern) => {
                    let shape = pattern.shape();
                    if let Some((_, first)) = shapes.iter().find(|(s, _)| *s == shape) {
                        c.error(
                            join(&at, "path"),
                            format!("{p:?} duplicates routes[{first}].path: it could never match"),
                        );
                    } else {
                        shapes.push((shape, i));
                    }
                    Some(pattern)
                }
                Err(e) => {
                    c.error(join(&at, "path"), format!("{e} in {p:?}"));
                    None
                }
            },
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
        for (_, _, c) in set.conditions() {
            if let Subject::Session(path) = &c.subject {
                session_paths.insert(path);
            }
        }
    }
    Ok(Config {
        session_paths,
        cookie_name,
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
