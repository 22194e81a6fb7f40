//! express-session's cookie format (`CookieFormat::ExpressSession`) with two fixed secrets on arbitrary input: never panics, and a
//! verified sid is the text between `s:` and the last `.` of the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sessiongate::cookie_format::CookieFormat;
use sessiongate::signature::{Secrets, SIGNATURE_LEN};

const SIGNED_PREFIX: &str = "s:";
const FORMAT: CookieFormat = CookieFormat::ExpressSession;

fn secrets() -> &'static Secrets {
    static SECRETS: OnceLock<Secrets> = OnceLock::new();
    SECRETS.get_or_init(|| Secrets::new(&["new secret", "old secret"]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let secrets = secrets();
    if let Some(sid) = FORMAT.sid(secrets, input) {
        let rest = input
            .strip_prefix(SIGNED_PREFIX)
            .expect("verified without the s: prefix");
        assert!(
            rest.starts_with(sid),
            "sid {sid:?} is not a prefix of {rest:?}"
        );
        assert!(!sid.is_empty(), "empty sid verified");
        assert_eq!(rest.len(), sid.len() + 1 + SIGNATURE_LEN);
        assert_eq!(&rest[sid.len()..sid.len() + 1], ".");
    }
    if let Some(value) = secrets.unsign(input) {
        assert!(input.starts_with(value) && !value.is_empty());
    }
    // Round trip: whatever we sign (non-empty) verifies, with and without the cookie layer.
    if !input.is_empty() {
        let signed = secrets.sign(input);
        assert_eq!(secrets.unsign(&signed), Some(input));
        let cookie = format!("{SIGNED_PREFIX}{signed}");
        assert_eq!(FORMAT.sid(secrets, &cookie), Some(input));
        // The percent-encoded cookie value decodes back to it.
        let value = FORMAT.cookie_value(secrets, input);
        assert_eq!(sessiongate::cookie::decode(&value), cookie);
    }
});
