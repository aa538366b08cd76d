//! New-session warms claimed through the store's coordination ([`crate::store::Coordination`]), so that
//! daemons sharing one store are one pool: a target's `pool_size` counts for all of them
//! together. Top-up queues the items the pool lacks ([`crate::store::Coordination::top_up`], one atomic
//! step, so daemons calling it together never overshoot), claims them one at a time, renews
//! each claim every third of `cluster.lease_ttl` while warming, and writes the new session by
//! a fenced commit: a daemon whose claim lapsed (it stalled, or lost the store) stops its warm,
//! or, when the warm finished anyway, writes nothing. A lapsed claim of a dead daemon is put
//! back by [`Pool::reap`], which every daemon runs, and taken over by the next claim.
//!
//! Periodic work each daemon finds due on its own (cookie refresh, validation, rotation,
//! account keep-alive) is claimed by name instead ([`Pool::claimed`]): the daemon that finds an
//! item due first does it, the others leave it; the claim is renewed the same way, every
//! record written under it is fenced, and a finished item rests for [`ITEM_REST`] so daemons
//! that have not resynced yet do not do it again.
//!
//! With sled or memory the coordination is in process ([`crate::store::LocalCoordination`]):
//! the same steps, one daemon.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{chain, CreateOptions, Pool, TargetRuntime};
use crate::store::{Claim, CoordError, CoordResult, Work};
use crate::warm::Warm;

/// How long a finished named item rests (claimed by nobody): well beyond the time the other
/// daemons take to see its result (resync polls every 300 ms).
pub const ITEM_REST: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// The named-item claim the current task works under ([`Pool::claimed`]).
    static FENCE: Claim;
}

/// The claim the current task works under, if any: its record writes are fenced by it.
pub(super) fn fence() -> Option<Claim> {
    FENCE.try_with(Claim::clone).ok()
}

/// Lapses of one item's claims after which it is dropped (a poison item) instead of queued
/// again; top-up queues a fresh one if the pool still lacks the session.
const MAX_ATTEMPTS: u32 = 5;

impl<W: Warm> Pool<W> {
    /// The top-up of one target through the coordination: makes sure the new-session items
    /// the pool lacks are queued (counted over every daemon: `missing` is `pool_size` less
    /// the ready sessions), then claims and starts at most `room` of them, and none beyond
    /// what is not already warming somewhere. Returns how many warms it started.
    ///
    /// # Errors
    /// When the coordination cannot be reached (a shared backend that is down).
    pub async fn claim_warms(
        self: &Arc<Self>,
        t: &Arc<TargetRuntime>,
        missing: usize,
        room: usize,
    ) -> CoordResult<usize> {
        let name = &t.config.name;
        self.coordination.top_up(name, missing).await?;
        if room == 0 || missing == 0 {
            return Ok(0);
        }
        // Claims in flight (here or on other daemons) are warms under way for this target.
        let in_flight = self.coordination.pending(name).await?.in_flight;
        let wanted = missing.saturating_sub(in_flight).min(room);
        let mut started = 0;
        while started < wanted {
            let Some(claim) = self.coordination.claim(name, self.lease_ttl).await? else {
                break;
            };
            if !matches!(claim.work, Work::Warm { .. }) {
                // Other kinds of work are not queued by this build; leave it for a daemon
                // that knows it, and stop claiming for now.
                self.coordination
                    .abandon(&claim, Some(self.lease_ttl))
                    .await?;
                break;
            }
            self.start_claimed_warm(t, claim);
            started += 1;
        }
        Ok(started)
    }

    /// Starts the warm of a claimed new-session item on the pool's task tracker, counted in
    /// [`TargetRuntime::warming`] until it ends. The claim is renewed every third of its ttl
    /// while the warm runs; when it is lost the warm is stopped (its future dropped, which
    /// disposes of its browser context). A failed warm gives the item up, so top-up decides
    /// afresh whether the pool still lacks a session.
    pub fn start_claimed_warm(self: &Arc<Self>, t: &Arc<TargetRuntime>, claim: Claim) {
        t.warming.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        let t = t.clone();
        self.tracker.spawn(async move {
            let warm = pool.warm_with(&t, CreateOptions::default(), None, Some(&claim));
            // Biased, lease first: when the lease is found lost in the same poll as the warm
            // ends (a timeout, say), the loss is what happened (and what is counted).
            let outcome = tokio::select! {
                biased;
                () = pool.renew_until_lost(&claim, false) => None,
                r = warm => Some(r),
            };
            match outcome {
                // Committed (fenced), or the commit was refused: nothing more to do.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if let Err(a) = pool.coordination.abandon(&claim, None).await {
                        tracing::debug!(work = %claim.name(), error = %chain(&a), "giving up a claim after a failed warm");
                    }
                    tracing::debug!(work = %claim.name(), error = %chain(&e), "claimed warm failed");
                }
                None => {
                    pool.metrics.event("cluster", "lease_lost");
                    tracing::warn!(
                        work = %claim.name(),
                        "claim lost while warming (not renewed in time, or taken over); the \
                         warm is stopped and writes nothing"
                    );
                }
            }
            t.warming.fetch_sub(1, Ordering::Relaxed);
            // Room for the next warm: top-up claims it now, not at its next tick.
            pool.wake.notify_one();
        });
    }

    /// Runs `job`, named item `work` of `target`, only if this daemon can claim it, so that of
    /// the daemons sharing a store one does it: `None` when another daemon holds it or did it
    /// lately (or the store cannot be reached: it is due again at the next tick). The claim
    /// is renewed every third of `cluster.lease_ttl` while `job` runs; every record `job`
    /// writes is fenced by it; when it is lost, `job` is dropped (closing what it opened) and
    /// `None` returned. With a shared store, a finished item rests for [`ITEM_REST`], or
    /// half its `period` when that is shorter (alone on its store, the daemon's own index is
    /// never behind: no rest).
    pub async fn claimed<T>(
        &self,
        target: &str,
        work: Work,
        period: Duration,
        job: impl Future<Output = T>,
    ) -> Option<T> {
        let claim = match self
            .coordination
            .claim_item(target, &work, self.lease_ttl)
            .await
        {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                tracing::debug!(target, work = %work, "claimed by another daemon (or just done); left to it");
                return None;
            }
            Err(e) => {
                tracing::warn!(target, work = %work, error = %chain(&e), "cannot claim work; it is due again at the next tick");
                return None;
            }
        };
        // Biased, lease first, as for a claimed warm.
        let outcome = tokio::select! {
            biased;
            () = self.renew_until_lost(&claim, true) => None,
            r = FENCE.scope(claim.clone(), job) => Some(r),
        };
        match outcome {
            Some(r) => {
                let rest = if self.is_shared() {
                    ITEM_REST.min(period / 2)
                } else {
                    Duration::ZERO
                };
                if let Err(e) = self.coordination.finish_item(&claim, rest).await {
                    tracing::debug!(work = %claim.name(), error = %chain(&e), "finishing a claim");
                }
                Some(r)
            }
            None => {
                self.metrics.event("cluster", "lease_lost");
                tracing::warn!(
                    work = %claim.name(),
                    "claim lost while working (not renewed in time, or taken over); the work \
                     is stopped and writes nothing"
                );
                None
            }
        }
    }

    /// Renews `claim` (a queued one, or a named one with `named`) every third of the lease
    /// ttl; returns only once it is lost. A store that cannot be reached is retried at the
    /// next renewal: the claim lapses only if no renewal gets through within the ttl, and
    /// then the next one says so.
    async fn renew_until_lost(&self, claim: &Claim, named: bool) {
        let every = self.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            let renewed = if named {
                self.coordination.renew_item(claim, self.lease_ttl).await
            } else {
                self.coordination.renew(claim, self.lease_ttl).await
            };
            match renewed {
                Ok(()) => {}
                Err(CoordError::LeaseLost { .. }) => return,
                Err(CoordError::Store(e)) => {
                    tracing::warn!(work = %claim.name(), error = %chain(&e), "renewing a claim failed; retrying");
                }
            }
        }
    }

    /// Takes back every lapsed claim (of any daemon, every target): each is queued again for
    /// the next claim, or dropped after [`MAX_ATTEMPTS`] lapses. Every daemon runs it (from
    /// top-up), so a dead daemon's work is taken over once its lease lapses. Returns how many
    /// were taken back.
    pub async fn reap(&self) -> usize {
        match self.coordination.reap(MAX_ATTEMPTS).await {
            Ok(r) => {
                for l in &r.requeued {
                    self.metrics.event("cluster", "takeover");
                    tracing::info!(target = %l.target, work = %l.work, attempts = l.attempts, "lapsed claim put back for another daemon");
                }
                for l in &r.dead {
                    self.metrics.event("cluster", "dead_letter");
                    tracing::warn!(target = %l.target, work = %l.work, attempts = l.attempts, "claim lapsed too often; dropped");
                }
                r.requeued.len() + r.dead.len()
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "reaping lapsed claims");
                0
            }
        }
    }

    /// The coordination's view of `target`'s work, for status: queued and in-flight items.
    ///
    /// # Errors
    /// When the coordination cannot be reached.
    pub async fn pending_work(&self, target: &str) -> CoordResult<crate::store::Pending> {
        self.coordination.pending(target).await
    }
}
