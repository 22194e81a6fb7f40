//! The members of a room: its open sockets with their attachments (the view `session.io`
//! existed for), and the context an app gets. The room keeps them in memory: listed from the
//! hibernation API (which wakes every socket and deserializes every attachment) once per wake,
//! then kept up to date as sockets arrive and leave, so no hot path lists or deserializes.
//! An attachment is stored as one JSON string (`Attachment::to_stored`): the frame and close
//! handlers read only its id from it, once per socket object, to find the member in memory.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::engine::Attachment;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::{SqlStorage, State, WebSocket};

#[wasm_bindgen]
extern "C" {
    /// A WebSocket accepted with the hibernation API, seen for its attachment, which `worker`
    /// would convert through serde-wasm-bindgen.
    type HibernatableSocket;
    #[wasm_bindgen(method, catch, js_name = serializeAttachment)]
    fn serialize_attachment(this: &HibernatableSocket, value: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = deserializeAttachment)]
    fn deserialize_attachment(this: &HibernatableSocket) -> Result<JsValue, JsValue>;
}

// A broadcast is one call into JavaScript, which loops over the members' sockets there: from
// Rust it would be a call per member. A frame's sender is found by the id its stored
// attachment starts with, cut out there: only the id comes into the wasm, not the attachment.
// The id is remembered by socket object, so that a frame deserializes no attachment: only a
// socket's first frame does. A socket's id never changes, and a socket woken from hibernation
// is a new object, read again.
#[wasm_bindgen(inline_js = "const ids = new WeakMap();
export function send_each(sockets, text, skip) {
  for (let i = 0; i < sockets.length; i++) {
    if (i === skip) continue;
    try { sockets[i].send(text); } catch {}
  }
}
export function stored_id(socket) {
  const known = ids.get(socket);
  if (known !== undefined) return known;
  let stored;
  try { stored = socket.deserializeAttachment(); } catch { return undefined; }
  if (typeof stored !== 'string' || !stored.startsWith('{\"id\":\"')) return undefined;
  const end = stored.indexOf('\"', 7);
  if (end < 0) return undefined;
  const id = stored.slice(7, end);
  ids.set(socket, id);
  return id;
}")]
extern "C" {
    /// `sockets[i].send(text)` for every `i` but `skip` (-1: none); a socket that went away
    /// meanwhile is skipped (its own close handler tells the others).
    fn send_each(sockets: &worker::js_sys::Array, text: &JsValue, skip: i32);
    /// The text between `{"id":"` and the next `"` of the socket's stored attachment (read
    /// once per socket object): the JavaScript twin of `Attachment::id_in_stored`; `None`
    /// when it does not start that way.
    fn stored_id(socket: &HibernatableSocket) -> Option<String>;
}

fn hibernatable(socket: &WebSocket) -> &HibernatableSocket {
    let raw: &worker::web_sys::WebSocket = socket.as_ref();
    raw.unchecked_ref()
}

/// Stores `attachment` with `socket` (it survives hibernation), as one JSON string.
pub fn store(socket: &WebSocket, attachment: &Attachment) -> worker::Result<()> {
    let json = attachment.to_stored().map_err(crate::edge::util::error)?;
    store_json(socket, &json)
}

/// Stores an attachment already written by `Attachment::to_stored`.
pub fn store_json(socket: &WebSocket, json: &str) -> worker::Result<()> {
    hibernatable(socket)
        .serialize_attachment(&JsValue::from_str(json))
        .map_err(worker::Error::from)
}

/// The stored attachment's JSON, if the socket has one.
fn stored(socket: &WebSocket) -> Option<String> {
    hibernatable(socket)
        .deserialize_attachment()
        .ok()?
        .as_string()
}

/// The socket's attachment, decoded whole: for a socket the room does not hold in memory.
pub fn attachment_of(socket: &WebSocket) -> Option<Attachment> {
    Attachment::from_stored(&stored(socket)?)
}

/// The socket's connection id, read from its stored attachment without decoding the rest.
pub fn id_of(socket: &WebSocket) -> Option<String> {
    // Anything but a plain id, or an attachment not written by `to_stored`, is decoded whole
    // (`stored_id` already looked for the id where `id_in_stored` would).
    match stored_id(hibernatable(socket)).filter(|id| Attachment::is_plain_id(id)) {
        Some(id) => Some(id),
        None => attachment_of(socket).map(|a| a.id),
    }
}

/// A socket of the room and what is kept with it (its session among them).
/// Cheap to clone (four counted pointers): the room's list is copied on write when a hook's
/// view of it is still held, and a `WebSocket` clone would be a call into JavaScript.
#[derive(Clone)]
pub struct Member {
    pub socket: Rc<WebSocket>,
    pub attachment: Rc<Attachment>,
    /// Its revocation keys (`revocation::socket_keys`), worked out once.
    pub keys: Rc<[String]>,
    /// How peers see it (`protocol::peer_text`), worked out at the first welcome that lists it.
    peer: Rc<OnceCell<String>>,
}

impl Member {
    pub fn new(socket: WebSocket, attachment: Rc<Attachment>) -> Member {
        let keys = crate::revocation::socket_keys(&attachment.sid, &attachment.revoke_keys).into();
        Member {
            socket: Rc::new(socket),
            attachment,
            keys,
            peer: Rc::default(),
        }
    }

    /// How peers see it, as JSON text.
    pub fn peer_text(&self) -> &str {
        self.peer
            .get_or_init(|| crate::protocol::peer_text(&self.attachment))
    }

    /// The connection id, unique within the room.
    pub fn id(&self) -> &str {
        &self.attachment.id
    }

    /// Sends a text frame. A member that went away between the listing and the send is not an
    /// error here: its own close handler tells the others.
    pub fn send(&self, text: &str) {
        let _ = self.socket.send_with_str(text);
    }
}

pub fn close(socket: &WebSocket, code: u16, reason: &str) {
    let _ = socket.close(Some(code), Some(reason));
}

/// A socket that is neither closing nor closed (a closing one is still listed while its
/// close handler runs).
pub fn is_open(socket: &WebSocket) -> bool {
    let raw: &worker::web_sys::WebSocket = socket.as_ref();
    raw.ready_state() == 1
}

/// The members in the order they joined, and (once a broadcast needed it) the same sockets as
/// one JavaScript array, kept in step as members join and rebuilt after some leave.
#[derive(Default)]
pub struct MemberList {
    members: Vec<Member>,
    sockets: OnceCell<worker::js_sys::Array>,
}

/// A copy (made when the list changes while a hook's view of it is held) builds its own
/// array when it needs one: sharing the JavaScript array would change the view too.
impl Clone for MemberList {
    fn clone(&self) -> Self {
        MemberList {
            members: self.members.clone(),
            sockets: OnceCell::new(),
        }
    }
}

impl std::ops::Deref for MemberList {
    type Target = [Member];

    fn deref(&self) -> &[Member] {
        &self.members
    }
}

impl MemberList {
    pub fn push(&mut self, member: Member) {
        if let Some(sockets) = self.sockets.get() {
            let raw: &JsValue = member.socket.as_ref().as_ref();
            sockets.push(raw);
        }
        self.members.push(member);
    }

    pub fn retain(&mut self, keep: impl FnMut(&Member) -> bool) {
        let before = self.members.len();
        self.members.retain(keep);
        if self.members.len() != before {
            self.sockets = OnceCell::new();
        }
    }

    /// The sockets as a JavaScript array, index for index with the members.
    fn sockets(&self) -> &worker::js_sys::Array {
        self.sockets.get_or_init(|| {
            self.members
                .iter()
                .map(|m| -> &JsValue { m.socket.as_ref().as_ref() })
                .collect()
        })
    }
}

/// Every member: the open sockets the room has not closed, with their attachments.
pub fn list(state: &State) -> MemberList {
    let members = state
        .get_websockets()
        .into_iter()
        .filter(is_open)
        .filter_map(|socket| {
            let attachment = attachment_of(&socket).filter(|a| !a.departed)?;
            Some(Member::new(socket, Rc::new(attachment)))
        })
        .collect();
    MemberList {
        members,
        sockets: OnceCell::new(),
    }
}

/// What an app sees of its room while a hook runs: the members with their sessions, a way to
/// send to them, and the object's storage.
pub struct RoomContext<'a> {
    state: &'a State,
    members: Rc<MemberList>,
}

impl<'a> RoomContext<'a> {
    /// A context over the room's members as the engine holds them.
    pub fn listed(state: &'a State, members: Rc<MemberList>) -> Self {
        RoomContext { state, members }
    }

    /// Every member, read synchronously: the socket whose hook runs is one of them, except in
    /// `on_close`, which runs once it has left.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Sends `text` to every member but `except`: converted to JavaScript once, sent from there.
    pub fn broadcast(&self, text: &str, except: Option<&str>) {
        let skip = except
            .and_then(|id| self.members.iter().position(|m| m.id() == id))
            .map_or(-1, |i| i as i32);
        send_each(self.members.sockets(), &JsValue::from_str(text), skip);
    }

    /// The object's SQLite storage: synchronous and durable, it outlives hibernation.
    pub fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }
}
