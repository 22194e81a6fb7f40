//! Failing tests for bugs found in src/ (left unfixed here: src/ belongs to other engineers).
//! Each test names the bug it pins; the suggested fix is in the comment above it. When a fix
//! lands, the test passes and can move next to its peers in tests/rules.rs.

mod common;

use common::*;
use serde_json::{json, Value};
use sessiongate::decision::{Check, Decision, Refusal};

fn holds_with(rule: Value, session: Value, path: &str) -> bool {
    let config = json!({"routes": [{"path": "/ws/:org/:room", "require": [rule.clone()]}]});
    let mut s = json!({"cookie": {"expires": null}});
    for (k, v) in session.as_object().unwrap() {
        s[k] = v.clone();
    }
    match Gate::with_session(config, &s.to_string()).decide(&Req::ws(path)) {
        Decision::Admit(_) => true,
        Decision::Deny(d) if d.refusal == Refusal::RuleDenied && d.check == Check::Rules => false,
        Decision::Deny(d) => panic!("{rule}: denied by {:?}", d.refusal),
    }
}

// BUG 1: `{{` / `}}` are literal braces in templates (route.rs `Template::new`), and that
// holds when a value also has a placeholder, but a rule value WITHOUT placeholders is kept as
// the raw JSON text, so `equals = "{{x}}"` compares with the 4-brace text "{{x}}".
// src/config.rs:404 (`Checker::expected`) keeps `raw.clone()`; src/config.rs:374 compiles
// `Glob::new(pattern)` from the raw text too.
// Fix: use the template's literal text: in `expected`, replace `Expected::Json(raw.clone())`
// with `Expected::Json(Value::String(template.render(&Params::default()).map(Cow::into_owned)
// .unwrap_or_default()))` (a template without placeholders renders without params), and in
// the `matches` branch compile `Glob::new(&template.render(&Params::default())...)` instead
// of `Glob::new(pattern)`.
#[test]
fn bug_literal_braces_in_a_rule_value_without_placeholders_are_not_unescaped() {
    let s = json!({"v": "{x}", "list": ["{x}"]});
    assert!(
        holds_with(
            json!({"session": "v", "equals": "{{x}}"}),
            s.clone(),
            "/ws/a/b"
        ),
        "equals"
    );
    assert!(
        holds_with(
            json!({"session": "v", "in": ["{{x}}"]}),
            s.clone(),
            "/ws/a/b"
        ),
        "in"
    );
    assert!(
        holds_with(
            json!({"session": "list", "contains": "{{x}}"}),
            s.clone(),
            "/ws/a/b"
        ),
        "contains"
    );
    assert!(
        holds_with(
            json!({"session": "v", "matches": "{{*}}"}),
            s.clone(),
            "/ws/a/b"
        ),
        "matches"
    );
    // The same text next to a placeholder IS unescaped, which makes the above inconsistent.
    assert!(holds_with(
        json!({"session": "v", "equals": "{{{room}}}"}),
        json!({"v": "{x}"}),
        "/ws/a/x"
    ));
}

// BUG 2: a `matches` glob with a backslash right before a placeholder lets a `*` in the
// parameter act as a wildcard. `escape_glob` (src/rules.rs:165) turns `*` into `\*`, and the
// template's own `\` then escapes that backslash: `\{org}-*` with org = `*` becomes `\\*-*`,
// i.e. a literal `\` followed by a live `*`. The config check (src/config.rs:367) only deletes
// the braces (`\org-*`), so it does not see it.
// Fix: in src/config.rs, `matches` branch with placeholders (line ~363), reject a placeholder
// preceded by an odd number of `\` (error: "a placeholder cannot follow '\\' in a glob").
// Better: compile the template glob once at config time into tokens where each placeholder is
// a "literal parameter" token matched by plain string comparison, so values are never
// re-parsed as glob syntax (no escape_glob needed at all).
#[test]
fn bug_backslash_before_placeholder_lets_a_param_star_widen_the_glob() {
    // With org = "acme" the rule matches "acme-blue" (the `\` escapes the first letter).
    assert!(holds_with(
        json!({"session": "team", "matches": "\\{org}-*"}),
        json!({"team": "acme-blue"}),
        "/ws/acme/x"
    ));
    // With org = "*", no reading of the pattern should match "\evil-x" with `*` as a wildcard.
    assert!(
        !holds_with(
            json!({"session": "team", "matches": "\\{org}-*"}),
            json!({"team": "\\evil-x"}),
            "/ws/*/x"
        ),
        "param '*' widened the glob"
    );
}

// BUG 3: a placeholder inside a `[...]` class is rendered with only `* ? [ ] \` escaped, so a
// parameter `a-z` makes a range and `!x` a negation: `[{room}]` with room = `a-z` matches any
// lower-case letter.
// Fix: src/rules.rs:166 and :171: also escape `-` and `!` in `escape_glob`
// (`['*', '?', '[', ']', '\\', '-', '!']`; `Glob::new` accepts `\-` and `\!` both inside and
// outside classes), or reject placeholders inside `[...]` at config time (src/config.rs ~363),
// or, as for BUG 2, never re-parse parameter values as glob text.
#[test]
fn bug_placeholder_inside_a_class_lets_a_param_widen_the_glob() {
    let rule = json!({"session": "level", "matches": "[{room}]"});
    assert!(
        holds_with(rule.clone(), json!({"level": "a"}), "/ws/o/a"),
        "literal class member matches"
    );
    assert!(
        !holds_with(rule.clone(), json!({"level": "m"}), "/ws/o/a-z"),
        "'a-z' became a range"
    );
    assert!(
        !holds_with(rule, json!({"level": "m"}), "/ws/o/!x"),
        "'!x' became a negated class"
    );
}
