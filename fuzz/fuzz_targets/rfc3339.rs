//! `time::parse_rfc3339_ms` on arbitrary text: never panics, and a `Z` timestamp survives
//! `format_rfc3339_ms` and a second parse with the same milliseconds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::time::{format_rfc3339_ms, parse_rfc3339_ms};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ms) = parse_rfc3339_ms(text) {
        let formatted = format_rfc3339_ms(ms);
        if text.ends_with(['Z', 'z']) {
            assert_eq!(
                parse_rfc3339_ms(&formatted),
                Some(ms),
                "{text:?} formatted as {formatted:?}"
            );
        }
    }
});
