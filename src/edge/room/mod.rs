//! The Room Durable Object, in two layers. The engine holds a room's sockets with the
//! hibernation API and decides for every app: admission limits, the rate and size of client
//! frames, expiry, revalidation, revocation, its entries in the revocation index. The app behind it
//! ([`app::App`], chosen per route by `app = "..."`) speaks to the members: presence and chat
//! by default, or the shared counter.
//!
//! * `members.rs`: the members (open sockets and their attachments) and the context apps see
//! * `admission.rs`: a handshake forwarded by the gate: limits, accept, `on_connect`
//! * `frames.rs`: client frames (rate limit, size, then `on_message`) and departures
//! * `expulsion.rs`: the room closes sockets: revocation, and `on_close` for those it closed
//! * `alarm.rs`: expiry on time, the revalidation tick, the refresh of the index entries
//! * `keys.rs`: the room's entries in the revocation index (register, refresh)
//! * `revalidation.rs`: re-reading the sessions from KV
//! * `app.rs`, `chat.rs`, `counter.rs`: the app seam and the two apps

mod admission;
mod alarm;
mod app;
mod chat;
mod counter;
mod expulsion;
mod frames;
mod keys;
mod members;
mod revalidation;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::engine::{echo_close_code, Attachment, RateWindow};
use crate::log::{Clipped, LogEvent};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::worker_sys::web_sys;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket};

use super::util::{self, Settings};
use app::{App, Frame};

/// Internal path the Worker uses to ask a room to close sockets.
pub const REVOKE_PATH: &str = "/_room/revoke";

/// Storage: when the room last revalidated (Unix ms).
const LAST_REVALIDATION_KEY: &str = "last_revalidation_ms";
/// Storage: the room's name (its index entries name it), kept once the first key registers.
const ROOM_NAME_KEY: &str = "room_name";

// `alarm`: the macro binds `fetch` and `alarm` only; the socket events are bound below, a
// frame's synchronously.
#[durable_object(alarm)]
pub struct Room {
    state: State,
    env: Env,
    /// Message counters per connection id. Kept in memory only: after hibernation the window
    /// starts afresh, which errs on the side of the client, never of an abuser for long.
    rates: RefCell<HashMap<String, RateWindow>>,
    /// The members, listed once per wake and kept up to date (`members.rs`).
    members: RefCell<Option<Rc<members::MemberList>>>,
    /// What the room has registered in the revocation index; rebuilt after a restart.
    keys: RefCell<Option<crate::revocation::RoomKeys>>,
    /// The room's requests to the index, in order, registrations merged (`keys.rs`).
    index_requests: keys::IndexRequests,
    /// What this object last read from or wrote to its storage, so that an arrival or a
    /// departure reads and writes storage only when something changes. Forgotten with the
    /// object.
    remembered: RefCell<Remembered>,
}

/// See [`Room::remembered`]. `None`: not known yet (read storage).
#[derive(Default)]
struct Remembered {
    /// `LAST_REVALIDATION_KEY`.
    last_revalidation_ms: Option<i64>,
    /// The alarm this object set (`Some(None)`: it deleted it).
    alarm: Option<Option<i64>>,
    /// `ROOM_NAME_KEY` is stored.
    room_name_stored: bool,
}

impl Room {
    fn settings(&self) -> std::result::Result<Rc<Settings>, String> {
        util::settings(&self.env)
    }

    /// The members, from memory; listed from the runtime once per wake.
    fn members(&self) -> Rc<members::MemberList> {
        self.members
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(members::list(&self.state)))
            .clone()
    }

    /// The member with connection id `id`, if the room holds it.
    fn member(&self, id: &str) -> Option<members::Member> {
        self.members().iter().find(|m| m.id() == id).cloned()
    }

    /// A member joined (after it was accepted).
    fn member_joined(&self, member: members::Member) {
        if let Some(list) = self.members.borrow_mut().as_mut() {
            Rc::make_mut(list).push(member);
        }
    }

    /// Members left (their client closed, or the room closed them).
    fn members_left(&self, ids: &[&str]) {
        if let Some(list) = self.members.borrow_mut().as_mut() {
            Rc::make_mut(list).retain(|m| !ids.contains(&m.id()));
        }
    }

    /// The app of the route that admitted a socket.
    fn app_of(&self, member: &Attachment) -> &'static dyn App {
        let route = self.settings().ok().and_then(|settings| {
            let route = settings.config.routes.get(member.route)?;
            Some(route.app)
        });
        app::for_route(route.unwrap_or_default())
    }

    /// Something failed that no client is told about (an app's hook, bookkeeping, the
    /// alarm): one log line.
    fn log_error(room: Option<&str>, what: &str, e: &worker::Error) {
        util::log(&LogEvent::Room {
            room: room.map(Clipped::of),
            error: Clipped::of(&format!("{what}: {e}")),
        });
    }
}

// Every handler that can fire is implemented, here or in the socket events below: a default one
// panics, which resets the wasm instance and drops every request in flight.
impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        Room {
            state,
            env,
            rates: RefCell::new(HashMap::new()),
            keys: RefCell::new(None),
            index_requests: keys::IndexRequests::default(),
            members: RefCell::new(None),
            remembered: RefCell::new(Remembered::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == REVOKE_PATH {
            return self.revoke(req).await;
        }
        self.accept(req).await
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.on_alarm().await {
            Self::log_error(None, "alarm", &e);
        }
        Response::ok("")
    }
}

// The hibernation API's socket events, bound here rather than by `#[durable_object]`, which
// binds every handler as an async function: each call would then make a Promise, a future and
// a microtask. A frame needs none of them (`on_frame` does no I/O it waits for), and a chat's
// frames are most of a room's calls. A departure waits for the room's bookkeeping, so it stays
// async.
#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Room {
    /// A client's text or binary frame.
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn websocket_message(&self, ws: web_sys::WebSocket, message: JsValue) {
        let ws = WebSocket::from(ws);
        match message.as_string() {
            Some(text) => self.on_frame(&ws, Frame::Text(&text)),
            None => self.on_frame(
                &ws,
                Frame::Binary {
                    len: binary_len(&message),
                },
            ),
        }
    }

    /// A socket its client closed: the closing handshake completes with the client's code when
    /// it can be sent back.
    #[wasm_bindgen(js_name = webSocketClose)]
    pub async fn websocket_close(
        &self,
        ws: web_sys::WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> std::result::Result<JsValue, JsValue> {
        self.on_departure(&ws.into(), echo_close_code(code), "bye")
            .await;
        Ok(JsValue::NULL)
    }

    /// A socket that failed.
    #[wasm_bindgen(js_name = webSocketError)]
    pub async fn websocket_error(
        &self,
        ws: web_sys::WebSocket,
        _error: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        self.on_departure(&ws.into(), 1011, "socket error").await;
        Ok(JsValue::NULL)
    }
}

/// A binary frame's size in bytes, read without copying it: workerd hands binary frames to
/// `webSocketMessage` as an `ArrayBuffer`. Anything else (which it does not send) is measured
/// as `new Uint8Array(message)` measures it, as the copy this replaced did.
fn binary_len(message: &JsValue) -> usize {
    use worker::js_sys::{ArrayBuffer, Uint8Array};
    use worker::wasm_bindgen::JsCast;
    match message.dyn_ref::<ArrayBuffer>() {
        Some(buffer) => buffer.byte_length() as usize,
        None => Uint8Array::new(message).length() as usize,
    }
}
