//! Shared harness for the decision and rules tests: an in-memory store that counts reads, a
//! store that always errors, and a request builder.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::Value;
use sessiongate::config::Config;
use sessiongate::cookie_format::CookieFormat;
use sessiongate::decision::{self, Admission, Denial, Handshake, StoreError};
use sessiongate::explain::{self, Step};
use sessiongate::signature::Secrets;

pub const SECRET: &str = "new secret";
pub const OLD_SECRET: &str = "old secret";
pub const SID: &str = "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG";
pub const OWN_ORIGIN: &str = "https://gate.example.com";
/// `2026-11-26T00:00:00.000Z`: the fixed "now" of every test.
pub const NOW: i64 = 1_795_651_200_000;
/// `2026-11-26T12:00:00.000Z`: when the default session's cookie expires.
pub const EXPIRES: i64 = 1_795_694_400_000;

/// A realistic stored session (what express-session hands its store).
pub fn session_json() -> Value {
    serde_json::json!({
        "cookie": {"originalMaxAge": 3_600_000, "expires": "2026-11-26T12:00:00.000Z", "httpOnly": true, "path": "/"},
        "passport": {"user": "u-42"},
        "user": {"name": "Ada", "roles": ["chat", "admin"], "age": 36, "team": "acme-blue", "secret": "do not expose"}
    })
}

/// An admission with everything owned, so a test can hold it past the gate and request it
/// was decided with.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub route: usize,
    pub room: String,
    pub sid: String,
    pub projection: Value,
    pub expires_at_ms: Option<i64>,
    pub params: Vec<(String, String)>,
    pub revoke_keys: Vec<(String, Value)>,
}

impl From<Admission<'_>> for Admitted {
    fn from(a: Admission<'_>) -> Admitted {
        Admitted {
            route: a.route,
            room: a.room.into_owned(),
            sid: a.session.sid().to_owned(),
            projection: a.projection,
            expires_at_ms: a.expires_at_ms,
            params: a.params.to_pairs(),
            revoke_keys: a
                .revoke_keys
                .into_iter()
                .map(|(path, value)| (path.to_owned(), value))
                .collect(),
        }
    }
}

/// A whole decision, owned.
pub type Decision = Result<Admitted, Denial>;

/// What the tests' stores answer for a key (the Worker's is KV).
pub trait TestStore {
    fn load(&self, key: &str) -> Result<Option<String>, StoreError>;
}

/// KV in memory, counting reads.
#[derive(Default)]
pub struct MapStore {
    pub map: HashMap<String, String>,
    pub reads: Cell<usize>,
}

impl MapStore {
    pub fn with(key: &str, json: &str) -> MapStore {
        let mut store = MapStore::default();
        store.map.insert(key.to_owned(), json.to_owned());
        store
    }
}

impl TestStore for MapStore {
    fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.map.get(key).cloned())
    }
}

/// KV that is down.
pub struct FailingStore;

impl TestStore for FailingStore {
    fn load(&self, _key: &str) -> Result<Option<String>, StoreError> {
        Err(StoreError("kv timeout".into()))
    }
}

/// A handshake under construction. Defaults: a valid WebSocket upgrade to `path` from the
/// gate's own origin with a valid `connect.sid` for [`SID`] signed with [`SECRET`].
#[derive(Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub own_origin: String,
}

pub fn cookie_for(secret: &str, sid: &str) -> String {
    format!(
        "theme=dark; connect.sid={}; _ga=GA1.2.3",
        CookieFormat::ExpressSession.cookie_value(&Secrets::new(&[secret]).unwrap(), sid)
    )
}

impl Req {
    pub fn ws(path: &str) -> Req {
        Req {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: vec![
                ("Upgrade".into(), "websocket".into()),
                ("Connection".into(), "Upgrade".into()),
                ("Sec-WebSocket-Version".into(), "13".into()),
                // RFC 6455 section 1.3's sample nonce.
                (
                    "Sec-WebSocket-Key".into(),
                    "dGhlIHNhbXBsZSBub25jZQ==".into(),
                ),
                ("Origin".into(), OWN_ORIGIN.into()),
                ("Cookie".into(), cookie_for(SECRET, SID)),
            ],
            own_origin: OWN_ORIGIN.into(),
        }
    }

    pub fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }

    pub fn query(mut self, q: &str) -> Req {
        self.query = q.into();
        self
    }

    /// Sets (replacing any of the same name) a header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn cookie(self, value: &str) -> Req {
        self.header("Cookie", value)
    }
}

/// A compiled config, secrets and a store.
pub struct Gate<S> {
    pub config: Config,
    pub secrets: Secrets,
    pub store: S,
    pub now: i64,
}

pub fn config(value: Value) -> Config {
    Config::from_value(&value).unwrap_or_else(|e| panic!("config does not compile: {e}"))
}

impl Gate<MapStore> {
    /// The config, and a store holding [`session_json`] at `sess:` + [`SID`].
    pub fn new(value: Value) -> Gate<MapStore> {
        Gate::with_session(value, &session_json().to_string())
    }

    pub fn with_session(value: Value, json: &str) -> Gate<MapStore> {
        let config = config(value);
        let key = format!("{}{SID}", config.key_prefix);
        Gate {
            config,
            secrets: Secrets::new(&[SECRET]).unwrap(),
            store: MapStore::with(&key, json),
            now: NOW,
        }
    }
}

impl<S: TestStore> Gate<S> {
    pub fn secrets(mut self, list: &[&str]) -> Self {
        self.secrets = Secrets::new(list).unwrap();
        self
    }

    pub fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    fn handshake<'r>(req: &'r Req) -> Handshake<'r> {
        Handshake {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &req.headers,
            own_origin: &req.own_origin,
        }
    }

    pub fn decide(&self, req: &Req) -> Decision {
        decision::decide(
            &Self::handshake(req),
            &self.secrets,
            &self.config,
            self.now,
            |key| self.store.load(key),
        )
        .map(Admitted::from)
    }

    /// The decision with `explain`'s steps (the store is read once, as by the gate).
    pub fn decide_traced(&self, req: &Req) -> (Decision, Vec<Step>) {
        let handshake = Self::handshake(req);
        let key = match decision::check_request(&handshake, &self.secrets, &self.config) {
            Ok(checked) => checked.key().to_owned(),
            Err(_) => String::new(),
        };
        let stored = if key.is_empty() {
            Ok(None)
        } else {
            self.store.load(&key)
        };
        let (decision, steps) = explain::explain(
            &handshake,
            &self.secrets,
            &self.config,
            stored.as_ref().map(Option::as_deref).map_err(Clone::clone),
            self.now,
        );
        (decision.map(Admitted::from), steps)
    }

    pub fn admit(&self, req: &Req) -> Admitted {
        match self.decide(req) {
            Ok(a) => a,
            Err(d) => panic!("expected admission, got {d:?}"),
        }
    }

    pub fn deny(&self, req: &Req) -> Denial {
        match self.decide(req) {
            Err(d) => d,
            Ok(a) => panic!("expected denial, got {a:?}"),
        }
    }
}
