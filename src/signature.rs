//! express-session's cookie signatures (the `cookie-signature` npm package).
//!
//! `sign(v, secret) = v + "." + base64(HMAC-SHA256(secret, v))` with standard base64 and the
//! `=` padding removed, so the signature is always 43 characters (how a cookie value wraps it
//! is [`crate::cookie_format`]'s business). Verification splits at the LAST `.`,
//! recomputes the signature with every secret of the rotation list and compares in constant
//! time. Like cookie-rs, verification answers only "no": callers never learn why.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::digest::generic_array::GenericArray;
use subtle::ConstantTimeEq;

/// Length of an unpadded base64 HMAC-SHA256: ceil(32 * 4 / 3).
pub const SIGNATURE_LEN: usize = 43;

/// Why a list of secrets cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No secret at all: nothing could verify a cookie.
    #[error("no session secret configured")]
    Empty,
    /// The secret at this index is the empty string, which signs nothing worth trusting.
    #[error("session secret #{0} is empty")]
    EmptySecret(usize),
    /// The value starts like a JSON array but is not an array of strings.
    #[error("starts with '[' but is not a JSON array of strings")]
    NotAList,
}

/// A rotation list of secrets with each HMAC key schedule computed once: verifying a cookie
/// then costs two SHA-256 blocks per secret tried instead of four.
#[derive(Clone)]
pub struct Secrets {
    keyed: Vec<KeyedMac>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Secrets({} keys)", self.keyed.len())
    }
}

impl Secrets {
    /// Prepares the secrets; the first one signs, every one verifies.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, SecretsError> {
        if secrets.is_empty() {
            return Err(SecretsError::Empty);
        }
        let mut keyed = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err(SecretsError::EmptySecret(i));
            }
            keyed.push(KeyedMac::new(secret.as_bytes()));
        }
        Ok(Secrets { keyed })
    }

    /// Parses the `SESSION_SECRETS` Worker secret: a JSON array of strings, or one plain
    /// string used as is.
    pub fn from_env_value(raw: &str) -> Result<Self, SecretsError> {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('[') {
            let list = serde_json::from_str(trimmed).ok();
            match list.and_then(crate::json_read::strings) {
                Some(list) => Secrets::new(&list),
                // A value that looks like an array but is not one must not silently become a
                // single secret "[...": that would lock every user out with a confusing 401.
                None => Err(SecretsError::NotAList),
            }
        } else {
            Secrets::new(&[raw])
        }
    }

    pub fn count(&self) -> usize {
        self.keyed.len()
    }

    /// `sign(value, secrets[0])` as `cookie-signature` computes it.
    pub fn sign(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 1 + SIGNATURE_LEN);
        out.push_str(value);
        out.push('.');
        let mut sig = [0u8; SIGNATURE_LEN];
        signature_into(&self.keyed[0], value, &mut sig);
        out.push_str(std::str::from_utf8(&sig).unwrap_or_default());
        out
    }

    /// `cookie-signature`'s `unsign` tried with every secret: the value before the last `.`
    /// if the signature after it is exactly right for one of them. An empty value is refused
    /// too (express-session would treat it as no session and make a new one).
    pub fn unsign<'a>(&self, input: &'a str) -> Option<&'a str> {
        let dot = input.rfind('.')?;
        let (value, signature) = (&input[..dot], &input[dot + 1..]);
        // Length is public (always 43 in a valid cookie), so checking it first leaks nothing.
        if value.is_empty() || signature.len() != SIGNATURE_LEN {
            return None;
        }
        let presented: &[u8; SIGNATURE_LEN] = signature.as_bytes().try_into().ok()?;
        let mut expected = [0u8; SIGNATURE_LEN];
        let mut valid = subtle::Choice::from(0);
        // Try every secret even after a match, so timing does not reveal which one matched.
        for mac in &self.keyed {
            signature_into(mac, value, &mut expected);
            valid |= same_signature(&expected, presented);
        }
        bool::from(valid).then_some(value)
    }
}

/// Does a presented bearer token equal the configured one? Both are hashed first, so the
/// comparison takes the same time whatever their lengths and contents.
pub fn bearer_matches(presented: &str, expected: &str) -> bool {
    use sha2::Digest;
    let a = sha2::Sha256::digest(presented.as_bytes());
    let b = sha2::Sha256::digest(expected.as_bytes());
    !expected.is_empty() && bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Compares two strings in constant time (for the length of the shorter): sids and tokens.
pub fn constant_time_str_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Are two signatures equal? Compared in constant time as six words read in place (subtle's
/// `ct_eq`, one `black_box` each) rather than 43 bytes.
fn same_signature(a: &[u8; SIGNATURE_LEN], b: &[u8; SIGNATURE_LEN]) -> subtle::Choice {
    let word = |s: &[u8; SIGNATURE_LEN], at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let tail =
        |s: &[u8; SIGNATURE_LEN]| u64::from(s[40]) | u64::from(s[41]) << 8 | u64::from(s[42]) << 16;
    let mut same = tail(a).ct_eq(&tail(b));
    for at in [0, 8, 16, 24, 32] {
        same &= word(a, at).ct_eq(&word(b, at));
    }
    same
}

fn signature_into(keyed: &KeyedMac, value: &str, out: &mut [u8; SIGNATURE_LEN]) {
    let tag = keyed.tag(value.as_bytes());
    // 32 bytes always encode to exactly 43 unpadded characters.
    let _ = STANDARD_NO_PAD.encode_slice(tag, out);
}

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// HMAC-SHA256 (RFC 2104) with its key schedule done once: the SHA-256 states after the key's
/// inner and outer pad blocks. A tag then costs the message's blocks and one outer block,
/// straight through SHA-256's block function: no hasher or block buffer is cloned, filled and
/// finalized per call (the `hmac` crate's way, about 700 instructions more a tag). Tested
/// against the `hmac` crate across key and message lengths.
#[derive(Clone)]
struct KeyedMac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl KeyedMac {
    fn new(key: &[u8]) -> KeyedMac {
        // A key longer than a block is hashed first; a shorter one is padded with zeros.
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&sha256(SHA256_IV, key, 0));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad_state = |pad: u8| {
            let mut state = SHA256_IV;
            compress(&mut state, &block.map(|b| b ^ pad));
            state
        };
        KeyedMac {
            inner: pad_state(0x36),
            outer: pad_state(0x5c),
        }
    }

    /// HMAC-SHA256(key, message).
    fn tag(&self, message: &[u8]) -> [u8; 32] {
        let inner = sha256(self.inner, message, 64);
        sha256(self.outer, &inner, 64)
    }
}

/// The SHA-256 digest of a message whose first `done` bytes (a multiple of 64) are already in
/// `state`, and `rest` after them.
fn sha256(mut state: [u32; 8], rest: &[u8], done: u64) -> [u8; 32] {
    let full = rest.len() - rest.len() % 64;
    compress(&mut state, &rest[..full]);
    // The last bytes, 0x80, zeros, and the length in bits: one block, or two when fewer than
    // nine bytes are left after the message.
    let tail = &rest[full..];
    let mut last = [0u8; 128];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    let len = if tail.len() < 56 { 64 } else { 128 };
    let bits = (done + rest.len() as u64) * 8;
    last[len - 8..len].copy_from_slice(&bits.to_be_bytes());
    compress(&mut state, &last[..len]);
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// SHA-256's block function over whole 64-byte blocks.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    let mut chunks = blocks.chunks_exact(64);
    for block in &mut chunks {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

/// `cookie-signature`'s `sign` with a one-off key, for tools and tests.
pub fn sign(value: &str, secret: &str) -> Option<String> {
    Secrets::new(&[secret]).ok().map(|s| s.sign(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    #[test]
    fn keyed_mac_is_hmac_sha256() {
        // Keys and messages across the block boundaries (55/56 bytes of padding room, 64-byte
        // blocks, keys longer than a block are hashed).
        for key_len in [1, 5, 31, 32, 55, 56, 63, 64, 65, 100, 130] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 3) as u8).collect();
            let keyed = KeyedMac::new(&key);
            for message_len in 0..=200 {
                let message: Vec<u8> = (0..message_len).map(|i| (i * 13 + key_len) as u8).collect();
                let mut reference = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                reference.update(&message);
                let expected: [u8; 32] = reference.finalize().into_bytes().into();
                assert_eq!(
                    keyed.tag(&message),
                    expected,
                    "key {key_len}, message {message_len}"
                );
            }
        }
    }

    /// RFC 4231's HMAC-SHA-256 test cases 1, 2, 6 and 7 (a short key, a key shorter than the
    /// message, and two keys longer than a block, which are hashed first).
    #[test]
    fn keyed_mac_known_answers_rfc_4231() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let cases: [(Vec<u8>, &[u8], &str); 4] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(KeyedMac::new(&key).tag(message).to_vec(), hex(expected));
        }
    }

    #[test]
    fn known_answer_from_cookie_signature() {
        assert_eq!(
            sign("hello", "tobiiscool").as_deref(),
            Some("hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI")
        );
    }

    #[test]
    fn unsign_round_trips_and_rejects_tampering() {
        let secrets = Secrets::new(&["tobiiscool"]).unwrap();
        let signed = secrets.sign("hello");
        assert_eq!(secrets.unsign(&signed), Some("hello"));
        assert_eq!(secrets.unsign(&signed.replace("hello", "hellp")), None);
        assert_eq!(secrets.unsign(&format!("{signed}x")), None);
        assert_eq!(secrets.unsign(&signed[..signed.len() - 1]), None);
        assert_eq!(secrets.unsign("hello"), None);
        assert_eq!(secrets.unsign(""), None);
    }

    #[test]
    fn a_change_anywhere_in_the_signature_is_refused() {
        let secrets = Secrets::new(&["tobiiscool"]).unwrap();
        let signed = secrets.sign("hello");
        let at = signed.len() - SIGNATURE_LEN;
        for i in at..signed.len() {
            let mut tampered = signed.clone().into_bytes();
            tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert_eq!(secrets.unsign(&tampered), None, "{tampered}");
        }
    }

    #[test]
    fn empty_sid_is_refused_even_when_signed() {
        let secrets = Secrets::new(&["k"]).unwrap();
        assert_eq!(secrets.unsign(&secrets.sign("")), None);
    }

    #[test]
    fn every_secret_verifies_and_the_first_signs() {
        let new = Secrets::new(&["new"]).unwrap();
        let old = Secrets::new(&["old"]).unwrap();
        let both = Secrets::new(&["new", "old"]).unwrap();
        assert_eq!(both.sign("sid"), new.sign("sid"));
        assert_eq!(both.unsign(&old.sign("sid")), Some("sid"));
        assert_eq!(new.unsign(&old.sign("sid")), None);
    }

    #[test]
    fn multibyte_before_signature_does_not_panic() {
        let secrets = Secrets::new(&["k"]).unwrap();
        assert_eq!(
            secrets.unsign("é.ééééééééééééééééééééééééééééééééééééééééééé"),
            None
        );
        assert_eq!(secrets.unsign(".☃"), None);
    }

    #[test]
    fn secrets_from_env() {
        assert!(Secrets::from_env_value("plain secret").is_ok());
        assert_eq!(Secrets::from_env_value("[\"a\",\"b\"]").unwrap().count(), 2);
        assert!(Secrets::from_env_value("[]").is_err());
        assert!(Secrets::from_env_value("[\"a\"").is_err());
        assert!(Secrets::from_env_value("").is_err());
    }
}
