//! The seam between the engine and what a room does. An app gets three hooks, named for the
//! moment they run (as partyserver's `onConnect`/`onMessage`/`onClose`), and a
//! [`RoomContext`]. It never sees a socket the engine refused, nor a frame the engine dropped
//! or refused; limits, expiry, revalidation and revocation apply to every app alike.

use crate::config::RoomApp;
use worker::Result;

use super::chat::Chat;
use super::counter::Counter;
use super::members::{Member, RoomContext};

/// A client frame the engine let through.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    Text(&'a str),
    /// A binary frame, by its size in bytes. Its bytes stay in JavaScript: every app refuses
    /// binary frames unread, and copying one into the wasm only to measure it would cost up to
    /// a megabyte (workerd's frame limit) for each frame a client sends.
    Binary {
        len: usize,
    },
}

impl Frame<'_> {
    /// Its size in bytes, which the engine bounds by `max_message_bytes`.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary { len } => *len,
        }
    }
}

/// What a room does with its members. An error is logged and the socket involved closed
/// with 1011.
pub trait App {
    /// `me` was admitted and accepted; `room.members()` lists it with everyone already there.
    fn on_connect(&self, room: &RoomContext<'_>, me: &Member) -> Result<()>;

    /// `me` sent a frame the engine let through.
    fn on_message(&self, room: &RoomContext<'_>, me: &Member, frame: Frame<'_>) -> Result<()>;

    /// Member `id` left: its client closed, or the room closed it (expiry, revalidation,
    /// revocation, rate limit). `room.members()` no longer lists it.
    fn on_close(&self, _room: &RoomContext<'_>, _id: &str) -> Result<()> {
        Ok(())
    }
}

/// The app a route selects (`app = "chat"`, the default, or `"counter"`).
pub fn for_route(app: RoomApp) -> &'static dyn App {
    match app {
        RoomApp::Chat => &Chat,
        RoomApp::Counter => &Counter,
    }
}
