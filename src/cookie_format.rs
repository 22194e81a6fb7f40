//! How a web framework writes its session cookie's value, and how the gate reads the sid back.
//!
//! One format today, express-session's (and everything compatible with it): the value is
//! `encodeURIComponent("s:" + sign(sid, secrets[0]))`, where `sign` is `cookie-signature`'s
//! (see [`crate::signature`]). Another framework's format is one more variant here and one
//! more config value (`cookie_format`); nothing else in the gate reads the cookie's value.

use crate::signature::Secrets;

/// The marker express-session puts before a signed value. A value without it is an unsigned
/// sid, which is never a session.
const EXPRESS_SIGNED_PREFIX: &str = "s:";

/// The session cookie formats the gate reads (config `cookie_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieFormat {
    /// express-session: `s:<sid>.<base64 HMAC-SHA256 without padding>`.
    #[default]
    ExpressSession,
}

/// Why a cookie value holds no verified sid. For logs and `explain`; clients only hear "bad
/// signature".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// Not in the format at all (express-session: no `s:` prefix).
    NotSigned,
    /// In the format, but no secret verifies it.
    BadSignature,
}

impl CookieFormat {
    /// Every format, with its config name.
    pub const ALL: [(CookieFormat, &'static str); 1] =
        [(CookieFormat::ExpressSession, "express-session")];

    pub fn as_str(self) -> &'static str {
        match self {
            CookieFormat::ExpressSession => "express-session",
        }
    }

    /// The verified sid of a (percent-decoded) cookie value, or why there is none.
    pub fn verify<'a>(self, secrets: &Secrets, value: &'a str) -> Result<&'a str, Unsigned> {
        match self {
            CookieFormat::ExpressSession => {
                // Two bytes compared in place, rather than through memcmp.
                let signed = match value.as_bytes() {
                    [b's', b':', ..] => &value[EXPRESS_SIGNED_PREFIX.len()..],
                    _ => return Err(Unsigned::NotSigned),
                };
                secrets.unsign(signed).ok_or(Unsigned::BadSignature)
            }
        }
    }

    /// The verified sid, if any.
    pub fn sid<'a>(self, secrets: &Secrets, value: &'a str) -> Option<&'a str> {
        self.verify(secrets, value).ok()
    }

    /// The cookie value the framework would set for `sid` (percent-encoded, as sent).
    pub fn cookie_value(self, secrets: &Secrets, sid: &str) -> String {
        match self {
            CookieFormat::ExpressSession => {
                let mut signed = String::from(EXPRESS_SIGNED_PREFIX);
                signed.push_str(&secrets.sign(sid));
                crate::cookie::percent_encode(&signed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn express_session_known_answer() {
        // cookie-signature's README vector, as express-session's cookie value.
        let secrets = Secrets::new(&["tobiiscool"]).unwrap();
        let format = CookieFormat::ExpressSession;
        let value = format.cookie_value(&secrets, "hello");
        assert_eq!(
            value,
            "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
        let decoded = "s:hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI";
        assert_eq!(format.verify(&secrets, decoded), Ok("hello"));
    }

    #[test]
    fn an_unsigned_sid_is_never_a_session() {
        let secrets = Secrets::new(&["k"]).unwrap();
        let format = CookieFormat::ExpressSession;
        let signed = secrets.sign("abc");
        assert_eq!(format.verify(&secrets, &signed), Err(Unsigned::NotSigned));
        assert_eq!(format.verify(&secrets, "abc"), Err(Unsigned::NotSigned));
        assert_eq!(
            format.verify(&secrets, "s:abc.x"),
            Err(Unsigned::BadSignature)
        );
        assert_eq!(format.sid(&secrets, &format!("s:{signed}")), Some("abc"));
    }
}
