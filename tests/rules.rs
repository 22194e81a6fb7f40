//! Rule operators, subjects, placeholders and include/require/exclude semantics, driven
//! through `decision::decide` so each case is a real handshake.

mod common;

use common::*;
use serde_json::{json, Value};
use sessiongate::decision::{Check, Refusal};

/// Route `/ws/:org/:room`; the given rule lists on the route.
fn route_rules(rules: Value) -> Value {
    let mut route = json!({"path": "/ws/:org/:room", "room": "{org}:{room}"});
    for (k, v) in rules.as_object().unwrap() {
        route[k] = v.clone();
    }
    json!({"routes": [route]})
}

/// Does the handshake pass a single `require` condition? Panics on any non-rule denial.
fn holds_with(cond: Value, session: &Value, req: &Req) -> bool {
    let gate = Gate::with_session(
        route_rules(json!({"require": [cond.clone()]})),
        &session.to_string(),
    );
    match gate.decide(req) {
        Ok(_) => true,
        Err(d) if d.refusal == Refusal::RuleDenied && d.check() == Check::Rules => false,
        Err(d) => panic!("{cond}: denied by {:?}, not by the rule", d.refusal),
    }
}

fn holds(cond: Value) -> bool {
    holds_with(cond, &session_json(), &Req::ws("/ws/acme/lobby"))
}

fn holds_on(cond: Value, session: Value) -> bool {
    holds_with(cond, &session, &Req::ws("/ws/acme/lobby"))
}

fn holds_req(cond: Value, req: Req) -> bool {
    holds_with(cond, &session_json(), &req)
}

fn sess(fields: Value) -> Value {
    let mut s = json!({"cookie": {"expires": null}});
    for (k, v) in fields.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

// ----------------------------------------------------------------------------- exists

#[test]
fn exists_true_and_false() {
    assert!(holds(json!({"session": "passport.user", "exists": true})));
    assert!(!holds(json!({"session": "passport.user", "exists": false})));
    assert!(!holds(json!({"session": "user.banned", "exists": true})));
    assert!(holds(json!({"session": "user.banned", "exists": false})));
    // Array indexes are path segments.
    assert!(holds(json!({"session": "user.roles.1", "exists": true})));
    assert!(!holds(json!({"session": "user.roles.2", "exists": true})));
}

#[test]
fn exists_treats_json_null_as_absent() {
    let s = sess(json!({"passport": {"user": null}}));
    assert!(!holds_on(
        json!({"session": "passport.user", "exists": true}),
        s.clone()
    ));
    assert!(holds_on(
        json!({"session": "passport.user", "exists": false}),
        s
    ));
}

// ----------------------------------------------------------------------------- equals

#[test]
fn equals_and_not_equals_on_strings() {
    assert!(holds(json!({"session": "passport.user", "equals": "u-42"})));
    assert!(!holds(
        json!({"session": "passport.user", "equals": "u-43"})
    ));
    assert!(!holds(
        json!({"session": "passport.user", "equals": "U-42"})
    ));
    assert!(holds(
        json!({"session": "passport.user", "not_equals": "u-43"})
    ));
    assert!(!holds(
        json!({"session": "passport.user", "not_equals": "u-42"})
    ));
}

#[test]
fn not_equals_on_a_missing_field_does_not_hold() {
    // A condition on an absent value does not hold (except exists = false).
    assert!(!holds(
        json!({"session": "user.missing", "not_equals": "x"})
    ));
    assert!(!holds(json!({"session": "user.missing", "equals": "x"})));
}

#[test]
fn equals_numbers_and_booleans_in_the_session() {
    assert!(holds(json!({"session": "user.age", "equals": 36})));
    assert!(holds(json!({"session": "user.age", "equals": 36.0})));
    assert!(!holds(json!({"session": "user.age", "equals": 37})));
    // A string in the config equals a session number when it is its JSON text.
    assert!(holds(json!({"session": "user.age", "equals": "36"})));
    let s = sess(json!({"user": {"admin": true, "id": "42"}}));
    assert!(holds_on(
        json!({"session": "user.admin", "equals": true}),
        s.clone()
    ));
    assert!(holds_on(
        json!({"session": "user.admin", "equals": "true"}),
        s.clone()
    ));
    assert!(!holds_on(
        json!({"session": "user.admin", "equals": false}),
        s.clone()
    ));
    // A session string equals a config number whose JSON text it is.
    assert!(holds_on(json!({"session": "user.id", "equals": 42}), s));
}

#[test]
fn equals_number_vs_string_from_param_query_and_header() {
    let req = Req::ws("/ws/acme/5")
        .query("n=5&b=true")
        .header("X-Level", "5");
    assert!(holds_req(
        json!({"param": "room", "equals": 5}),
        req.clone()
    ));
    assert!(holds_req(json!({"query": "n", "equals": 5}), req.clone()));
    assert!(holds_req(
        json!({"header": "x-level", "equals": 5}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"query": "b", "equals": true}),
        req.clone()
    ));
    assert!(!holds_req(
        json!({"param": "room", "equals": 6}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"param": "room", "not_equals": 6}),
        req.clone()
    ));
    assert!(!holds_req(json!({"param": "room", "not_equals": 5}), req));
}

#[test]
fn equals_with_param_placeholder() {
    let s = sess(json!({"user": {"id": 42, "org": "acme"}}));
    assert!(holds_with(
        json!({"session": "user.id", "equals": "{room}"}),
        &s,
        &Req::ws("/ws/acme/42")
    ));
    assert!(!holds_with(
        json!({"session": "user.id", "equals": "{room}"}),
        &s,
        &Req::ws("/ws/acme/43")
    ));
    assert!(holds_with(
        json!({"session": "user.org", "equals": "{org}"}),
        &s,
        &Req::ws("/ws/acme/x")
    ));
    assert!(!holds_with(
        json!({"session": "user.org", "equals": "{org}"}),
        &s,
        &Req::ws("/ws/other/x")
    ));
    assert!(holds_with(
        json!({"session": "user.org", "not_equals": "{org}"}),
        &s,
        &Req::ws("/ws/other/x")
    ));
    // Placeholders are rendered with the decoded parameter.
    assert!(holds_with(
        json!({"session": "user.org", "equals": "{org}"}),
        &s,
        &Req::ws("/ws/%61cme/x")
    ));
    // Literal braces next to a placeholder render as one brace.
    let s = sess(json!({"v": "{acme}"}));
    assert!(holds_with(
        json!({"session": "v", "equals": "{{{org}}}"}),
        &s,
        &Req::ws("/ws/acme/x")
    ));
    // (Literal braces in a value WITHOUT placeholders: see
    // literal_braces_in_rule_values_without_placeholders_are_unescaped.)
}

// --------------------------------------------------------------------------------- in

#[test]
fn in_list() {
    assert!(holds(
        json!({"session": "passport.user", "in": ["u-1", "u-42"]})
    ));
    assert!(!holds(
        json!({"session": "passport.user", "in": ["u-1", "u-2"]})
    ));
    assert!(holds(json!({"session": "user.age", "in": [18, 36]})));
    assert!(holds(json!({"session": "user.age", "in": ["36"]})));
    assert!(holds_req(
        json!({"param": "room", "in": ["lobby", 7]}),
        Req::ws("/ws/acme/7")
    ));
    assert!(holds_req(
        json!({"param": "room", "in": ["lobby", 7]}),
        Req::ws("/ws/acme/lobby")
    ));
    assert!(!holds_req(
        json!({"param": "room", "in": ["lobby", 7]}),
        Req::ws("/ws/acme/8")
    ));
    // Placeholders inside the list.
    let s = sess(json!({"home": "acme"}));
    assert!(holds_with(
        json!({"session": "home", "in": ["x", "{org}"]}),
        &s,
        &Req::ws("/ws/acme/r")
    ));
    assert!(!holds_with(
        json!({"session": "home", "in": ["x", "{org}"]}),
        &s,
        &Req::ws("/ws/beta/r")
    ));
}

// --------------------------------------------------------------------------- contains

#[test]
fn contains_on_arrays() {
    assert!(holds(json!({"session": "user.roles", "contains": "chat"})));
    assert!(!holds(
        json!({"session": "user.roles", "contains": "owner"})
    ));
    assert!(
        !holds(json!({"session": "user.roles", "contains": "cha"})),
        "array items compare whole"
    );
    let s = sess(json!({"ids": [1, 2, 3], "flags": [true]}));
    assert!(holds_on(
        json!({"session": "ids", "contains": 3}),
        s.clone()
    ));
    assert!(holds_on(
        json!({"session": "ids", "contains": 3.0}),
        s.clone()
    ));
    assert!(!holds_on(
        json!({"session": "ids", "contains": 4}),
        s.clone()
    ));
    assert!(holds_on(json!({"session": "flags", "contains": true}), s));
    // Placeholder item.
    let s = sess(json!({"rooms": ["lobby", "dev"]}));
    assert!(holds_with(
        json!({"session": "rooms", "contains": "{room}"}),
        &s,
        &Req::ws("/ws/acme/dev")
    ));
    assert!(!holds_with(
        json!({"session": "rooms", "contains": "{room}"}),
        &s,
        &Req::ws("/ws/acme/ops")
    ));
}

#[test]
fn contains_on_strings() {
    assert!(holds(json!({"session": "user.team", "contains": "acme"})));
    assert!(holds(json!({"session": "user.team", "contains": "-"})));
    assert!(!holds(json!({"session": "user.team", "contains": "red"})));
    assert!(holds_req(
        json!({"header": "user-agent", "contains": "Bot"}),
        Req::ws("/ws/a/b").header("User-Agent", "FooBot/1.0")
    ));
    assert!(holds_req(
        json!({"query": "tags", "contains": 42}),
        Req::ws("/ws/a/b").query("tags=x42y")
    ));
    assert!(holds_with(
        json!({"session": "user.team", "contains": "{org}"}),
        &session_json(),
        &Req::ws("/ws/acme/x")
    ));
    // A number is not a string to search in.
    assert!(!holds(json!({"session": "user.age", "contains": "3"})));
}

// ---------------------------------------------------------------------------- matches

#[test]
fn matches_glob() {
    assert!(holds_req(
        json!({"param": "room", "matches": "public-*"}),
        Req::ws("/ws/acme/public-lobby")
    ));
    assert!(!holds_req(
        json!({"param": "room", "matches": "public-*"}),
        Req::ws("/ws/acme/private-lobby")
    ));
    assert!(holds_req(
        json!({"param": "room", "matches": "room-[0-9]?"}),
        Req::ws("/ws/acme/room-7x")
    ));
    assert!(!holds_req(
        json!({"param": "room", "matches": "room-[0-9]?"}),
        Req::ws("/ws/acme/room-xx")
    ));
    assert!(holds(json!({"session": "user.team", "matches": "acme-*"})));
    // Only strings match a glob.
    assert!(!holds(json!({"session": "user.age", "matches": "*"})));
    assert!(!holds(json!({"session": "user.roles", "matches": "*"})));
}

#[test]
fn matches_with_placeholder() {
    assert!(holds_with(
        json!({"session": "user.team", "matches": "{org}-*"}),
        &session_json(),
        &Req::ws("/ws/acme/x")
    ));
    assert!(!holds_with(
        json!({"session": "user.team", "matches": "{org}-*"}),
        &session_json(),
        &Req::ws("/ws/beta/x")
    ));
}

#[test]
fn matches_placeholder_value_with_glob_characters_cannot_widen_the_glob() {
    // user.team is "acme-blue". A room/org parameter full of glob syntax must match literally.
    let s = session_json();
    for org in ["*", "a*", "%2A", "????", "[a-z]cme", "acm?", "\\*", "*%5D"] {
        let req = Req::ws(&format!("/ws/{org}/x"));
        assert!(
            !holds_with(
                json!({"session": "user.team", "matches": "{org}-*"}),
                &s,
                &req
            ),
            "org {org:?} widened the glob"
        );
    }
    // A session value holding the same literal characters still matches.
    let literal = sess(json!({"user": {"team": "*-blue"}}));
    assert!(holds_with(
        json!({"session": "user.team", "matches": "{org}-*"}),
        &literal,
        &Req::ws("/ws/*/x")
    ));
    let literal = sess(json!({"user": {"team": "[a-z]cme-x"}}));
    assert!(holds_with(
        json!({"session": "user.team", "matches": "{org}-*"}),
        &literal,
        &Req::ws("/ws/[a-z]cme/x")
    ));
}

#[test]
fn matches_placeholder_cannot_be_reached_by_an_escape_or_a_class() {
    // `\{org}` would let the escape swallow the value's first char, `[{room}]` would make a
    // value like `a-z` a range: both are config errors, never a wider glob.
    for (pattern, message) in [
        ("\\{org}-*", "glob ends with a lone '\\'"),
        ("[{room}]", "unclosed '[' in glob"),
        ("x[{org}-z]", "unclosed '[' in glob"),
    ] {
        let value = route_rules(json!({"require": [{"session": "user.team", "matches": pattern}]}));
        let errors = sessiongate::config::Config::from_value(&value)
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("routes[0].require[0].matches: bad glob") && errors.contains(message),
            "{pattern}: {errors}"
        );
    }
    // An escape that ends before the placeholder is fine: `\*` is a literal star.
    let s = sess(json!({"user": {"team": "*acme"}}));
    assert!(holds_with(
        json!({"session": "user.team", "matches": "\\*{org}"}),
        &s,
        &Req::ws("/ws/acme/x")
    ));
    assert!(!holds_with(
        json!({"session": "user.team", "matches": "\\*{org}"}),
        &s,
        &Req::ws("/ws/beta/x")
    ));
}

#[test]
fn literal_braces_in_rule_values_without_placeholders_are_unescaped() {
    // `{{` / `}}` are literal braces with or without a placeholder next to them.
    let s = sess(json!({"v": "{x}", "list": ["{x}"]}));
    let req = Req::ws("/ws/a/b");
    assert!(
        holds_with(json!({"session": "v", "equals": "{{x}}"}), &s, &req),
        "equals"
    );
    assert!(
        holds_with(json!({"session": "v", "in": ["{{x}}"]}), &s, &req),
        "in"
    );
    assert!(
        holds_with(json!({"session": "list", "contains": "{{x}}"}), &s, &req),
        "contains"
    );
    assert!(
        holds_with(json!({"session": "v", "contains": "{{"}), &s, &req),
        "contains in a string"
    );
    assert!(
        holds_with(json!({"session": "v", "matches": "{{*}}"}), &s, &req),
        "matches"
    );
    assert!(!holds_with(
        json!({"session": "v", "equals": "{{{{x}}}}"}),
        &s,
        &req
    ));
}

// ---------------------------------------------------------------------- gt gte lt lte

#[test]
fn comparisons_on_session_numbers() {
    assert!(holds(json!({"session": "user.age", "gt": 35})));
    assert!(!holds(json!({"session": "user.age", "gt": 36})));
    assert!(holds(json!({"session": "user.age", "gte": 36})));
    assert!(!holds(json!({"session": "user.age", "gte": 36.5})));
    assert!(holds(json!({"session": "user.age", "lt": 36.5})));
    assert!(!holds(json!({"session": "user.age", "lt": 36})));
    assert!(holds(json!({"session": "user.age", "lte": 36})));
    assert!(!holds(json!({"session": "user.age", "lte": 35})));
    // Non-numbers never compare.
    assert!(!holds(json!({"session": "user.name", "gt": 0})));
    assert!(!holds(json!({"session": "user.missing", "lt": 1e300})));
}

#[test]
fn comparisons_on_numeric_strings_from_the_request() {
    let req = Req::ws("/ws/acme/7")
        .query("n=-1.5&junk=abc&inf=inf")
        .header("X-Level", " 10 ");
    assert!(holds_req(json!({"param": "room", "lt": 8}), req.clone()));
    assert!(!holds_req(json!({"param": "room", "lt": 7}), req.clone()));
    assert!(holds_req(json!({"param": "room", "lte": 7}), req.clone()));
    assert!(holds_req(json!({"query": "n", "gt": -2}), req.clone()));
    assert!(!holds_req(json!({"query": "n", "gte": -1}), req.clone()));
    assert!(holds_req(
        json!({"header": "x-level", "gte": 10}),
        req.clone()
    ));
    assert!(!holds_req(
        json!({"header": "x-level", "gt": 10}),
        req.clone()
    ));
    assert!(!holds_req(json!({"query": "junk", "gt": 0}), req.clone()));
    assert!(!holds_req(json!({"query": "junk", "lt": 0}), req.clone()));
    // Infinity is not a number a rule can be satisfied with.
    assert!(!holds_req(json!({"query": "inf", "gt": 0}), req.clone()));
    assert!(!holds_req(json!({"query": "absent", "gt": -1e300}), req));
}

// --------------------------------------------------------------------------- subjects

#[test]
fn query_subject_first_value_decoded() {
    let req = Req::ws("/ws/a/b").query("room=first&room=second&q=a+b%20c&flag");
    assert!(holds_req(
        json!({"query": "room", "equals": "first"}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"query": "q", "equals": "a b c"}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"query": "flag", "exists": true}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"query": "flag", "equals": ""}),
        req.clone()
    ));
    assert!(holds_req(json!({"query": "nope", "exists": false}), req));
}

#[test]
fn header_subject_is_case_insensitive() {
    let req = Req::ws("/ws/a/b").header("x-team", "blue");
    assert!(holds_req(
        json!({"header": "X-Team", "equals": "blue"}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"header": "x-team", "equals": "blue"}),
        req.clone()
    ));
    assert!(!holds_req(
        json!({"header": "x-team", "equals": "Blue"}),
        req.clone()
    ));
    assert!(holds_req(
        json!({"header": "x-other", "exists": false}),
        req
    ));
}

#[test]
fn param_subject() {
    assert!(holds_req(
        json!({"param": "org", "equals": "acme"}),
        Req::ws("/ws/acme/x")
    ));
    assert!(holds_req(
        json!({"param": "room", "equals": "a b"}),
        Req::ws("/ws/acme/a%20b")
    ));
}

// --------------------------------------------------------- require / include / exclude

fn decide(rules: Value, session: &Value, req: &Req) -> Decision {
    Gate::with_session(route_rules(rules), &session.to_string()).decide(req)
}

fn detail(d: Decision) -> String {
    match d {
        Err(d) => {
            assert_eq!(d.refusal, Refusal::RuleDenied);
            d.detail.unwrap()
        }
        Ok(a) => panic!("admitted {a:?}"),
    }
}

#[test]
fn empty_include_is_ok() {
    let d = decide(json!({"include": []}), &session_json(), &Req::ws("/ws/a/b"));
    assert!(d.is_ok());
    let d = decide(json!({}), &session_json(), &Req::ws("/ws/a/b"));
    assert!(d.is_ok());
}

#[test]
fn include_needs_one_to_hold() {
    let include = json!({"include": [
        {"session": "user.roles", "contains": "owner"},
        {"param": "room", "matches": "public-*"}
    ]});
    let admitted = |path: &str| decide(include.clone(), &session_json(), &Req::ws(path)).is_ok();
    assert!(admitted("/ws/acme/public-x"));
    assert!(!admitted("/ws/acme/private-x"));
    let d = detail(decide(
        include.clone(),
        &session_json(),
        &Req::ws("/ws/acme/private-x"),
    ));
    assert!(
        d.starts_with("routes[0].include[0] (none of 2 include conditions held"),
        "{d}"
    );
    // The first that holds is enough.
    let s = sess(json!({"user": {"roles": ["owner"]}}));
    assert!(decide(include, &s, &Req::ws("/ws/acme/private-x")).is_ok());
}

#[test]
fn require_needs_all() {
    let rules = json!({"require": [
        {"session": "passport.user", "exists": true},
        {"session": "user.roles", "contains": "admin"}
    ]});
    assert!(decide(rules.clone(), &session_json(), &Req::ws("/ws/a/b")).is_ok());
    let s = sess(json!({"passport": {"user": "u"}, "user": {"roles": ["chat"]}}));
    assert_eq!(
        detail(decide(rules.clone(), &s, &Req::ws("/ws/a/b"))),
        "routes[0].require[1] (session user.roles contains \"admin\")"
    );
    let s = sess(json!({"user": {"roles": ["admin"]}}));
    assert_eq!(
        detail(decide(rules, &s, &Req::ws("/ws/a/b"))),
        "routes[0].require[0] (session passport.user exists true)"
    );
}

#[test]
fn exclude_on_a_missing_field_does_not_exclude() {
    let rules = json!({"exclude": [{"session": "user.banned", "equals": true}]});
    assert!(decide(rules.clone(), &session_json(), &Req::ws("/ws/a/b")).is_ok());
    let s = sess(json!({"user": {"banned": null}}));
    assert!(decide(rules.clone(), &s, &Req::ws("/ws/a/b")).is_ok());
    let s = sess(json!({"user": {"banned": false}}));
    assert!(decide(rules.clone(), &s, &Req::ws("/ws/a/b")).is_ok());
    let s = sess(json!({"user": {"banned": true}}));
    assert_eq!(
        detail(decide(rules, &s, &Req::ws("/ws/a/b"))),
        "routes[0].exclude[0] (session user.banned equals true)"
    );
}

#[test]
fn exclude_wins_over_include() {
    let rules = json!({
        "include": [{"session": "user.roles", "contains": "chat"}],
        "exclude": [{"param": "room", "equals": "secret"}]
    });
    assert!(decide(rules.clone(), &session_json(), &Req::ws("/ws/a/lobby")).is_ok());
    assert!(
        detail(decide(rules, &session_json(), &Req::ws("/ws/a/secret")))
            .starts_with("routes[0].exclude[0]")
    );
}

#[test]
fn global_rules_run_before_route_rules() {
    let config = json!({
        "require": [{"session": "user.roles", "contains": "owner"}],
        "routes": [{"path": "/ws/:org/:room", "require": [{"session": "user.missing", "exists": true}]}]
    });
    let gate = Gate::new(config);
    let (d, trace) = gate.decide_traced(&Req::ws("/ws/a/b"));
    assert_eq!(
        detail(d),
        "require[0] (session user.roles contains \"owner\")"
    );
    // The route's rules were never evaluated.
    assert!(trace.iter().all(|s| !s.check.starts_with("routes[")));

    // Global passes, route fails: the route's rule is named with its key path.
    let gate = Gate::new(json!({
        "exclude": [{"session": "user.banned", "equals": true}],
        "routes": [{"path": "/ws/:org/:room", "require": [{"session": "user.missing", "exists": true}]}]
    }));
    let (d, trace) = gate.decide_traced(&Req::ws("/ws/a/b"));
    assert_eq!(
        detail(d),
        "routes[0].require[0] (session user.missing exists true)"
    );
    let steps: Vec<&str> = trace
        .iter()
        .map(|s| s.check.as_str())
        .filter(|s| s.contains('['))
        .collect();
    assert_eq!(steps, ["exclude[0]", "routes[0].require[0]"]);
}

#[test]
fn global_rules_may_use_params_every_route_has() {
    let gate = Gate::new(json!({
        "require": [{"param": "room", "matches": "public-*"}],
        "routes": [{"path": "/ws/a/:room"}, {"path": "/ws/b/:room/:x"}]
    }));
    gate.admit(&Req::ws("/ws/a/public-1"));
    gate.admit(&Req::ws("/ws/b/public-2/y"));
    assert_eq!(
        detail(gate.decide(&Req::ws("/ws/b/private/y"))),
        "require[0] (param room matches \"public-*\")"
    );
}
