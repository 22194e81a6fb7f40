//! Arbitrary bytes: if they are JSON, `Config::from_value` must never panic (an invalid config
//! is an error list, never a crash). A config that compiles then decides a fixed handshake,
//! which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::config::Config;
use sessiongate::cookie_format::CookieFormat;
use sessiongate::decision::{decide, Handshake};
use sessiongate::signature::Secrets;

const SESSION: &str = r#"{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-26T12:00:00.000Z","httpOnly":true,"path":"/"},"passport":{"user":"u-42"},"user":{"name":"Ada","roles":["chat","admin"],"age":36}}"#;


fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(config) = Config::from_value(&value) else {
        return;
    };
    let secrets = Secrets::new(&["k"]).unwrap();
    let cookie = format!(
        "connect.sid={}",
        CookieFormat::ExpressSession.cookie_value(&secrets, "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG")
    );
    let headers = vec![
        ("upgrade".to_owned(), "websocket".to_owned()),
        ("connection".to_owned(), "Upgrade".to_owned()),
        ("sec-websocket-version".to_owned(), "13".to_owned()),
        ("sec-websocket-key".to_owned(), "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        ("origin".to_owned(), "https://gate.example.com".to_owned()),
        ("cookie".to_owned(), cookie),
        ("x-team".to_owned(), "blue*[a-z]".to_owned()),
    ];
    for path in ["/ws/rooms/lobby", "/ws/a/b/c", "/", "/ws/%2A/x%5B"] {
        let req = Handshake {
            method: "GET",
            path,
            query: "n=5&q=a+b",
            headers: &headers,
            own_origin: "https://gate.example.com",
        };
        let _ = decide(&req, &secrets, &config, 1_795_651_200_000, |_| {
            Ok(Some(SESSION.to_owned()))
        });
    }
});
