//! The admission contract v1 (docs/ADMISSION.md), the gate's side, apart from any I/O: what it
//! signs and sends to a room that is not the built-in one (an app's own Durable Object), the
//! control requests it sends later, and the tickets rooms send back to revalidate.
//!
//! Everything is ASCII: JSON in base64url (no padding), authenticated with
//! `b64u(HMAC-SHA256(ADMISSION_KEY, label + "." + text))`, labels per message kind.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::engine::{Attachment, RequestFacts};
use crate::json_read::{self, Fields};

pub const ADMISSION_LABEL: &str = "sessiongate-admission-v1";
pub const CONTROL_LABEL: &str = "sessiongate-control-v1";
pub const REVALIDATE_LABEL: &str = "sessiongate-revalidate-v1";
pub const REVALIDATED_LABEL: &str = "sessiongate-revalidated-v1";
/// How long an admission or a control is valid after it was issued.
pub const VALID_MS: i64 = 30_000;
/// Tickets one revalidation request may carry.
pub const MAX_TICKETS: usize = 100;

/// The MAC of `text` under `key` for one kind of message.
pub fn mac(key: &str, label: &str, text: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(label.as_bytes());
    m.update(b".");
    m.update(text.as_bytes());
    URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// Checks a MAC in constant time.
pub fn verify(key: &str, label: &str, text: &str, presented: &str) -> bool {
    crate::signature::bearer_matches(presented, &mac(key, label, text))
}

/// What a room sends back to revalidate a socket: what the built-in Room keeps for it (sid,
/// route, parameters, the query and headers the rules read). Opaque to the room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    #[serde(rename = "s")]
    pub sid: String,
    #[serde(rename = "r")]
    pub route: usize,
    #[serde(rename = "p", default)]
    pub params: Vec<(String, String)>,
    #[serde(rename = "q", default)]
    pub request: RequestFacts,
    /// The socket's `revoke_by` values as admitted (path, value), which a renewal of its index
    /// entries lists ([`Ticket::renewal_keys`]). `None` in a ticket written before tickets
    /// carried them.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub revoke_keys: Option<Vec<(String, Value)>>,
}

impl Ticket {
    pub fn of(a: &Attachment) -> Ticket {
        Ticket {
            sid: a.sid.clone(),
            route: a.route,
            params: a.params.clone(),
            request: a.request.clone(),
            revoke_keys: Some(a.revoke_keys.clone()),
        }
    }

    /// The revocation keys a renewal of this socket's index entries lists: those it was
    /// admitted with, which are what the room tagged it with (`revoke` of the admission) and
    /// what the built-in Room renews for its own sockets. The session's keys as they stand
    /// (`current`) would miss a `revoke_by` value changed on a live sid (a login without
    /// `regenerate`): the old value's entry would lapse while the socket it names stays open.
    /// `current` only for a ticket that does not carry its keys.
    pub fn renewal_keys<P: AsRef<str>>(&self, current: &[(P, Value)]) -> Vec<String> {
        match &self.revoke_keys {
            Some(admitted) => crate::revocation::socket_keys(&self.sid, admitted),
            None => crate::revocation::socket_keys(&self.sid, current),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Option<Ticket> {
        let mut f = Fields::parse(&URL_SAFE_NO_PAD.decode(text).ok()?)?;
        Some(Ticket {
            sid: f.string("s")?,
            route: f.read("r", json_read::index)?,
            params: f.or_default("p", json_read::string_pairs)?,
            request: f.or_default("q", RequestFacts::from_value)?,
            revoke_keys: f.optional("k", json_read::value_pairs)?,
        })
    }

    /// The socket as `decision::recheck` reads it.
    pub fn as_attachment(&self) -> Attachment {
        Attachment {
            id: String::new(),
            session: Value::Null,
            sid: self.sid.clone(),
            route: self.route,
            params: self.params.clone(),
            request: self.request.clone(),
            expires_at_ms: None,
            revoke_keys: self.revoke_keys.clone().unwrap_or_default(),
            departed: false,
        }
    }
}

/// The forwarded upgrade's two headers: the admission and its signature.
pub struct Signed {
    pub value: String,
    pub signature: String,
}

/// The admission for a socket the gate admitted into `room` of an app's namespace.
pub fn admission(
    key: &str,
    room: &str,
    route_pattern: &str,
    a: &Attachment,
    revoke_ids: &[String],
    now_ms: i64,
    nonce: &[u8; 16],
) -> Signed {
    let params: Map<String, Value> = a
        .params
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    let body = json!({
        "v": 1,
        "room": room,
        "id": a.id,
        "route": route_pattern,
        "params": params,
        "session": a.session,
        "expires_at": a.expires_at_ms,
        "revoke": revoke_ids,
        "ticket": Ticket::of(a).encode(),
        "iat": now_ms,
        "exp": now_ms + VALID_MS,
        "nonce": URL_SAFE_NO_PAD.encode(nonce),
    });
    signed(key, ADMISSION_LABEL, &body)
}

/// `body` as a header value (base64url JSON) with its MAC.
fn signed(key: &str, label: &str, body: &Value) -> Signed {
    let value = URL_SAFE_NO_PAD.encode(body.to_string());
    Signed {
        signature: mac(key, label, &value),
        value,
    }
}

/// A revoke control for the sockets of one key id.
pub fn revoke_control(key: &str, key_id: &str, now_ms: i64, nonce: &[u8; 16]) -> Signed {
    let body = json!({
        "v": 1,
        "op": "revoke",
        "key": key_id,
        "iat": now_ms,
        "exp": now_ms + VALID_MS,
        "nonce": URL_SAFE_NO_PAD.encode(nonce),
    });
    signed(key, CONTROL_LABEL, &body)
}

/// A signed revalidation request (docs/ADMISSION.md section 3).
#[derive(Debug, PartialEq)]
pub struct Revalidation {
    pub tickets: Vec<String>,
    /// How often the room revalidates (its `every`, in ms): the gate then renews the room's
    /// index entries (`revocation::renewal_due`). `None`: the room did not say.
    pub every_ms: Option<i64>,
}

/// A revalidation request, if its signature holds and it is well formed (at most
/// `MAX_TICKETS` tickets; `every`, if present, whole seconds from 1 to a day).
pub fn revalidation(key: &str, body: &str, signature: &str) -> Option<Revalidation> {
    if !verify(key, REVALIDATE_LABEL, body, signature) {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    if v["v"] != json!(1) {
        return None;
    }
    let tickets: Vec<String> = v["tickets"]
        .as_array()?
        .iter()
        .map(|t| t.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let every_ms = match &v["every"] {
        Value::Null => None,
        every => Some(crate::revocation::revalidate_every_ms(every.as_i64()?)?),
    };
    (tickets.len() <= MAX_TICKETS).then_some(Revalidation { tickets, every_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> Attachment {
        Attachment {
            id: "c0a1b2c3d4e5f".into(),
            session: json!({"user": {"name": "Zoë"}}),
            sid: "XYxA01K1Js0u7JYkqNzvolwuNnbFxjpG".into(),
            route: 1,
            params: vec![("room".into(), "lobby".into())],
            request: RequestFacts::default(),
            expires_at_ms: Some(1_795_694_400_000),
            revoke_keys: vec![],
            departed: false,
        }
    }

    #[test]
    fn macs_are_labelled_and_verified_in_constant_time() {
        let m = mac("k", ADMISSION_LABEL, "text");
        assert_eq!(m.len(), 43);
        assert!(verify("k", ADMISSION_LABEL, "text", &m));
        assert!(!verify("k", CONTROL_LABEL, "text", &m));
        assert!(!verify("other", ADMISSION_LABEL, "text", &m));
        assert!(!verify("k", ADMISSION_LABEL, "text2", &m));
    }

    #[test]
    fn an_admission_is_ascii_signed_and_carries_a_ticket_back_to_the_socket() {
        let a = socket();
        let signed = admission(
            "k",
            "room:lobby",
            "/ws/rooms/:room",
            &a,
            &["ab".repeat(32)],
            1_000,
            &[7; 16],
        );
        assert!(signed.value.is_ascii());
        assert!(verify(
            "k",
            ADMISSION_LABEL,
            &signed.value,
            &signed.signature
        ));
        let body: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&signed.value).unwrap()).unwrap();
        assert_eq!(body["v"], 1);
        assert_eq!(body["exp"], 31_000);
        assert_eq!(body["params"], json!({"room": "lobby"}));
        assert_eq!(body["session"]["user"]["name"], "Zoë");
        let ticket = Ticket::decode(body["ticket"].as_str().unwrap()).unwrap();
        assert_eq!(ticket, Ticket::of(&a));
        assert_eq!(ticket.as_attachment().sid, a.sid);
    }

    #[test]
    fn a_renewal_lists_the_keys_the_socket_was_admitted_with_not_the_sessions_as_they_stand() {
        use crate::revocation::{field_key, sid_key};
        // Admitted as u-old; then a login on the same sid without regenerate made it u-new.
        let mut a = socket();
        a.revoke_keys = vec![("passport.user".into(), json!("u-old"))];
        let signed = admission(
            "k",
            "room:lobby",
            "/ws/rooms/:room",
            &a,
            &[],
            1_000,
            &[7; 16],
        );
        let body: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&signed.value).unwrap()).unwrap();
        let admitted = Ticket::decode(body["ticket"].as_str().unwrap()).unwrap();
        let now = [("passport.user", json!("u-new"))];
        assert_eq!(
            admitted.renewal_keys(&now),
            vec![sid_key(&a.sid), field_key("passport.user", &json!("u-old"))]
        );
        assert_eq!(admitted.as_attachment().revoke_keys, a.revoke_keys);
    }

    #[test]
    fn a_ticket_written_before_tickets_carried_keys_renews_the_sessions_as_they_stand() {
        use crate::revocation::{field_key, sid_key};
        let old = serde_json::json!({"s": "abc", "r": 1, "p": [["room", "lobby"]]});
        let ticket = Ticket::decode(&URL_SAFE_NO_PAD.encode(old.to_string())).unwrap();
        assert_eq!(ticket.revoke_keys, None);
        let now = [("passport.user", json!("u-new"))];
        assert_eq!(
            ticket.renewal_keys(&now),
            vec![sid_key("abc"), field_key("passport.user", &json!("u-new"))]
        );
        // The gate's tickets always carry their keys, none as an empty list.
        let written: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(Ticket::of(&socket()).encode())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(written["k"], json!([]));
    }

    #[test]
    fn revalidation_requests_need_the_signature_and_at_most_100_tickets() {
        let body = json!({"v": 1, "tickets": ["a", "b"]}).to_string();
        let sig = mac("k", REVALIDATE_LABEL, &body);
        assert_eq!(
            revalidation("k", &body, &sig),
            Some(Revalidation {
                tickets: vec!["a".into(), "b".into()],
                every_ms: None
            })
        );
        assert_eq!(revalidation("k", &body, "forged"), None);
        assert_eq!(revalidation("k2", &body, &sig), None);
        let many = json!({"v": 1, "tickets": vec!["t"; 101]}).to_string();
        assert_eq!(
            revalidation("k", &many, &mac("k", REVALIDATE_LABEL, &many)),
            None
        );
        let v2 = json!({"v": 2, "tickets": []}).to_string();
        assert_eq!(
            revalidation("k", &v2, &mac("k", REVALIDATE_LABEL, &v2)),
            None
        );
    }

    #[test]
    fn a_revalidation_says_how_often_in_whole_seconds_up_to_a_day_or_is_malformed() {
        let signed = |every: Value| {
            let body = json!({"v": 1, "tickets": ["a"], "every": every}).to_string();
            revalidation("k", &body, &mac("k", REVALIDATE_LABEL, &body)).map(|r| r.every_ms)
        };
        assert_eq!(signed(json!(60)), Some(Some(60_000)));
        assert_eq!(signed(Value::Null), Some(None));
        for bad in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("60"),
            json!(86_401),
            json!([60]),
        ] {
            assert_eq!(signed(bad.clone()), None, "{bad}");
        }
    }
}
