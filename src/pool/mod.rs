//! The pool's primitives: per target, the sessions in memory (served from there, never
//! waiting on Chromium or disk), taken, reported on, retired, upserted, listed, leased and
//! persisted. What to do with them and when (rotate, expire, validate, refresh, top-up,
//! cleanup) is decided by the workers in [`crate::schedule`]; the login keep-alive is
//! [`crate::keepalive`]; the browser is driven by [`crate::warm`] behind the [`Warm`] trait.
//!
//! Files: `target` (a target at run time), `warming` (a warm into the pool and its
//! back-off), `claims` (new-session warms claimed through the store's coordination, so daemons
//! sharing a store are one pool), `cluster` (the heartbeat and what it saw of the other daemons), `sync` (the index resynced from shared records), `fetch` (a stored session driven: fetch, cookie refresh), `restore`, `stats`,
//! `index` (the pure serving index), `backoff`, `proxy`.

mod backoff;
mod claims;
mod cluster;
mod fetch;
mod index;
mod proxy;
mod restore;
mod serve;
mod stats;
mod sync;
mod target;
#[cfg(test)]
mod tests;
mod warming;

pub use crate::logging::chain;
pub use crate::warm::FetchOptions;
pub use backoff::{
    backoff_delay, event_backoff_delay, BackoffState, Culprit, EventBackoffs, Reason,
    TargetBackoff, BROWSER_RETRY,
};
pub use claims::ITEM_REST;
pub use cluster::{ClusterView, BEAT_EVERY, FORGET_AFTER, SEEN_WITHIN};
pub use fetch::FetchResult;
pub use index::{Entry, Index, Match, Projection, TakeError, Taken, Want, VIEWS};
pub use proxy::ProxyPicker;
pub use serve::Ask;
pub use stats::{PoolStats, TargetBackoffStats, TargetStats};
pub use sync::Resynced;
pub use target::TargetRuntime;
pub use warming::CreateOptions;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{StoreBackend, TargetConfig};
use crate::metrics::Metrics;
use crate::session::{now_ms, RetireReason, Session, SessionState, UsageReport, Verdict};
use crate::store::{AuditEntry, Backend, CoordError, Coordination, Store, StoreError, Usage};
use crate::warm::{Warm, WarmError, Warmer};

/// Why a pool operation failed; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No configured target has this name.
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    /// No session has this id (in memory or, for a delete, in the store).
    #[error("no session {0:?}")]
    UnknownSession(String),
    /// The target has no ready session yet (the API answers 503 with Retry-After).
    #[error("no ready session for target {0:?} yet")]
    NoneReady(String),
    /// Every ready session of the target is leased, backing off or used up.
    #[error("every ready session of target {0:?} is leased, rate limited or used up (max_uses)")]
    AllBusy(String),
    /// Too many warms of the target are queued (the API answers 429).
    #[error("warm capacity of target {target:?} is full; retry in {retry_after:?}")]
    Busy {
        /// The target's name.
        target: String,
        /// When a warm may be asked again.
        retry_after: Duration,
    },
    /// The target has no event to warm on.
    #[error("target {0:?} has no events; add some with `warmer events add`")]
    NoEvents(String),
    /// The session is retired: not served, not driven.
    #[error("session {0:?} is retired")]
    Retired(String),
    /// The warm (or revisit) failed; the step is in the `WarmError`.
    #[error(transparent)]
    Warm(#[from] WarmError),
    /// The store failed (its message is this error's; its cause is the source).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The daemon is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A URL (or a redirect) outside the session's target: never loaded.
    #[error("{what} {origin} is not one of target {target:?}'s origins ({})", allowed.join(", "))]
    UrlNotAllowed {
        /// `url` or `a redirect to`.
        what: &'static str,
        /// The refused URL's origin (never its path or query).
        origin: String,
        /// The session's target, or `(any configured)`.
        target: String,
        /// The origins that are allowed.
        allowed: Vec<String>,
    },
    /// An API caller named a proxy while `server.allow_custom_proxies` is off.
    #[error("custom proxies are off: set server.allow_custom_proxies = true to let API callers name one")]
    CustomProxyRefused,
    /// A caller-named proxy could not be used; nothing more is said (it would tell open ports
    /// from closed ones).
    #[error("proxy unreachable")]
    ProxyUnreachable,
}

/// The pool of every target. Generic over its warmer so its policies can be tested without
/// a browser; the daemon's is `Pool<Warmer>` (Chromium).
pub struct Pool<W = Warmer> {
    /// Every session in memory and its serving state; one lock, never held across an await.
    index: Mutex<Index>,
    targets: Vec<Arc<TargetRuntime>>,
    /// The records: sessions, events and the audit trail (the store backend's first concern).
    store: Arc<dyn Store>,
    /// Claims of work, holds and usage counters, shared by every daemon on the same backend
    /// (in process for sled and memory).
    coordination: Arc<dyn Coordination>,
    warmer: W,
    /// Counters of warms, retirements, reports and background events.
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: warms and slot waits stop.
    shutdown: CancellationToken,
    /// Where background warms run, so shutdown can wait for them.
    tracker: TaskTracker,
    /// Wakes the top-up worker (a session was retired).
    pub wake: tokio::sync::Notify,
    /// When the pool was built (uptime).
    pub started: Instant,
    /// `server.allow_custom_proxies`: whether [`Pool::warm_now`] takes a caller's proxy.
    allow_custom_proxies: bool,
    /// `cluster.lease_ttl`: how long a claim of work lasts unless renewed (every third of it).
    lease_ttl: Duration,
    /// Whether other daemons may share the records (a network backend): the index is then a
    /// cache resynced from them ([`Pool::resync`]).
    shared: bool,
    /// The cluster as the last heartbeat saw it ([`Pool::beat`]).
    cluster: Mutex<ClusterView>,
}

impl<W: Warm> Pool<W> {
    /// Builds the pool over `targets` on an opened store backend; nothing is loaded or warmed
    /// yet.
    pub fn new(
        targets: &[TargetConfig],
        backend: Backend,
        warmer: W,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let shared = !matches!(
            backend.records.info().backend,
            StoreBackend::Sled | StoreBackend::Memory
        );
        Self {
            index: Mutex::new(Index::default()),
            targets: TargetRuntime::all(targets),
            store: backend.records,
            coordination: backend.coordination,
            warmer,
            metrics,
            shutdown,
            tracker,
            wake: tokio::sync::Notify::new(),
            started: Instant::now(),
            allow_custom_proxies: false,
            lease_ttl: Duration::from_secs(30),
            shared,
            cluster: Mutex::new(ClusterView::default()),
        }
    }

    /// Claims of work last `ttl` unless renewed (`cluster.lease_ttl`; default 30 s).
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Treats the records as shared with other daemons whatever the backend is: two test pools
    /// on one memory store then behave as two daemons on one Redis.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn shared_for_tests(mut self) -> Self {
        self.shared = true;
        self
    }

    /// How long a claim of work lasts unless renewed (`cluster.lease_ttl`).
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Whether the records are shared with other daemons (a network backend such as Redis):
    /// then the index is a cache of them, resynced by `schedule::sync`.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Lets [`Pool::warm_now`] take a caller's proxy (`server.allow_custom_proxies`).
    #[must_use]
    pub fn with_custom_proxies(mut self, allowed: bool) -> Self {
        self.allow_custom_proxies = allowed;
        self
    }

    /// Whether API callers may name their own proxy (`server.allow_custom_proxies`).
    pub fn allows_custom_proxies(&self) -> bool {
        self.allow_custom_proxies
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        lock(&self.index)
    }

    /// The configured targets.
    pub fn targets(&self) -> &[Arc<TargetRuntime>] {
        &self.targets
    }

    /// The target called `name`.
    ///
    /// # Errors
    /// `UnknownTarget`.
    pub fn target(&self, name: &str) -> Result<&Arc<TargetRuntime>, PoolError> {
        self.targets
            .iter()
            .find(|t| t.config.name == name)
            .ok_or_else(|| PoolError::UnknownTarget(name.to_string()))
    }

    /// The records behind the pool (sessions, events, audit).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The coordination behind the pool: claims, holds and usage counters.
    pub fn coordination(&self) -> &Arc<dyn Coordination> {
        &self.coordination
    }

    /// The warmer (the daemon's: [`Warmer`], and through it the browser supervisor).
    pub fn warmer(&self) -> &W {
        &self.warmer
    }

    /// Whether the daemon is shutting down (workers stop between sessions).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Runs `task` on the pool's task tracker (shutdown waits for it).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Writes one session record (flushed); fenced when the task works under a claim
    /// ([`Pool::claimed`]).
    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        match claims::fence() {
            // Work claimed by name: the write stands only while the claim is current.
            Some(claim) => match self.coordination.put_fenced(&claim, s).await {
                Ok(()) => Ok(()),
                Err(CoordError::LeaseLost { what }) => Err(StoreError::Fenced { what }),
                Err(CoordError::Store(e)) => Err(e),
            },
            None => self.store.put_session(s).await,
        }
    }

    /// Appends an audit line about `session` (a failure is logged, never returned).
    async fn audit(&self, session: Option<&Session>, action: &str, detail: String) {
        self.audit_entry(AuditEntry {
            at: now_ms(),
            session: session.map(|s| s.id.clone()),
            target: session.map(|s| s.target.clone()),
            action: action.to_string(),
            detail,
        })
        .await;
    }

    /// Appends `entry` to the audit trail (a failure is logged, never returned).
    async fn audit_entry(&self, entry: AuditEntry) {
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::warn!(error = %chain(&e), "writing audit entry");
        }
    }

    /// A session by id (any state).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.index().get(id).map(|e| e.session.clone())
    }

    /// Every session in memory, with its rotating mark.
    pub fn list(&self) -> Vec<(Arc<Session>, bool)> {
        self.index()
            .iter()
            .map(|e| (e.session.clone(), e.rotating))
            .collect()
    }

    /// Counts per (target, state).
    pub fn counts(&self) -> HashMap<(String, &'static str), usize> {
        self.index().counts()
    }

    /// Ready sessions now, all targets.
    pub fn ready_count(&self) -> usize {
        self.index()
            .iter()
            .filter(|e| e.session.state == SessionState::Ready)
            .count()
    }

    /// Every session `pick` accepts, in no particular order (the workers' view of the pool).
    pub fn sessions_where(&self, mut pick: impl FnMut(&Entry) -> bool) -> Vec<Arc<Session>> {
        self.index()
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.session.clone())
            .collect()
    }

    /// Session `id` if `pick` accepts its entry as it is now.
    pub fn session_if(&self, id: &str, pick: impl FnOnce(&Entry) -> bool) -> Option<Arc<Session>> {
        self.index()
            .get(id)
            .filter(|e| pick(e))
            .map(|e| e.session.clone())
    }

    /// Marks every ready, not yet rotating session `pick` accepts as rotating (one lock: two
    /// callers never rotate one session twice) and returns them. A rotating session is served
    /// until [`Pool::start_rotation`]'s replacement retires it.
    pub fn mark_rotating(&self, mut pick: impl FnMut(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut ix = self.index();
        let due: Vec<Arc<Session>> = ix
            .iter()
            .filter(|e| e.session.state == SessionState::Ready && !e.rotating)
            .filter(|e| pick(&e.session))
            .map(|e| e.session.clone())
            .collect();
        for s in &due {
            ix.with_mut(&s.id, |e| e.rotating = true);
        }
        due
    }

    /// Records that session `id` passed validation now, for the next persist to write. On a
    /// shared store it is also written at once (fenced when claimed), so the other daemons see
    /// it is done before their own tick finds it due.
    pub async fn validated(&self, id: &str) {
        let updated = self.index().with_mut(id, |e| {
            Arc::make_mut(&mut e.session).health.last_validated_at = Some(now_ms());
            e.dirty = true;
            e.session.clone()
        });
        let Some(s) = updated.filter(|_| self.shared) else {
            return;
        };
        if let Err(e) = self.put_session(&s).await {
            tracing::warn!(session = %id, error = %chain(&e), "writing a validation");
        }
    }

    /// Applies a scraper's report. A retiring verdict retires the session and wakes the top-up.
    ///
    /// # Errors
    /// `UnknownSession`.
    pub async fn report(&self, id: &str, report: UsageReport) -> Result<Verdict, PoolError> {
        let (verdict, session) = {
            let mut ix = self.index();
            let target = ix
                .get(id)
                .ok_or_else(|| PoolError::UnknownSession(id.to_string()))?
                .session
                .target
                .clone();
            let t = self.target(&target)?;
            // Health is not part of a served projection: no need to rebuild those.
            ix.with_mut(id, |e| {
                let verdict = t
                    .policy
                    .apply(&mut Arc::make_mut(&mut e.session).health, report);
                e.dirty = true;
                e.lease_until = None;
                if let Verdict::BackOff(d) = verdict {
                    e.backoff_until = Some(clock() + d);
                }
                (verdict, e.session.clone())
            })
            .expect("entry exists")
        };
        let outcome = match (&verdict, report.success) {
            (_, true) => "success",
            (Verdict::BackOff(_), _) => "rate_limited",
            (Verdict::Retire(_), _) => "retired",
            _ => "failure",
        };
        self.metrics.report(&session.target, outcome);
        self.release_hold(id).await;
        if self.shared {
            // Every daemon's reports land on one set of counters, none lost.
            let delta = Usage {
                uses: 0,
                successes: u64::from(report.success),
                failures: u64::from(!report.success),
            };
            match self
                .coordination
                .add_usage(&session.target, id, delta)
                .await
            {
                // The record shows every daemon's reports: the shared totals replace this
                // daemon's own counts (written with the record's next flush).
                Ok(total) => self.adopt_usage(id, total),
                Err(e) => {
                    tracing::warn!(session = %id, error = %chain(&e), "counting a report in the shared store")
                }
            }
        }
        if let Verdict::Retire(reason) = &verdict {
            self.retire(id, reason.clone(), true).await?;
        }
        Ok(verdict)
    }

    /// Takes the shared store's usage totals of a session into its index entry (never going
    /// below what this daemon already counted); flushed with the record's next write.
    fn adopt_usage(&self, id: &str, total: Usage) {
        self.index().with_mut(id, |e| {
            if total.fold_into(&mut Arc::make_mut(&mut e.session).health) {
                e.dirty = true;
            }
        });
    }

    /// With a shared store, brings one session's usage counts up to the totals every daemon's
    /// reports added (one store read); with sled or memory this daemon's counts are the totals.
    /// A store that cannot be read leaves the counts as they are.
    pub async fn sync_usage(&self, id: &str) {
        if !self.shared {
            return;
        }
        let Some(target) = self.index().get(id).map(|e| e.session.target.clone()) else {
            return;
        };
        match self.coordination.usage(&target, id).await {
            Ok(Some(total)) => self.adopt_usage(id, total),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(session = %id, error = %chain(&e), "reading a session's shared usage")
            }
        }
    }

    /// Retires a session (flushed), frees its proxy, and wakes the top-up worker.
    ///
    /// # Errors
    /// `UnknownSession`, or the store write failing.
    pub async fn retire(
        &self,
        id: &str,
        reason: RetireReason,
        failed: bool,
    ) -> Result<(), PoolError> {
        let session = {
            let mut ix = self.index();
            let Some(e) = ix.get(id) else {
                return Err(PoolError::UnknownSession(id.to_string()));
            };
            if e.session.state == SessionState::Retired {
                return Ok(());
            }
            ix.update(id, |s| {
                s.state = SessionState::Retired;
                s.health.retired_reason = Some(reason.to_string());
            })
            .expect("entry exists")
        };
        if let (Some(p), Ok(t)) = (&session.proxy, self.target(&session.target)) {
            lock(&t.proxies).released(p, failed, clock());
        }
        self.metrics.retired(&session.target, &reason);
        let reason = reason.to_string();
        tracing::info!(session = %session.id, target = %session.target, reason, "session retired");
        self.audit(Some(&session), "retire", reason).await;
        self.put_session(&session).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Writes a session (flushed) and puts it into the pool, replacing any record of that id
    /// but keeping its serving state.
    ///
    /// # Errors
    /// When the store write fails (the pool is then unchanged).
    pub async fn upsert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        self.put_session(&session).await?;
        let id = session.id.clone();
        let mut ix = self.index();
        if ix.get(&id).is_some() {
            ix.update(&id, |old| *old = session);
        } else {
            ix.insert(session);
        }
        Ok(ix.get(&id).expect("just written").session.clone())
    }

    /// Deletes a session from memory and store.
    ///
    /// # Errors
    /// `UnknownSession`, or the store failing.
    pub async fn delete(&self, id: &str) -> Result<(), PoolError> {
        let removed = self.index().remove(id);
        let on_disk = self.store.delete_session(id).await?;
        if removed.is_none() && !on_disk {
            return Err(PoolError::UnknownSession(id.to_string()));
        }
        if let Some(e) = removed {
            if let (Some(p), Ok(t)) = (&e.session.proxy, self.target(&e.session.target)) {
                if e.session.state != SessionState::Retired {
                    lock(&t.proxies).released(p, false, clock());
                }
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Writes sessions whose uses or health changed in memory only.
    ///
    /// # Errors
    /// When the store write fails.
    pub async fn persist(&self) -> Result<usize, PoolError> {
        let dirty = self.index().take_dirty();
        let n = dirty.len();
        if n > 0 {
            self.store.update_sessions(&dirty).await?;
        }
        Ok(n)
    }

    /// Drops the retired sessions among `ids` from memory and store, and trims the audit to
    /// its last `audit_keep` entries (cleanup). Returns how many were dropped.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn forget_retired(
        &self,
        ids: Vec<String>,
        audit_keep: usize,
    ) -> Result<usize, PoolError> {
        let old: Vec<String> = {
            let mut ix = self.index();
            let retired = |e: &Entry| e.session.state == SessionState::Retired;
            let old: Vec<String> = ids
                .into_iter()
                .filter(|id| ix.get(id).is_some_and(retired))
                .collect();
            for id in &old {
                ix.remove(id);
            }
            old
        };
        let n = old.len();
        for id in &old {
            self.store.delete_session(id).await?;
        }
        self.store.trim_audit(audit_keep).await?;
        Ok(n)
    }

    /// Flushes every pending write (shutdown).
    pub async fn flush(&self) {
        if let Err(e) = self.persist().await {
            tracing::warn!(error = %chain(&e), "persisting sessions at shutdown");
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %chain(&e), "flushing the store at shutdown");
        }
    }
}

/// Now, on tokio's clock: the same as `Instant::now()` in the daemon, paused time in the
/// pool's unit tests (leases, 429 back-offs and proxy cool-downs expire as time advances).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
