//! What the config accepts, what it refuses, and the exact messages an operator reads.

use super::*;
use crate::rules::RuleKind;
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
    assert_eq!(
        c.log_admissions, 100,
        "admissions sampled, refusals always logged"
    );
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
        vec![
            "routes[1].require[0]: unknown operator \"eq\" (did you mean \"equals\"?; operators: \
             exists, equals, not_equals, in, contains, matches, gt, gte, lt, lte)"
        ]
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
            "routes[0].require[4]: unknown subject \"sesion\" (did you mean \"session\"?; subjects: \
             session, param, query, header)",
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
fn conditions_are_listed_in_order_with_their_list_and_index() {
    let c = Config::from_value(&json!({"routes": [{"path": "/a",
        "exclude": [{"header": "X-A", "exists": true}],
        "require": [{"session": "a", "exists": true}, {"query": "q", "equals": 1}],
        "include": [{"session": "b", "gt": 2}]
    }]}))
    .unwrap();
    let listed: Vec<(RuleKind, usize, &str)> = c.routes[0]
        .rules
        .conditions()
        .map(|(kind, i, c)| (kind, i, c.text.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (RuleKind::Require, 0, "session a exists true"),
            (RuleKind::Require, 1, "query q equals 1"),
            (RuleKind::Include, 0, "session b gt 2"),
            (RuleKind::Exclude, 0, "header x-a exists true"),
        ]
    );
    assert_eq!(c.request_subjects(0), (&["x-a".to_owned()][..], true));
    let mut paths = crate::session_view::PathSet::default();
    for path in ["passport.user", "a", "b"] {
        paths.insert(path);
    }
    assert_eq!(c.session_paths, paths);
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

#[test]
fn an_index_shard_count_past_one_revocations_subrequests_is_refused() {
    // A revocation's home shard asks every other shard: a count past the subrequests one
    // Durable Object request may make would fail every revocation at run time.
    let e =
        errors(json!({"index_shards": 1001, "routes": [{"path": "/ws/:room", "room": "{room}"}]}));
    assert_eq!(
        e,
        ["index_shards: expected a whole number from 1 to 1000, found 1001"]
    );
}
