//! The session record an express-session store writes: `JSON.stringify(req.session)`, e.g.
//! `{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-26T12:00:00.000Z","httpOnly":true,
//! "path":"/"},"passport":{"user":"u-42"}}`. Every field is kept, known or not.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
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

    /// Decodes only the `paths` of a stored session (what a config can read), skipping the
    /// rest without building it: the handshake's hot path. The JSON is still checked whole,
    /// as syntax: a number beyond f64's range in a skipped field (which `JSON.parse` reads as
    /// Infinity, and express-session never writes) is not an error here, unlike
    /// [`Session::from_json`]. fuzz/session_paths checks the two agree otherwise.
    pub fn from_json_paths(json: &str, paths: &PathSet) -> Result<Session, SessionError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let picked = Pick(paths)
            .deserialize(&mut de)
            .map_err(|_| SessionError::NotAnObject)?;
        de.end().map_err(|_| SessionError::NotAnObject)?;
        match picked {
            Value::Object(fields) => Session::from_map(fields),
            _ => Err(SessionError::NotAnObject),
        }
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

/// A set of dot paths as a tree: which parts of a session to keep. `cookie.expires` is always
/// in it, since every check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSet {
    children: Vec<(String, PathSet)>,
    /// The whole value at this node is wanted.
    whole: bool,
}

impl Default for PathSet {
    fn default() -> Self {
        let mut set = PathSet {
            children: Vec::new(),
            whole: false,
        };
        set.insert("cookie.expires");
        set
    }
}

impl PathSet {
    pub fn insert(&mut self, path: &str) {
        let mut node = self;
        for segment in path.split('.') {
            if node.whole {
                return;
            }
            let index = match node.children.iter().position(|(name, _)| name == segment) {
                Some(i) => i,
                None => {
                    let child = PathSet {
                        children: Vec::new(),
                        whole: false,
                    };
                    node.children.push((segment.to_owned(), child));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[index].1;
        }
        node.whole = true;
        node.children.clear();
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.children.iter().position(|(name, _)| name == key)
    }
}

/// Deserializes a value keeping only what a [`PathSet`] node wants.
struct Pick<'p>(&'p PathSet);

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            Value::deserialize(d)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(wanted) = map.next_key_seed(KeyIndex(self.0))? {
            match wanted {
                Some(i) => {
                    let (name, node) = &self.0.children[i];
                    let value = map.next_value_seed(Pick(node))?;
                    out.insert(name.clone(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // Where the config looks inside something that is not an object (an array indexed by
    // `roles.0`, say), the value is kept whole and the lookup decides.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Reads an object key and says which child of the node it is, without allocating.
struct KeyIndex<'p>(&'p PathSet);

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.position(key))
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

fn insert_path(out: &mut Map<String, Value>, path: &str, value: Value) {
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
    fn path_decode_keeps_exactly_the_wanted_paths() {
        let mut paths = PathSet::default();
        paths.insert("passport.user");
        paths.insert("user.roles.1");
        paths.insert("extra");
        let picked = Session::from_json_paths(STORED, &paths).unwrap();
        let full = Session::from_json(STORED).unwrap();
        for path in [
            "passport.user",
            "user.roles.1",
            "extra.1.a",
            "cookie.expires",
        ] {
            assert_eq!(picked.get(path), full.get(path), "{path}");
        }
        assert_eq!(picked.get("user.name"), None);
        assert_eq!(picked.get("cookie.path"), None);
        assert_eq!(picked.expires_at_ms(), full.expires_at_ms());
        // Escaped keys are matched by their decoded text.
        let escaped = r#"{"pass\u0070ort":{"user":"u-1"},"skip":{"deep":[1,{"x":"\n"}]}}"#;
        assert_eq!(
            Session::from_json_paths(escaped, &paths)
                .unwrap()
                .get("passport.user"),
            Some(&json!("u-1"))
        );
    }

    #[test]
    fn path_decode_still_rejects_what_full_decode_rejects() {
        let paths = PathSet::default();
        for bad in [
            "[]",
            "nope",
            r#"{"a":}"#,
            r#"{"skipped":[1,}"#,
            r#"{"a":1} trailing"#,
            "\"1\"",
        ] {
            assert_eq!(
                Session::from_json_paths(bad, &paths),
                Err(SessionError::NotAnObject),
                "{bad}"
            );
        }
        assert_eq!(
            Session::from_json_paths(r#"{"cookie":{"expires":"soon"}}"#, &paths),
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
