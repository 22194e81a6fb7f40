//! The `session_paths` fuzz target's property, run natively on many mutated records: the
//! handshake's decode (`SessionView::decode`, only the paths a config reads) accepts and
//! rejects what the full decode (`Session::from_json`) does, and reads the same value at every
//! wanted path. The one allowed difference: a skipped member that is JSON syntax but not a
//! `serde_json::Value` (a number beyond f64, a lone surrogate escape, nesting past 127).

use sessiongate::session::{Session, SessionError};
use sessiongate::session_view::{JsonRef, PathId, PathSet, SessionView};

const PATHS: &[&str] = &[
    "passport.user",
    "user.roles",
    "user.roles.1",
    "user",
    "a.b.c",
    "x",
    "list.0",
    "list.01",
    "list.2.k",
    "ü",
];

const SEEDS: &[&str] = &[
    include_str!("../fuzz/seeds/session_paths/express.json"),
    include_str!("../fuzz/regressions/session_paths/number_beyond_f64_in_skipped_field"),
    include_str!("../fuzz/regressions/session_paths/number_beyond_f64_before_bad_expires"),
    r#"{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-26T12:00:00.000Z","secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":"u-42"},"user":{"id":"u-42","name":"Ada Lovelace","email":"ada@example.com","roles":["chat","admin"],"team":"acme-blue"},"csrfSecret":"k3Jd9sLq0xPZ2vYw8mNa"}"#,
    r#"{"a":{"b":{"c":[1,2.5,-0,1e3,"\u00e9"]}},"x":null,"list":["p",{"k":true},{"k":[{}]}],"\u00fc":"\ud83d\ude00"}"#,
    r#"{"x":1,"x":{"y":2},"passport":{"user":"a"},"passport":{"user":"b","user":"c"}}"#,
];

/// Pieces the mutator splices in: JSON's tokens and the edges of its grammar.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\u00e9",
    "\\n",
    "1e400",
    "-",
    "0",
    "01",
    ".",
    "e",
    "E+",
    "null",
    "true",
    "fals",
    " ",
    "\t",
    "\u{1}",
    "é",
    "\"x\":",
    "\"user\":",
    "\"passport\":",
    "\"roles\":",
    "\"cookie\":",
    "\"expires\":",
    "\"2026-11-26T12:00:00.000Z\"",
    "\"soon\"",
    "[[[[",
    "]]]]",
    "{\"a\":",
    "\"list\":",
];

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn char_boundary(text: &str, rng: &mut Rng) -> usize {
    let mut at = rng.below(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut out = text.to_owned();
    for _ in 0..1 + rng.below(3) {
        let at = char_boundary(&out, rng);
        match rng.below(3) {
            0 => out.insert_str(at, PIECES[rng.below(PIECES.len())]),
            1 => {
                let end = char_boundary(&out, rng).max(at);
                let end = at + (end - at).min(8);
                let end = (end..=out.len())
                    .find(|&e| out.is_char_boundary(e))
                    .unwrap();
                out.replace_range(at..end, "");
            }
            _ => {
                let end = char_boundary(&out, rng).max(at);
                let copy = out[at..end].to_owned();
                out.insert_str(at, &copy);
            }
        }
    }
    out
}

/// The fuzz target's check. Returns whether the handshake's decode accepted the text.
fn agree(text: &str, paths: &PathSet) -> bool {
    let full = Session::from_json(text);
    let picked = SessionView::decode(text, paths);
    match (&full, &picked) {
        (Ok(f), Ok(p)) => {
            for path in PATHS.iter().chain(&["cookie.expires"]) {
                let value = p.get(paths.id(path).unwrap()).map(JsonRef::to_value);
                assert_eq!(f.get(path), value.as_ref(), "{path} in {text:?}");
            }
            assert_eq!(f.expires_at_ms(), p.expires_at_ms(), "{text:?}");
            let ids: Vec<PathId> = PATHS.iter().map(|p| paths.id(p).unwrap()).collect();
            assert_eq!(f.project(PATHS), p.project(&ids), "{text:?}");
        }
        (Err(_), Err(_)) => {}
        (Err(SessionError::NotAnObject), Ok(_))
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {}
        _ => panic!("full {full:?} vs picked {picked:?} for {text:?}"),
    }
    picked.is_ok()
}

#[test]
fn the_handshake_decode_agrees_with_the_full_decode_on_mutated_records() {
    let mut paths = PathSet::default();
    for path in PATHS {
        paths.insert(path);
    }
    let mut rng = Rng(0x5e55_10a7_e000_0001);
    let (mut accepted, mut total) = (0, 0);
    for seed in SEEDS {
        agree(seed, &paths);
        let mut text = seed.to_string();
        for round in 0..6_000 {
            // Mostly fresh mutations of the seed, sometimes a mutation of the last mutant.
            let base = if round % 4 == 0 { &text } else { *seed };
            text = mutate(base, &mut rng);
            accepted += usize::from(agree(&text, &paths));
            total += 1;
        }
    }
    eprintln!("{accepted} of {total} accepted");
    // The mutations must reach both sides of the grammar, or the test checks little.
    assert!(accepted > total / 20, "{accepted} of {total} accepted");
    assert!(accepted < total * 19 / 20, "{accepted} of {total} accepted");
}
