//! The default app: presence and chat (docs/PROTOCOL.md). A newcomer gets a `welcome` with
//! every peer's session and the others a `join`; frames are broadcast or sent to one peer
//! with a `from` filled from the stored session; a departure is a `leave`.

use crate::protocol::{self, ClientFrame, FrameError};
use worker::Result;

use super::app::{App, Frame};
use super::members::{Member, RoomContext};

pub struct Chat;

impl App for Chat {
    fn on_connect(&self, room: &RoomContext<'_>, me: &Member) -> Result<()> {
        let members = room.members();
        let peers = members
            .iter()
            .filter(|m| m.id() != me.id())
            .map(Member::peer_text);
        me.send(&protocol::welcome(&me.attachment, peers));
        room.broadcast(&protocol::join(&me.attachment), Some(me.id()));
        Ok(())
    }

    fn on_message(&self, room: &RoomContext<'_>, me: &Member, frame: Frame<'_>) -> Result<()> {
        let Frame::Text(text) = frame else {
            me.send(&protocol::error(&FrameError::Binary));
            return Ok(());
        };
        match protocol::parse_client_frame(text) {
            Err(refused) => me.send(&protocol::error(&refused)),
            Ok(ClientFrame::Broadcast { data }) => {
                room.broadcast(
                    &protocol::message_from(me.peer_text(), &data),
                    Some(me.id()),
                );
            }
            Ok(ClientFrame::Send { to, data }) => {
                match room.members().iter().find(|m| m.id() == to) {
                    Some(peer) => peer.send(&protocol::message_from(me.peer_text(), &data)),
                    None => me.send(&protocol::error(&FrameError::NoPeer(to))),
                }
            }
        }
        Ok(())
    }

    fn on_close(&self, room: &RoomContext<'_>, id: &str) -> Result<()> {
        room.broadcast(&protocol::leave(id), None);
        Ok(())
    }
}
