//! Reading one value of the table: absent is `None` and no error; a value of the wrong kind
//! is `None` and an error at its key path that says what was expected.

use serde_json::{Map, Value};

use super::{ConfigError, DenyWith, RoomApp};
use crate::cookie_format::CookieFormat;
use crate::route::Template;
use crate::rules::{self, json_kind, suggestion, RuleErrorAt};
use crate::session_view::PathSet;

/// Collects errors while walking the table, and the session paths the config reads.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) errors: Vec<ConfigError>,
    /// `cookie.expires`, then every `expose`, `revoke_by` and rule path, in the order read.
    pub(super) session_paths: PathSet,
}

impl Checker {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_keys(&mut self, map: &Map<String, Value>, known: &[&str], at: &str) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = suggestion(key, known.iter().copied())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.error(join(at, key), format!("unknown key{hint}"));
            }
        }
    }

    /// `map[key]` as `read` takes it, or an error saying it expected `what`.
    pub(super) fn read<'v, T>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        at: &str,
        what: &str,
        read: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let value = map.get(key)?;
        let read = read(value);
        if read.is_none() {
            let found = json_kind(value);
            self.error(join(at, key), format!("expected {what}, found {found}"));
        }
        read
    }

    pub(super) fn string(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Option<String> {
        self.read(map, key, at, "a string", |v| v.as_str().map(str::to_owned))
    }

    /// An array item that must be a string.
    pub(super) fn as_string<'v>(&mut self, item: &'v Value, at: &str) -> Option<&'v str> {
        if item.as_str().is_none() {
            self.error(at, format!("expected a string, found {}", json_kind(item)));
        }
        item.as_str()
    }

    pub(super) fn boolean(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Option<bool> {
        self.read(map, key, at, "true or false", Value::as_bool)
    }

    pub(super) fn array<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Option<&'v [Value]> {
        self.read(map, key, at, "an array", |v| {
            v.as_array().map(Vec::as_slice)
        })
    }

    pub(super) fn integer(
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

    pub(super) fn dot_paths(&mut self, map: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
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

    /// A value named in a table of (value, name), such as `RoomApp::ALL`; an unknown name is
    /// an error that lists the table.
    fn one_of<T: Copy>(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
        table: &[(T, &str)],
    ) -> Option<T> {
        let name = self.string(map, key, at)?;
        let found = table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v);
        if found.is_none() {
            let names: Vec<String> = table.iter().map(|(_, n)| format!("{n:?}")).collect();
            self.error(
                join(at, key),
                format!("expected one of {}, found {name:?}", names.join(", ")),
            );
        }
        found
    }

    pub(super) fn room_app(&mut self, map: &Map<String, Value>, at: &str) -> Option<RoomApp> {
        self.one_of(map, "app", at, &RoomApp::ALL)
    }

    pub(super) fn cookie_format(&mut self, map: &Map<String, Value>) -> Option<CookieFormat> {
        self.one_of(map, "cookie_format", "", &CookieFormat::ALL)
    }

    pub(super) fn deny_with(&mut self, map: &Map<String, Value>, at: &str) -> Option<DenyWith> {
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

    /// A `{param}` template (a route's room name), each problem at `at`.
    pub(super) fn template(&mut self, text: &str, at: &str, params: &[&str]) -> Option<Template> {
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

    /// Reports each problem of a rule condition at its key below the condition's, `at`.
    pub(super) fn rule_errors(&mut self, at: &str, errors: Vec<RuleErrorAt>) {
        for e in errors {
            self.error(join(at, &e.at), e.error.to_string());
        }
    }
}

/// `at.key`, where either may be empty.
pub(super) fn join(at: &str, key: &str) -> String {
    if key.is_empty() {
        at.to_owned()
    } else if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}
