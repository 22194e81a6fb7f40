//! The members of a room: its open sockets with their attachments, read synchronously from
//! the hibernation API (the view `session.io` existed for), and the context an app gets.

use std::cell::OnceCell;

use crate::engine::Attachment;
use worker::{SqlStorage, State, WebSocket};

/// A socket of the room and what is kept with it (its session among them).
#[derive(Clone)]
pub struct Member {
    pub socket: WebSocket,
    pub attachment: Attachment,
}

impl Member {
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

/// Every member: the open sockets the room has not closed, with their attachments.
pub fn list(state: &State) -> Vec<Member> {
    state
        .get_websockets()
        .into_iter()
        .filter(is_open)
        .filter_map(|socket| {
            let attachment = socket
                .deserialize_attachment::<Attachment>()
                .ok()
                .flatten()
                .filter(|a| !a.departed)?;
            Some(Member { socket, attachment })
        })
        .collect()
}

/// What an app sees of its room while a hook runs: the members with their sessions, a way to
/// send to them, and the object's storage.
pub struct RoomContext<'a> {
    state: &'a State,
    /// A member not to list: the one whose client just closed.
    without: Option<&'a str>,
    members: OnceCell<Vec<Member>>,
}

impl<'a> RoomContext<'a> {
    /// A context that lists the members when first asked (listing wakes every socket).
    pub fn new(state: &'a State, without: Option<&'a str>) -> Self {
        RoomContext {
            state,
            without,
            members: OnceCell::new(),
        }
    }

    /// A context over members the engine has listed already.
    pub fn listed(state: &'a State, members: Vec<Member>) -> Self {
        RoomContext {
            state,
            without: None,
            members: OnceCell::from(members),
        }
    }

    /// Every member, read synchronously: the socket whose hook runs is one of them, except in
    /// `on_close`, which runs once it has left.
    pub fn members(&self) -> &[Member] {
        self.members.get_or_init(|| {
            let mut members = list(self.state);
            if let Some(gone) = self.without {
                members.retain(|m| m.id() != gone);
            }
            members
        })
    }

    /// Sends `text` to every member but `except`.
    pub fn broadcast(&self, text: &str, except: Option<&str>) {
        for member in self.members() {
            if Some(member.id()) != except {
                member.send(text);
            }
        }
    }

    /// The object's SQLite storage: synchronous and durable, it outlives hibernation.
    pub fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }
}
