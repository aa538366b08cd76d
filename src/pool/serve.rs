//! The hot path: a ready session for a caller, from memory (never Chromium or disk) — its
//! target, the serving order and lease ([`Index::take`]), and leases given back or set.

use std::sync::Arc;
use std::time::Duration;

use super::index::Entry;
use super::{
    chain, clock, lock, Pool, PoolError, Projection, TakeError, Taken, TargetRuntime, Want,
};
use crate::session::{now_ms, Session};
use crate::store::CoordError;
use crate::warm::Warm;

/// How long a session another daemon holds (`?lease=` on a shared backend) is skipped here
/// before it is offered again (at most the lease asked for): a hold ended early elsewhere is
/// seen by then.
pub const HELD_ELSEWHERE_RECHECK: Duration = Duration::from_secs(1);

/// Takes back the use [`super::Index::take_id`] counted for a session that was not handed out.
fn undo_use(e: &mut Entry) {
    let uses = &mut std::sync::Arc::make_mut(&mut e.session).health.uses;
    *uses = uses.saturating_sub(1);
}

/// What a caller asks of the hot path: a session of `target` (or the one serving `event`),
/// with a `lease`, seen through projection `view`.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The target named by the caller, if any.
    pub target: Option<&'a str>,
    /// The event the session is for.
    pub event: &'a str,
    /// Held for the caller this long (none other is given it meanwhile).
    pub lease: Option<Duration>,
    /// Which memoised projection is handed out (0 or 1: without or with proxy credentials).
    pub view: usize,
}

impl<W: Warm> Pool<W> {
    /// The target serving `event`: `explicit`, else one whose events include it, else the first.
    ///
    /// # Errors
    /// `UnknownTarget` when `explicit` names no target or none is configured.
    pub fn target_for_event(
        &self,
        explicit: Option<&str>,
        event: &str,
    ) -> Result<&Arc<TargetRuntime>, PoolError> {
        if let Some(name) = explicit {
            return self.target(name);
        }
        if let [only] = self.targets.as_slice() {
            return Ok(only);
        }
        self.targets
            .iter()
            .find(|t| lock(&t.events).iter().any(|e| e == event))
            .or_else(|| self.targets.first())
            .ok_or_else(|| PoolError::UnknownTarget("(none configured)".into()))
    }

    /// The hot path: a ready session for `event`, from memory. Never touches Chromium or disk.
    /// Hands out `view`'s memoised projection of it (built by `project` when missing or
    /// stale).
    ///
    /// # Errors
    /// `NoneReady` / `AllBusy` (the API answers 503 with Retry-After), `UnknownTarget`.
    pub fn take(
        &self,
        ask: Ask<'_>,
        project: impl FnOnce(&Session) -> Projection,
    ) -> Result<Taken, PoolError> {
        let t = self.target_for_event(ask.target, ask.event)?;
        let want = want(t, &ask);
        self.index()
            .take(&want, clock(), project)
            .map_err(|e| take_failed(e, t))
    }

    /// [`Pool::take`] for the API: with a lease on a shared backend the lease is also held in
    /// the coordination ([`crate::store::Coordination::hold`]), so it is exclusive across
    /// daemons; a session another daemon holds is skipped (and not offered again here for
    /// [`HELD_ELSEWHERE_RECHECK`]). Without a lease, or on a local backend, this is exactly
    /// [`Pool::take`] (no await, no store call).
    ///
    /// # Errors
    /// As [`Pool::take`]; `Store` when the coordination cannot be reached (nothing is handed
    /// out then: an exclusive lease that might not be exclusive is not given).
    pub async fn take_held(
        &self,
        ask: Ask<'_>,
        project: impl FnOnce(&Session) -> Projection,
    ) -> Result<Taken, PoolError> {
        let ttl = match ask.lease {
            Some(ttl) if self.shared => ttl,
            _ => return self.take(ask, project),
        };
        let t = self.target_for_event(ask.target, ask.event)?;
        let name = &t.config.name;
        let want = want(t, &ask);
        // Each session refused below is busy locally afterwards, so the loop ends with a hold
        // or AllBusy within one try per session.
        loop {
            let (id, matched) = self
                .index()
                .take_id(&want, clock())
                .map_err(|e| take_failed(e, t))?;
            let held = self.coordination.hold(name, &id, ttl).await;
            // The index lock is never held across an await (the future stays Send).
            let orphan = {
                let mut ix = self.index();
                match held {
                    Ok(Some(hold)) => {
                        if ix.with_mut(&id, |e| e.hold = Some(hold.clone())).is_some() {
                            let p = ix
                                .projection(&id, want.view, project)
                                .ok_or_else(|| PoolError::NoneReady(name.clone()))?;
                            return Ok((p, matched));
                        }
                        // Deleted while the hold was asked for: give it back, take another.
                        Some(hold)
                    }
                    Ok(None) | Err(CoordError::LeaseLost { .. }) => {
                        // Held by another daemon: not this caller's; the use was not given.
                        let recheck = clock() + HELD_ELSEWHERE_RECHECK.min(ttl);
                        ix.with_mut(&id, |e| {
                            undo_use(e);
                            e.lease_until = Some(recheck);
                        });
                        None
                    }
                    Err(CoordError::Store(e)) => {
                        ix.with_mut(&id, |e| {
                            undo_use(e);
                            e.lease_until = None;
                        });
                        return Err(PoolError::Store(e));
                    }
                }
            };
            if let Some(hold) = orphan {
                let _ = self.coordination.release_hold(&hold).await;
            }
        }
    }

    /// Ends this daemon's hold on session `id` in the coordination, if it has one (a report
    /// ends the scraper's lease). Best effort: a hold not released lapses at its ttl.
    pub(super) async fn release_hold(&self, id: &str) {
        let hold = self.index().with_mut(id, |e| e.hold.take()).flatten();
        if let Some(hold) = hold {
            if let Err(e) = self.coordination.release_hold(&hold).await {
                tracing::warn!(session = %id, error = %chain(&e), "releasing a lease in the shared store");
            }
        }
    }

    /// [`Pool::take`] of any ready session of `target`, handing out the session record itself
    /// rather than a projection (for callers that drive the session, not serve it): the same
    /// choice, use count and lease ([`Index::take_id`]), no projection built.
    ///
    /// # Errors
    /// As [`Pool::take`].
    pub fn take_session(
        &self,
        target: &str,
        lease: Option<Duration>,
    ) -> Result<Arc<Session>, PoolError> {
        let t = self.target(target)?;
        let want = Want {
            target: &t.config.name,
            event: "",
            lease,
            max_uses: t.policy.max_uses,
            view: (0, now_ms()),
        };
        let mut ix = self.index();
        let (id, _) = ix.take_id(&want, clock()).map_err(|e| match e {
            TakeError::NoneReady => PoolError::NoneReady(target.to_string()),
            TakeError::AllBusy => PoolError::AllBusy(target.to_string()),
        })?;
        ix.get(&id)
            .map(|e| e.session.clone())
            .ok_or_else(|| PoolError::NoneReady(target.to_string()))
    }

    /// Leases session `id` to one caller for `lease` from now, or ends its lease (`None`).
    ///
    /// # Errors
    /// `UnknownSession`.
    pub fn lease_session(&self, id: &str, lease: Option<Duration>) -> Result<(), PoolError> {
        let until = lease.map(|d| clock() + d);
        self.index()
            .with_mut(id, |e| e.lease_until = until)
            .ok_or_else(|| PoolError::UnknownSession(id.to_string()))
    }
}

/// What a take of `event` from target `t` asks of the index.
fn want<'a>(t: &'a TargetRuntime, ask: &Ask<'a>) -> Want<'a> {
    Want {
        target: &t.config.name,
        event: ask.event,
        lease: ask.lease,
        max_uses: t.policy.max_uses,
        view: (ask.view, now_ms()),
    }
}

/// The pool's error for a take of target `t` the index could not serve.
fn take_failed(e: TakeError, t: &TargetRuntime) -> PoolError {
    let name = t.config.name.clone();
    match e {
        TakeError::NoneReady => PoolError::NoneReady(name),
        TakeError::AllBusy => PoolError::AllBusy(name),
    }
}
