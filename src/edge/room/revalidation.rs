//! Every `revalidate_seconds`, each distinct session of the room is read once from KV and its
//! route's rules run again; a session that is gone closes its sockets with 4401, one that now
//! fails a rule with 4403. KV not answering keeps the sockets until the next tick.

use crate::decision::recheck;
use crate::engine::{self, Expulsion};
use crate::log::{Clipped, LogEvent, SidTag};

use super::Room;
use crate::edge::gate::{load_each, sessions};
use crate::edge::util::{self, Settings};

impl Room {
    pub(super) async fn revalidate(&self, settings: &Settings, now: i64) {
        let members = self.members();
        if members.is_empty() {
            return;
        }
        let store = sessions(&self.env, settings);
        let config = &settings.config;
        let sids = members.iter().map(|m| m.attachment.sid.as_str());
        let results = load_each(&store, config, sids).await;
        let mut refused = Vec::new();
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
                util::log(&LogEvent::Revalidation {
                    status: refusal.status(),
                    reason: refusal.reason(),
                    detail: detail.as_deref().map(Clipped::of),
                    sid: SidTag::of(&a.sid),
                });
                refused.push((i, refusal));
            }
        }
        for (refusal, victims) in engine::group_by_refusal(&refused) {
            self.expel(&members, &victims, Expulsion::Refused(refusal));
        }
    }
}
