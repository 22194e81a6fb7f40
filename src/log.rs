//! The Worker's log lines: one JSON object per line, `{"sessiongate": KIND, ...}`, each kind
//! documented once, here. Field names are a contract (the end-to-end tests and anyone's log
//! queries read them). A sid never appears in a line, only its [`SidTag`], and text a client
//! controls only [`Clipped`]: the types take nothing else.

use serde::Serialize;

/// One log line.
#[derive(Debug, Serialize)]
#[serde(tag = "sessiongate", rename_all = "snake_case")]
pub enum LogEvent<'a> {
    /// `[vars.SESSIONGATE]` or `SESSION_SECRETS` could not be read: logged once per isolate,
    /// then every request answers 500 (never fail open).
    ConfigInvalid { error: &'a str },
    /// A handshake was decided: `{"decision": "admit" | "deny", ...}`.
    Decision(Decision<'a>),
    /// An admitted handshake whose projected session does not fit the socket's 2 KB
    /// attachment (the config exposes too much): answered 500.
    Config {
        room: Clipped,
        error: String,
        session_bytes: usize,
        sid: SidTag,
    },
    /// A route's `target` cannot be reached: its binding or `ADMISSION_KEY` is missing.
    /// Answered 500, never an admit.
    Target { route: &'a str, error: &'a str },
    /// Something failed inside a room: bookkeeping after a socket arrived, an alarm, an app.
    Room {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<Clipped>,
        error: Clipped,
    },
    /// Revalidation closes a socket: its session is gone (401) or now fails a rule (403).
    Revalidation {
        status: u16,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<Clipped>,
        sid: SidTag,
    },
    /// `POST /_sessiongate/revoke`.
    Revoke(Revoke),
    /// The session store endpoints, `/_sessiongate/sessions/:sid`.
    Store(Store),
}

/// A handshake's decision.
#[derive(Debug, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision<'a> {
    /// Admitted by the gate; the socket goes to `room`.
    Admit {
        route: &'a str,
        room: Clipped,
        sid: SidTag,
    },
    /// Refused: by the gate at `check` (`route` ... `rules`), or by the room at
    /// `check: "limits"`. `detail` (the failing rule, the store's error) is for logs only.
    Deny {
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<Clipped>,
        status: u16,
        reason: &'static str,
        check: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<Clipped>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sid: Option<SidTag>,
    },
}

/// What a revocation did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Revoke {
    /// Sockets `closed` in `rooms` occupied rooms, `failed` rooms that did not answer, KV keys
    /// `deleted`.
    Done {
        closed: u64,
        rooms: usize,
        failed: usize,
        deleted: usize,
    },
    /// A bad or missing token (nothing closed), or a room that did not answer.
    Error { error: Clipped },
}

/// What a session store request did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Store {
    /// A bad or missing token: nothing changed.
    Error { error: &'static str },
    /// `op` (`put`, `get`, `delete`) answered `status`: 200, or 503 when KV or a room failed
    /// (`detail`). A delete says how many sockets it `closed` in how many `rooms`.
    Done {
        op: &'static str,
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        closed: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rooms: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<Clipped>,
        sid: SidTag,
    },
}

impl LogEvent<'_> {
    /// The line as written: JSON on one line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"sessiongate\":\"log\",\"error\":\"{e}\"}}"))
    }
}

/// A short, one-way tag for a sid in logs: the first 8 hex digits of its SHA-256. A sid has
/// 192 random bits, so the tag links log lines without revealing anything usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SidTag(String);

impl SidTag {
    pub fn of(sid: &str) -> SidTag {
        use sha2::Digest;
        SidTag(hex(&sha2::Sha256::digest(sid.as_bytes())[..4]))
    }
}

/// Text a client controls (a room name, a rule's detail, an error quoting a request) as it may
/// appear in a log line: at most 64 bytes once JSON-escaped (a control character takes 6), so
/// a line stays short whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Clipped(String);

impl Clipped {
    const MAX_BYTES: usize = 64;

    pub fn of(text: &str) -> Clipped {
        let mut used = 0;
        for (at, c) in text.char_indices() {
            used += crate::decision::json_char_len(c);
            if used > Self::MAX_BYTES {
                return Clipped(format!("{}... ({} bytes)", &text[..at], text.len()));
            }
        }
        Clipped(text.to_owned())
    }

    /// The text with every copy of `sid` replaced by `<sid>` first (a store's error may quote
    /// the key, which holds the sid).
    pub fn without_sid(text: &str, sid: &str) -> Clipped {
        if sid.is_empty() {
            Clipped::of(text)
        } else {
            Clipped::of(&text.replace(sid, "<sid>"))
        }
    }
}

/// Lower-case hex, without an allocation per byte (sid tags, connection ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn line(event: LogEvent<'_>) -> Value {
        serde_json::from_str(&event.to_line()).unwrap()
    }

    #[test]
    fn decisions_keep_the_fields_the_tests_read() {
        let sid = "s".repeat(32);
        let admit = line(LogEvent::Decision(Decision::Admit {
            route: "/ws/rooms/:room",
            room: Clipped::of("room:☃"),
            sid: SidTag::of(&sid),
        }));
        assert_eq!(
            admit,
            json!({"sessiongate": "decision", "decision": "admit", "route": "/ws/rooms/:room",
                   "room": "room:☃", "sid": SidTag::of(&sid).0})
        );
        let deny = line(LogEvent::Decision(Decision::Deny {
            route: Some("/ws/admin/:room"),
            room: None,
            status: 403,
            reason: "rule denied",
            check: "rules",
            detail: Some(Clipped::of("require[0] failed")),
            sid: None,
        }));
        assert_eq!(
            deny,
            json!({"sessiongate": "decision", "decision": "deny", "route": "/ws/admin/:room",
                   "status": 403, "reason": "rule denied", "check": "rules",
                   "detail": "require[0] failed"})
        );
    }

    #[test]
    fn other_events_are_tagged_by_kind() {
        let config = line(LogEvent::Config {
            room: Clipped::of("room:a"),
            error: "over the 2048-byte budget".into(),
            session_bytes: 3100,
            sid: SidTag::of("x"),
        });
        assert_eq!(
            (&config["sessiongate"], &config["session_bytes"]),
            (&json!("config"), &json!(3100))
        );
        let revoke = line(LogEvent::Revoke(Revoke::Done {
            closed: 2,
            rooms: 3,
            failed: 0,
            deleted: 1,
        }));
        assert_eq!(
            revoke,
            json!({"sessiongate": "revoke", "closed": 2, "rooms": 3, "failed": 0, "deleted": 1})
        );
        let store = line(LogEvent::Store(Store::Done {
            op: "delete",
            status: 200,
            closed: Some(1),
            rooms: Some(1),
            detail: None,
            sid: SidTag::of("x"),
        }));
        assert_eq!(
            (&store["sessiongate"], &store["op"], &store["status"]),
            (&json!("store"), &json!("delete"), &json!(200))
        );
        let invalid = line(LogEvent::ConfigInvalid { error: "bad" });
        assert_eq!(
            invalid,
            json!({"sessiongate": "config_invalid", "error": "bad"})
        );
        let revalidation = line(LogEvent::Revalidation {
            status: 403,
            reason: "rule denied",
            detail: None,
            sid: SidTag::of("x"),
        });
        assert_eq!(revalidation["sessiongate"], "revalidation");
    }

    #[test]
    fn sids_become_tags_and_client_text_is_clipped() {
        let sid = "abcdefghijklmnopqrstuvwxyz012345";
        let tag = SidTag::of(sid);
        assert_eq!(tag.0.len(), 8);
        assert_ne!(tag, SidTag::of("another"));
        assert_eq!(Clipped::of("short").0, "short");
        // 64 bytes of text as a log line holds it: 32 two-byte characters, 10 control ones.
        let long = Clipped::of(&"é".repeat(100)).0;
        assert_eq!(long, format!("{}... (200 bytes)", "é".repeat(32)));
        let controls = Clipped::of(&"\u{1}".repeat(100)).0;
        assert_eq!(controls, format!("{}... (100 bytes)", "\u{1}".repeat(10)));
        let detail = Clipped::without_sid(&format!("key sess:{sid} too long"), sid).0;
        assert_eq!(detail, "key sess:<sid> too long");
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }
}
