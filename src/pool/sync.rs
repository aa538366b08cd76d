//! The index as a cache of shared records: with a backend other daemons write too (Redis),
//! [`Pool::resync`] brings this daemon's index in line with the records, so a session warmed,
//! refreshed, retired or deleted through any daemon is served (or no longer served) by every
//! one within a resync period (`schedule::sync` runs it every 300 ms); the sessions another
//! daemon holds exclusively (`?lease=`) are marked so this one hands them to nobody. With sled or memory this
//! daemon is the only writer and its index is the truth: nothing resyncs.

use std::collections::HashSet;

use super::{clock, lock, Pool, PoolError};
use crate::session::SessionState;
use crate::store::CoordError;
use crate::warm::Warm;

/// How long a session another daemon holds stays unservable here after a resync saw the
/// hold: a few resync periods, so it outlives the next resyncs (which renew it while the hold
/// lasts) and lapses soon when they cannot reach the store.
pub const HELD_MARK: std::time::Duration = std::time::Duration::from_secs(2);

/// What one [`Pool::resync`] changed in the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resynced {
    /// Sessions another daemon wrote that this one did not know.
    pub added: usize,
    /// Sessions whose record changed elsewhere (refreshed, retired): taken over, serving
    /// state kept.
    pub updated: usize,
    /// Sessions deleted elsewhere: no longer served here.
    pub removed: usize,
}

impl<W: Warm> Pool<W> {
    /// Reads every session record and brings the index in line: unknown ones are added (ready
    /// ones served at once), changed ones replace the index's copy (a session retired
    /// elsewhere stops being served; this daemon's in-memory use counts and health are kept
    /// while it stays ready), deleted ones are dropped. Sessions of targets this daemon does
    /// not configure are left out.
    ///
    /// # Errors
    /// When the records cannot be read (the index is then unchanged and keeps serving).
    pub async fn resync(&self) -> Result<Resynced, PoolError> {
        let records = self.store.list_sessions().await?;
        let mut done = Resynced::default();
        let mut stored = HashSet::with_capacity(records.len());
        let mut missing = Vec::new();
        {
            let mut ix = self.index();
            for s in records {
                let Ok(t) = self.target(&s.target) else {
                    continue;
                };
                stored.insert(s.id.clone());
                let Some(e) = ix.get(&s.id) else {
                    if s.state == SessionState::Ready {
                        if let Some(p) = &s.proxy {
                            lock(&t.proxies).adopt(p);
                        }
                    }
                    ix.insert(s);
                    done.added += 1;
                    continue;
                };
                let mine = &e.session;
                let changed = mine.state != s.state
                    || mine.refreshed_at != s.refreshed_at
                    || mine.expires_at != s.expires_at;
                if !changed {
                    continue;
                }
                let retired_here = mine.state == SessionState::Retired;
                let id = s.id.clone();
                ix.update(&id, |old| {
                    let health = old.health.clone();
                    *old = s;
                    if old.state == SessionState::Ready && !retired_here {
                        // Counts of this daemon's own uses and reports stay until they are
                        // persisted.
                        old.health = health;
                    } else if retired_here {
                        // Retired here and not yet seen elsewhere: stays retired.
                        old.state = SessionState::Retired;
                        old.health = health;
                    }
                });
                done.updated += 1;
            }
            for e in ix.iter() {
                if !stored.contains(&e.session.id) {
                    missing.push(e.session.id.clone());
                }
            }
        }
        // A session written after the listing was read is not missing: check each again
        // before dropping it (deletions are rare, so this costs little).
        for id in missing {
            if self.store.get_session(&id).await?.is_none() && self.index().remove(&id).is_some() {
                done.removed += 1;
            }
        }
        if let Err(e) = self.sync_holds().await {
            tracing::debug!(error = %super::chain(&e), "reading other daemons' holds");
        }
        if done.removed > 0 || done.updated > 0 {
            self.wake.notify_one();
        }
        Ok(done)
    }

    /// Marks the sessions other daemons hold exclusively (`?lease=`) as not servable here for
    /// [`HELD_MARK`], and lifts the mark of those no longer held: one coordination call per
    /// target, proportional to its holds. A take without a lease never hands out a session
    /// another daemon's scraper holds (within a resync period of the hold).
    ///
    /// # Errors
    /// When the coordination cannot be reached (the marks then lapse on their own).
    async fn sync_holds(&self) -> Result<(), CoordError> {
        for t in &self.targets {
            let name = &t.config.name;
            let held: HashSet<String> = self.coordination.holds(name).await?.into_iter().collect();
            let until = clock() + HELD_MARK;
            let mut ix = self.index();
            let ids: Vec<String> = ix
                .iter()
                .filter(|e| &e.session.target == name)
                .filter(|e| held.contains(&e.session.id) || e.held_elsewhere_until.is_some())
                .map(|e| e.session.id.clone())
                .collect();
            for id in ids {
                ix.with_mut(&id, |e| {
                    // This daemon's own hold is its lease; the mark is for others' holds.
                    e.held_elsewhere_until =
                        (held.contains(&id) && e.hold.is_none()).then_some(until);
                });
            }
        }
        Ok(())
    }
}
