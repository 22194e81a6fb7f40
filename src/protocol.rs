//! The Room's wire protocol, apart from any socket: the `error` frame and [`FrameError`] that
//! every room app shares, and the chat app's frames (the default app): what a client may send,
//! what the Room sends back. The Durable Object in the Worker layer only moves these frames.
//!
//! Client to room: `{"type":"broadcast","data":ANY}`, `{"type":"send","to":ID,"data":ANY}`.
//! Room to client: `welcome`, `join`, `leave`, `message`, `error` (see docs/PROTOCOL.md).

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::engine::Attachment;

/// A frame from a chat client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Broadcast { data: Value },
    Send { to: String, data: Value },
}

/// Why a client frame is refused; the socket stays open and gets an `error` frame with this
/// text as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Over `max_message_bytes` (the engine's check, for every app).
    #[error("frame over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("frame is not JSON")]
    NotJson,
    #[error("frame is not a JSON object")]
    NotAnObject,
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("frame needs \"{0}\"")]
    MissingField(&'static str),
    #[error("binary frames are not supported")]
    Binary,
    /// A direct message to a connection id that is not in the room.
    #[error("no peer {0:?} in this room")]
    NoPeer(String),
    /// A number field outside its bounds (or not an integer).
    #[error("\"{field}\" must be an integer from {min} to {max}")]
    OutOfRange {
        field: &'static str,
        min: i64,
        max: i64,
    },
    /// The change would take a value out of the range clients can read exactly.
    #[error("the value must stay within -{0}..{0}")]
    ValueOutOfRange(i64),
}

/// A client text frame as a JSON object and its `type`, for apps to match on.
pub fn typed_object(text: &str) -> Result<(String, Map<String, Value>), FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    let Value::Object(map) = value else {
        return Err(FrameError::NotAnObject);
    };
    match map.get("type") {
        Some(Value::String(kind)) => Ok((kind.clone(), map)),
        _ => Err(FrameError::MissingField("type")),
    }
}

/// Parses a chat client's text frame (the engine has checked its size).
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let (kind, mut map) = typed_object(text)?;
    let data = map.remove("data").unwrap_or(Value::Null);
    match kind.as_str() {
        "broadcast" => Ok(ClientFrame::Broadcast { data }),
        "send" => match map.remove("to") {
            Some(Value::String(to)) => Ok(ClientFrame::Send { to, data }),
            _ => Err(FrameError::MissingField("to")),
        },
        _ => Err(FrameError::UnknownType(kind)),
    }
}

// The room's frames are written from borrowed views, without building a `Value` (a welcome
// lists every peer's session: cloning them cost an allocation per peer per arrival). Fields
// are in the order `json!` wrote them before (its maps are sorted), so frames are unchanged.

/// A member as peers see it.
#[derive(Serialize)]
pub struct Peer<'a> {
    id: &'a str,
    session: &'a Value,
}

impl<'a> Peer<'a> {
    pub fn of(member: &'a Attachment) -> Self {
        Peer {
            id: &member.id,
            session: &member.session,
        }
    }
}

#[derive(Serialize)]
struct Join<'a> {
    id: &'a str,
    session: &'a Value,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn to_text(frame: &impl Serialize) -> String {
    // Serializing borrowed strings and `Value`s cannot fail (no non-string map keys).
    serde_json::to_string(frame).unwrap_or_default()
}

/// A member as peers see it, as JSON text: a room works it out once per member and lists it in
/// every newcomer's welcome (serializing each peer's session again at every arrival made
/// filling a room quadratic in serialization).
pub fn peer_text(member: &Attachment) -> String {
    to_text(&Peer::of(member))
}

/// The welcome, listing the peers' [`peer_text`]s; byte for byte what serde writes for
/// `{"id", "peers", "session", "type"}`.
pub fn welcome<'a>(me: &Attachment, peers: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::from(r#"{"id":"#);
    text.push_str(&to_text(&me.id));
    text.push_str(r#","peers":["#);
    for (i, peer) in peers.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(peer);
    }
    text.push_str(r#"],"session":"#);
    text.push_str(&to_text(&me.session));
    text.push_str(r#","type":"welcome"}"#);
    text
}

pub fn join(member: &Attachment) -> String {
    to_text(&Join {
        id: &member.id,
        session: &member.session,
        kind: "join",
    })
}

#[derive(Serialize)]
struct Leave<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

pub fn leave(id: &str) -> String {
    to_text(&Leave { id, kind: "leave" })
}

/// A message as peers receive it: `from` always comes from the sender's stored session, as its
/// [`peer_text`], which a room works out once per member (serializing the sender's session
/// again for every frame it sent was most of a frame's cost). Byte for byte what serde writes
/// for `{"data", "from", "type"}`.
pub fn message_from(peer_text: &str, data: &Value) -> String {
    let mut text = String::from(r#"{"data":"#);
    text.push_str(&to_text(data));
    text.push_str(r#","from":"#);
    text.push_str(peer_text);
    text.push_str(r#","type":"message"}"#);
    text
}

/// The answer to a refused frame, in every app.
pub fn error(refused: &FrameError) -> String {
    json!({"type": "error", "reason": refused.to_string()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_attachment as attachment;

    #[test]
    fn frames_parse_and_refuse_clearly() {
        assert_eq!(
            parse_client_frame(r#"{"type":"broadcast","data":{"text":"hi"}}"#),
            Ok(ClientFrame::Broadcast {
                data: json!({"text": "hi"})
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"send","to":"c2","data":1}"#),
            Ok(ClientFrame::Send {
                to: "c2".into(),
                data: json!(1)
            })
        );
        let refused = |text: &str| parse_client_frame(text).unwrap_err().to_string();
        assert_eq!(refused("nope"), "frame is not JSON");
        assert_eq!(refused("[1]"), "frame is not a JSON object");
        assert_eq!(refused(r#"{"type":"x"}"#), "unknown frame type \"x\"");
        assert_eq!(refused(r#"{"type":"send"}"#), "frame needs \"to\"");
        assert_eq!(refused(r#"{"data":1}"#), "frame needs \"type\"");
        assert_eq!(refused(r#"{"type":7}"#), "frame needs \"type\"");
    }

    #[test]
    fn error_frames_carry_the_reason() {
        let frame: Value = serde_json::from_str(&error(&FrameError::NoPeer("c9".into()))).unwrap();
        assert_eq!(
            frame,
            json!({"type": "error", "reason": "no peer \"c9\" in this room"})
        );
        assert_eq!(
            FrameError::TooLarge { limit: 1024 }.to_string(),
            "frame over 1024 bytes"
        );
        assert_eq!(
            FrameError::Binary.to_string(),
            "binary frames are not supported"
        );
    }

    #[test]
    fn frames_are_written_as_json_wrote_them() {
        let (me, other, third) = (attachment("c1"), attachment("c2"), attachment("c\"3"));
        let peers = [peer_text(&other), peer_text(&third)];
        let expected = json!({"type": "welcome", "id": "c1", "session": me.session, "peers": [
            {"id": "c2", "session": other.session}, {"id": "c\"3", "session": third.session}
        ]});
        assert_eq!(
            welcome(&me, peers.iter().map(String::as_str)),
            expected.to_string()
        );
        let alone = json!({"type": "welcome", "id": "c1", "session": me.session, "peers": []});
        assert_eq!(welcome(&me, std::iter::empty()), alone.to_string());
        let expected = json!({"type": "join", "id": "c1", "session": me.session});
        assert_eq!(join(&me), expected.to_string());
        let expected = json!({"type": "leave", "id": "c\"3"});
        assert_eq!(leave("c\"3"), expected.to_string());
        let data = json!({"b": [1, 2.5, "x"], "a": null});
        let expected =
            json!({"type": "message", "from": {"id": "c1", "session": me.session}, "data": data});
        assert_eq!(message_from(&peer_text(&me), &data), expected.to_string());
        let expected = json!({"type": "message", "from": {"id": "c\"3", "session": third.session}, "data": "a\"b"});
        assert_eq!(
            message_from(&peers[1], &json!("a\"b")),
            expected.to_string()
        );
    }

    #[test]
    fn message_from_is_the_stored_session_not_the_client() {
        let me = attachment("c1");
        let text = message_from(&peer_text(&me), &json!({"from": "forged"}));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["from"],
            json!({"id": "c1", "session": {"user": {"name": "Ada"}}})
        );
        assert_eq!(v["data"], json!({"from": "forged"}));
    }
}
