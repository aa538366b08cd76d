//! The index as a cache of shared records: with a backend other daemons write too (Redis),
//! [`Pool::resync`] brings this daemon's index in line with the records, so a session warmed,
//! refreshed, retired or deleted through any daemon is served (or no longer served) by every
//! one within a resync period (`schedule::sync` runs it every 300 ms); the sessions another
//! daemon holds exclusively (`?lease=`) are marked so this one hands them to nobody. With sled or memory this
//! daemon is the only writer and its index is the truth: nothing resyncs.

use std::collections::HashSet;
use std::sync::Arc;

use super::index::Index;
use super::{clock, lock, Pool, PoolError, TargetRuntime};
use crate::session::{Session, SessionState};
use crate::store::CoordResult;
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
    /// Brings the index in line with the records: per target, only what changed since the
    /// last resync ([`crate::store::Store::changes`]: nothing changed is one small round trip,
    /// no record read), or every record on the first resync and whenever the store cannot
    /// answer from that revision. Unknown sessions are added (ready ones served at once),
    /// changed ones replace the index's copy (a session retired elsewhere stops being served;
    /// this daemon's in-memory use counts and health are kept while it stays ready), deleted
    /// ones are dropped. Sessions of targets this daemon does not configure are left out.
    ///
    /// # Errors
    /// When the records cannot be read (the index is then unchanged and keeps serving).
    pub async fn resync(&self) -> Result<Resynced, PoolError> {
        let mut done = Resynced::default();
        let mut full = Vec::new();
        for t in &self.targets {
            let since = *lock(&t.synced_rev);
            let Some(since) = since else {
                full.push(t.clone());
                continue;
            };
            let changes = self.store.changes(&t.config.name, since).await?;
            if changes.reset {
                full.push(t.clone());
                continue;
            }
            {
                let mut ix = self.index();
                for s in changes.written {
                    self.adopt_record(&mut ix, t, s, &mut done);
                }
                for id in changes.deleted {
                    let here = ix
                        .get(&id)
                        .is_some_and(|e| e.session.target == t.config.name);
                    if here && ix.remove(&id).is_some() {
                        done.removed += 1;
                    }
                }
            }
            *lock(&t.synced_rev) = Some(changes.rev);
        }
        if !full.is_empty() {
            self.resync_all(&full, &mut done).await?;
        }
        if let Err(e) = self.sync_holds().await {
            tracing::debug!(error = %super::chain(&e), "reading other daemons' holds");
        }
        if done.removed > 0 || done.updated > 0 {
            self.wake.notify_one();
        }
        Ok(done)
    }

    /// The full resync of `targets`: their revisions are read first, then every record, so a
    /// change made while the listing was read is seen again by the next [`Pool::resync`].
    async fn resync_all(
        &self,
        targets: &[Arc<TargetRuntime>],
        done: &mut Resynced,
    ) -> Result<(), PoolError> {
        let mut revs = Vec::with_capacity(targets.len());
        for t in targets {
            // `u64::MAX` is beyond any revision: the answer is a reset carrying the revision.
            revs.push(self.store.changes(&t.config.name, u64::MAX).await?.rev);
        }
        let names: HashSet<&str> = targets.iter().map(|t| t.config.name.as_str()).collect();
        let records = self.store.list_sessions().await?;
        let mut stored = HashSet::with_capacity(records.len());
        let mut missing = Vec::new();
        {
            let mut ix = self.index();
            for s in records {
                if !names.contains(s.target.as_str()) {
                    continue;
                }
                let Ok(t) = self.target(&s.target) else {
                    continue;
                };
                stored.insert(s.id.clone());
                self.adopt_record(&mut ix, t, s, done);
            }
            for e in ix.iter() {
                if names.contains(e.session.target.as_str()) && !stored.contains(&e.session.id) {
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
        for (t, rev) in targets.iter().zip(revs) {
            *lock(&t.synced_rev) = Some(rev);
        }
        Ok(())
    }

    /// Takes one stored record of target `t` into the index: added when unknown, replacing
    /// the index's copy when it changed elsewhere.
    fn adopt_record(&self, ix: &mut Index, t: &TargetRuntime, s: Session, done: &mut Resynced) {
        let Some(e) = ix.get(&s.id) else {
            if s.state == SessionState::Ready {
                if let Some(p) = &s.proxy {
                    lock(&t.proxies).adopt(p);
                }
            }
            ix.insert(s);
            done.added += 1;
            return;
        };
        let mine = &e.session;
        let changed = mine.state != s.state
            || mine.refreshed_at != s.refreshed_at
            || mine.expires_at != s.expires_at;
        if !changed {
            return;
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

    /// Marks the sessions other daemons hold exclusively (`?lease=`) as not servable here for
    /// [`HELD_MARK`], and lifts the mark of those no longer held: one coordination call per
    /// target, proportional to its holds. A take without a lease never hands out a session
    /// another daemon's scraper holds (within a resync period of the hold).
    ///
    /// # Errors
    /// When the coordination cannot be reached (the marks then lapse on their own).
    async fn sync_holds(&self) -> CoordResult<()> {
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
