//! The session record an express-session store writes: `JSON.stringify(req.session)`, e.g.
//! `{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-26T12:00:00.000Z","httpOnly":true,
//! "path":"/"},"passport":{"user":"u-42"}}`. Every field is kept, known or not.
//!
//! This is the whole record, for the CLI, the demo and the store endpoints; a handshake reads
//! only the paths its config needs, through [`crate::session_view`].

use serde_json::{Map, Value};

/// Why a stored session cannot be used. Callers treat every one as "no session".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not JSON, or JSON that is not an object.
    #[error("session record is not a JSON object")]
    NotAnObject,
    /// `cookie.expires` is neither null, absent nor an ISO date string.
    #[error("session cookie.expires is not a date")]
    BadExpires,
}

/// A decoded session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    fields: Map<String, Value>,
    /// `cookie.expires` in Unix ms, or `None` for a browser-session cookie.
    expires_at_ms: Option<i64>,
}

impl Session {
    /// Decodes a stored session and its expiry.
    pub fn from_json(json: &str) -> Result<Session, SessionError> {
        let fields: Map<String, Value> =
            serde_json::from_str(json).map_err(|_| SessionError::NotAnObject)?;
        Session::from_map(fields)
    }

    pub fn from_map(fields: Map<String, Value>) -> Result<Session, SessionError> {
        let expires_at_ms = match fields.get("cookie").and_then(|c| c.get("expires")) {
            None | Some(Value::Null) => None,
            Some(Value::String(iso)) => {
                Some(crate::time::parse_rfc3339_ms(iso).ok_or(SessionError::BadExpires)?)
            }
            Some(_) => return Err(SessionError::BadExpires),
        };
        Ok(Session {
            fields,
            expires_at_ms,
        })
    }

    /// When the session's cookie expires (Unix ms); `None` means it lasts as long as the
    /// browser session, which the edge cannot see, so only the store's own expiry ends it.
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expires_at_ms
    }

    /// Expired at `now_ms`? A KV entry can outlive its session (KV expiry lags), so this is
    /// checked on every read.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// The value at a dot path: `passport.user`, `user.roles.0` (numbers index arrays).
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup_map(&self.fields, path)
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Only the `paths` of the session, nested as in the session: what the Room sees.
    /// Paths that are absent are left out.
    pub fn project<S: AsRef<str>>(&self, paths: &[S]) -> Value {
        let mut out = Map::new();
        for path in paths {
            let path = path.as_ref();
            if let Some(value) = self.get(path) {
                insert_path(&mut out, path, value.clone());
            }
        }
        Value::Object(out)
    }
}

/// Dot-path lookup in a JSON object.
pub fn lookup_map<'v>(map: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut segments = path.split('.');
    let mut current = map.get(segments.next()?)?;
    for segment in segments {
        current = lookup_child(current, segment)?;
    }
    Some(current)
}

/// Dot-path lookup in any JSON value (an empty path is the value itself).
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, lookup_child)
}

fn lookup_child<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

pub(crate) fn insert_path(out: &mut Map<String, Value>, path: &str, value: Value) {
    let mut segments = path.split('.').peekable();
    let mut current = out;
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            current.insert(segment.to_owned(), value);
            return;
        }
        let entry = current
            .entry(segment.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(map) => current = map,
            // An earlier, shorter path already exposed this whole value.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STORED: &str = r#"{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-26T12:00:00.000Z","httpOnly":true,"path":"/"},"passport":{"user":"u-42"},"user":{"name":"Ada","roles":["chat","admin"],"secret":"x"},"extra":[1,{"a":2}]}"#;

    #[test]
    fn decodes_and_keeps_unknown_fields() {
        let s = Session::from_json(STORED).unwrap();
        assert_eq!(s.get("extra.1.a"), Some(&json!(2)));
        assert_eq!(s.get("passport.user"), Some(&json!("u-42")));
        assert_eq!(s.get("user.roles.1"), Some(&json!("admin")));
        assert_eq!(s.get("user.roles.2"), None);
        assert_eq!(s.get("user.roles.x"), None);
        assert_eq!(s.get("passport.user.deeper"), None);
    }

    #[test]
    fn expiry_is_checked_against_the_clock_given() {
        let s = Session::from_json(STORED).unwrap();
        let at = crate::time::parse_rfc3339_ms("2026-11-26T12:00:00.000Z").unwrap();
        assert!(!s.is_expired(at - 1));
        assert!(s.is_expired(at));
    }

    #[test]
    fn null_or_missing_expires_never_expires_here() {
        let s = Session::from_json(r#"{"cookie":{"expires":null}}"#).unwrap();
        assert!(!s.is_expired(i64::MAX));
        let s = Session::from_json(r#"{"passport":{}}"#).unwrap();
        assert_eq!(s.expires_at_ms(), None);
    }

    #[test]
    fn bad_records_are_errors() {
        assert_eq!(Session::from_json("[]"), Err(SessionError::NotAnObject));
        assert_eq!(Session::from_json("nope"), Err(SessionError::NotAnObject));
        assert_eq!(
            Session::from_json(r#"{"cookie":{"expires":"tomorrow"}}"#),
            Err(SessionError::BadExpires)
        );
        assert_eq!(
            Session::from_json(r#"{"cookie":{"expires":12}}"#),
            Err(SessionError::BadExpires)
        );
    }

    #[test]
    fn projection_keeps_only_exposed_paths() {
        let s = Session::from_json(STORED).unwrap();
        let p = s.project(&["passport.user", "user.name", "user.roles", "missing.path"]);
        assert_eq!(
            p,
            json!({"passport":{"user":"u-42"},"user":{"name":"Ada","roles":["chat","admin"]}})
        );
        assert_eq!(
            s.project(&["user", "user.name"]),
            json!({"user": s.get("user").unwrap()})
        );
    }
}
