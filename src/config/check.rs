//! Checking the `[vars.SESSIONGATE]` table: every problem is collected with its key path, and
//! a [`Config`] is built only when there are none.
//!
//! [`config`] reads the table top to bottom in the order errors are reported: its keys,
//! the cookie and origins, the Room's limits, then the routes and the rules. Each part is a
//! [`Checker`] method; the ones that read a single value are in `read.rs`.

use serde_json::{Map, Value};

use super::read::{join, Checker};
use super::{Config, ConfigError, ConfigErrors, DenyWith, RoomSettings, Route};
use crate::glob::Glob;
use crate::route::PathPattern;
use crate::rules::{json_kind, Condition, RuleKind, RuleSet};
use crate::session_view::PathId;

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
    "index_shards",
    "log_admissions",
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
    "target",
];
const RATE_KEYS: &[&str] = &["messages", "per_seconds"];

/// A year, the longest `cache_ttl` and `store_max_ttl_seconds`.
const YEAR_SECONDS: u64 = 365 * 86_400;
/// `log_admissions` when the config does not say.
pub const DEFAULT_LOG_ADMISSIONS: u64 = 100;

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
    let cookie_name = c.cookie_name(map);
    let cookie_format = c.cookie_format(map).unwrap_or_default();
    let key_prefix = c
        .string(map, "key_prefix", "")
        .unwrap_or_else(|| "sess:".to_owned());
    let allowed_origins = c.allowed_origins(map);
    let allow_missing_origin = c.boolean(map, "allow_missing_origin", "").unwrap_or(true);
    let allow_own_origin = c.allow_own_origin(map, &allowed_origins);
    let expose = c.dot_paths(map, "expose").unwrap_or_default();
    let revoke_by = c
        .dot_paths(map, "revoke_by")
        .unwrap_or_else(|| vec!["passport.user".into()]);
    // A socket is tagged with its sid's key and one per revoke_by path; a socket takes at
    // most 10 tags, one of which a room keeps for itself.
    if revoke_by.len() > 8 {
        c.error(
            "revoke_by",
            "at most 8 paths (each becomes a tag on every socket)",
        );
    }
    let expose_ids = c.session_path_ids(&expose);
    let revoke_by_ids = c.session_path_ids(&revoke_by);
    let deny_with = c.deny_with(map, "").unwrap_or(DenyWith::Status);
    let cache_ttl = c.integer(map, "cache_ttl", "", 30, YEAR_SECONDS);
    let demo_login = c.boolean(map, "demo_login", "").unwrap_or(false);
    let store_max_ttl_seconds = c.integer(map, "store_max_ttl_seconds", "", 60, YEAR_SECONDS);
    let max_shards = u64::from(crate::revocation::MAX_SHARDS);
    let index_shards = c
        .integer(map, "index_shards", "", 1, max_shards)
        .unwrap_or(16) as u32;
    // One admission line in 100 by default: under `wrangler dev` a line per admission cost a
    // quarter of the handshake rate (benches/vs_js.mjs measures it); refusals are always logged.
    let log_admissions = c
        .integer(map, "log_admissions", "", 0, 1_000_000)
        .unwrap_or(DEFAULT_LOG_ADMISSIONS) as u32;
    let room = c.room_settings(map);
    let (rules, routes) = c.rules_and_routes(map, deny_with);
    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    let kept = (0..routes.len())
        .map(|i| super::kept_request(&rules, &routes[i].rules))
        .collect();
    Ok(Config {
        session_paths: std::mem::take(&mut c.session_paths),
        expose_ids,
        revoke_by_ids,
        kept,
        cookie_name,
        cookie_format,
        key_prefix,
        allowed_origins,
        allow_missing_origin,
        allow_own_origin,
        expose,
        revoke_by,
        deny_with,
        cache_ttl: cache_ttl.map(|n| n as u32),
        store_max_ttl_seconds,
        index_shards,
        log_admissions,
        demo_login,
        rules,
        routes,
        room,
    })
}

/// The parts of the table, in the order [`config`] reads them.
impl Checker {
    /// Adds paths to the session paths the handshake decodes; their ids, in order.
    fn session_path_ids(&mut self, paths: &[String]) -> Vec<PathId> {
        paths.iter().map(|p| self.session_paths.insert(p)).collect()
    }

    fn cookie_name(&mut self, map: &Map<String, Value>) -> String {
        let name = self
            .string(map, "cookie_name", "")
            .unwrap_or_else(|| "connect.sid".into());
        if !valid_cookie_name(&name) {
            self.error("cookie_name", format!("{name:?} is not a cookie name"));
        }
        name
    }

    fn allowed_origins(&mut self, map: &Map<String, Value>) -> Vec<Glob> {
        let items = self.array(map, "allowed_origins", "").unwrap_or(&[]);
        let mut origins = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("allowed_origins[{i}]");
            let Some(origin) = self.as_string(item, &at) else {
                continue;
            };
            if let Some(problem) = origin_problem(origin) {
                self.error(at, format!("{origin:?}: {problem}"));
                continue;
            }
            match Glob::new(origin) {
                Ok(glob) => origins.push(glob),
                Err(e) => self.error(at, format!("bad glob {origin:?}: {e}")),
            }
        }
        origins
    }

    fn allow_own_origin(&mut self, map: &Map<String, Value>, allowed_origins: &[Glob]) -> bool {
        let allow = self.boolean(map, "allow_own_origin", "").unwrap_or(true);
        if !allow && allowed_origins.is_empty() {
            self.error(
                "allow_own_origin",
                "false with no allowed_origins would refuse every browser: list the public origin(s) in allowed_origins",
            );
        }
        allow
    }

    fn room_settings(&mut self, map: &Map<String, Value>) -> RoomSettings {
        let mut room = RoomSettings::default();
        if let Some(n) = self.integer(map, "max_message_bytes", "", 1, 1024 * 1024) {
            room.max_message_bytes = n as usize;
        }
        if let Some(n) = self.integer(map, "revalidate_seconds", "", 0, 86_400) {
            if n != 0 && n < 5 {
                self.error(
                    "revalidate_seconds",
                    "expected 0 (off) or at least 5: every tick reads KV",
                );
            }
            room.revalidate_seconds = n as u32;
        }
        if let Some(n) = self.integer(map, "max_connections_per_session", "", 0, 32_768) {
            room.max_connections_per_session = n as u32;
        }
        if let Some(n) = self.integer(map, "max_connections_per_room", "", 0, 32_768) {
            room.max_connections_per_room = n as u32;
        }
        self.rate_limit(map, &mut room);
        room
    }

    fn rate_limit(&mut self, map: &Map<String, Value>, room: &mut RoomSettings) {
        let rate = match map.get("rate_limit") {
            None => return,
            Some(Value::Object(rate)) => rate,
            Some(other) => {
                let found = json_kind(other);
                let message = format!(
                    "expected a table like {{ messages = 30, per_seconds = 10 }}, found {found}"
                );
                self.error("rate_limit", message);
                return;
            }
        };
        self.unknown_keys(rate, RATE_KEYS, "rate_limit");
        if let Some(n) = self.integer(rate, "messages", "rate_limit", 1, 1_000_000) {
            room.rate_limit_messages = n as u32;
        }
        if let Some(n) = self.integer(rate, "per_seconds", "rate_limit", 1, 3600) {
            room.rate_limit_window_ms = n * 1000;
        }
    }

    /// The global rules and the routes. Paths come first: global rules may use a parameter
    /// only if every route captures it.
    fn rules_and_routes(
        &mut self,
        map: &Map<String, Value>,
        deny_with: DenyWith,
    ) -> (RuleSet, Vec<Route>) {
        let items = self.array(map, "routes", "").unwrap_or(&[]);
        if items.is_empty() {
            self.error(
                "routes",
                "no routes: add at least one [[vars.SESSIONGATE.routes]] with a path",
            );
        }
        let paths = self.route_paths(items);
        let rules = self.rule_set(map, "", &shared_params(&paths));
        let mut routes = Vec::with_capacity(items.len());
        for (i, (item, path)) in items.iter().zip(&paths).enumerate() {
            if let (Value::Object(route), Some(path)) = (item, path) {
                let at = format!("routes[{i}]");
                routes.extend(self.route(route, &at, path, deny_with));
            }
        }
        (rules, routes)
    }

    /// Each route's path, or None where the route or its path is not usable.
    fn route_paths(&mut self, items: &[Value]) -> Vec<Option<PathPattern>> {
        let mut paths: Vec<Option<PathPattern>> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("routes[{i}]");
            let Value::Object(route) = item else {
                self.error(at, format!("expected a table, found {}", json_kind(item)));
                paths.push(None);
                continue;
            };
            self.unknown_keys(route, ROUTE_KEYS, &at);
            let path = self.route_path(route, &at);
            if let Some(path) = &path {
                let shape = path.shape();
                let same = |p: &Option<PathPattern>| p.as_ref().is_some_and(|p| p.shape() == shape);
                if let Some(first) = paths.iter().position(same) {
                    let message = format!(
                        "{:?} duplicates routes[{first}].path: it could never match",
                        path.as_str()
                    );
                    self.error(join(&at, "path"), message);
                }
            }
            paths.push(path);
        }
        paths
    }

    fn route_path(&mut self, route: &Map<String, Value>, at: &str) -> Option<PathPattern> {
        let Some(path) = self.string(route, "path", at) else {
            if !route.contains_key("path") {
                self.error(
                    join(at, "path"),
                    "missing: every route needs a path such as \"/ws/rooms/:room\"",
                );
            }
            return None;
        };
        match PathPattern::new(&path) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                self.error(join(at, "path"), format!("{e} in {path:?}"));
                None
            }
        }
    }

    /// A route whose path compiled; `deny_with` is the global default.
    fn route(
        &mut self,
        route: &Map<String, Value>,
        at: &str,
        path: &PathPattern,
        deny_with: DenyWith,
    ) -> Option<Route> {
        let params: Vec<&str> = path.param_names().collect();
        let room_text = self
            .string(route, "room", at)
            .unwrap_or_else(|| path.as_str().into());
        let room = self.template(&room_text, &join(at, "room"), &params);
        if room_text.is_empty() {
            self.error(join(at, "room"), "a room name cannot be empty");
        }
        let rules = self.rule_set(route, at, &params);
        let deny_with = self.deny_with(route, at).unwrap_or(deny_with);
        let app = self.room_app(route, at).unwrap_or_default();
        let target = self.string(route, "target", at);
        if let Some(binding) = &target {
            let valid = binding
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && binding
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error(
                    join(at, "target"),
                    format!("{binding:?} is not a binding name (letters, digits and '_')"),
                );
            }
            if route.contains_key("app") {
                self.error(
                    join(at, "app"),
                    "an app runs in the built-in Room; a route with a target forwards to its own",
                );
            }
        }
        Some(Route {
            path: path.clone(),
            room: room?,
            rules,
            deny_with,
            app,
            target,
        })
    }

    fn rule_set(&mut self, map: &Map<String, Value>, at: &str, params: &[&str]) -> RuleSet {
        let mut set = RuleSet::default();
        for (kind, list) in [
            (RuleKind::Require, &mut set.require),
            (RuleKind::Include, &mut set.include),
            (RuleKind::Exclude, &mut set.exclude),
        ] {
            let key = kind.as_str();
            let Some(items) = self.array(map, key, at) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                match Condition::compile(item, params, &mut self.session_paths) {
                    Ok(condition) => list.push(condition),
                    Err(errors) => self.rule_errors(&format!("{}[{i}]", join(at, key)), errors),
                }
            }
        }
        set
    }
}

/// The parameters every route captures: all that global rules may name. None when a route
/// has no usable path (its errors are reported already).
fn shared_params(paths: &[Option<PathPattern>]) -> Vec<&str> {
    let Some(Some(first)) = paths.first() else {
        return Vec::new();
    };
    let everywhere = |name: &str| {
        paths.iter().all(|p| {
            p.as_ref()
                .is_some_and(|p| p.param_names().any(|m| m == name))
        })
    };
    first.param_names().filter(|n| everywhere(n)).collect()
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
