//! [`AsyncStore`]: the async record-storage contract (sessions, events, audit) every backend
//! implements, what a backend says about itself ([`StoreInfo`]), and [`Blocking`], which runs a
//! blocking implementation (sled) on tokio's blocking pool.
//!
//! Record storage is one of the store's two concerns; the other, pool coordination (claims of
//! warm work, leases, usage counters), is [`super::Coordination`]. A shared backend such as
//! Redis implements both over one connection; sled and memory pair their records with the
//! in-process [`super::LocalCoordination`].
//!
//! Transitional: while the pool, API and CLI still call the synchronous [`super::Store`], this
//! trait carries a temporary name. When every caller is async it becomes `Store` and the
//! synchronous trait goes away.

use async_trait::async_trait;
use std::sync::Arc;

use super::key::KeyId;
use super::{AuditEntry, Event, Store, StoreError};
use crate::config::StoreBackend;
use crate::session::Session;

/// What happens to records at rest in a backend, for the start-up log and `/api/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtRest {
    /// Nothing is at rest: records live in the daemon's memory and are gone when it stops.
    NotPersisted,
    /// Records are written as they are: session records hold cookie values in the clear.
    Plaintext,
    /// Session records are encrypted under the key with this id.
    Encrypted(KeyId),
}

/// What a backend says about itself: which one it is, where its records live, and whether they
/// survive the daemon. Never holds a secret (a URL's password is left out of `location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// Which backend (`store.backend`).
    pub backend: StoreBackend,
    /// Where the records live, for messages: a directory, `memory`, a URL without credentials.
    pub location: String,
    /// Whether session records are kept at rest, and how.
    pub at_rest: AtRest,
}

impl StoreInfo {
    /// Whether records survive the daemon stopping.
    pub fn is_persistent(&self) -> bool {
        self.at_rest != AtRest::NotPersisted
    }

    /// Logs what an operator must know about this store at start: a memory store keeps
    /// nothing, a persistent one without a key keeps cookie values in the clear.
    pub fn log_at_start(&self) {
        match self.at_rest {
            AtRest::NotPersisted => tracing::warn!(
                backend = self.backend.as_str(),
                "memory store: nothing is persisted; sessions, events and the audit trail are \
                 lost when the daemon stops (store.backend = \"sled\" keeps them)"
            ),
            AtRest::Plaintext => tracing::warn!(
                backend = self.backend.as_str(),
                store = %self.location,
                "store holds cookie values unencrypted; set WARMER_KEY or store.key_file \
                 (see README: Encryption at rest)"
            ),
            AtRest::Encrypted(key_id) => tracing::info!(
                backend = self.backend.as_str(),
                store = %self.location,
                key_id = %key_id,
                "store opened; session records are encrypted at rest"
            ),
        }
    }
}

/// Durable storage of sessions, events and the audit trail, async so network backends fit.
///
/// The same contract as the synchronous [`Store`] (tests/store_contract.rs runs it against
/// every backend): a write that changes a session is durable before it returns `Ok` (for a
/// persistent backend); `put_event` keeps the first of two events with the same target and id;
/// lists come in key order; `update_sessions` never brings back a deleted session.
#[async_trait]
pub trait AsyncStore: Send + Sync + 'static {
    /// Which backend this is and what it keeps at rest.
    fn info(&self) -> StoreInfo;

    /// Inserts or replaces a session, durable before returning.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    async fn put_session(&self, s: &Session) -> Result<(), StoreError>;

    /// Rewrites the sessions that are still stored (one deleted meanwhile is not brought back),
    /// durable before returning; returns how many were written.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError>;

    /// The session with this id, if stored.
    ///
    /// # Errors
    /// When reading fails or the record is unreadable ([`StoreError::Corrupt`]), or cannot be
    /// decrypted ([`StoreError::KeyMismatch`], [`StoreError::Tampered`]).
    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError>;

    /// Deletes a session, durable before returning; `true` when it existed.
    ///
    /// # Errors
    /// When writing or flushing fails.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;

    /// All stored sessions, in id order.
    ///
    /// # Errors
    /// When reading fails or any record is unreadable.
    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError>;

    /// Adds an event unless one with the same target and id exists (the first one is kept);
    /// `true` when newly added. Durable before returning.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    async fn put_event(&self, e: &Event) -> Result<bool, StoreError>;

    /// Adds many events, durable together at the end (for imports); returns how many were new.
    ///
    /// # Errors
    /// As [`AsyncStore::put_event`]; events before the failing one may have been added.
    async fn put_events(&self, events: &[Event]) -> Result<usize, StoreError>;

    /// Events of one target (or all), ordered by target then id.
    ///
    /// # Errors
    /// When reading fails or a record is unreadable.
    async fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError>;

    /// Deletes an event, durable before returning; `true` when it existed.
    ///
    /// # Errors
    /// When writing or flushing fails.
    async fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError>;

    /// Appends to the audit trail. Not made durable on its own (see [`AsyncStore::flush`]), so
    /// a crash may lose the last fraction of a second of audit.
    ///
    /// # Errors
    /// When encoding or writing fails.
    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError>;

    /// The newest `limit` audit entries, newest first.
    ///
    /// # Errors
    /// When reading fails or a record is unreadable.
    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Removes all but the newest `keep` audit entries; returns how many were removed.
    ///
    /// # Errors
    /// When writing fails.
    async fn trim_audit(&self, keep: usize) -> Result<usize, StoreError>;

    /// Makes everything written so far durable (a no-op for a backend that keeps nothing).
    ///
    /// # Errors
    /// When flushing fails.
    async fn flush(&self) -> Result<(), StoreError>;
}

/// Runs a blocking [`Store`] (sled: disk I/O and fsync on every session write) as an
/// [`AsyncStore`], each call on tokio's blocking pool so it never stalls the async workers.
/// Arguments are cloned into the call (a session, an event list); results come back as they
/// are.
pub struct Blocking<S> {
    /// The blocking store, shared with the blocking-pool threads running its calls.
    inner: Arc<S>,
    /// Computed once at open: what the store is and keeps.
    info: StoreInfo,
}

impl<S: Store> Blocking<S> {
    /// Wraps `inner`, which describes itself as `info`.
    pub fn new(inner: Arc<S>, info: StoreInfo) -> Self {
        Self { inner, info }
    }

    /// The blocking store itself (for the synchronous callers of the transition, and for
    /// backend-specific operations such as sled's `rekey`).
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Runs `f` on the blocking pool with the store.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        join(tokio::task::spawn_blocking(move || f(&inner)).await)
    }
}

/// The result of a blocking store call: a panic in it is resumed here (a bug, not a store
/// error); a call the runtime dropped while shutting down is [`StoreError::Interrupted`].
pub(super) fn join<T>(
    joined: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Result<T, StoreError> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::Interrupted),
    }
}

impl<S> std::fmt::Debug for Blocking<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: Store> AsyncStore for Blocking<S> {
    fn info(&self) -> StoreInfo {
        self.info.clone()
    }

    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let s = s.clone();
        self.run(move |st| st.put_session(&s)).await
    }

    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        let sessions = sessions.to_vec();
        self.run(move |st| st.update_sessions(&sessions)).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let id = id.to_string();
        self.run(move |st| st.get_session(&id)).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |st| st.delete_session(&id)).await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.run(|st| st.list_sessions()).await
    }

    async fn put_event(&self, e: &Event) -> Result<bool, StoreError> {
        let e = e.clone();
        self.run(move |st| st.put_event(&e)).await
    }

    async fn put_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        let events = events.to_vec();
        self.run(move |st| st.put_events(&events)).await
    }

    async fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let target = target.map(str::to_string);
        self.run(move |st| st.list_events(target.as_deref())).await
    }

    async fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError> {
        let (target, id) = (target.to_string(), id.to_string());
        self.run(move |st| st.delete_event(&target, &id)).await
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let e = e.clone();
        self.run(move |st| st.append_audit(&e)).await
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(move |st| st.recent_audit(limit)).await
    }

    async fn trim_audit(&self, keep: usize) -> Result<usize, StoreError> {
        self.run(move |st| st.trim_audit(keep)).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.run(|st| st.flush()).await
    }
}
