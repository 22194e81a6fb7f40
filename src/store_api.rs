//! The session store endpoints (`/_sessiongate/sessions/:sid`), apart from any I/O: which sids
//! they accept, which bodies they store, and for how long KV keeps them.
//!
//! An Express app's store (`packages/express-store/`) writes through them what express-session
//! hands a store, `JSON.stringify(req.session)`, so the gate reads exactly what the app wrote.

use serde_json::Value;

/// Where the endpoints live; the sid follows.
pub const PATH_PREFIX: &str = "/_sessiongate/sessions/";
/// Largest session body accepted (413 beyond). express-session sessions are a few hundred
/// bytes; KV values may be far larger, but a session that big is a bug at the origin.
pub const MAX_BODY_BYTES: usize = 65_536;
/// express-session's sids are 32 characters of base64url (24 random bytes); custom `genid`
/// functions commonly make UUIDs (36). Anything outside 16..=128 base64url characters is not a
/// session id any store would make.
pub const MIN_SID_CHARS: usize = 16;
pub const MAX_SID_CHARS: usize = 128;
/// Workers KV refuses an `expirationTtl` under 60 seconds.
pub const MIN_TTL_SECONDS: u64 = 60;

/// Why a store request is refused. The message is safe to send back: it never holds the sid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreRequestError {
    /// The sid is not 16 to 128 characters of `[A-Za-z0-9_-]`.
    #[error("session id must be {MIN_SID_CHARS} to {MAX_SID_CHARS} characters of A-Z a-z 0-9 _ -")]
    BadSid,
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("session is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not a JSON object.
    #[error("body must be a JSON object (the session)")]
    NotAnObject,
    /// The body has no `cookie` object: not what express-session stores.
    #[error("session has no \"cookie\" object (express-session writes one)")]
    NoCookie,
    /// `cookie.expires` is neither null nor an ISO date string.
    #[error("session cookie.expires must be null or an ISO date")]
    BadExpires,
}

impl StoreRequestError {
    pub fn status(&self) -> u16 {
        match self {
            StoreRequestError::TooLarge => 413,
            _ => 400,
        }
    }
}

/// Accepts only what a session store would use as a sid.
pub fn check_sid(sid: &str) -> Result<(), StoreRequestError> {
    let valid = (MIN_SID_CHARS..=MAX_SID_CHARS).contains(&sid.len())
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreRequestError::BadSid)
    }
}

/// What to store: the KV TTL of a checked session body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// `expirationTtl` in seconds, or `None` to keep the key until it is deleted.
    pub ttl_seconds: Option<u64>,
}

/// Checks a session body and works out its TTL: until `cookie.expires` (at least KV's 60 s),
/// and at most `max_ttl_seconds` if set. A browser-session cookie (`expires: null`) has no
/// expiry the gate can see, so it is kept until deleted, or for `max_ttl_seconds`.
pub fn check_put(
    body: &str,
    now_ms: i64,
    max_ttl_seconds: Option<u64>,
) -> Result<Put, StoreRequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(StoreRequestError::TooLarge);
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) else {
        return Err(StoreRequestError::NotAnObject);
    };
    if !fields.get("cookie").is_some_and(Value::is_object) {
        return Err(StoreRequestError::NoCookie);
    }
    let session =
        crate::session::Session::from_map(fields).map_err(|_| StoreRequestError::BadExpires)?;
    let until_expiry = session.expires_at_ms().map(|at| {
        let ms = at.saturating_sub(now_ms).max(0) as u64;
        ms.div_ceil(1000).max(MIN_TTL_SECONDS)
    });
    let ttl_seconds = match (until_expiry, max_ttl_seconds) {
        (Some(t), Some(max)) => Some(t.min(max.max(MIN_TTL_SECONDS))),
        (Some(t), None) => Some(t),
        (None, max) => max.map(|m| m.max(MIN_TTL_SECONDS)),
    };
    Ok(Put { ttl_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_651_200_000; // 2026-11-26T00:00:00Z

    fn body(expires: &str) -> String {
        format!(
            r#"{{"cookie":{{"originalMaxAge":3600000,"expires":{expires},"httpOnly":true,"path":"/"}},"passport":{{"user":"u-42"}}}}"#
        )
    }

    #[test]
    fn express_session_sids_and_uuids_pass_anything_else_is_400() {
        assert_eq!(check_sid("XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG"), Ok(()));
        assert_eq!(check_sid("7c9e6679-7425-40de-944b-e07fc1f90ae7"), Ok(()));
        for bad in [
            "",
            "short",
            &"a".repeat(MAX_SID_CHARS + 1),
            "XYxA01K1Js0u7JYkqNzvolwuNnbFxjp+",
            "XYxA01K1Js0u7JYkqNzvolwuNnbFxjp/",
            "XYxA01K1Js0u7JYkqNzvolwuNnbFxj%2F",
            "XYxA01K1Js0u7JYkqNzvolwuNnbFxjp.",
            "XYxA01K1Js0u7JYkqNzvolwuNnbFxj☃",
        ] {
            assert_eq!(check_sid(bad), Err(StoreRequestError::BadSid), "{bad:?}");
        }
        assert_eq!(StoreRequestError::BadSid.status(), 400);
    }

    #[test]
    fn ttl_runs_to_cookie_expires_at_least_60_s() {
        let in_an_hour = body("\"2026-11-26T01:00:00.000Z\"");
        assert_eq!(
            check_put(&in_an_hour, NOW, None).unwrap().ttl_seconds,
            Some(3600)
        );
        // Rounded up: KV must not drop a session before its cookie expires.
        assert_eq!(
            check_put(&in_an_hour, NOW + 1, None).unwrap().ttl_seconds,
            Some(3600)
        );
        let soon = body("\"2026-11-26T00:00:10.000Z\"");
        assert_eq!(check_put(&soon, NOW, None).unwrap().ttl_seconds, Some(60));
        let past = body("\"2026-11-25T00:00:00.000Z\"");
        assert_eq!(check_put(&past, NOW, None).unwrap().ttl_seconds, Some(60));
        assert_eq!(
            check_put(&in_an_hour, NOW, Some(600)).unwrap().ttl_seconds,
            Some(600)
        );
        assert_eq!(
            check_put(&in_an_hour, NOW, Some(10)).unwrap().ttl_seconds,
            Some(60)
        );
    }

    #[test]
    fn browser_session_cookie_is_kept_until_deleted_or_the_cap() {
        let browser = body("null");
        assert_eq!(check_put(&browser, NOW, None).unwrap().ttl_seconds, None);
        assert_eq!(
            check_put(&browser, NOW, Some(86_400)).unwrap().ttl_seconds,
            Some(86_400)
        );
    }

    #[test]
    fn bodies_that_are_not_express_sessions_are_400_and_huge_ones_413() {
        for (text, err) in [
            ("", StoreRequestError::NotAnObject),
            ("[1]", StoreRequestError::NotAnObject),
            ("\"s\"", StoreRequestError::NotAnObject),
            ("{\"cookie\":1}", StoreRequestError::NoCookie),
            ("{\"passport\":{}}", StoreRequestError::NoCookie),
            (
                "{\"cookie\":{\"expires\":5}}",
                StoreRequestError::BadExpires,
            ),
            (
                "{\"cookie\":{\"expires\":\"soon\"}}",
                StoreRequestError::BadExpires,
            ),
        ] {
            assert_eq!(check_put(text, NOW, None), Err(err), "{text}");
        }
        let huge = format!(
            r#"{{"cookie":{{"expires":null}},"blob":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        let e = check_put(&huge, NOW, None).unwrap_err();
        assert_eq!((e.clone(), e.status()), (StoreRequestError::TooLarge, 413));
        assert!(check_put("{\"cookie\":{}}", NOW, None).is_ok());
    }
}
