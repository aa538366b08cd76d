//! [`Store`]: the async record-storage contract (sessions, events, audit) every backend
//! implements, and what a backend says about itself ([`StoreInfo`]).
//!
//! Record storage is one of the store's two concerns; the other, pool coordination (claims of
//! warm work, leases, usage counters), is [`super::Coordination`]. A shared backend such as
//! Redis implements both over one connection; sled and memory pair their records with the
//! in-process [`super::LocalCoordination`].

use async_trait::async_trait;
use std::sync::Arc;

use super::changes::Changes;
use super::key::KeyId;
use super::{AuditEntry, Event, StoreError};
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
/// The contract (tests/store_contract.rs runs it against every backend): a write that changes a session is durable before it returns `Ok` (for a
/// persistent backend); `put_event` keeps the first of two events with the same target and id;
/// lists come in key order; `update_sessions` never brings back a deleted session.
#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    /// What changed among `target`'s sessions after revision `since` (0: everything written
    /// since the store was opened or, for a shared backend, created): the sessions written,
    /// the ids deleted, and the revision to ask from next time. Every session write, rewrite
    /// and delete bumps its target's revision in the same atomic step, so a daemon keeping an
    /// index of the records polls this cheaply (nothing changed: one small round trip, no
    /// records read). See [`Changes`] for when it must list everything instead.
    ///
    /// # Errors
    /// As [`Store::get_session`] for the records it returns.
    async fn changes(&self, target: &str, since: u64) -> Result<Changes, StoreError>;

    /// Adds an event unless one with the same target and id exists (the first one is kept);
    /// `true` when newly added. Durable before returning.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    async fn put_event(&self, e: &Event) -> Result<bool, StoreError>;

    /// Adds many events, durable together at the end (for imports); returns how many were new.
    ///
    /// # Errors
    /// As [`Store::put_event`]; events before the failing one may have been added.
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

    /// Appends to the audit trail. Not made durable on its own (see [`Store::flush`]), so
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

    /// Whether the backend answers now, bounded by its call timeout: what `/readyz` asks. A
    /// backend inside this process (sled, memory) always does (the default); a network one
    /// makes one cheap round trip.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] saying where the store is (no credentials) and why it did
    /// not answer, e.g. `store redis://10.0.0.5:6379/0 (prefix sw, no password) is unavailable
    /// (ping): Connection refused (os error 111)`.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
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
