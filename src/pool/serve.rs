//! The hot path: a ready session for a caller, from memory (never Chromium or disk) — its
//! target, the serving order and lease ([`Index::take`]), and leases given back or set.

use std::sync::Arc;
use std::time::Duration;

use super::{clock, lock, Pool, PoolError, Projection, TakeError, Taken, TargetRuntime, Want};
use crate::session::{now_ms, Session};
use crate::warm::Warm;

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
        target: Option<&str>,
        event: &str,
        lease: Option<Duration>,
        view: usize,
        project: impl FnOnce(&Session) -> Projection,
    ) -> Result<Taken, PoolError> {
        let t = self.target_for_event(target, event)?;
        let name = &t.config.name;
        let want = Want {
            target: name,
            event,
            lease,
            max_uses: t.policy.max_uses,
            view: (view, now_ms()),
        };
        self.index()
            .take(&want, clock(), project)
            .map_err(|e| match e {
                TakeError::NoneReady => PoolError::NoneReady(name.clone()),
                TakeError::AllBusy => PoolError::AllBusy(name.clone()),
            })
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
