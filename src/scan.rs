//! Byte searches eight bytes at a time (SWAR), for the parsers on the hot path (cookie header,
//! route, session JSON).

/// A byte of ones in each lane.
pub(crate) const ONES: u64 = u64::MAX / 255;

/// The high bit of each lane whose byte of `word` is zero (the lowest one set is exact).
#[inline(always)]
pub(crate) fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word
}

/// The high bit of each lane whose byte of `word` equals `byte` (the lowest one set is exact).
#[inline(always)]
pub(crate) fn bytes_equal(word: u64, byte: u8) -> u64 {
    zero_bytes(word ^ (ONES * u64::from(byte)))
}

/// What a search looks for. Methods of a type, not closures: at opt-level "z" a closure (or a
/// function passed as one) stayed out of line, a call per eight bytes.
pub(crate) trait Needles {
    /// The hits of a little-endian word, in its lanes' high bits (only the lowest must be
    /// exact: a little-endian word's lowest byte comes first).
    fn word_hits(word: u64) -> u64;
    /// Whether one byte is a hit (for the last few bytes).
    fn is_hit(byte: u8) -> bool;
}

/// The first index at or after `from` whose byte is one of `N`'s, or the length.
#[inline(always)]
pub(crate) fn first_hit<N: Needles>(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let hits = N::word_hits(u64::from_le_bytes(word)) & (ONES << 7);
        if hits != 0 {
            return at + hits.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    while at < bytes.len() && !N::is_hit(bytes[at]) {
        at += 1;
    }
    at
}
