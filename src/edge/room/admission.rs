//! A handshake the gate admitted arrives as a request with the admission header: the engine
//! checks the room's limits, accepts the socket with its attachment, hands it to the app
//! (`on_connect`), registers its revocation keys and sets the alarm.

use crate::decision::Refusal;
use crate::engine::{self, RoomAdmission};
use crate::log::{self, Clipped, LogEvent, SidTag};
use worker::{Request, Response, Result, WebSocketPair};

use super::app;
use super::members::{self, close, Member, RoomContext};
use super::Room;
use crate::edge::gate::{too_large_session, ADMISSION_HEADER};
use crate::edge::util::{self, Settings};

impl Room {
    pub(super) async fn accept(&self, req: Request) -> Result<Response> {
        let Ok(settings) = self.settings() else {
            return Response::error("sessiongate: configuration invalid", 500);
        };
        let Some(raw) = req.headers().get(ADMISSION_HEADER)? else {
            return Response::error("rooms are reached through the gate", 400);
        };
        let Some(admission) = RoomAdmission::decode(&raw) else {
            return Response::error("bad admission", 400);
        };
        let Some(route) = settings.config.routes.get(admission.attachment.route) else {
            return Response::error("bad admission", 400);
        };
        let (occupancy, same_session) = {
            // Not held past here: the list is extended in place below, not copied.
            let members = self.members();
            let sid = &admission.attachment.sid;
            let same = members.iter().filter(|m| m.attachment.sid == *sid).count();
            (members.len(), same)
        };
        if let Err(refusal) = engine::check_limits(&settings.config.room, occupancy, same_session) {
            log_refusal(&admission, refusal);
            return util::refuse(refusal, route.deny_with);
        }
        // The gate checks the size before forwarding; this is the last line of defence.
        let stored = match admission.attachment.to_stored() {
            Ok(stored) => stored,
            Err(too_large) => {
                return too_large_session(&admission.room, &admission.attachment, &too_large)
            }
        };

        let pair = WebSocketPair::new()?;
        let socket = pair.server;
        self.state.accept_web_socket(&socket);
        if let Err(e) = members::store_json(&socket, &stored) {
            // Never keep an accepted socket the room cannot speak for.
            close(&socket, 1011, "internal error");
            return Err(e);
        }
        let app = app::for_route(route.app);
        let arrived = Member::new(socket, std::rc::Rc::new(admission.attachment));
        self.member_joined(arrived.clone());
        {
            // Not held across the awaits below: a departure meanwhile would copy the list.
            let room = RoomContext::listed(&self.state, self.members());
            if let Err(e) = app.on_connect(&room, &arrived) {
                Self::log_error(Some(&admission.room), "on_connect", &e);
                close(&arrived.socket, 1011, "internal error");
            }
        }
        // From here on the socket is in the room: bookkeeping that fails is logged, and the
        // socket is still handed back (an error now would leave a member the client never got).
        if let Err(e) = self
            .after_arrival(&settings, &admission.room, &arrived)
            .await
        {
            Self::log_error(Some(&admission.room), "after accept", &e);
        }
        Response::from_websocket(pair.client)
    }

    /// Registers the socket's revocation keys the room did not hold yet and sets the alarm.
    async fn after_arrival(&self, settings: &Settings, room: &str, arrived: &Member) -> Result<()> {
        self.keys_arrive(settings, room, arrived).await?;
        self.schedule_arrival(settings, arrived, util::now_ms())
            .await
    }
}

fn log_refusal(admission: &RoomAdmission, refusal: Refusal) {
    util::log(&LogEvent::Decision(log::Decision::Deny {
        route: None,
        room: Some(Clipped::of(&admission.room)),
        status: refusal.status(),
        reason: refusal.reason(),
        check: "limits",
        detail: None,
        sid: Some(SidTag::of(&admission.attachment.sid)),
    }));
}
