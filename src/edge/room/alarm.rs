//! The room's alarm: sessions expire on time (without KV), sessions are revalidated every
//! `revalidate_seconds`, and revocation keys whose last socket left are unregistered a linger
//! later. An empty room has no alarm after that: no work while nobody is there.

use crate::decision::Refusal;
use crate::engine::{self, Expulsion};
use worker::Result;

use super::{Room, LAST_REVALIDATION_KEY};
use crate::edge::util::{self, Settings};

impl Room {
    pub(super) async fn on_alarm(&self) -> Result<()> {
        let Ok(settings) = self.settings() else {
            return Ok(());
        };
        let now = util::now_ms();
        if let Err(e) = self.keys_on_alarm(&settings, now).await {
            Self::log_error(None, "index", &e);
        }
        let members = self.members();
        if members.is_empty() {
            return self.schedule(&settings, now).await;
        }
        let expired: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].attachment.is_expired(now))
            .collect();
        self.expel(
            &members,
            &expired,
            Expulsion::Refused(Refusal::SessionExpired),
        );
        let interval = u64::from(settings.config.room.revalidate_seconds) * 1000;
        let storage = self.state.storage();
        let last = storage
            .get::<i64>(LAST_REVALIDATION_KEY)
            .await
            .ok()
            .flatten();
        if engine::revalidation_due(last, interval, now) {
            self.revalidate(&settings, now).await;
            storage.put(LAST_REVALIDATION_KEY, now).await?;
        } else if last.is_none() {
            storage.put(LAST_REVALIDATION_KEY, now).await?;
        }
        self.schedule(&settings, now).await
    }

    /// Sets the alarm to the earliest session expiry, the next revalidation or the end of a
    /// key's linger. An empty room keeps only the last.
    pub(super) async fn schedule(&self, settings: &Settings, now: i64) -> Result<()> {
        let members = self.members();
        let storage = self.state.storage();
        let linger_ends = self.keys_next_due().await;
        if members.is_empty() {
            return match linger_ends {
                Some(at) => self.set_alarm_at(at.max(now + 1)).await,
                None => storage.delete_alarm().await,
            };
        }
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
        let interval = u64::from(settings.config.room.revalidate_seconds) * 1000;
        let expiries = members.iter().map(|m| m.attachment.expires_at_ms);
        let next = engine::next_alarm_ms(expiries, last, interval, now);
        match next
            .into_iter()
            .chain(linger_ends.map(|at| at.max(now + 1)))
            .min()
        {
            Some(at) => self.set_alarm_at(at).await,
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

    /// After sockets left: the alarm now also covers their keys' linger.
    pub(super) async fn after_departure(&self) {
        if let Ok(settings) = self.settings() {
            let _ = self.schedule(&settings, util::now_ms()).await;
        }
    }
}
