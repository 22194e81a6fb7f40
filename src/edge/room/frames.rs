//! Client frames and departures. Every frame, text or binary, passes the engine first
//! (`engine::judge_frame`): a socket the room has closed is heard no more, every frame counts
//! against the rate limit, an oversized one gets an `error` frame; only then does the app see
//! it. A socket its client closed leaves through the app's `on_close`.

use crate::engine::{self, Expulsion, FrameVerdict};
use crate::protocol;
use worker::WebSocket;

use super::app::Frame;
use super::members::{self, close, Member, RoomContext};
use super::Room;
use crate::edge::util;

impl Room {
    pub(super) fn on_frame(&self, socket: &WebSocket, frame: Frame<'_>) {
        let Ok(settings) = self.settings() else {
            close(socket, 1011, "configuration invalid");
            return;
        };
        if !members::is_open(socket) {
            return;
        }
        let Some(id) = members::id_of(socket) else {
            close(socket, 1011, "lost connection state");
            return;
        };
        // A socket the room closed (departed) is no longer among the members: not heard.
        let me = self.member(&id);
        let verdict = {
            let mut rates = self.rates.borrow_mut();
            let rate = rates.entry(id).or_default();
            engine::judge_frame(
                me.is_some(),
                rate,
                &settings.config.room,
                frame.len(),
                util::now_ms(),
            )
        };
        let Some(me) = me else {
            return;
        };
        match verdict {
            FrameVerdict::Drop => {}
            FrameVerdict::Expel => {
                let members = self.members();
                if let Some(i) = members.iter().position(|m| m.id() == me.id()) {
                    self.expel(&members, &[i], Expulsion::RateLimited);
                }
            }
            FrameVerdict::Refuse(refused) => me.send(&protocol::error(&refused)),
            FrameVerdict::Deliver => {
                let room = RoomContext::listed(&self.state, self.members());
                if let Err(e) = self.app_of(&me.attachment).on_message(&room, &me, frame) {
                    Self::log_error(None, "on_message", &e);
                    close(socket, 1011, "internal error");
                }
            }
        }
    }

    /// A socket its client closed (or that failed): its rate window goes, the app hears of
    /// it unless the room closed it itself (and told the app then), and the closing handshake
    /// completes with `code`.
    pub(super) async fn on_departure(&self, socket: &WebSocket, code: u16, reason: &str) {
        if let Some(id) = members::id_of(socket) {
            self.rates.borrow_mut().remove(&id);
            // A member in memory, or (when the members were listed while this socket was
            // already closing, so without it) one whose attachment says the room did not
            // close it itself.
            let me = self.member(&id).or_else(|| {
                let attachment = members::attachment_of(socket).filter(|a| !a.departed)?;
                Some(Member::new(socket.clone(), std::rc::Rc::new(attachment)))
            });
            if let Some(me) = me {
                self.keys_leave(&[&me.keys]);
                self.members_left(&[me.id()]);
                let room = RoomContext::listed(&self.state, self.members());
                if let Err(e) = self.app_of(&me.attachment).on_close(&room, me.id()) {
                    Self::log_error(None, "on_close", &e);
                }
            }
        }
        // A departure only makes the room's next events later: the alarm set for them fires
        // early, finds nothing due and sets the next (or none in an empty room).
        close(socket, code, reason);
    }
}
