//! The room closes sockets itself: on revocation (a request from the Worker), and for the
//! engine's other reasons (expiry, revalidation, rate limit) through [`Room::expel`].

use crate::decision::Refusal;
use crate::engine::{self, Expulsion, RevokeTarget};
use serde_json::json;
use worker::{Request, Response, Result};

use super::members::{close, Member, RoomContext};
use super::Room;

impl Room {
    /// Closes the sockets matching a revocation; answers how many and their sids (for
    /// `delete_session`).
    pub(super) async fn revoke(&self, mut req: Request) -> Result<Response> {
        let body = crate::edge::util::json_body(&mut req).await.ok();
        let Some(target) = body.and_then(RevokeTarget::from_value) else {
            return Response::error("bad revocation", 400);
        };
        let members = self.members();
        let victims: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].attachment.matches_revocation(&target))
            .collect();
        let sids = engine::distinct_sids(victims.iter().map(|&i| &*members[i].attachment));
        let answer = json!({"closed": victims.len(), "sids": sids});
        self.expel(
            &members,
            &victims,
            Expulsion::Refused(Refusal::SessionRevoked),
        );
        Response::from_json(&answer)
    }

    /// Closes `members[victims]` from the room's side with the expulsion's close code. Each is
    /// marked departed first (so nothing it still sends reaches anyone, and its close handler
    /// stays quiet), then the app hears of each departure (`on_close`) with the members that
    /// remain. One listing of the room however many go at once.
    pub(super) fn expel(&self, members: &[Member], victims: &[usize], why: Expulsion) {
        if victims.is_empty() {
            return;
        }
        let gone: Vec<&[String]> = victims.iter().map(|&i| &*members[i].keys).collect();
        self.keys_leave(&gone);
        for &i in victims {
            let member = &members[i];
            let mut attachment = (*member.attachment).clone();
            attachment.departed = true;
            let _ = super::members::store(&member.socket, &attachment);
            close(&member.socket, why.close_code(), why.reason());
        }
        let ids: Vec<&str> = victims.iter().map(|&i| members[i].id()).collect();
        self.members_left(&ids);
        let room = RoomContext::listed(&self.state, self.members());
        for &i in victims {
            let gone = &members[i].attachment;
            if let Err(e) = self.app_of(gone).on_close(&room, &gone.id) {
                Self::log_error(None, "on_close", &e);
            }
        }
    }
}
