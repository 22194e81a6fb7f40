//! The core handshake decision of sessiongate as wasm exports for `benches/core_v8.mjs`: the
//! same fixture as `benches/auth_path.rs` (config, secret, cookie header, session record),
//! decided natively in wasm under V8 against Node's express stack doing the same job.

use std::cell::RefCell;

use sessiongate::config::Config;
use sessiongate::cookie_format::CookieFormat;
use sessiongate::decision::{decide, Handshake, StoreError};
use sessiongate::signature::Secrets;
use wasm_bindgen::prelude::*;

const SECRET: &str = "a long production secret, 32+ chars";
const SID: &str = "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG";
/// 2026-11-26T00:00:00Z, before the session expires.
const NOW_MS: i64 = 1_795_651_200_000;
/// benches/auth_path.rs's session record, byte for byte.
const SESSION: &str = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-26T12:00:00.000Z","secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":"u-42"},"user":{"id":"u-42","name":"Ada Lovelace","email":"ada@example.com","roles":["chat","admin"],"team":"acme-blue"},"csrfSecret":"k3Jd9sLq0xPZ2vYw8mNa"}"#;

struct Fixture {
    config: Config,
    secrets: Secrets,
    headers: Vec<(String, String)>,
    key: String,
}

impl Fixture {
    fn new() -> Fixture {
        let config = Config::from_value(&serde_json::json!({
            "allowed_origins": ["https://app.example.com"],
            "routes": [{
                "path": "/ws/rooms/:room",
                "room": "{room}",
                "require": [{"session": "passport.user", "exists": true}],
                "include": [{"session": "user.roles", "contains": "chat"}],
                "exclude": [{"session": "user.banned", "equals": true}]
            }]
        }))
        .expect("bench config compiles");
        let secrets = Secrets::new(&[SECRET]).expect("one secret");
        let cookie_header = format!(
            "theme=dark; _ga=GA1.2.1234567890.1700000000; connect.sid={}; lang=en-US",
            CookieFormat::ExpressSession.cookie_value(&secrets, SID)
        );
        let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let headers = vec![
            header("host", "gate.example.com"),
            header("upgrade", "websocket"),
            header("connection", "Upgrade"),
            header("origin", "https://app.example.com"),
            header("sec-websocket-version", "13"),
            header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            header("cookie", &cookie_header),
        ];
        let key = format!("{}{SID}", config.key_prefix);
        Fixture {
            config,
            secrets,
            headers,
            key,
        }
    }

    /// One whole decision, as auth_path's `decide`: the store hands back the record (one
    /// `String`, as KV's text would be). True when admitted to room `lobby`.
    fn decide(&self, path: &str) -> bool {
        let req = Handshake {
            method: "GET",
            path,
            query: "",
            headers: &self.headers,
            own_origin: "https://gate.example.com",
        };
        let decision = decide(&req, &self.secrets, &self.config, NOW_MS, |key| {
            Ok::<_, StoreError>((key == self.key).then(|| SESSION.to_owned()))
        });
        decision.is_ok_and(|a| a.room == "lobby")
    }
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn with_fixture<R>(f: impl FnOnce(&Fixture) -> R) -> R {
    FIXTURE.with(|cell| {
        let mut cell = cell.borrow_mut();
        f(cell.get_or_insert_with(Fixture::new))
    })
}

/// The fixture's cookie header, so the Node stack parses the very same bytes.
#[wasm_bindgen]
pub fn cookie_header() -> String {
    with_fixture(|fx| fx.headers[6].1.clone())
}

/// The session record the store hands back.
#[wasm_bindgen]
pub fn session_record() -> String {
    SESSION.to_owned()
}

/// `n` decisions inside wasm (one boundary crossing for the batch); how many were admitted.
#[wasm_bindgen]
pub fn decide_batch(path: &str, n: u32) -> u32 {
    with_fixture(|fx| {
        (0..n)
            .map(|_| u32::from(fx.decide(std::hint::black_box(path))))
            .sum()
    })
}

/// One decision per call, as the Worker crosses into wasm once per handshake.
#[wasm_bindgen]
pub fn decide_once(path: &str) -> bool {
    with_fixture(|fx| fx.decide(path))
}
