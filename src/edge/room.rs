//! The Room Durable Object: holds the admitted sockets with the hibernation API, speaks the
//! room protocol, closes sockets whose sessions expire, are revoked or stop passing the rules.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::decision::{recheck, Refusal};
use crate::room::{self as protocol, Attachment, ClientFrame, RateWindow, RevokeTarget};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use super::gate::{sessions, RoomAdmission, ADMISSION_HEADER};
use super::util::{self, Settings};

/// Internal path the Worker uses to ask a room to close sockets.
pub const REVOKE_PATH: &str = "/_room/revoke";

const LAST_REVALIDATION_KEY: &str = "last_revalidation_ms";
/// Present while the room is listed in the directory.
const ROOM_NAME_KEY: &str = "room_name";
/// How long an empty room stays listed before it leaves the directory.
const IDLE_UNLIST_MS: i64 = 30_000;

#[durable_object]
pub struct Room {
    state: State,
    env: Env,
    /// Message counters per connection id. Kept in memory only: after hibernation the window
    /// starts afresh, which errs on the side of the client, never of an abuser for long.
    rates: RefCell<HashMap<String, RateWindow>>,
}

/// A socket and what is kept with it.
pub struct Member {
    pub socket: WebSocket,
    pub attachment: Attachment,
}

impl Room {
    /// Every socket in the room with its projected session, read synchronously from the
    /// hibernation attachments: the view `session.io` existed for. Extend the room with it,
    /// e.g. `room.members().iter().filter(|m| m.attachment.session["user"]["roles"] ...)`.
    pub fn members(&self) -> Vec<Member> {
        self.state
            .get_websockets()
            .into_iter()
            // A socket that is closing (its close handler is running, or the room just closed
            // it) is listed until it is gone: it is no longer a member.
            .filter(is_open)
            .filter_map(|socket| {
                let attachment = socket
                    .deserialize_attachment::<Attachment>()
                    .ok()
                    .flatten()?;
                Some(Member { socket, attachment })
            })
            .collect()
    }

    /// The sessions of all sockets: `(connection id, projected session)`.
    pub fn sessions(&self) -> Vec<(String, Value)> {
        self.members()
            .into_iter()
            .map(|m| (m.attachment.id, m.attachment.session))
            .collect()
    }

    fn settings(&self) -> std::result::Result<std::rc::Rc<Settings>, String> {
        util::settings(&self.env)
    }

    fn send(socket: &WebSocket, text: &str) {
        // A peer that went away between the listing and the send is not an error here; its
        // own close handler tells the others.
        let _ = socket.send_with_str(text);
    }

    fn close(socket: &WebSocket, code: u16, reason: &str) {
        let _ = socket.close(Some(code), Some(reason));
    }

    async fn accept(&self, req: Request) -> Result<Response> {
        let settings = match self.settings() {
            Ok(s) => s,
            Err(_) => return Response::error("sessiongate: configuration invalid", 500),
        };
        let Some(raw) = req.headers().get(ADMISSION_HEADER)? else {
            return Response::error("rooms are reached through the gate", 400);
        };
        let Some(admission) = RoomAdmission::decode(&raw) else {
            return Response::error("bad admission", 400);
        };
        let config = &settings.config;
        let Some(route) = config.routes.get(admission.attachment.route) else {
            return Response::error("bad admission", 400);
        };
        let deny_with = route.deny_with;
        let members = self.members();
        let limits = &config.room;
        if limits.max_connections_per_room > 0
            && members.len() >= limits.max_connections_per_room as usize
        {
            self.log_refusal(&admission, Refusal::RoomFull);
            return util::refuse(Refusal::RoomFull, deny_with);
        }
        let sid = &admission.attachment.sid;
        let same_session = members.iter().filter(|m| m.attachment.sid == *sid).count();
        if limits.max_connections_per_session > 0
            && same_session >= limits.max_connections_per_session as usize
        {
            self.log_refusal(&admission, Refusal::TooManyForSession);
            return util::refuse(Refusal::TooManyForSession, deny_with);
        }
        if let Err(too_large) = admission.attachment.check_size() {
            // The gate checks this before forwarding; this is the last line of defence.
            util::log_json(&json!({
                "sessiongate": "room",
                "room": util::clip(&admission.room),
                "error": too_large.to_string(),
                "sid": util::sid_tag(sid),
            }));
            return Response::error(
                "sessiongate: session projection too large (see the Worker's logs)",
                500,
            );
        }

        let pair = WebSocketPair::new()?;
        let socket = pair.server;
        self.state.accept_web_socket(&socket);
        if let Err(e) = socket.serialize_attachment(&admission.attachment) {
            // Never keep an accepted socket the room cannot speak for.
            Self::close(&socket, 1011, "internal error");
            return Err(e);
        }
        let me = &admission.attachment;
        let peers: Vec<Value> = members.iter().map(|m| m.attachment.peer()).collect();
        Self::send(&socket, &protocol::welcome(me, &peers));
        let joined = protocol::join(me);
        for member in &members {
            Self::send(&member.socket, &joined);
        }
        // From here on the socket is in the room: bookkeeping that fails is logged, and the
        // socket is still handed back (an error now would leave a member the client never got).
        if let Err(e) = self
            .after_arrival(&settings, &admission.room, members.is_empty())
            .await
        {
            util::log_json(
                &json!({"sessiongate": "room", "room": util::clip(&admission.room), "error": format!("after accept: {e}")}),
            );
        }
        Response::from_websocket(pair.client)
    }

    /// Lists the room in the revocation directory when its first socket arrives and sets the
    /// alarm. The room stays listed for a while after it empties, so a room that empties and
    /// fills again does not pay two directory requests each time.
    async fn after_arrival(&self, settings: &Settings, room: &str, was_empty: bool) -> Result<()> {
        let storage = self.state.storage();
        if was_empty
            && storage
                .get::<String>(ROOM_NAME_KEY)
                .await
                .ok()
                .flatten()
                .is_none()
        {
            storage.put(ROOM_NAME_KEY, room).await?;
            super::directory::register(&self.env, room, true).await;
        }
        self.schedule(settings, util::now_ms()).await
    }

    fn log_refusal(&self, admission: &RoomAdmission, refusal: Refusal) {
        util::log_json(&json!({
            "sessiongate": "decision",
            "decision": "deny",
            "room": util::clip(&admission.room),
            "status": refusal.status(),
            "reason": refusal.reason(),
            "check": "limits",
            "sid": util::sid_tag(&admission.attachment.sid),
        }));
    }

    /// Sets the alarm to the earliest session expiry or the next revalidation. An empty room
    /// gets one last alarm that takes it off the directory, then none: no work while nobody
    /// is there.
    async fn schedule(&self, settings: &Settings, now: i64) -> Result<()> {
        let members = self.members();
        let storage = self.state.storage();
        if members.is_empty() {
            let listed = storage
                .get::<String>(ROOM_NAME_KEY)
                .await
                .ok()
                .flatten()
                .is_some();
            return if listed {
                self.set_alarm_at(now + IDLE_UNLIST_MS).await
            } else {
                storage.delete_alarm().await
            };
        }
        let interval = u64::from(settings.config.room.revalidate_seconds) * 1000;
        // The interval runs from the first revalidation, or from when the room first got a
        // socket: sockets joining later must not push the next revalidation back.
        let last = match storage
            .get::<i64>(LAST_REVALIDATION_KEY)
            .await
            .ok()
            .flatten()
        {
            Some(last) => last,
            None => {
                storage.put(LAST_REVALIDATION_KEY, now).await?;
                now
            }
        };
        let next_revalidation = (interval > 0).then(|| (last + interval as i64).max(now));
        let next = protocol::next_alarm_ms(
            members.iter().map(|m| m.attachment.expires_at_ms),
            members.len(),
            now,
            0,
        )
        .into_iter()
        .chain(next_revalidation)
        .min();
        match next {
            Some(at) => self.set_alarm_at(at.max(now + 1)).await,
            None => storage.delete_alarm().await,
        }
    }

    async fn set_alarm_at(&self, at_ms: i64) -> Result<()> {
        // An absolute time: worker's `From<i64>` would read the number as an offset from now.
        let when = worker::js_sys::Date::new(&(at_ms as f64).into());
        self.state
            .storage()
            .set_alarm(worker::ScheduledTime::new(when))
            .await
    }

    async fn on_alarm(&self) -> Result<()> {
        let Ok(settings) = self.settings() else {
            return Ok(());
        };
        let now = util::now_ms();
        if self.members().is_empty() {
            // The idle alarm: nobody came back. No alarm is set again: an empty room does no work.
            return self.unlist().await;
        }
        // Expiry on time, without waiting for KV.
        let members = self.members();
        let expired: Vec<usize> = (0..members.len())
            .filter(|&i| {
                members[i]
                    .attachment
                    .expires_at_ms
                    .is_some_and(|at| at <= now)
            })
            .collect();
        self.expel(&members, &expired, Refusal::SessionExpired);
        let interval = i64::from(settings.config.room.revalidate_seconds) * 1000;
        let storage = self.state.storage();
        let last = storage
            .get::<i64>(LAST_REVALIDATION_KEY)
            .await
            .ok()
            .flatten();
        if interval > 0 && last.is_none_or(|l| now - l >= interval - 250) {
            self.revalidate(&settings, now).await;
            storage.put(LAST_REVALIDATION_KEY, now).await?;
        } else if last.is_none() {
            storage.put(LAST_REVALIDATION_KEY, now).await?;
        }
        self.schedule(&settings, now).await
    }

    /// Re-reads each distinct session once and re-runs its route's rules.
    async fn revalidate(&self, settings: &Settings, now: i64) {
        let members = self.members();
        if members.is_empty() {
            return;
        }
        let store = sessions(&self.env, settings);
        let mut sids: Vec<&str> = members.iter().map(|m| m.attachment.sid.as_str()).collect();
        sids.sort_unstable();
        sids.dedup();
        let config = &settings.config;
        let reads = sids.iter().map(|sid| {
            let key = config.session_key(sid);
            let store = &store;
            async move { (*sid, store.load(&key).await) }
        });
        let results: HashMap<&str, _> = futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect();
        let mut refused: Vec<(usize, Refusal)> = Vec::new();
        for (i, member) in members.iter().enumerate() {
            let a = &member.attachment;
            let stored = match results.get(a.sid.as_str()) {
                Some(Ok(stored)) => stored.as_deref(),
                // KV did not answer: keep the socket and try again next tick rather than drop
                // a whole room on a transient error. New handshakes still fail closed.
                _ => continue,
            };
            let verdict = recheck(config, a, Ok(stored), now);
            if let Err((refusal, detail)) = verdict {
                util::log_json(&json!({
                    "sessiongate": "revalidation",
                    "status": refusal.status(),
                    "reason": refusal.reason(),
                    "detail": detail,
                    "sid": util::sid_tag(&a.sid),
                }));
                refused.push((i, refusal));
            }
        }
        // One pass per kind of close, so a room that loses many sockets at once is listed once.
        let mut kinds: Vec<Refusal> = Vec::new();
        for (_, refusal) in &refused {
            if !kinds.contains(refusal) {
                kinds.push(*refusal);
            }
        }
        for kind in kinds {
            let victims: Vec<usize> = refused
                .iter()
                .filter(|(_, r)| *r == kind)
                .map(|(i, _)| *i)
                .collect();
            self.expel(&members, &victims, kind);
        }
    }

    /// Closes the sockets of `members[victims]` from the room's side with the refusal's close
    /// code: each is marked departed first (so nothing it still sends reaches anyone, and its
    /// close handler stays quiet), then every remaining member hears one `leave` per victim.
    /// One listing of the room however many go at once.
    fn expel(&self, members: &[Member], victims: &[usize], refusal: Refusal) {
        self.expel_with(members, victims, refusal.close_code(), refusal.reason());
    }

    fn expel_with(&self, members: &[Member], victims: &[usize], code: u16, reason: &str) {
        if victims.is_empty() {
            return;
        }
        let mut leaves = Vec::with_capacity(victims.len());
        for &i in victims {
            let member = &members[i];
            let mut attachment = member.attachment.clone();
            attachment.departed = true;
            let _ = member.socket.serialize_attachment(&attachment);
            Self::close(&member.socket, code, reason);
            leaves.push(protocol::leave(&attachment.id));
        }
        for (i, member) in members.iter().enumerate() {
            if !victims.contains(&i) {
                for text in &leaves {
                    Self::send(&member.socket, text);
                }
            }
        }
    }

    /// Tells everyone else that `id` left (its own close handler: the client went away).
    fn leave(&self, id: &str) {
        let text = protocol::leave(id);
        for member in self.members() {
            if member.attachment.id != id {
                Self::send(&member.socket, &text);
            }
        }
    }

    async fn revoke(&self, mut req: Request) -> Result<Response> {
        let target: RevokeTarget = match req.json().await {
            Ok(t) => t,
            Err(_) => return Response::error("bad revocation", 400),
        };
        let members = self.members();
        let victims: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].attachment.matches_revocation(&target))
            .collect();
        let mut sids: Vec<String> = Vec::new();
        for &i in &victims {
            let sid = &members[i].attachment.sid;
            if !sids.contains(sid) {
                sids.push(sid.clone());
            }
        }
        self.expel(&members, &victims, Refusal::SessionRevoked);
        let closed = victims.len();
        self.after_departure().await;
        Response::from_json(&json!({"closed": closed, "sids": sids}))
    }

    /// When the last socket has gone, the only alarm left is the one that takes the room off
    /// the directory if nobody comes back.
    async fn after_departure(&self) {
        if let Ok(settings) = self.settings() {
            let _ = self.schedule(&settings, util::now_ms()).await;
        }
    }

    /// Takes an empty room off the directory.
    async fn unlist(&self) -> Result<()> {
        let storage = self.state.storage();
        if let Some(name) = storage.get::<String>(ROOM_NAME_KEY).await.ok().flatten() {
            super::directory::register(&self.env, &name, false).await;
            storage.delete(ROOM_NAME_KEY).await?;
        }
        Ok(())
    }

    /// Every client frame, text or binary, counts against the socket's rate limit. A socket the
    /// room has closed (or is closing) is heard no more: frames it had already queued are
    /// dropped, so a flood cannot outlive the limit that stopped it.
    fn on_frame(&self, socket: &WebSocket, text: Option<&str>, settings: &Settings) {
        if !is_open(socket) {
            return;
        }
        let Ok(Some(me)) = socket.deserialize_attachment::<Attachment>() else {
            Self::close(socket, 1011, "lost connection state");
            return;
        };
        if me.departed {
            return;
        }
        let limits = &settings.config.room;
        let allowed = self
            .rates
            .borrow_mut()
            .entry(me.id.clone())
            .or_default()
            .allow(
                util::now_ms(),
                limits.rate_limit_messages,
                limits.rate_limit_window_ms,
            );
        if !allowed {
            let members = self.members();
            if let Some(i) = members.iter().position(|m| m.attachment.id == me.id) {
                self.expel_with(&members, &[i], 1008, "rate limit exceeded");
            }
            return;
        }
        let Some(text) = text else {
            Self::send(
                socket,
                &protocol::error(&protocol::FrameError::Binary.reason()),
            );
            return;
        };
        match protocol::parse_client_frame(text, limits.max_message_bytes) {
            Err(e) => Self::send(socket, &protocol::error(&e.reason())),
            Ok(ClientFrame::Broadcast { data }) => {
                let text = protocol::message(&me, &data);
                for member in self.members() {
                    if member.attachment.id != me.id {
                        Self::send(&member.socket, &text);
                    }
                }
            }
            Ok(ClientFrame::Send { to, data }) => {
                let target = self.members().into_iter().find(|m| m.attachment.id == to);
                match target {
                    Some(member) => Self::send(&member.socket, &protocol::message(&me, &data)),
                    None => Self::send(
                        socket,
                        &protocol::error(&format!("no peer {to:?} in this room")),
                    ),
                }
            }
        }
    }
}

/// A socket that is neither closing nor closed (a closing one is still listed while its
/// close handler runs).
fn is_open(socket: &WebSocket) -> bool {
    let raw: &worker::web_sys::WebSocket = socket.as_ref();
    raw.ready_state() == 1
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        Room {
            state,
            env,
            rates: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == REVOKE_PATH {
            return self.revoke(req).await;
        }
        self.accept(req).await
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let Ok(settings) = self.settings() else {
            Self::close(&ws, 1011, "configuration invalid");
            return Ok(());
        };
        match message {
            WebSocketIncomingMessage::String(text) => self.on_frame(&ws, Some(&text), &settings),
            WebSocketIncomingMessage::Binary(_) => self.on_frame(&ws, None, &settings),
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        if let Ok(Some(me)) = ws.deserialize_attachment::<Attachment>() {
            self.rates.borrow_mut().remove(&me.id);
            if !me.departed {
                self.leave(&me.id);
            }
        }
        // Complete the closing handshake; 1005/1006 cannot be sent back, so answer 1000.
        let code = u16::try_from(code)
            .ok()
            .filter(|c| (1000..5000).contains(c) && *c != 1005 && *c != 1006)
            .unwrap_or(1000);
        Self::close(&ws, code, "bye");
        self.after_departure().await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        if let Ok(Some(me)) = ws.deserialize_attachment::<Attachment>() {
            self.rates.borrow_mut().remove(&me.id);
            if !me.departed {
                self.leave(&me.id);
            }
        }
        Self::close(&ws, 1011, "socket error");
        self.after_departure().await;
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.on_alarm().await {
            util::log_json(&json!({"sessiongate": "room", "error": format!("alarm: {e}")}));
        }
        Response::ok("")
    }
}
