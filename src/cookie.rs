//! Cookie header parsing with the semantics of the `cookie` npm package 0.7, which is what
//! express-session reads cookies with.
//!
//! * pairs are split on `;`, and a pair without `=` is skipped;
//! * name and value are trimmed of spaces and tabs (only those two, as in `cookie`);
//! * the FIRST occurrence of a name wins;
//! * a value wrapped in double quotes loses them;
//! * a value is percent-decoded (as `decodeURIComponent`) only if it contains `%`, and a value
//!   that does not decode is kept raw.
//!
//! Parsing is a single forward pass: a 128 KB header costs linear time, and looking up one
//! name stops at its first occurrence without allocating unless the value needs decoding.

use std::borrow::Cow;

/// `cookie` collects pairs in a plain object, where assigning `__proto__` does nothing: a
/// cookie of that name never appears.
const JS_PROTO: &str = "__proto__";

/// The value of the first cookie called `name` in a `Cookie` header, decoded as `cookie.parse`
/// would decode it.
pub fn find<'h>(header: &'h str, name: &str) -> Option<Cow<'h, str>> {
    find_raw(header, name).map(decode)
}

/// The value of the first cookie called `name`, as [`find`] gives it, handed to `read`: when
/// it needs decoding and is short (a session cookie is), it is decoded on the stack, so
/// nothing is allocated.
pub fn with_value<R>(header: &str, name: &str, read: impl FnOnce(&str) -> R) -> Option<R> {
    let raw = find_raw(header, name)?;
    if !raw.as_bytes().contains(&b'%') {
        return Some(read(raw));
    }
    let mut buf = [0u8; 192];
    if raw.len() > buf.len() {
        return Some(read(&decode(raw)));
    }
    let decoded =
        percent_decode_into(raw, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok());
    Some(read(decoded.unwrap_or(raw)))
}

/// The raw value (quotes stripped, not decoded) of the first cookie called `name`.
fn find_raw<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    if name == JS_PROTO {
        return None;
    }
    let mut found = None;
    for_each_pair(header, |key, raw| {
        if key == name {
            found = Some(raw);
            false
        } else {
            true
        }
    });
    found
}

/// Every cookie in the header, in first-occurrence order, as `cookie.parse` returns them.
/// Used by the tests and the `cookie_header` fuzz target; the handshake and the CLI use [`find`].
pub fn parse_all(header: &str) -> Vec<(&str, Cow<'_, str>)> {
    let mut out: Vec<(&str, Cow<'_, str>)> = Vec::new();
    for_each_pair(header, |key, raw| {
        if key != JS_PROTO && !out.iter().any(|(k, _)| *k == key) {
            out.push((key, decode(raw)));
        }
        true
    });
    out
}

/// Walks the pairs exactly as `cookie@0.7`'s `parse` does, handing each (name, raw value) to
/// `visit` until it returns false. Every index used for slicing is the position of an ASCII
/// byte (`=`, `;`, space, tab, `"`) or an end of the string, so slices fall on char boundaries.
///
/// `cookie` looks for the next `=` and the next `;` from the start of a pair; when the `;`
/// comes first, the segment has no `=` and it resumes after the last `;` before that `=`.
/// Skipping one `=`-less segment at a time lands on the same pair (every segment in between
/// has no `=` either), so one forward pass finds the first of the two and goes on from there.
fn for_each_pair<'h>(header: &'h str, mut visit: impl FnMut(&'h str, &'h str) -> bool) {
    let bytes = header.as_bytes();
    let len = bytes.len();
    // `cookie` returns early for strings shorter than 2: nothing can be a pair.
    if len < 2 {
        return;
    }
    let mut index = 0;
    while index < len {
        let at = find_either::<b'=', b';'>(bytes, index);
        if at == len {
            break; // no more pairs
        }
        if bytes[at] == b';' {
            // This segment has no `=`: the pair is in a later one, if any.
            index = at + 1;
            continue;
        }
        let eq = at;
        let end = find_either::<b';', b';'>(bytes, eq + 1);
        let key_start = skip_blank_forward(bytes, index, eq);
        let key_end = skip_blank_backward(bytes, eq, key_start);
        let mut value_start = skip_blank_forward(bytes, eq + 1, end);
        let mut value_end = skip_blank_backward(bytes, end, value_start);
        if value_end > value_start && bytes[value_start] == b'"' && bytes[value_end - 1] == b'"' {
            value_start += 1;
            value_end -= 1;
        }
        // A lone `"` leaves start past end; JavaScript's slice gives "" then.
        let value = if value_start < value_end {
            &header[value_start..value_end]
        } else {
            ""
        };
        if !visit(&header[key_start..key_end], value) {
            return;
        }
        index = end + 1;
    }
}

/// The first `A` or `B` at or after `from`, or the length, eight bytes at a time. The needles
/// are constants, so their words are too.
pub(crate) fn find_either<const A: u8, const B: u8>(bytes: &[u8], from: usize) -> usize {
    crate::scan::first_hit::<Either<A, B>>(bytes, from)
}

struct Either<const A: u8, const B: u8>;

impl<const A: u8, const B: u8> crate::scan::Needles for Either<A, B> {
    #[inline(always)]
    fn word_hits(word: u64) -> u64 {
        crate::scan::bytes_equal(word, A) | crate::scan::bytes_equal(word, B)
    }
    #[inline(always)]
    fn is_hit(byte: u8) -> bool {
        byte == A || byte == B
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blank_forward(bytes: &[u8], mut index: usize, max: usize) -> usize {
    while index < max && is_blank(bytes[index]) {
        index += 1;
    }
    index.min(max)
}

fn skip_blank_backward(bytes: &[u8], mut index: usize, min: usize) -> usize {
    while index > min && is_blank(bytes[index - 1]) {
        index -= 1;
    }
    index
}

/// `cookie`'s default decode: `decodeURIComponent` when the value holds `%`, and the raw value
/// when that throws.
pub fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.as_bytes().contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    match percent_decode(raw) {
        Some(decoded) => Cow::Owned(decoded),
        None => Cow::Borrowed(raw),
    }
}

/// `decodeURIComponent`: every `%XX` becomes a byte and the bytes must be UTF-8. `None` where
/// JavaScript throws a `URIError` (a `%` without two hex digits, or bytes that are not UTF-8).
pub fn percent_decode(raw: &str) -> Option<String> {
    let mut out = vec![0; raw.len()];
    let len = percent_decode_into(raw, &mut out)?;
    out.truncate(len);
    // Literal characters are whole UTF-8 sequences already, so validating the joined bytes
    // rejects exactly the escapes JavaScript rejects: broken, overlong or surrogate sequences.
    String::from_utf8(out).ok()
}

/// The bytes `%XX` escapes stand for, written to `out` (which must be as long as `raw`: the
/// bytes are never more), and how many; `None` for a `%` without two hex digits. The caller
/// checks that they are UTF-8.
fn percent_decode_into(raw: &str, out: &mut [u8]) -> Option<usize> {
    let bytes = raw.as_bytes();
    let mut len = 0;
    let mut i = 0;
    loop {
        let next = find_either::<b'%', b'%'>(bytes, i);
        if next == bytes.len() {
            break;
        }
        // The text up to the next escape as it is, then the escape's byte.
        let run = next - i;
        out[len..len + run].copy_from_slice(&bytes[i..next]);
        len += run;
        i = next;
        let hi = hex_value(*bytes.get(i + 1)?)?;
        let lo = hex_value(*bytes.get(i + 2)?)?;
        out[len] = hi << 4 | lo;
        len += 1;
        i += 3;
    }
    let rest = bytes.len() - i;
    out[len..len + rest].copy_from_slice(&bytes[i..]);
    Some(len + rest)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `encodeURIComponent`: what express-session's cookie serialization does to the signed value.
pub fn percent_encode(value: &str) -> String {
    const UNRESERVED: &[u8] = b"-_.!~*'()";
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || UNRESERVED.contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit(u32::from(b >> 4), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit(u32::from(b & 0xf), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_either_finds_the_first_needle_at_every_offset() {
        for len in 0..20 {
            for (at_a, at_b) in [(len, len), (3, len), (len, 9), (5, 2), (12, 12)] {
                let mut bytes = vec![b'x'; len];
                if at_a < len {
                    bytes[at_a] = b'=';
                }
                if at_b < len {
                    bytes[at_b] = b';';
                }
                for from in 0..=len {
                    let expected = (from..len).find(|&i| bytes[i] == b'=' || bytes[i] == b';');
                    let found = find_either::<b'=', b';'>(&bytes, from);
                    assert_eq!(found, expected.unwrap_or(len), "{bytes:?} from {from}");
                }
            }
        }
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(find("a=1; a=2", "a").as_deref(), Some("1"));
    }

    #[test]
    fn trims_spaces_and_tabs_only() {
        assert_eq!(find(" a = 1 ;\tb\t=\t2", "b").as_deref(), Some("2"));
        assert_eq!(find("a = 1 ", "a").as_deref(), Some("1"));
    }

    #[test]
    fn quotes_are_stripped() {
        assert_eq!(find("a=\"x y\"", "a").as_deref(), Some("x y"));
        assert_eq!(find("a=\"", "a").as_deref(), Some(""));
        assert_eq!(find("a=\"\"", "a").as_deref(), Some(""));
    }

    #[test]
    fn percent_decoded_only_when_needed_and_raw_when_broken() {
        assert_eq!(
            find("s=s%3Aabc.d%2Be%2F", "s").as_deref(),
            Some("s:abc.d+e/")
        );
        assert!(matches!(
            find("s=plain+x", "s"),
            Some(Cow::Borrowed("plain+x"))
        ));
        assert_eq!(find("s=%zz", "s").as_deref(), Some("%zz"));
        assert_eq!(find("s=%E0%A4%A", "s").as_deref(), Some("%E0%A4%A"));
        // a lone surrogate encoded as UTF-8 is a URIError in JavaScript
        assert_eq!(find("s=%ED%A0%80", "s").as_deref(), Some("%ED%A0%80"));
    }

    #[test]
    fn with_value_reads_what_find_reads() {
        let long = format!("s=%41{}", "b".repeat(300));
        let headers = [
            "s=s%3Aabc.d%2Be%2F; t=1",
            "s=plain",
            "s=%zz",
            "s=%E0%A4%A",
            "s=%ED%A0%80",
            "s=\"%C3%A9\"",
            "s=%",
            "t=1",
            long.as_str(),
        ];
        for header in headers {
            assert_eq!(
                with_value(header, "s", str::to_owned),
                find(header, "s").map(Cow::into_owned),
                "{header}"
            );
        }
    }

    #[test]
    fn pair_without_equals_is_skipped_and_the_next_name_is_read_whole() {
        assert_eq!(find("junk; a=1", "a").as_deref(), Some("1"));
        assert_eq!(find("x;a=1", "a").as_deref(), Some("1"));
        assert_eq!(find(";;a=1;;", "a").as_deref(), Some("1"));
    }

    #[test]
    fn value_may_hold_equals() {
        assert_eq!(find("a=b=c", "a").as_deref(), Some("b=c"));
    }

    #[test]
    fn empty_and_tiny_headers() {
        assert_eq!(find("", "a"), None);
        assert_eq!(find("a", "a"), None);
        assert_eq!(find("a=", "a").as_deref(), Some(""));
    }

    #[test]
    fn multibyte_text_never_splits_a_char() {
        assert_eq!(find("é=ü; ☃ = \"☃\"", "☃").as_deref(), Some("☃"));
    }

    #[test]
    fn encode_matches_encode_uri_component() {
        assert_eq!(percent_encode("s:ab+c/d=e.f"), "s%3Aab%2Bc%2Fd%3De.f");
        assert_eq!(percent_encode("a-_.!~*'()z"), "a-_.!~*'()z");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn large_header_is_linear() {
        // 128 KB of pairs without '=' followed by the cookie: one pass, no quadratic rescans.
        let mut header = "x;".repeat(64 * 1024);
        header.push_str("connect.sid=v");
        assert_eq!(find(&header, "connect.sid").as_deref(), Some("v"));
        let mut header = "k=v; ".repeat(26 * 1024);
        header.push_str("connect.sid=w");
        assert_eq!(find(&header, "connect.sid").as_deref(), Some("w"));
    }
}
