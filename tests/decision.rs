//! `decision::decide` end to end with an in-memory store: the order and status of every check,
//! secret rotation, projection, deny_with and the Refusal mapping.

mod common;

use common::*;
use serde_json::json;
use sessiongate::config::DenyWith;
use sessiongate::decision::{self, Check, Refusal};

fn rooms() -> serde_json::Value {
    json!({"routes": [{"path": "/ws/rooms/:room", "room": "{room}"}]})
}

// ------------------------------------------------------------------------------ admission

#[test]
fn valid_handshake_is_admitted_with_room_sid_params_and_expiry() {
    let gate = Gate::new(rooms());
    let a = gate.admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(a.route, 0);
    assert_eq!(a.room, "lobby");
    assert_eq!(a.sid, SID);
    assert_eq!(a.expires_at_ms, Some(EXPIRES));
    assert_eq!(a.params, vec![("room".to_owned(), "lobby".to_owned())]);
    assert_eq!(gate.store.reads.get(), 1);
}

#[test]
fn room_template_uses_percent_decoded_params() {
    let gate = Gate::new(json!({"routes": [{"path": "/ws/:org/:room", "room": "{org}:{room}"}]}));
    let a = gate.admit(&Req::ws("/ws/acme/caf%C3%A9%20bar"));
    assert_eq!(a.room, "acme:café bar");
    assert_eq!(a.params[1], ("room".to_owned(), "café bar".to_owned()));
}

#[test]
fn second_route_matches_and_is_reported_by_index() {
    let gate = Gate::new(json!({"routes": [
        {"path": "/ws/rooms/:room", "room": "{room}"},
        {"path": "/ws/files/*", "room": "files:{*}"}
    ]}));
    let a = gate.admit(&Req::ws("/ws/files/a/b.txt"));
    assert_eq!((a.route, a.room.as_str()), (1, "files:a/b.txt"));
}

#[test]
fn projection_contains_only_expose_paths() {
    let gate = Gate::new(json!({
        "expose": ["passport.user", "user.name", "user.roles", "user.missing"],
        "routes": [{"path": "/ws/rooms/:room"}]
    }));
    let a = gate.admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        a.projection,
        json!({"passport": {"user": "u-42"}, "user": {"name": "Ada", "roles": ["chat", "admin"]}})
    );
    assert!(!a.projection.to_string().contains("do not expose"));
    assert!(a.projection.get("cookie").is_none());
}

#[test]
fn revoke_keys_default_to_passport_user_and_follow_revoke_by() {
    let a = Gate::new(rooms()).admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        a.revoke_keys,
        vec![("passport.user".to_owned(), json!("u-42"))]
    );
    // Not exposed to peers for all that.
    assert_eq!(a.projection, json!({}));
    let gate = Gate::new(
        json!({"revoke_by": ["user.name", "user.missing", "user.roles"], "routes": [{"path": "/ws/rooms/:room"}]}),
    );
    let a = gate.admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        a.revoke_keys,
        vec![
            ("user.name".to_owned(), json!("Ada")),
            ("user.roles".to_owned(), json!(["chat", "admin"]))
        ]
    );
}

#[test]
fn projection_is_empty_by_default() {
    let a = Gate::new(rooms()).admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(a.projection, json!({}));
}

#[test]
fn room_defaults_to_the_path_pattern_text() {
    let a =
        Gate::new(json!({"routes": [{"path": "/ws/rooms/:room"}]})).admit(&Req::ws("/ws/rooms/x"));
    assert_eq!(a.room, "/ws/rooms/:room");
}

// ------------------------------------------------------------------------------ the order

#[test]
fn trace_shows_checks_in_design_order() {
    let gate = Gate::new(json!({
        "require": [{"session": "passport.user", "exists": true}],
        "routes": [{"path": "/ws/rooms/:room", "room": "{room}", "require": [{"param": "room", "matches": "l*"}]}]
    }));
    let (d, trace) = gate.decide_traced(&Req::ws("/ws/rooms/lobby"));
    assert!(d.is_ok());
    let steps: Vec<&str> = trace.iter().map(|s| s.check.as_str()).collect();
    assert_eq!(
        steps,
        [
            "route",
            "upgrade",
            "bounds",
            "origin",
            "cookie",
            "signature",
            "store",
            "expiry",
            "require[0]",
            "routes[0].require[0]",
            "room"
        ]
    );
    assert!(trace.iter().all(|s| s.held));
}

#[test]
fn no_route_is_404_before_every_other_check() {
    let gate = Gate::new(rooms());
    // Not an upgrade, foreign origin, no cookie: the route still decides first.
    let req = Req::ws("/nope")
        .method("POST")
        .without("Upgrade")
        .header("Origin", "https://evil.example")
        .without("Cookie");
    let d = gate.deny(&req);
    assert_eq!(
        (d.refusal, d.check(), d.route),
        (Refusal::NoRoute, Check::Route, None)
    );
    assert_eq!(d.refusal.status(), 404);
    assert_eq!(gate.store.reads.get(), 0);
    // Near misses of the pattern are no route either.
    for path in [
        "/ws/rooms",
        "/ws/rooms/",
        "/ws/rooms/a/b",
        "/ws/rooms/%zz",
        "ws/rooms/a",
    ] {
        assert_eq!(
            gate.deny(&Req::ws(path)).refusal,
            Refusal::NoRoute,
            "{path}"
        );
    }
}

#[test]
fn non_upgrade_is_426_before_origin_and_cookie() {
    let gate = Gate::new(rooms());
    let base = Req::ws("/ws/rooms/lobby")
        .header("Origin", "https://evil.example")
        .without("Cookie");
    for req in [
        base.clone().without("Upgrade"),
        base.clone().header("Upgrade", "h2c"),
        base.clone().header("Upgrade", "websocket2"),
        base.clone().method("POST"),
        base.clone().method("HEAD"),
    ] {
        let d = gate.deny(&req);
        assert_eq!(
            (d.refusal, d.check(), d.route),
            (Refusal::NotUpgrade, Check::Upgrade, Some(0))
        );
        assert_eq!(d.refusal.status(), 426);
    }
    assert_eq!(gate.store.reads.get(), 0);
}

/// Hostile run finding 6: only the method and `Upgrade` were checked, so the Room accepted
/// (and announced) sockets for handshakes the platform then failed.
#[test]
fn rfc6455_handshake_needs_connection_upgrade_version_13_and_a_16_byte_key() {
    let gate = Gate::new(rooms());
    let base = Req::ws("/ws/rooms/lobby");
    for (req, refusal) in [
        (base.clone().without("Connection"), Refusal::NotUpgrade),
        (
            base.clone().header("Connection", "close"),
            Refusal::NotUpgrade,
        ),
        (
            base.clone().without("Sec-WebSocket-Version"),
            Refusal::UnsupportedVersion,
        ),
        (
            base.clone().header("Sec-WebSocket-Version", "8"),
            Refusal::UnsupportedVersion,
        ),
        (
            base.clone().header("Sec-WebSocket-Version", "13, 8"),
            Refusal::UnsupportedVersion,
        ),
        (
            base.clone().without("Sec-WebSocket-Key"),
            Refusal::BadHandshake,
        ),
        (
            base.clone().header("Sec-WebSocket-Key", ""),
            Refusal::BadHandshake,
        ),
        // 15 and 17 bytes, base64url instead of base64, no padding, not base64 at all.
        (
            base.clone()
                .header("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA"),
            Refusal::BadHandshake,
        ),
        (
            base.clone()
                .header("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA="),
            Refusal::BadHandshake,
        ),
        (
            base.clone()
                .header("Sec-WebSocket-Key", "_____________________w=="),
            Refusal::BadHandshake,
        ),
        (
            base.clone()
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"),
            Refusal::BadHandshake,
        ),
        (
            base.clone()
                .header("Sec-WebSocket-Key", "not a key at all!!!!!!=="),
            Refusal::BadHandshake,
        ),
    ] {
        let d = gate.deny(&req);
        assert_eq!(
            (d.refusal, d.check()),
            (refusal, Check::Upgrade),
            "{:?}",
            req.headers
        );
        // None of these can be answered with a socket, whatever deny_with says.
        assert!(!d.refusal.can_close());
    }
    assert_eq!(gate.store.reads.get(), 0);
    // Token lists and case, as browsers and proxies send them.
    gate.admit(&base.clone().header("Connection", "keep-alive, Upgrade"));
    gate.admit(&base.clone().header("Upgrade", "WebSocket"));
    gate.admit(
        &base
            .clone()
            .header("Sec-WebSocket-Key", " +/+/+/+/+/+/+/+/+/+/+w== "),
    );
    assert_eq!(Refusal::UnsupportedVersion.status(), 426);
    assert_eq!(Refusal::BadHandshake.status(), 400);
}

/// Hostile run finding 2: a room name of ~1,900 characters made the attachment exceed 2 KB
/// and the Room answered 500. Parameters are bounded before anything reaches the Room.
#[test]
fn long_path_parameter_is_414_before_origin_and_cookie_not_a_500_from_the_room() {
    let gate = Gate::new(rooms());
    let limit = decision::MAX_PARAM_BYTES;
    gate.admit(&Req::ws(&format!("/ws/rooms/{}", "a".repeat(limit))));
    for path in [
        format!("/ws/rooms/{}", "a".repeat(limit + 1)),
        format!("/ws/rooms/{}", "a".repeat(1_900)),
        // 86 snowmen are 258 bytes once decoded (the bound is on what the Room keeps).
        format!("/ws/rooms/{}", "%E2%98%83".repeat(86)),
        format!("/ws/rooms/{}", "%E2%98%83".repeat(700)),
    ] {
        let d = gate.deny(
            &Req::ws(&path)
                .header("Origin", "https://evil.example")
                .without("Cookie"),
        );
        assert_eq!(
            (d.refusal, d.check()),
            (Refusal::ParamTooLong, Check::Bounds)
        );
        assert_eq!((d.refusal.status(), d.refusal.close_code()), (414, 4414));
        assert!(d.refusal.can_close());
    }
    gate.admit(&Req::ws(&format!("/ws/rooms/{}", "%E2%98%83".repeat(85))));
    assert_eq!(gate.store.reads.get(), 2);
}

#[test]
fn long_query_is_414_only_where_the_rules_read_the_query() {
    let gate = Gate::new(json!({"routes": [
        {"path": "/ws/q/:room", "require": [{"query": "v", "gte": 2}]},
        {"path": "/ws/plain/:room"}
    ]}));
    let long = format!("v=3&pad={}", "x".repeat(decision::MAX_QUERY_BYTES));
    let d = gate.deny(&Req::ws("/ws/q/a").query(&long));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::QueryTooLong, Check::Bounds, 414)
    );
    gate.admit(&Req::ws("/ws/q/a").query("v=3"));
    // Not kept, so not bounded here (the platform bounds the URL).
    gate.admit(&Req::ws("/ws/plain/a").query(&long));
}

/// Hostile battery finding: the bounds counted raw bytes, but the Room keeps them
/// JSON-escaped (a `\` doubles, a control character takes 6), so a query of 1,000 backslashes
/// passed the bounds and the attachment overflowed into a 500.
#[test]
fn bounds_count_bytes_as_kept_json_escaped_not_raw() {
    let gate = Gate::new(json!({"routes": [
        {"path": "/ws/q/:room", "require": [{"query": "v", "gte": 2}]}
    ]}));
    let backslashes = format!("v=2&x={}", "%5C".repeat(600));
    let d = gate.deny(&Req::ws("/ws/q/a").query(&backslashes.replace("%5C", "\\")));
    assert_eq!(d.refusal, Refusal::QueryTooLong);
    // 43 control characters are 258 bytes escaped, though 43 raw.
    let d = gate.deny(&Req::ws(&format!("/ws/q/{}?", "%01".repeat(43))).query("v=2"));
    assert_eq!(d.refusal, Refusal::ParamTooLong);
    gate.admit(&Req::ws(&format!("/ws/q/{}", "%01".repeat(42))).query("v=2"));
    // Each within its own bound, together over what a socket may keep.
    let d = gate.deny(
        &Req::ws(&format!("/ws/q/{}", "r".repeat(200)))
            .query(&format!("v=2&pad={}", "x".repeat(900))),
    );
    assert_eq!(
        (d.refusal, d.refusal.status(), d.refusal.close_code()),
        (Refusal::RequestTooLong, 414, 4414)
    );
    assert_eq!(decision::json_len("a\\\"\u{1}☃"), 1 + 4 + 6 + 3);
}

#[test]
fn long_header_is_431_only_where_the_rules_read_it() {
    let gate = Gate::new(json!({"routes": [
        {"path": "/ws/h/:room", "require": [{"header": "x-client", "exists": true}]},
        {"path": "/ws/plain/:room"}
    ]}));
    let long = "t".repeat(decision::MAX_HEADER_BYTES + 1);
    let d = gate.deny(&Req::ws("/ws/h/a").header("X-Client", &long));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::HeaderTooLong, Check::Bounds, 431)
    );
    gate.admit(&Req::ws("/ws/h/a").header("X-Client", &long[1..]));
    gate.admit(&Req::ws("/ws/plain/a").header("X-Client", &long));
}

#[test]
fn upgrade_header_and_method_are_case_insensitive() {
    let gate = Gate::new(rooms());
    gate.admit(&Req::ws("/ws/rooms/lobby").header("upgrade", " WebSocket "));
    gate.admit(&Req::ws("/ws/rooms/lobby").method("get"));
}

#[test]
fn foreign_origin_is_403_before_the_cookie() {
    let gate = Gate::new(rooms());
    let d = gate.deny(
        &Req::ws("/ws/rooms/lobby")
            .header("Origin", "https://evil.example")
            .without("Cookie"),
    );
    assert_eq!(
        (d.refusal, d.check()),
        (Refusal::OriginNotAllowed, Check::Origin)
    );
    assert_eq!(d.refusal.status(), 403);
    assert_eq!(d.detail.as_deref(), Some("https://evil.example"));
    // The gate's own origin with another scheme or port is foreign too.
    for origin in [
        "http://gate.example.com",
        "https://gate.example.com:8443",
        "null",
        "",
    ] {
        assert_eq!(
            gate.deny(&Req::ws("/ws/rooms/lobby").header("Origin", origin))
                .check(),
            Check::Origin,
            "{origin}"
        );
    }
    assert_eq!(gate.store.reads.get(), 0);
}

#[test]
fn own_origin_is_allowed_by_default() {
    let gate = Gate::new(
        json!({"allowed_origins": ["https://other.example"], "routes": [{"path": "/ws/rooms/:room"}]}),
    );
    gate.admit(&Req::ws("/ws/rooms/lobby").header("Origin", OWN_ORIGIN));
    gate.admit(&Req::ws("/ws/rooms/lobby").header("Origin", "https://other.example"));
}

/// Hostile run finding 8: the gate's own origin comes from the request's Host. Pinned, only
/// `allowed_origins` count, whatever Host the request names.
#[test]
fn allow_own_origin_false_pins_the_origins_to_the_list() {
    let gate = Gate::new(json!({
        "allow_own_origin": false,
        "allowed_origins": ["https://app.example.com"],
        "routes": [{"path": "/ws/rooms/:room"}]
    }));
    let d = gate.deny(&Req::ws("/ws/rooms/lobby").header("Origin", OWN_ORIGIN));
    assert_eq!(d.refusal, Refusal::OriginNotAllowed);
    gate.admit(&Req::ws("/ws/rooms/lobby").header("Origin", "https://app.example.com"));
    let errors = sessiongate::config::Config::from_value(&json!({
        "allow_own_origin": false,
        "routes": [{"path": "/ws/rooms/:room"}]
    }))
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("allow_own_origin: false with no allowed_origins"),
        "{errors}"
    );
}

#[test]
fn glob_allowed_origin() {
    let gate = Gate::new(
        json!({"allowed_origins": ["https://*.example.com"], "routes": [{"path": "/ws/rooms/:room"}]}),
    );
    gate.admit(&Req::ws("/ws/rooms/lobby").header("Origin", "https://app.example.com"));
    gate.admit(&Req::ws("/ws/rooms/lobby").header("Origin", "https://a.b.example.com"));
    for bad in [
        "https://example.com",
        "http://app.example.com",
        "https://app.example.com.evil.net",
        "https://evilexample.com",
    ] {
        assert_eq!(
            gate.deny(&Req::ws("/ws/rooms/lobby").header("Origin", bad))
                .refusal,
            Refusal::OriginNotAllowed,
            "{bad}"
        );
    }
}

#[test]
fn missing_origin_is_allowed_by_default() {
    Gate::new(rooms()).admit(&Req::ws("/ws/rooms/lobby").without("Origin"));
}

#[test]
fn missing_origin_is_denied_with_allow_missing_origin_false() {
    let gate =
        Gate::new(json!({"allow_missing_origin": false, "routes": [{"path": "/ws/rooms/:room"}]}));
    let d = gate.deny(&Req::ws("/ws/rooms/lobby").without("Origin"));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::OriginNotAllowed, Check::Origin, 403)
    );
    gate.admit(&Req::ws("/ws/rooms/lobby"));
}

#[test]
fn missing_cookie_is_401() {
    let gate = Gate::new(rooms());
    for req in [
        Req::ws("/ws/rooms/lobby").without("Cookie"),
        Req::ws("/ws/rooms/lobby").cookie("theme=dark; other=1"),
        Req::ws("/ws/rooms/lobby").cookie(""),
        Req::ws("/ws/rooms/lobby").cookie("connect.sid"),
    ] {
        let d = gate.deny(&req);
        assert_eq!(
            (d.refusal, d.check(), d.refusal.status()),
            (Refusal::MissingCookie, Check::Cookie, 401)
        );
        assert_eq!(d.sid, None);
    }
    assert_eq!(gate.store.reads.get(), 0);
}

#[test]
fn cookie_name_is_configurable() {
    let gate = Gate::new(json!({"cookie_name": "sid", "routes": [{"path": "/ws/rooms/:room"}]}));
    assert_eq!(
        gate.deny(&Req::ws("/ws/rooms/lobby")).refusal,
        Refusal::MissingCookie
    );
    let value = sessiongate::cookie_format::CookieFormat::ExpressSession.cookie_value(
        &sessiongate::signature::Secrets::new(&[SECRET]).unwrap(),
        SID,
    );
    gate.admit(&Req::ws("/ws/rooms/lobby").cookie(&format!("sid={value}")));
}

#[test]
fn unsigned_sid_is_401_and_never_reaches_the_store() {
    let mut gate = Gate::new(rooms());
    // Even a store holding the bare sid as a key must not be asked.
    gate.store
        .map
        .insert(format!("sess:{SID}"), session_json().to_string());
    let signed = sessiongate::signature::Secrets::new(&[SECRET])
        .unwrap()
        .sign(SID);
    for cookie in [
        format!("connect.sid={SID}"),
        format!("connect.sid={signed}"), // signed but no s: prefix
        format!("connect.sid=s:{SID}"),  // prefix but no signature
        format!("connect.sid=s%3A{SID}"),
    ] {
        let d = gate.deny(&Req::ws("/ws/rooms/lobby").cookie(&cookie));
        assert_eq!(
            (d.refusal, d.check(), d.refusal.status()),
            (Refusal::BadSignature, Check::Signature, 401),
            "{cookie}"
        );
        assert_eq!(d.sid, None);
    }
    assert_eq!(gate.store.reads.get(), 0);
}

#[test]
fn bad_signature_is_401() {
    let gate = Gate::new(rooms());
    let good = cookie_for(SECRET, SID);
    let tampered_sid = good.replace(SID, "YYxA01K1Js0u7JYkqNzvolwuNnbFxjpG");
    for cookie in [
        tampered_sid,
        cookie_for("some other secret", SID),
        format!(
            "{}x",
            cookie_for(SECRET, SID).split(';').nth(1).unwrap().trim()
        ),
    ] {
        let d = gate.deny(&Req::ws("/ws/rooms/lobby").cookie(&cookie));
        assert_eq!(
            (d.refusal, d.check()),
            (Refusal::BadSignature, Check::Signature),
            "{cookie}"
        );
    }
    assert_eq!(gate.store.reads.get(), 0);
}

#[test]
fn empty_signed_sid_is_refused() {
    let gate = Gate::new(rooms());
    let d = gate.deny(&Req::ws("/ws/rooms/lobby").cookie(&cookie_for(SECRET, "")));
    assert_eq!(d.refusal, Refusal::BadSignature);
}

#[test]
fn unknown_session_is_401_with_the_sid_for_logs() {
    let gate = Gate::new(rooms());
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let d = gate.deny(&Req::ws("/ws/rooms/lobby").cookie(&cookie_for(SECRET, other)));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::UnknownSession, Check::Session, 401)
    );
    assert_eq!(d.sid.as_deref(), Some(other));
    assert_eq!(gate.store.reads.get(), 1);
}

#[test]
fn store_key_is_prefix_plus_sid() {
    // Default prefix "sess:": a store holding the bare sid does not know the session.
    let mut gate = Gate::new(rooms());
    gate.store.map.clear();
    gate.store
        .map
        .insert(SID.to_owned(), session_json().to_string());
    assert_eq!(
        gate.deny(&Req::ws("/ws/rooms/lobby")).refusal,
        Refusal::UnknownSession
    );
    // key_prefix "" (express-session-cloudflare-kv).
    let gate = Gate::new(json!({"key_prefix": "", "routes": [{"path": "/ws/rooms/:room"}]}));
    assert!(gate.store.map.contains_key(SID));
    gate.admit(&Req::ws("/ws/rooms/lobby"));
    let gate =
        Gate::new(json!({"key_prefix": "app1:sess:", "routes": [{"path": "/ws/rooms/:room"}]}));
    assert!(gate.store.map.contains_key(&format!("app1:sess:{SID}")));
    gate.admit(&Req::ws("/ws/rooms/lobby"));
}

#[test]
fn unreadable_session_json_is_401() {
    for json in [
        "not json",
        "[]",
        "\"text\"",
        "null",
        r#"{"cookie":{"expires":"tomorrow"}}"#,
        r#"{"cookie":{"expires":12}}"#,
        "",
    ] {
        let gate = Gate::with_session(rooms(), json);
        let d = gate.deny(&Req::ws("/ws/rooms/lobby"));
        assert_eq!(
            (d.refusal, d.check(), d.refusal.status()),
            (Refusal::UnreadableSession, Check::Session, 401),
            "{json}"
        );
        assert!(d.detail.is_some());
        assert_eq!(d.sid.as_deref(), Some(SID));
    }
}

#[test]
fn expired_session_is_401() {
    let gate = Gate::new(rooms()).at(EXPIRES + 1);
    let d = gate.deny(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::SessionExpired, Check::Session, 401)
    );
}

#[test]
fn session_expiring_exactly_now_is_expired() {
    let d = Gate::new(rooms())
        .at(EXPIRES)
        .deny(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(d.refusal, Refusal::SessionExpired);
    Gate::new(rooms())
        .at(EXPIRES - 1)
        .admit(&Req::ws("/ws/rooms/lobby"));
}

#[test]
fn null_or_absent_expires_never_expires_at_the_edge() {
    let null =
        json!({"cookie": {"originalMaxAge": null, "expires": null}, "passport": {"user": "u"}})
            .to_string();
    let a = Gate::with_session(rooms(), &null)
        .at(i64::MAX)
        .admit(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(a.expires_at_ms, None);
    let absent = json!({"passport": {"user": "u"}}).to_string();
    Gate::with_session(rooms(), &absent)
        .at(i64::MAX)
        .admit(&Req::ws("/ws/rooms/lobby"));
}

#[test]
fn expiry_with_an_offset_is_honoured() {
    // 13:30+01:30 is 12:00Z.
    let json = json!({"cookie": {"expires": "2026-11-26T13:30:00.000+01:30"}}).to_string();
    assert_eq!(
        Gate::with_session(rooms(), &json)
            .at(EXPIRES)
            .deny(&Req::ws("/ws/rooms/lobby"))
            .refusal,
        Refusal::SessionExpired
    );
    Gate::with_session(rooms(), &json)
        .at(EXPIRES - 1)
        .admit(&Req::ws("/ws/rooms/lobby"));
}

#[test]
fn store_error_fails_closed_with_503() {
    let gate = Gate {
        config: config(rooms()),
        secrets: sessiongate::signature::Secrets::new(&[SECRET]).unwrap(),
        store: FailingStore,
        now: NOW,
    };
    let d = gate.deny(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::StoreUnavailable, Check::Store, 503)
    );
    assert_eq!(d.detail.as_deref(), Some("kv timeout"));
    assert_eq!(d.sid.as_deref(), Some(SID));
    assert_eq!(d.refusal.close_code(), 4503);
}

#[test]
fn store_error_is_not_reached_without_a_valid_signature() {
    let gate = Gate {
        config: config(rooms()),
        secrets: sessiongate::signature::Secrets::new(&[SECRET]).unwrap(),
        store: FailingStore,
        now: NOW,
    };
    assert_eq!(
        gate.deny(&Req::ws("/ws/rooms/lobby").cookie("connect.sid=junk"))
            .refusal,
        Refusal::BadSignature
    );
    assert_eq!(
        gate.deny(&Req::ws("/ws/rooms/lobby").without("Cookie"))
            .refusal,
        Refusal::MissingCookie
    );
}

/// Hostile run finding 4: with the KV binding missing the gate answered 503 with the global
/// `deny_with` before anything else. The store is asked last, and its refusal uses the
/// route's `deny_with`; every earlier refusal keeps its own answer.
#[test]
fn store_that_cannot_be_opened_answers_after_the_signature_with_the_routes_deny_with() {
    let gate = Gate {
        config: config(json!({
            "deny_with": "status",
            "routes": [{"path": "/ws/close/:room", "deny_with": "close"}]
        })),
        secrets: sessiongate::signature::Secrets::new(&[SECRET]).unwrap(),
        store: FailingStore,
        now: NOW,
    };
    let d = gate.deny(&Req::ws("/ws/close/a"));
    assert_eq!(
        (d.refusal, d.deny_with),
        (Refusal::StoreUnavailable, DenyWith::Close)
    );
    for (req, refusal) in [
        (Req::ws("/nope"), Refusal::NoRoute),
        (
            Req::ws("/ws/close/a").without("Upgrade"),
            Refusal::NotUpgrade,
        ),
        (
            Req::ws("/ws/close/a").header("Origin", "https://evil.example"),
            Refusal::OriginNotAllowed,
        ),
        (
            Req::ws("/ws/close/a").without("Cookie"),
            Refusal::MissingCookie,
        ),
        (
            Req::ws("/ws/close/a").cookie("connect.sid=s%3Ajunk.sig"),
            Refusal::BadSignature,
        ),
    ] {
        assert_eq!(gate.deny(&req).refusal, refusal);
    }
}

#[test]
fn failing_rule_is_403_and_names_the_rule_for_logs_only() {
    let gate = Gate::new(json!({"routes": [{"path": "/ws/rooms/:room",
        "require": [{"session": "passport.user", "exists": true}, {"session": "user.roles", "contains": "owner"}]}]}));
    let d = gate.deny(&Req::ws("/ws/rooms/lobby"));
    assert_eq!(
        (d.refusal, d.check(), d.refusal.status()),
        (Refusal::RuleDenied, Check::Rules, 403)
    );
    assert_eq!(
        d.detail.as_deref(),
        Some("routes[0].require[1] (session user.roles contains \"owner\")")
    );
    assert_eq!(d.refusal.reason(), "rule denied");
    assert_eq!(d.sid.as_deref(), Some(SID));
}

// ---------------------------------------------------------------------- secret rotation

#[test]
fn secret_rotation_old_cookie_verifies_with_the_list_only() {
    let old_cookie = cookie_for(OLD_SECRET, SID);
    let rotated = Gate::new(rooms()).secrets(&[SECRET, OLD_SECRET]);
    assert_eq!(
        rotated
            .admit(&Req::ws("/ws/rooms/lobby").cookie(&old_cookie))
            .sid,
        SID
    );
    rotated.admit(&Req::ws("/ws/rooms/lobby"));
    let new_only = Gate::new(rooms()).secrets(&[SECRET]);
    assert_eq!(
        new_only
            .deny(&Req::ws("/ws/rooms/lobby").cookie(&old_cookie))
            .refusal,
        Refusal::BadSignature
    );
    let old_only = Gate::new(rooms()).secrets(&[OLD_SECRET]);
    assert_eq!(
        old_only.deny(&Req::ws("/ws/rooms/lobby")).refusal,
        Refusal::BadSignature
    );
}

// ----------------------------------------------------------------------------- deny_with

#[test]
fn deny_with_defaults_to_status() {
    let gate = Gate::new(rooms());
    assert_eq!(gate.deny(&Req::ws("/nope")).deny_with, DenyWith::Status);
    assert_eq!(
        gate.deny(&Req::ws("/ws/rooms/x").without("Cookie"))
            .deny_with,
        DenyWith::Status
    );
}

#[test]
fn deny_with_global_and_per_route() {
    let gate = Gate::new(json!({"deny_with": "close", "routes": [
        {"path": "/ws/a/:room"},
        {"path": "/ws/b/:room", "deny_with": "status"}
    ]}));
    // Before a route matched: the global setting.
    assert_eq!(gate.deny(&Req::ws("/nope")).deny_with, DenyWith::Close);
    // A route without its own: the global one.
    assert_eq!(
        gate.deny(&Req::ws("/ws/a/x").without("Cookie")).deny_with,
        DenyWith::Close
    );
    // A route's own wins, from the upgrade check on.
    let d = gate.deny(&Req::ws("/ws/b/x").without("Upgrade"));
    assert_eq!((d.deny_with, d.route), (DenyWith::Status, Some(1)));
    assert_eq!(
        gate.deny(&Req::ws("/ws/b/x").without("Cookie")).deny_with,
        DenyWith::Status
    );

    let gate = Gate::new(json!({"routes": [{"path": "/ws/a/:room", "deny_with": "close"}]}));
    assert_eq!(gate.deny(&Req::ws("/nope")).deny_with, DenyWith::Status);
    assert_eq!(
        gate.deny(&Req::ws("/ws/a/x").without("Cookie")).deny_with,
        DenyWith::Close
    );
}

// -------------------------------------------------------------------- Refusal mapping

#[test]
fn refusal_status_and_close_code_mapping() {
    let table = [
        (Refusal::NoRoute, 404),
        (Refusal::ParamTooLong, 414),
        (Refusal::QueryTooLong, 414),
        (Refusal::HeaderTooLong, 431),
        (Refusal::RequestTooLong, 414),
        (Refusal::NotUpgrade, 426),
        (Refusal::UnsupportedVersion, 426),
        (Refusal::BadHandshake, 400),
        (Refusal::OriginNotAllowed, 403),
        (Refusal::MissingCookie, 401),
        (Refusal::BadSignature, 401),
        (Refusal::UnknownSession, 401),
        (Refusal::UnreadableSession, 401),
        (Refusal::SessionExpired, 401),
        (Refusal::SessionRevoked, 401),
        (Refusal::RuleDenied, 403),
        (Refusal::StoreUnavailable, 503),
        (Refusal::TooManyForSession, 429),
        (Refusal::RoomFull, 429),
    ];
    let mut reasons = std::collections::HashSet::new();
    for (refusal, status) in table {
        assert_eq!(refusal.status(), status, "{refusal:?}");
        assert_eq!(refusal.close_code(), 4000 + status, "{refusal:?}");
        // Application close codes are 4000-4999.
        assert!((4000..=4999).contains(&refusal.close_code()));
        // Reasons are short (close frames allow 123 bytes) and distinct.
        assert!(!refusal.reason().is_empty() && refusal.reason().len() <= 123);
        assert!(
            reasons.insert(refusal.reason()),
            "duplicate reason {}",
            refusal.reason()
        );
    }
    assert_eq!(Refusal::OriginNotAllowed.close_code(), 4403);
    assert_eq!(Refusal::MissingCookie.close_code(), 4401);
}

#[test]
fn check_names() {
    let names: Vec<&str> = [
        Check::Route,
        Check::Upgrade,
        Check::Bounds,
        Check::Origin,
        Check::Cookie,
        Check::Signature,
        Check::Store,
        Check::Session,
        Check::Rules,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "route",
            "upgrade",
            "bounds",
            "origin",
            "cookie",
            "signature",
            "store",
            "session",
            "rules"
        ]
    );
}

/// The gate reads the runtime's serialized URL without a URL parser (the `url` crate and its
/// tables were about a quarter of the wasm): the same origin, path and query as
/// `new URL(u).origin`, `.pathname`, `.search` without its `?`.
#[test]
fn split_url_matches_whatwg_for_serialized_urls() {
    for (url, want) in [
        (
            "https://gate.example.com/ws/rooms/a?v=2",
            ("https://gate.example.com", "/ws/rooms/a", "v=2"),
        ),
        (
            "http://127.0.0.1:8787/ws/a%3Fb?x=1&y=%3F#frag",
            ("http://127.0.0.1:8787", "/ws/a%3Fb", "x=1&y=%3F"),
        ),
        (
            "https://xn--bcher-kva.example/ws/x",
            ("https://xn--bcher-kva.example", "/ws/x", ""),
        ),
        (
            "https://gate.example.com/",
            ("https://gate.example.com", "/", ""),
        ),
        (
            "https://gate.example.com/?",
            ("https://gate.example.com", "/", ""),
        ),
        (
            "https://[::1]:8443/ws/x?#",
            ("https://[::1]:8443", "/ws/x", ""),
        ),
    ] {
        assert_eq!(decision::split_url(url), want, "{url}");
    }
}
