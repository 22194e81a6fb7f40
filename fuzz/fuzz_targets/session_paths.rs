//! The handshake's session decode (only the paths a config reads, borrowed from the text)
//! against the full decode: both accept or reject the same text, and every wanted path reads
//! the same value. tests/session_paths.rs runs the same check natively on mutated records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::session::{Session, SessionError};
use sessiongate::session_view::{JsonRef, PathSet, SessionView};

const PATHS: &[&str] = &["passport.user", "user.roles", "user.roles.1", "user", "a.b.c", "x"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut paths = PathSet::default();
    for p in PATHS {
        paths.insert(p);
    }
    let full = Session::from_json(text);
    let picked = SessionView::decode(text, &paths);
    match (&full, &picked) {
        (Ok(f), Ok(p)) => {
            for path in PATHS.iter().chain(&["cookie.expires"]) {
                let id = paths.id(path).unwrap();
                let value = p.get(id).map(JsonRef::to_value);
                assert_eq!(f.get(path), value.as_ref(), "{path} in {text:?}");
            }
            assert_eq!(f.expires_at_ms(), p.expires_at_ms());
        }
        // Both refuse (the reason may differ when the full decode stops earlier, on a number
        // beyond f64 that the picker skips).
        (Err(_), Err(_)) => {}
        // Skipped fields are checked as JSON syntax only: a number beyond f64, a lone surrogate
        // escape or nesting past 127 in one (which JSON.parse reads, and express-session never
        // writes) is not an error there.
        (Err(SessionError::NotAnObject), Ok(_))
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {}
        // The full decode sees every field; a BadExpires it finds, the picker finds too.
        _ => panic!("full {full:?} vs picked {picked:?} for {text:?}"),
    }
});
