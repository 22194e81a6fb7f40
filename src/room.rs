//! The Room's protocol, apart from any socket: what a client may send, what the Room sends
//! back, what it keeps with each socket, and the per-socket rate limit. The Durable Object in
//! the Worker layer only moves these frames.
//!
//! Client to room: `{"type":"broadcast","data":ANY}`, `{"type":"send","to":ID,"data":ANY}`.
//! Room to client: `welcome`, `join`, `leave`, `message`, `error` (see docs/PROTOCOL.md).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Hibernation attachments must stay small; workerd allows more, but sessiongate keeps each under
/// 2 KB (README.md, "The Room").
pub const ATTACHMENT_BUDGET: usize = 2048;

/// What the Room keeps with each socket (its hibernation attachment). Everything needed to
/// speak for the socket (`id`, `session`) and to re-check it later (`sid`, `route`, `params`,
/// `request`, `expires_at_ms`, `revoke_keys`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Connection id, unique within the room.
    pub id: String,
    /// The projected session (only the `expose` paths): what peers see.
    pub session: Value,
    /// The session id, for revalidation and revocation. Never sent to clients or logs.
    pub sid: String,
    /// Index of the route that admitted the socket.
    pub route: usize,
    /// Path parameters of that route.
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// Header and query values the rules look at, as the handshake sent them.
    #[serde(default)]
    pub request: RequestFacts,
    /// `cookie.expires` of the session (Unix ms).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Values of the `revoke_by` session paths, for revocation by user.
    #[serde(default)]
    pub revoke_keys: Vec<(String, Value)>,
    /// The room closed this socket and told the others already; its close handler must not
    /// announce the departure again. Kept in the attachment, so it survives hibernation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub departed: bool,
}

/// The parts of the handshake request that rules read, kept for revalidation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestFacts {
    pub query: String,
    pub headers: Vec<(String, String)>,
}

/// Why an attachment cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentTooLarge {
    pub bytes: usize,
}

impl std::fmt::Display for AttachmentTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "socket attachment is {} bytes, over the {ATTACHMENT_BUDGET}-byte budget: expose fewer or smaller session fields",
            self.bytes
        )
    }
}

impl Attachment {
    /// The serialized size, checked against the budget before the socket is accepted.
    pub fn check_size(&self) -> Result<usize, AttachmentTooLarge> {
        let bytes = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if bytes > ATTACHMENT_BUDGET {
            Err(AttachmentTooLarge { bytes })
        } else {
            Ok(bytes)
        }
    }

    /// The peer as others see it.
    pub fn peer(&self) -> Value {
        json!({"id": self.id, "session": self.session})
    }

    /// Does this socket belong to the session, or to a session whose `field` equals `value`?
    pub fn matches_revocation(&self, target: &RevokeTarget) -> bool {
        match target {
            RevokeTarget::Sid(sid) => crate::signature::constant_time_str_eq(&self.sid, sid),
            RevokeTarget::Field { field, equals } => {
                self.revoke_keys
                    .iter()
                    .any(|(f, v)| f == field && v == equals)
                    || crate::session::lookup(&self.session, field) == Some(equals)
            }
        }
    }
}

/// What a revocation closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RevokeTarget {
    Sid(String),
    Field { field: String, equals: Value },
}

/// A frame from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Broadcast { data: Value },
    Send { to: String, data: Value },
}

/// Why a client frame is refused; the socket stays open and gets an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    TooLarge { limit: usize },
    NotJson,
    NotAnObject,
    UnknownType(String),
    MissingField(&'static str),
    Binary,
}

impl FrameError {
    pub fn reason(&self) -> String {
        match self {
            FrameError::TooLarge { limit } => format!("frame over {limit} bytes"),
            FrameError::NotJson => "frame is not JSON".to_owned(),
            FrameError::NotAnObject => "frame is not a JSON object".to_owned(),
            FrameError::UnknownType(t) => format!("unknown frame type {t:?}"),
            FrameError::MissingField(f) => format!("frame needs \"{f}\""),
            FrameError::Binary => "binary frames are not supported".to_owned(),
        }
    }
}

/// Parses a client text frame, checking its size before parsing it.
pub fn parse_client_frame(text: &str, max_bytes: usize) -> Result<ClientFrame, FrameError> {
    if text.len() > max_bytes {
        return Err(FrameError::TooLarge { limit: max_bytes });
    }
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    let Value::Object(mut map) = value else {
        return Err(FrameError::NotAnObject);
    };
    let data = map.remove("data").unwrap_or(Value::Null);
    match map.get("type").and_then(Value::as_str) {
        Some("broadcast") => Ok(ClientFrame::Broadcast { data }),
        Some("send") => match map.get("to") {
            Some(Value::String(to)) => Ok(ClientFrame::Send {
                to: to.clone(),
                data,
            }),
            _ => Err(FrameError::MissingField("to")),
        },
        Some(other) => Err(FrameError::UnknownType(other.to_owned())),
        None => Err(FrameError::MissingField("type")),
    }
}

pub fn welcome(me: &Attachment, peers: &[Value]) -> String {
    json!({"type": "welcome", "id": me.id, "session": me.session, "peers": peers}).to_string()
}

pub fn join(peer: &Attachment) -> String {
    json!({"type": "join", "id": peer.id, "session": peer.session}).to_string()
}

pub fn leave(id: &str) -> String {
    json!({"type": "leave", "id": id}).to_string()
}

/// A message as peers receive it: `from` always comes from the sender's stored session.
pub fn message(from: &Attachment, data: &Value) -> String {
    json!({"type": "message", "from": from.peer(), "data": data}).to_string()
}

pub fn error(reason: &str) -> String {
    json!({"type": "error", "reason": reason}).to_string()
}

/// A fixed-window message counter for one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateWindow {
    started_ms: i64,
    count: u32,
}

impl RateWindow {
    /// Counts one message at `now_ms`; false once more than `limit` arrive within `window_ms`.
    pub fn allow(&mut self, now_ms: i64, limit: u32, window_ms: u64) -> bool {
        if now_ms - self.started_ms >= window_ms as i64 || now_ms < self.started_ms {
            self.started_ms = now_ms;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

/// When the Room should next wake: the earliest session expiry, or the next revalidation
/// (only while it has sockets).
pub fn next_alarm_ms(
    expiries: impl IntoIterator<Item = Option<i64>>,
    socket_count: usize,
    now_ms: i64,
    revalidate_ms: u64,
) -> Option<i64> {
    if socket_count == 0 {
        return None;
    }
    let revalidate = (revalidate_ms > 0).then(|| now_ms + revalidate_ms as i64);
    expiries.into_iter().flatten().chain(revalidate).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str) -> Attachment {
        Attachment {
            id: id.into(),
            session: json!({"user": {"name": "Ada"}}),
            sid: "sid-1".into(),
            route: 0,
            params: vec![("room".into(), "lobby".into())],
            request: RequestFacts::default(),
            expires_at_ms: None,
            revoke_keys: vec![("passport.user".into(), json!("u-42"))],
            departed: false,
        }
    }

    #[test]
    fn frames_parse_and_refuse_clearly() {
        assert_eq!(
            parse_client_frame(r#"{"type":"broadcast","data":{"text":"hi"}}"#, 100),
            Ok(ClientFrame::Broadcast {
                data: json!({"text": "hi"})
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"send","to":"c2","data":1}"#, 100),
            Ok(ClientFrame::Send {
                to: "c2".into(),
                data: json!(1)
            })
        );
        assert_eq!(parse_client_frame("nope", 100), Err(FrameError::NotJson));
        assert_eq!(parse_client_frame("[1]", 100), Err(FrameError::NotAnObject));
        assert_eq!(
            parse_client_frame(r#"{"type":"x"}"#, 100),
            Err(FrameError::UnknownType("x".into()))
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"send"}"#, 100),
            Err(FrameError::MissingField("to"))
        );
        assert_eq!(
            parse_client_frame(r#"{"data":1}"#, 100),
            Err(FrameError::MissingField("type"))
        );
        assert_eq!(
            parse_client_frame(&"x".repeat(101), 100),
            Err(FrameError::TooLarge { limit: 100 })
        );
    }

    #[test]
    fn message_from_is_the_stored_session_not_the_client() {
        let me = attachment("c1");
        let text = message(&me, &json!({"from": "forged"}));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["from"],
            json!({"id": "c1", "session": {"user": {"name": "Ada"}}})
        );
        assert_eq!(v["data"], json!({"from": "forged"}));
    }

    #[test]
    fn attachment_budget() {
        let mut a = attachment("c1");
        assert!(a.check_size().is_ok());
        a.session = json!({"blob": "x".repeat(ATTACHMENT_BUDGET)});
        assert!(a.check_size().is_err());
    }

    #[test]
    fn revocation_matches_sid_or_field() {
        let a = attachment("c1");
        assert!(a.matches_revocation(&RevokeTarget::Sid("sid-1".into())));
        assert!(!a.matches_revocation(&RevokeTarget::Sid("sid-2".into())));
        let by_user = RevokeTarget::Field {
            field: "passport.user".into(),
            equals: json!("u-42"),
        };
        assert!(a.matches_revocation(&by_user));
        let by_name = RevokeTarget::Field {
            field: "user.name".into(),
            equals: json!("Ada"),
        };
        assert!(a.matches_revocation(&by_name));
        let other = RevokeTarget::Field {
            field: "passport.user".into(),
            equals: json!("u-7"),
        };
        assert!(!a.matches_revocation(&other));
    }

    #[test]
    fn rate_window() {
        let mut w = RateWindow::default();
        assert!((0..3).all(|_| w.allow(1000, 3, 1000)));
        assert!(!w.allow(1500, 3, 1000));
        assert!(w.allow(2000, 3, 1000));
    }

    #[test]
    fn alarms_only_while_occupied() {
        assert_eq!(next_alarm_ms([Some(5_000)], 0, 0, 1000), None);
        assert_eq!(
            next_alarm_ms([Some(5_000), None], 2, 0, 60_000),
            Some(5_000)
        );
        assert_eq!(next_alarm_ms([None], 1, 100, 60_000), Some(60_100));
        assert_eq!(next_alarm_ms([None], 1, 100, 0), None);
    }
}
