//! The room's alarm: sessions expire on time (without KV), sessions are revalidated every
//! `revalidate_seconds`, and the revocation keys of the room's sockets are registered again
//! before their index entries expire. An empty room has no alarm: no work while nobody is
//! there.

use crate::decision::Refusal;
use crate::engine::{self, Expulsion};
use worker::Result;

use super::members::Member;
use super::{Room, LAST_REVALIDATION_KEY};
use crate::edge::util::{self, Settings};

impl Room {
    pub(super) async fn on_alarm(&self) -> Result<()> {
        // The alarm that fired is no longer set.
        self.remembered.borrow_mut().alarm = None;
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
        let interval = revalidate_ms(&settings);
        let last = self.last_revalidation(now).await?;
        if engine::revalidation_due(Some(last), interval, now) {
            self.revalidate(&settings, now).await;
            let storage = self.state.storage();
            storage.put_raw(LAST_REVALIDATION_KEY, now as f64).await?;
            self.remembered.borrow_mut().last_revalidation_ms = Some(now);
        }
        self.schedule(&settings, now).await
    }

    /// Sets the alarm to the earliest session expiry, the next revalidation or the refresh of
    /// the keys in the revocation index. An empty room needs none.
    pub(super) async fn schedule(&self, settings: &Settings, now: i64) -> Result<()> {
        if self.members().is_empty() {
            return self.set_alarm(None).await;
        }
        let refresh = self.keys_next_due(settings).await;
        let last = self.last_revalidation(now).await?;
        let interval = revalidate_ms(settings);
        let next = {
            let members = self.members();
            let expiries = members.iter().map(|m| m.attachment.expires_at_ms);
            engine::next_alarm_ms(expiries, last, interval, now)
        };
        self.set_alarm(with_refresh(next, refresh, now)).await
    }

    /// After an arrival. The alarm only ever moves sooner on one (`engine::alarm_change`) and
    /// already covers every other member, so only the newcomer's expiry, the keys' refresh
    /// and, in a room that was empty, the next revalidation are looked at: going over every
    /// member at every arrival made filling a room quadratic. While this object does not know
    /// its alarm (it just started), everything is.
    pub(super) async fn schedule_arrival(
        &self,
        settings: &Settings,
        arrived: &Member,
        now: i64,
    ) -> Result<()> {
        if self.remembered.borrow().alarm.is_none() {
            return self.schedule(settings, now).await;
        }
        let last = self.last_revalidation(now).await?;
        let interval = revalidate_ms(settings);
        let expiry = std::iter::once(arrived.attachment.expires_at_ms);
        let refresh = self.keys_next_due(settings).await;
        let next = engine::next_alarm_ms(expiry, last, interval, now);
        self.set_alarm(with_refresh(next, refresh, now)).await
    }

    /// When the room last revalidated. The interval runs from the first revalidation, or
    /// from when the room first got a socket: sockets joining later must not push the next
    /// revalidation back.
    async fn last_revalidation(&self, now: i64) -> Result<i64> {
        if let Some(last) = self.remembered.borrow().last_revalidation_ms {
            return Ok(last);
        }
        let storage = self.state.storage();
        let stored = util::stored_number(&storage, LAST_REVALIDATION_KEY).await;
        let last = match stored.ok().flatten() {
            Some(last) => last as i64,
            None => {
                storage.put_raw(LAST_REVALIDATION_KEY, now as f64).await?;
                now
            }
        };
        self.remembered.borrow_mut().last_revalidation_ms = Some(last);
        Ok(last)
    }

    /// Makes sure the alarm fires by `at_ms` (`None`: not needed); see
    /// [`engine::alarm_change`] for when it is left as it is.
    async fn set_alarm(&self, at_ms: Option<i64>) -> Result<()> {
        let set = self.remembered.borrow().alarm;
        let Some(at_ms) = engine::alarm_change(set, at_ms) else {
            return Ok(());
        };
        let storage = self.state.storage();
        match at_ms {
            // An absolute time: worker's `From<i64>` would read the number as an offset.
            Some(at) => {
                let when = worker::js_sys::Date::new(&(at as f64).into());
                storage.set_alarm(worker::ScheduledTime::new(when)).await?
            }
            None => storage.delete_alarm().await?,
        }
        self.remembered.borrow_mut().alarm = Some(at_ms);
        Ok(())
    }
}

/// The sooner of `next` (expiry, revalidation) and the keys' refresh, which may be due already
/// (then the alarm fires at once).
fn with_refresh(next: Option<i64>, refresh: Option<i64>, now: i64) -> Option<i64> {
    next.into_iter()
        .chain(refresh.map(|at| at.max(now + 1)))
        .min()
}

/// The revalidation interval in ms (0: none).
fn revalidate_ms(settings: &Settings) -> u64 {
    u64::from(settings.config.room.revalidate_seconds) * 1000
}
