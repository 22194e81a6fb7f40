//! The Room engine's pure part, the same for every room app: what a room keeps with each
//! socket and how it gets there, whom it admits, which client frames it lets through, when it
//! wakes, whom revalidation and revocation close. The Durable Object (`src/edge/room/`) does
//! the I/O around these; the app behind it (chat, counter) only sees what the engine let
//! through.

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, RoomSettings};
use crate::decision::{Admission, Refusal};
use crate::json_read::{self, Fields};
use crate::protocol::FrameError;
use crate::rules::HeaderLookup;

/// Hibernation attachments must stay small; workerd allows more, but the design budget is 2 KB.
pub const ATTACHMENT_BUDGET: usize = 2048;
/// An alarm this much before the revalidation time still revalidates (alarms may fire early).
const REVALIDATION_SLACK_MS: i64 = 250;

/// What the Room keeps with each socket (its hibernation attachment). Everything needed to
/// speak for the socket (`id`, `session`) and to re-check it later (`sid`, `route`, `params`,
/// `request`, `expires_at_ms`, `revoke_keys`).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestFacts {
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl RequestFacts {
    /// As serde writes it (`{"query", "headers"}`, both required).
    pub fn from_value(value: Value) -> Option<RequestFacts> {
        let mut f = Fields::of(value)?;
        Some(RequestFacts {
            query: f.string("query")?,
            headers: f.read("headers", json_read::string_pairs)?,
        })
    }
}

/// Why an attachment cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("socket attachment is {bytes} bytes, over the {ATTACHMENT_BUDGET}-byte budget: expose fewer or smaller session fields")]
pub struct AttachmentTooLarge {
    pub bytes: usize,
}

impl Attachment {
    /// What the room keeps for an admitted handshake, as connection `id`: the admission, and
    /// the headers and query its rules read (only those), for revalidation.
    pub fn for_admission(
        id: String,
        admission: &Admission<'_>,
        config: &Config,
        headers: &dyn HeaderLookup,
        query: &str,
    ) -> Attachment {
        let (header_names, uses_query) = config.request_subjects(admission.route);
        let headers = header_names
            .iter()
            .filter_map(|name| {
                let value = headers.header(name)?;
                Some((name.clone(), value.into_owned()))
            })
            .collect();
        Attachment {
            id,
            session: admission.projection.clone(),
            sid: admission.sid().to_owned(),
            route: admission.route,
            params: admission.params.to_pairs(),
            request: RequestFacts {
                query: if uses_query {
                    query.to_owned()
                } else {
                    String::new()
                },
                headers,
            },
            expires_at_ms: admission.expires_at_ms,
            revoke_keys: admission
                .revoke_keys
                .iter()
                .map(|(path, value)| ((*path).to_owned(), value.clone()))
                .collect(),
            departed: false,
        }
    }

    /// The attachment as the room stores it with its socket: one JSON string, checked against
    /// the budget. A string crosses into JavaScript as one value and is read back only after a
    /// wake; an object would be built and read back field by field. `id` is the first field
    /// (the room's `members::stored_id` relies on it).
    pub fn to_stored(&self) -> Result<String, AttachmentTooLarge> {
        let json =
            serde_json::to_string(self).map_err(|_| AttachmentTooLarge { bytes: usize::MAX })?;
        if json.len() > ATTACHMENT_BUDGET {
            return Err(AttachmentTooLarge { bytes: json.len() });
        }
        Ok(json)
    }

    /// An attachment as [`Attachment::to_stored`] wrote it; `None` for anything else.
    pub fn from_stored(json: &str) -> Option<Attachment> {
        Attachment::from_value(serde_json::from_str(json).ok()?)
    }

    /// An attachment as serde writes it (the fields with a default may be missing).
    pub fn from_value(value: Value) -> Option<Attachment> {
        let mut f = Fields::of(value)?;
        Some(Attachment {
            id: f.string("id")?,
            session: f.take("session")?,
            sid: f.string("sid")?,
            route: f.read("route", json_read::index)?,
            params: f.or_default("params", json_read::string_pairs)?,
            request: f.or_default("request", RequestFacts::from_value)?,
            expires_at_ms: f.optional("expires_at_ms", json_read::integer)?,
            revoke_keys: f.or_default("revoke_keys", json_read::value_pairs)?,
            departed: f.or_default("departed", json_read::boolean)?,
        })
    }

    /// The connection id of a stored attachment, read from its first field without decoding
    /// the rest; `None` when the text does not start as `to_stored` writes it (then decode it
    /// whole). The room reads it in JavaScript (`members::stored_id`, which only hands over an
    /// id `is_plain_id` accepts); this twin is for the tests, which pin the format it relies on.
    #[cfg(test)]
    pub fn id_in_stored(json: &str) -> Option<&str> {
        let rest = json.strip_prefix(r#"{"id":""#)?;
        let id = &rest[..rest.find('"')?];
        Attachment::is_plain_id(id).then_some(id)
    }

    /// Is a connection id cut out of a stored attachment, up to the first `"`, the whole id?
    /// Ids are `c` and hex digits: no escapes to undo.
    pub fn is_plain_id(id: &str) -> bool {
        id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// Has the session's `cookie.expires` passed?
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
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

/// A connection id: `c` and 12 hex digits of randomness.
pub fn connection_id(random: [u8; 6]) -> String {
    format!("c{}", crate::log::hex(&random))
}

/// An admission as the gate hands it to the room: the room's name and the socket's
/// attachment-to-be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomAdmission {
    pub room: String,
    pub attachment: Attachment,
}

impl RoomAdmission {
    /// The header value for an admission to `room` of an attachment as
    /// [`Attachment::to_stored`] wrote it (the gate serializes the attachment once, for its
    /// size and for this): base64url of the JSON [`RoomAdmission::decode`] reads. Header values
    /// must be ASCII; the runtime warns about any other byte and prints the whole value, which
    /// holds the sid.
    pub fn encode(room: &str, stored_attachment: &str) -> Result<String, serde_json::Error> {
        use base64::Engine;
        let json = format!(
            r#"{{"room":{},"attachment":{stored_attachment}}}"#,
            serde_json::to_string(room)?
        );
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(value: &str) -> Option<RoomAdmission> {
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let mut f = Fields::parse(&json)?;
        Some(RoomAdmission {
            room: f.string("room")?,
            attachment: f.read("attachment", Attachment::from_value)?,
        })
    }
}

/// May one more socket join a room holding `occupancy` sockets, `same_session` of them of its
/// session? (0 in a limit: no limit.)
pub fn check_limits(
    limits: &RoomSettings,
    occupancy: usize,
    same_session: usize,
) -> Result<(), Refusal> {
    let reached = |limit: u32, count: usize| limit > 0 && count >= limit as usize;
    if reached(limits.max_connections_per_room, occupancy) {
        return Err(Refusal::RoomFull);
    }
    if reached(limits.max_connections_per_session, same_session) {
        return Err(Refusal::TooManyForSession);
    }
    Ok(())
}

/// What becomes of a client frame before any app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameVerdict {
    /// The room closed the socket (or marked it departed): it is heard no more.
    Drop,
    /// Over the rate limit: close the socket (1008); this frame and any queued after it are
    /// dropped.
    Expel,
    /// Answer with an `error` frame; the socket stays open.
    Refuse(FrameError),
    /// Hand it to the app.
    Deliver,
}

/// The engine's checks on a client frame of `bytes` bytes, text or binary: every frame from a
/// socket still `heard` counts against its rate limit, then the size limit applies.
pub fn judge_frame(
    heard: bool,
    rate: &mut RateWindow,
    limits: &RoomSettings,
    bytes: usize,
    now_ms: i64,
) -> FrameVerdict {
    if !heard {
        return FrameVerdict::Drop;
    }
    if !rate.allow(
        now_ms,
        limits.rate_limit_messages,
        limits.rate_limit_window_ms,
    ) {
        return FrameVerdict::Expel;
    }
    if bytes > limits.max_message_bytes {
        return FrameVerdict::Refuse(FrameError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    FrameVerdict::Deliver
}

/// Why the room closes a member: its close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expulsion {
    /// Expiry, revalidation or revocation: the refusal's 44xx code and reason.
    Refused(Refusal),
    /// More client frames than `rate_limit` allows: 1008.
    RateLimited,
}

impl Expulsion {
    pub fn close_code(self) -> u16 {
        match self {
            Expulsion::Refused(refusal) => refusal.close_code(),
            Expulsion::RateLimited => 1008,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Expulsion::Refused(refusal) => refusal.reason(),
            Expulsion::RateLimited => "rate limit exceeded",
        }
    }
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

/// What the alarm must become when the room wants it at `wanted` (`None`: no alarm), given
/// what this object last set (`None`: not known, `Some(None)`: none set). `None` means leave
/// it: an alarm set earlier than wanted, or one that is no longer needed, fires, finds nothing
/// due, and sets the next one itself; so arrivals and departures rarely write the alarm.
pub fn alarm_change(set: Option<Option<i64>>, wanted: Option<i64>) -> Option<Option<i64>> {
    match (set, wanted) {
        (Some(Some(set)), Some(wanted)) if set <= wanted => None,
        (Some(Some(_)), None) | (Some(None), None) => None,
        _ => Some(wanted),
    }
}

/// When an occupied room should next wake: the earliest session expiry, or the next
/// revalidation (`revalidate_ms` after the last one, 0: none), never before `now_ms + 1`.
/// `None`: nothing to wake for.
pub fn next_alarm_ms(
    expiries: impl IntoIterator<Item = Option<i64>>,
    last_revalidation_ms: i64,
    revalidate_ms: u64,
    now_ms: i64,
) -> Option<i64> {
    let revalidation =
        (revalidate_ms > 0).then(|| (last_revalidation_ms + revalidate_ms as i64).max(now_ms));
    expiries
        .into_iter()
        .flatten()
        .chain(revalidation)
        .min()
        .map(|at| at.max(now_ms + 1))
}

/// Is a revalidation due at `now_ms`? Always when the room never revalidated.
pub fn revalidation_due(last_ms: Option<i64>, revalidate_ms: u64, now_ms: i64) -> bool {
    revalidate_ms > 0
        && last_ms.is_none_or(|last| now_ms - last >= revalidate_ms as i64 - REVALIDATION_SLACK_MS)
}

/// Each sid once, sorted: what revalidation reads and revocation reports.
pub fn distinct_sids<'a>(attachments: impl IntoIterator<Item = &'a Attachment>) -> Vec<&'a str> {
    let mut sids: Vec<&str> = attachments.into_iter().map(|a| a.sid.as_str()).collect();
    sids.sort_unstable();
    sids.dedup();
    sids
}

/// The closes of one revalidation, one group of member indexes per refusal in the order first
/// met, so that a room losing many sockets at once is listed once per kind.
pub fn group_by_refusal(refused: &[(usize, Refusal)]) -> Vec<(Refusal, Vec<usize>)> {
    let mut groups: Vec<(Refusal, Vec<usize>)> = Vec::new();
    for &(i, refusal) in refused {
        match groups.iter_mut().find(|(r, _)| *r == refusal) {
            Some((_, members)) => members.push(i),
            None => groups.push((refusal, vec![i])),
        }
    }
    groups
}

/// The code to answer a client's close with: its own, unless it cannot be sent back (1005,
/// 1006, out of range), then 1000.
pub fn echo_close_code(code: usize) -> u16 {
    u16::try_from(code)
        .ok()
        .filter(|c| (1000..5000).contains(c) && *c != 1005 && *c != 1006)
        .unwrap_or(1000)
}

/// What a revocation closes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RevokeTarget {
    Sid(String),
    Field { field: String, equals: Value },
}

impl RevokeTarget {
    /// As serde writes it: a sid is a string, a field `{"field", "equals"}`.
    pub fn from_value(value: Value) -> Option<RevokeTarget> {
        if let Value::String(sid) = value {
            return Some(RevokeTarget::Sid(sid));
        }
        let mut f = Fields::of(value)?;
        Some(RevokeTarget::Field {
            field: f.string("field")?,
            equals: f.take("equals")?,
        })
    }
}

/// A member's attachment for tests: Ada, user u-42, in the lobby.
#[cfg(test)]
pub(crate) fn test_attachment(id: &str) -> Attachment {
    use serde_json::json;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use test_attachment as attachment;

    fn limits(per_room: u32, per_session: u32) -> RoomSettings {
        RoomSettings {
            max_connections_per_room: per_room,
            max_connections_per_session: per_session,
            max_message_bytes: 10,
            rate_limit_messages: 3,
            rate_limit_window_ms: 1000,
            ..RoomSettings::default()
        }
    }

    #[test]
    fn attachment_keeps_only_what_the_rules_read() {
        let config = Config::from_value(&json!({"routes": [
            {"path": "/a/:room", "require": [{"header": "x-client", "exists": true}, {"query": "v", "gte": 2}]},
            {"path": "/b/:room"},
        ]}))
        .unwrap();
        let headers: Vec<(String, String)> = vec![
            ("x-client".into(), "tests".into()),
            ("x-other".into(), "no".into()),
        ];
        let params = vec![("room".to_owned(), "lobby".to_owned())];
        let mut admission = Admission {
            route: 0,
            room: "lobby".into(),
            session: crate::decision::SessionKey::new("sess:", "sid-1"),
            projection: json!({"user": {"name": "Ada"}}),
            expires_at_ms: Some(5),
            params: crate::route::Params::from_pairs(&params),
            revoke_keys: vec![("passport.user", json!("u-42"))],
        };
        let a = Attachment::for_admission("c1".into(), &admission, &config, &headers, "v=3");
        assert_eq!(
            a.request,
            RequestFacts {
                query: "v=3".into(),
                headers: vec![("x-client".into(), "tests".into())],
            }
        );
        assert_eq!(
            (a.id.as_str(), a.sid.as_str(), a.expires_at_ms, a.departed),
            ("c1", "sid-1", Some(5), false)
        );
        assert_eq!(a.session, admission.projection);
        admission.route = 1;
        let b = Attachment::for_admission("c2".into(), &admission, &config, &headers, "v=3");
        assert_eq!(b.request, RequestFacts::default());
    }

    #[test]
    fn stored_attachment_ids_are_read_only_as_written() {
        let mut a = attachment("c0001abcdefff");
        a.departed = true;
        let stored = a.to_stored().unwrap();
        assert_eq!(Attachment::id_in_stored(&stored), Some("c0001abcdefff"));
        assert_eq!(Attachment::from_stored(&stored), Some(a));
        assert_eq!(Attachment::id_in_stored(r#"{"sid":"x","id":"c1"}"#), None);
        assert_eq!(Attachment::id_in_stored(r#"{"id":"c\"1"}"#), None);
        assert_eq!(Attachment::from_stored("[1]"), None);
    }

    #[test]
    fn an_attachment_reads_its_defaults_when_missing_and_nothing_of_the_wrong_type() {
        let minimal =
            json!({"id": "c1", "session": {"user": {"name": "Ada"}}, "sid": "s", "route": 2});
        let a = Attachment::from_value(minimal.clone()).unwrap();
        assert_eq!((a.route, a.params.len(), a.revoke_keys.len()), (2, 0, 0));
        assert_eq!(
            (a.request, a.expires_at_ms, a.departed),
            (RequestFacts::default(), None, false)
        );
        let with = |field: &str, value: Value| {
            let mut v = minimal.clone();
            v[field] = value;
            Attachment::from_value(v)
        };
        assert_eq!(
            with("expires_at_ms", json!(null)).unwrap().expires_at_ms,
            None
        );
        assert_eq!(
            with("expires_at_ms", json!(7)).unwrap().expires_at_ms,
            Some(7)
        );
        for (field, bad) in [
            ("route", json!(1.5)),
            ("route", json!("1")),
            ("params", json!(null)),
            ("params", json!([["room"]])),
            ("request", json!({"query": ""})),
            ("expires_at_ms", json!("soon")),
            ("revoke_keys", json!([["passport.user"]])),
            ("departed", json!(null)),
            ("sid", json!(1)),
        ] {
            assert_eq!(with(field, bad.clone()), None, "{field}: {bad}");
        }
        let mut v = minimal;
        v.as_object_mut().unwrap().remove("session");
        assert_eq!(Attachment::from_value(v), None, "session is required");
    }

    #[test]
    fn revocation_targets_read_as_serde_writes_them() {
        for target in [
            RevokeTarget::Sid("s1".into()),
            RevokeTarget::Field {
                field: "passport.user".into(),
                equals: json!({"id": 4}),
            },
        ] {
            let written = serde_json::to_value(&target).unwrap();
            assert_eq!(RevokeTarget::from_value(written), Some(target));
        }
        assert_eq!(RevokeTarget::from_value(json!({"field": "f"})), None);
        assert_eq!(RevokeTarget::from_value(json!(4)), None);
    }

    #[test]
    fn the_alarm_is_written_only_to_come_sooner() {
        // Unknown: write.
        assert_eq!(alarm_change(None, Some(5)), Some(Some(5)));
        assert_eq!(alarm_change(None, None), Some(None));
        // Sooner than the one set: move it; later or equal: the set one fires first.
        assert_eq!(alarm_change(Some(Some(9)), Some(5)), Some(Some(5)));
        assert_eq!(alarm_change(Some(Some(5)), Some(9)), None);
        assert_eq!(alarm_change(Some(Some(5)), Some(5)), None);
        // None set: set it. No longer needed: it fires and finds nothing.
        assert_eq!(alarm_change(Some(None), Some(5)), Some(Some(5)));
        assert_eq!(alarm_change(Some(Some(5)), None), None);
        assert_eq!(alarm_change(Some(None), None), None);
    }

    #[test]
    fn connection_ids_are_c_and_hex() {
        assert_eq!(
            connection_id([0, 1, 0xab, 0xcd, 0xef, 0xff]),
            "c0001abcdefff"
        );
    }

    #[test]
    fn admissions_cross_as_ascii() {
        let admission = RoomAdmission {
            room: "☃".into(),
            attachment: attachment("c1"),
        };
        let stored = admission.attachment.to_stored().unwrap();
        let header = RoomAdmission::encode(&admission.room, &stored).unwrap();
        assert!(header.is_ascii());
        assert_eq!(RoomAdmission::decode(&header), Some(admission));
        assert_eq!(RoomAdmission::decode("not base64!"), None);
    }

    #[test]
    fn attachment_budget() {
        let mut a = attachment("c1");
        assert!(a.to_stored().is_ok());
        let stored = a.to_stored().unwrap();
        assert_eq!(Attachment::id_in_stored(&stored), Some(a.id.as_str()));
        assert_eq!(Attachment::from_stored(&stored).as_ref(), Some(&a));
        a.session = json!({"blob": "x".repeat(ATTACHMENT_BUDGET)});
        let err = a.to_stored().unwrap_err();
        assert!(err.bytes > ATTACHMENT_BUDGET);
        assert!(err.to_string().contains("over the 2048-byte budget"));
    }

    #[test]
    fn revocation_matches_sid_or_field() {
        let a = attachment("c1");
        assert!(a.matches_revocation(&RevokeTarget::Sid("sid-1".into())));
        assert!(!a.matches_revocation(&RevokeTarget::Sid("sid-2".into())));
        let field = |field: &str, equals: Value| RevokeTarget::Field {
            field: field.into(),
            equals,
        };
        assert!(a.matches_revocation(&field("passport.user", json!("u-42"))));
        assert!(a.matches_revocation(&field("user.name", json!("Ada"))));
        assert!(!a.matches_revocation(&field("passport.user", json!("u-7"))));
    }

    #[test]
    fn limits_room_first_then_session_and_zero_is_none() {
        assert_eq!(check_limits(&limits(3, 2), 2, 1), Ok(()));
        assert_eq!(check_limits(&limits(3, 2), 3, 0), Err(Refusal::RoomFull));
        assert_eq!(check_limits(&limits(3, 2), 3, 2), Err(Refusal::RoomFull));
        assert_eq!(
            check_limits(&limits(3, 2), 2, 2),
            Err(Refusal::TooManyForSession)
        );
        assert_eq!(check_limits(&limits(0, 0), 40_000, 40_000), Ok(()));
    }

    #[test]
    fn frames_count_before_anything_else() {
        let l = limits(0, 0);
        let mut rate = RateWindow::default();
        assert_eq!(
            judge_frame(false, &mut rate, &l, 1, 1000),
            FrameVerdict::Drop
        );
        assert_eq!(
            judge_frame(true, &mut rate, &l, 10, 1000),
            FrameVerdict::Deliver
        );
        assert_eq!(
            judge_frame(true, &mut rate, &l, 11, 1000),
            FrameVerdict::Refuse(FrameError::TooLarge { limit: 10 })
        );
        // The refused frame counted: the third is the limit, the fourth expels.
        assert_eq!(
            judge_frame(true, &mut rate, &l, 1, 1000),
            FrameVerdict::Deliver
        );
        assert_eq!(
            judge_frame(true, &mut rate, &l, 1, 1000),
            FrameVerdict::Expel
        );
        // A dropped frame does not count.
        let mut fresh = RateWindow::default();
        assert_eq!(
            judge_frame(false, &mut fresh, &l, 1, 1000),
            FrameVerdict::Drop
        );
        assert_eq!(fresh, RateWindow::default());
    }

    #[test]
    fn expulsions_close_with_the_refusal_or_1008() {
        let revoked = Expulsion::Refused(Refusal::SessionRevoked);
        assert_eq!(
            (revoked.close_code(), revoked.reason()),
            (4401, "session revoked")
        );
        let rate = Expulsion::RateLimited;
        assert_eq!(
            (rate.close_code(), rate.reason()),
            (1008, "rate limit exceeded")
        );
    }

    #[test]
    fn rate_window() {
        let mut w = RateWindow::default();
        assert!((0..3).all(|_| w.allow(1000, 3, 1000)));
        assert!(!w.allow(1500, 3, 1000));
        assert!(w.allow(2000, 3, 1000));
    }

    #[test]
    fn alarms_at_the_first_expiry_or_revalidation() {
        // Expiry before the revalidation.
        assert_eq!(
            next_alarm_ms([Some(5_000), None], 0, 60_000, 0),
            Some(5_000)
        );
        // The revalidation runs from the last one, not from now.
        assert_eq!(next_alarm_ms([None], 100, 60_000, 30_000), Some(60_100));
        // A revalidation overdue is now (plus one), never in the past.
        assert_eq!(next_alarm_ms([None], 0, 1_000, 5_000), Some(5_001));
        assert_eq!(next_alarm_ms([Some(10)], 0, 0, 5_000), Some(5_001));
        // No expiry and revalidation off: no alarm.
        assert_eq!(next_alarm_ms([None, None], 0, 0, 5_000), None);
    }

    #[test]
    fn revalidation_is_due_after_the_interval_less_the_slack() {
        assert!(revalidation_due(None, 5_000, 0));
        assert!(!revalidation_due(None, 0, 0));
        assert!(!revalidation_due(Some(0), 5_000, 4_749));
        assert!(revalidation_due(Some(0), 5_000, 4_750));
    }

    #[test]
    fn sids_and_refusals_are_grouped() {
        let (mut a, mut b) = (attachment("c1"), attachment("c2"));
        a.sid = "z".into();
        b.sid = "a".into();
        let c = attachment("c3");
        assert_eq!(distinct_sids([&a, &b, &a, &c]), ["a", "sid-1", "z"]);
        let refused = [
            (0, Refusal::SessionRevoked),
            (2, Refusal::RuleDenied),
            (3, Refusal::SessionRevoked),
        ];
        assert_eq!(
            group_by_refusal(&refused),
            [
                (Refusal::SessionRevoked, vec![0, 3]),
                (Refusal::RuleDenied, vec![2])
            ]
        );
    }

    #[test]
    fn closes_are_echoed_when_they_can_be() {
        assert_eq!(echo_close_code(1001), 1001);
        assert_eq!(echo_close_code(4000), 4000);
        for code in [1005, 1006, 999, 5000, usize::MAX] {
            assert_eq!(echo_close_code(code), 1000);
        }
    }
}
