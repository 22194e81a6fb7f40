//! `cookie::find` and `cookie::parse_all` on arbitrary UTF-8 Cookie headers: never panic,
//! and agree with each other (what `find` and `with_value` return for a name is what
//! `parse_all` lists).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::cookie;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cookie::find(header, "connect.sid");
    let all = cookie::parse_all(header);
    for (i, (name, value)) in all.iter().enumerate() {
        // First occurrence wins: every name once.
        assert!(
            all[..i].iter().all(|(n, _)| n != name),
            "{name:?} listed twice"
        );
        // Names are trimmed of spaces and tabs and never hold the separators.
        assert!(
            !name.starts_with([' ', '\t']) && !name.ends_with([' ', '\t']),
            "{name:?}"
        );
        assert!(!name.contains(';') && !name.contains('='), "{name:?}");
        assert!(*name != "__proto__");
        assert_eq!(
            cookie::find(header, name).as_deref(),
            Some(value.as_ref()),
            "find({header:?}, {name:?})"
        );
        assert_eq!(
            cookie::with_value(header, name, str::to_owned).as_deref(),
            Some(value.as_ref()),
            "with_value({header:?}, {name:?})"
        );
    }
    // percent_encode is encodeURIComponent: decoding it gives the text back.
    let encoded = cookie::percent_encode(header);
    assert_eq!(cookie::percent_decode(&encoded).as_deref(), Some(header));
    assert_eq!(cookie::decode(&encoded), header);
});
