//! [`SledRecords`]: the async [`Store`] the daemon uses over a blocking [`SledStore`].

use std::sync::Arc;

use super::SledStore;
use crate::session::Session;
use crate::store::changes::{ChangeLog, Changes};
use crate::store::records::{join, AtRest, Store, StoreInfo};
use crate::store::{AuditEntry, Event, StoreError};

/// The async [`Store`] over a [`SledStore`]: every call runs the blocking method of the same
/// name on tokio's blocking pool, so disk I/O and fsync never stall the async workers.
/// Arguments are cloned into the call (a session, an event list).
#[derive(Clone)]
pub struct SledRecords {
    /// The store, shared with the blocking-pool threads running its calls.
    inner: Arc<SledStore>,
    /// Session changes per target since this wrapper was made, for [`Store::changes`] (the
    /// daemon writes only through it; sled is single-process).
    changes: Arc<ChangeLog>,
}

impl SledRecords {
    /// Wraps an opened store.
    pub fn new(inner: Arc<SledStore>) -> Self {
        Self {
            inner,
            changes: Arc::default(),
        }
    }

    /// The blocking store itself (for sled-only operations).
    pub fn inner(&self) -> &Arc<SledStore> {
        &self.inner
    }

    /// Runs `f` on the blocking pool with the store.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        join(tokio::task::spawn_blocking(move || f(&inner)).await)
    }
}

impl std::fmt::Debug for SledRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SledRecords").field(&self.inner).finish()
    }
}

#[async_trait::async_trait]
impl Store for SledRecords {
    /// Sled, at the store's directory; encrypted at rest when it was opened with a key.
    fn info(&self) -> StoreInfo {
        StoreInfo {
            backend: crate::config::StoreBackend::Sled,
            location: self.inner.path().display().to_string(),
            at_rest: match self.inner.key_id() {
                Some(id) => AtRest::Encrypted(id),
                None => AtRest::Plaintext,
            },
        }
    }

    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let log = self.changes.clone();
        let s = s.clone();
        // Logged on the blocking thread right after the write, so revisions follow the order
        // of the writes. (A session is never moved to another target by the daemon; a record
        // rewritten under another target shows up there, and as deleted only on a reset.)
        self.run(move |st| {
            st.put_session(&s)?;
            log.written(&s.target, &s.id);
            Ok(())
        })
        .await
    }

    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        let log = self.changes.clone();
        let sessions = sessions.to_vec();
        self.run(move |st| {
            let n = st.update_sessions(&sessions)?;
            // One deleted meanwhile was skipped; logged anyway, `changes` reports it deleted.
            for s in &sessions {
                log.written(&s.target, &s.id);
            }
            Ok(n)
        })
        .await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let id = id.to_string();
        self.run(move |st| st.get_session(&id)).await
    }

    /// Reads the record first so the change log can name its target; the read and the delete
    /// are not atomic, which is fine as the daemon is sled's only writer.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let log = self.changes.clone();
        let id = id.to_string();
        self.run(move |st| {
            // The record names its target; an unreadable one makes every target list again.
            let target = st.get_session(&id).ok().flatten().map(|s| s.target);
            let existed = st.delete_session(&id)?;
            match (existed, target) {
                (false, _) => {}
                (true, Some(t)) => log.deleted(&t, &id),
                (true, None) => log.deleted_somewhere(),
            }
            Ok(existed)
        })
        .await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.run(|st| st.list_sessions()).await
    }

    /// Served from the in-memory [`ChangeLog`]: `None` ids (the log was trimmed past `since`,
    /// or a delete's target was unknown) answer a reset, so the caller lists everything again.
    /// Otherwise each changed id is re-read: a record gone, or now under another target, is
    /// reported deleted for this one.
    async fn changes(&self, target: &str, since: u64) -> Result<Changes, StoreError> {
        let (rev, ids) = self.changes.since(target, since);
        let Some(ids) = ids else {
            return Ok(Changes::reset_to(rev));
        };
        if ids.is_empty() {
            return Ok(Changes {
                rev,
                ..Changes::default()
            });
        }
        let target = target.to_string();
        self.run(move |st| {
            let mut out = Changes {
                rev,
                ..Changes::default()
            };
            for (id, deleted) in ids {
                let now = if deleted { None } else { st.get_session(&id)? };
                match now.filter(|s| s.target == target) {
                    Some(s) => out.written.push(s),
                    None => out.deleted.push(id),
                }
            }
            Ok(out)
        })
        .await
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
