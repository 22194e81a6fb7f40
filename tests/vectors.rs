//! Conformance against vectors produced by the real npm packages (see tests/vectors/README.md):
//! `cookie-signature@1.0.7`, `cookie@0.7.2`, and express-session 1.19 over HTTP.
//!
//! Known, deliberate differences (asserted as such, not as failures):
//! * `unsign(".<mac>")` is `""` in cookie-signature; sessiongate refuses an empty value
//!   (express-session treats an empty sid as "no session" anyway).
//! * cookie-signature signs with an empty secret; `Secrets::new` refuses one.

use std::collections::BTreeMap;

use serde_json::Value;
use sessiongate::cookie;
use sessiongate::session::Session;
use sessiongate::signature::{self, Secrets, SecretsError};
use sessiongate::time;

fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("vector file is JSON")
}

fn signature_vectors() -> Value {
    load(include_str!("vectors/signature.json"))
}

fn cookie_vectors() -> Vec<Value> {
    match load(include_str!("vectors/cookie.json")) {
        Value::Array(items) => items,
        other => panic!("cookie.json is not an array: {other}"),
    }
}

fn session_vectors() -> Vec<Value> {
    match load(include_str!("vectors/express_session.json")) {
        Value::Array(items) => items,
        other => panic!("express_session.json is not an array: {other}"),
    }
}

fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

// ------------------------------------------------------------------------------ signature

#[test]
fn signature_sign_matches_cookie_signature_for_every_nonempty_secret() {
    let v = signature_vectors();
    let list = v["sign"].as_array().unwrap();
    assert!(list.len() >= 20, "expected the full sign vector list");
    let mut checked = 0;
    for e in list {
        let (value, secret, signed) = (s(e, "value"), s(e, "secret"), s(e, "signed"));
        if secret.is_empty() {
            continue; // covered by empty_secret_is_refused_where_cookie_signature_signs
        }
        let secrets = Secrets::new(&[secret]).unwrap();
        assert_eq!(secrets.sign(value), signed, "sign({value:?}, {secret:?})");
        assert_eq!(signature::sign(value, secret).as_deref(), Some(signed));
        checked += 1;
    }
    assert_eq!(checked, list.len() - 1);
}

#[test]
fn signature_empty_secret_is_refused_where_cookie_signature_signs() {
    // Documented difference: cookie-signature happily signs with "", sessiongate refuses.
    let v = signature_vectors();
    let e = v["sign"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(e, "secret").is_empty())
        .expect("a vector signed with the empty secret");
    assert!(!s(e, "signed").is_empty(), "cookie-signature did sign it");
    assert_eq!(
        Secrets::new(&[""]).unwrap_err(),
        SecretsError::EmptySecret(0)
    );
    assert_eq!(
        Secrets::new(&["ok", ""]).unwrap_err(),
        SecretsError::EmptySecret(1)
    );
    assert_eq!(signature::sign(s(e, "value"), ""), None);
}

#[test]
fn signature_unsign_matches_cookie_signature_except_the_empty_value() {
    let v = signature_vectors();
    let list = v["unsign"].as_array().unwrap();
    let (mut agreed, mut empty_value_refusals) = (0, 0);
    for e in list {
        let (input, secret) = (s(e, "input"), s(e, "secret"));
        let expected = match &e["result"] {
            Value::Bool(false) => None,
            Value::String(r) => Some(r.as_str()),
            other => panic!("unexpected result {other}"),
        };
        let Ok(secrets) = Secrets::new(&[secret]) else {
            // Only the empty secret is refused, and cookie-signature rejected that input too.
            assert!(secret.is_empty());
            assert_eq!(expected, None, "{input:?}");
            continue;
        };
        let got = secrets.unsign(input);
        if expected == Some("") {
            // Documented difference: `unsign(".<mac>")` is "" in JS, refused here.
            assert_eq!(got, None, "{input:?} must be refused (empty value)");
            empty_value_refusals += 1;
        } else {
            assert_eq!(got, expected, "unsign({input:?}, {secret:?})");
            agreed += 1;
        }
    }
    assert_eq!(
        empty_value_refusals, 1,
        "the vectors hold exactly one \".<mac>\" case"
    );
    assert!(agreed >= 38, "only {agreed} vectors compared");
}

#[test]
fn signature_unsign_refuses_s_prefixed_input_but_unsign_cookie_accepts_it() {
    let v = signature_vectors();
    let e = v["unsign"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(e, "input").starts_with("s:"))
        .expect("the s:-prefixed vector");
    let secrets = Secrets::new(&[s(e, "secret")]).unwrap();
    assert_eq!(e["result"], Value::Bool(false));
    assert_eq!(secrets.unsign(s(e, "input")), None);
    let sid = secrets
        .express_sid(s(e, "input"))
        .expect("unsign_cookie strips s:");
    assert_eq!(format!("s:{}", secrets.sign(sid)), s(e, "input"));
}

// --------------------------------------------------------------------------------- cookie

#[test]
fn cookie_parse_all_equals_cookie_parse_for_every_header() {
    let vectors = cookie_vectors();
    assert!(vectors.len() >= 38);
    for e in &vectors {
        let header = s(e, "header");
        let want: BTreeMap<String, String> = e["parsed"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let pairs = cookie::parse_all(header);
        let got: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        assert_eq!(
            got.len(),
            pairs.len(),
            "parse_all returned a name twice for {header:?}"
        );
        assert_eq!(got, want, "header {header:?}");
    }
}

#[test]
fn cookie_find_agrees_with_cookie_parse_for_every_name() {
    for e in &cookie_vectors() {
        let header = s(e, "header");
        for (name, value) in e["parsed"].as_object().unwrap() {
            assert_eq!(
                cookie::find(header, name).as_deref(),
                value.as_str(),
                "find({header:?}, {name:?})"
            );
        }
    }
}

#[test]
fn cookie_proto_name_never_appears() {
    let e = cookie_vectors()
        .into_iter()
        .find(|e| s(e, "header").starts_with("__proto__"))
        .expect("the __proto__ vector");
    assert_eq!(cookie::find(s(&e, "header"), "__proto__"), None);
    assert!(cookie::parse_all(s(&e, "header"))
        .iter()
        .all(|(k, _)| *k != "__proto__"));
}

#[test]
fn cookie_duplicate_connect_sid_first_wins() {
    let e = cookie_vectors()
        .into_iter()
        .find(|e| s(e, "header").contains("connect.sid=s%3Aduplicate.ignored"))
        .expect("the duplicate connect.sid vector");
    let got = cookie::find(s(&e, "header"), "connect.sid").unwrap();
    assert_eq!(got, e["parsed"]["connect.sid"].as_str().unwrap());
    assert_ne!(got, "s:duplicate.ignored");
}

// ------------------------------------------------------------------------ express-session

/// `Expires=Thu, 26 Nov 2026 01:58:08 GMT` of a Set-Cookie header, in Unix seconds: an
/// independent check of `cookie.expires` (second precision).
fn set_cookie_expires_secs(set_cookie: &str) -> Option<i64> {
    let attr = set_cookie
        .split(';')
        .map(str::trim)
        .find_map(|a| a.strip_prefix("Expires="))?;
    // "Thu, 26 Nov 2026 01:58:08 GMT"
    let parts: Vec<&str> = attr.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let [_, day, month, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let iso = format!("{year}-{month:02}-{:02}T{hms}Z", day.parse::<u32>().ok()?);
    time::parse_rfc3339_ms(&iso).map(|ms| ms / 1000)
}

#[test]
fn express_session_vectors_are_complete() {
    let v = session_vectors();
    assert_eq!(v.len(), 12);
    assert!(v
        .iter()
        .all(|e| e["verified_by_express"] == Value::Bool(true)));
    assert!(v
        .iter()
        .any(|e| e["signed_with_old_secret"] == Value::Bool(true)));
    assert!(v.iter().any(|e| e["max_age"].is_null()));
}

#[test]
fn express_session_set_cookie_value_is_found_and_decoded() {
    for e in &session_vectors() {
        let found = cookie::find(s(e, "set_cookie"), "connect.sid").expect("connect.sid");
        let decoded = cookie::percent_decode(s(e, "cookie_value")).unwrap();
        assert_eq!(found, decoded);
        assert!(found.starts_with("s:"));
        // Also as a browser would send it back, among other cookies.
        let header = format!(
            "theme=dark; connect.sid={}; _ga=GA1.2.3",
            s(e, "cookie_value")
        );
        assert_eq!(
            cookie::find(&header, "connect.sid").as_deref(),
            Some(&*decoded)
        );
    }
}

#[test]
fn express_session_unsign_cookie_gives_the_sid() {
    for e in &session_vectors() {
        let secrets = Secrets::new(&string_list(&e["secrets"])).unwrap();
        let raw = cookie::find(s(e, "set_cookie"), "connect.sid").unwrap();
        assert_eq!(
            secrets.express_sid(&raw),
            Some(s(e, "sid")),
            "{}",
            s(e, "set_cookie")
        );
        assert_eq!(s(e, "sid").len(), 32, "express-session sids are 32 chars");
    }
}

#[test]
fn express_session_rotation_old_secret_verifies_only_with_the_list() {
    let mut rotated = 0;
    for e in session_vectors()
        .iter()
        .filter(|e| e["signed_with_old_secret"] == Value::Bool(true))
    {
        let list = string_list(&e["secrets"]);
        assert!(list.len() >= 2);
        let raw = cookie::find(s(e, "set_cookie"), "connect.sid").unwrap();
        assert_eq!(
            Secrets::new(&list).unwrap().express_sid(&raw),
            Some(s(e, "sid"))
        );
        assert_eq!(
            Secrets::new(&list[1..2]).unwrap().express_sid(&raw),
            Some(s(e, "sid"))
        );
        assert_eq!(
            Secrets::new(&list[..1]).unwrap().express_sid(&raw),
            None,
            "new secret alone"
        );
        // Reversed order still verifies: every secret of the list is tried.
        let reversed: Vec<String> = list.iter().rev().cloned().collect();
        assert_eq!(
            Secrets::new(&reversed).unwrap().express_sid(&raw),
            Some(s(e, "sid"))
        );
        rotated += 1;
    }
    assert_eq!(rotated, 4);
}

#[test]
fn express_session_new_secret_cookies_do_not_verify_with_the_old_secret_alone() {
    for e in session_vectors()
        .iter()
        .filter(|e| e["signed_with_old_secret"] == Value::Bool(false))
    {
        let list = string_list(&e["secrets"]);
        if list.len() < 2 {
            continue;
        }
        let raw = cookie::find(s(e, "set_cookie"), "connect.sid").unwrap();
        assert_eq!(Secrets::new(&list[1..]).unwrap().express_sid(&raw), None);
    }
}

#[test]
fn express_session_cookie_value_equals_ours_for_secrets0() {
    let mut compared = 0;
    for e in session_vectors()
        .iter()
        .filter(|e| e["signed_with_old_secret"] == Value::Bool(false))
    {
        let secrets = Secrets::new(&string_list(&e["secrets"])).unwrap();
        assert_eq!(
            EXPRESS.cookie_value(&secrets, s(e, "sid")),
            s(e, "cookie_value")
        );
        compared += 1;
    }
    assert_eq!(compared, 8);
}

#[test]
fn express_session_old_secret_cookie_value_equals_ours_signed_with_secrets1() {
    for e in session_vectors()
        .iter()
        .filter(|e| e["signed_with_old_secret"] == Value::Bool(true))
    {
        let list = string_list(&e["secrets"]);
        let old_only = Secrets::new(&list[1..2]).unwrap();
        assert_eq!(
            EXPRESS.cookie_value(&old_only, s(e, "sid")),
            s(e, "cookie_value")
        );
    }
}

#[test]
fn express_session_stored_json_parses_with_its_expiry() {
    for e in &session_vectors() {
        let json = s(e, "session_json");
        let session = Session::from_json(json).unwrap_or_else(|err| panic!("{err}: {json}"));
        let raw: Value = serde_json::from_str(json).unwrap();
        match &raw["cookie"]["expires"] {
            Value::Null => {
                assert!(e["max_age"].is_null());
                assert_eq!(session.expires_at_ms(), None);
                assert!(!session.is_expired(i64::MAX));
            }
            Value::String(iso) => {
                let ms = session.expires_at_ms().expect("an expiry");
                assert_eq!(Some(ms), time::parse_rfc3339_ms(iso));
                // Date.prototype.toJSON round trip, exactly.
                assert_eq!(&time::format_rfc3339_ms(ms), iso);
                // Independent: the Set-Cookie Expires attribute (second precision).
                assert_eq!(
                    set_cookie_expires_secs(s(e, "set_cookie")),
                    Some(ms.div_euclid(1000))
                );
                // And our HTTP date is express-session's `Expires` attribute text.
                let attr = format!("Expires={}", time::format_http_date(ms));
                assert!(
                    s(e, "set_cookie").split("; ").any(|a| a == attr),
                    "{attr} in {}",
                    s(e, "set_cookie")
                );
                // Expired exactly at expiry, not a millisecond before.
                assert!(!session.is_expired(ms - 1));
                assert!(session.is_expired(ms));
            }
            other => panic!("unexpected expires {other}"),
        }
        assert_eq!(session.get("passport.user"), Some(&Value::from("u-42")));
        assert_eq!(session.get("user.roles.0"), Some(&Value::from("chat")));
        assert_eq!(session.fields(), raw.as_object().unwrap());
    }
}

// ---------------------------------------------------------------------------------- query

/// Hostile run finding 5: `a=%41%zz` read as `%41%zz` (URLSearchParams: `A%zz`) and `%E0%A4`
/// stayed raw (URLSearchParams: U+FFFD). A `query` rule sees exactly what
/// `new URLSearchParams(query).get(name)` returns in Node.
#[test]
fn query_rules_read_queries_as_urlsearchparams_does() {
    let vectors = match load(include_str!("vectors/query.json")) {
        Value::Array(items) => items,
        other => panic!("query.json is not an array: {other}"),
    };
    assert!(vectors.len() >= 30, "expected the full query vector list");
    let mut checked = 0;
    for v in &vectors {
        let query = s(v, "query");
        for (name, want) in v["get"].as_object().expect("get is an object") {
            let got = sessiongate::rules::query_param(query, name);
            assert_eq!(
                got.as_deref(),
                want.as_str(),
                "URLSearchParams({query:?}).get({name:?})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 200);
}

/// express-session's reading of its cookie value, through the gate's cookie format.
trait ExpressSid {
    fn express_sid<'a>(&self, value: &'a str) -> Option<&'a str>;
}

impl ExpressSid for Secrets {
    fn express_sid<'a>(&self, value: &'a str) -> Option<&'a str> {
        EXPRESS.sid(self, value)
    }
}

const EXPRESS: sessiongate::cookie_format::CookieFormat =
    sessiongate::cookie_format::CookieFormat::ExpressSession;
