//! [`MemoryStore`]: the `memory` backend (seed 002's "Memory — development/testing"). Records
//! live in this process only: nothing is written anywhere, so a restart starts empty, and the
//! daemon says so at start ([`super::StoreInfo::log_at_start`]).
//!
//! Same semantics as sled (tests/store_contract.rs runs both): sessions and events listed in
//! key order (byte order of the id, then of target and id), `put_event` keeps the first event of
//! a target and id, `update_sessions` skips sessions deleted meanwhile, the audit trail is
//! newest-first and trimmed to the newest.
//!
//! Encryption at rest does not apply: nothing is at rest. `store::open_configured` does not
//! load a key for it (`WARMER_KEY` and `store.key_file` are unused, as the config says), and a
//! key passed to `store::open` is dropped unused; [`super::StoreInfo`] reports
//! [`super::AtRest::NotPersisted`]. Session records are kept as plain values, like the pool's
//! own copies in memory.

use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::changes::{ChangeLog, Changes};
use super::records::{AtRest, Store, StoreInfo};
use super::{AuditEntry, Event, StoreError};
use crate::config::StoreBackend;
use crate::session::Session;

/// The in-memory store. Each entity has its own lock, held only for map operations (never
/// across an await), so calls never wait on I/O.
#[derive(Default)]
pub struct MemoryStore {
    /// Sessions by id; `BTreeMap` so listing is in id order, as sled's.
    sessions: Mutex<BTreeMap<String, Session>>,
    /// Events by (target, id); tuple order equals sled's `target\0id` byte order.
    events: Mutex<BTreeMap<(String, String), Event>>,
    /// The audit trail, oldest first.
    audit: Mutex<VecDeque<AuditEntry>>,
    /// Session changes per target, for [`Store::changes`].
    changes: ChangeLog,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What this backend says about itself: `memory`, nothing at rest.
    pub fn describe() -> StoreInfo {
        StoreInfo {
            backend: StoreBackend::Memory,
            location: "memory".to_string(),
            at_rest: AtRest::NotPersisted,
        }
    }
}

/// Locks `m`; a panic while it was held leaves plain map data, still consistent per entry.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// Not derived: sessions hold cookie values.
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &lock(&self.sessions).len())
            .field("events", &lock(&self.events).len())
            .field("audit", &lock(&self.audit).len())
            .finish()
    }
}

/// Every call only touches maps in memory, inline (no I/O, so no blocking pool).
#[async_trait]
impl Store for MemoryStore {
    fn info(&self) -> StoreInfo {
        Self::describe()
    }

    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let mut stored = lock(&self.sessions);
        let old = stored.insert(s.id.clone(), s.clone());
        // Logged under the lock, so revisions follow the order of the writes.
        if let Some(old) = old.filter(|old| old.target != s.target) {
            self.changes.deleted(&old.target, &old.id);
        }
        self.changes.written(&s.target, &s.id);
        Ok(())
    }

    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        let mut stored = lock(&self.sessions);
        let mut n = 0;
        for s in sessions {
            if let Some(slot) = stored.get_mut(&s.id) {
                if slot.target != s.target {
                    self.changes.deleted(&slot.target, &s.id);
                }
                slot.clone_from(s);
                self.changes.written(&s.target, &s.id);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(lock(&self.sessions).get(id).cloned())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let mut stored = lock(&self.sessions);
        let Some(old) = stored.remove(id) else {
            return Ok(false);
        };
        self.changes.deleted(&old.target, id);
        Ok(true)
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        Ok(lock(&self.sessions).values().cloned().collect())
    }

    async fn changes(&self, target: &str, since: u64) -> Result<Changes, StoreError> {
        let stored = lock(&self.sessions);
        let (rev, ids) = self.changes.since(target, since);
        let Some(ids) = ids else {
            return Ok(Changes::reset_to(rev));
        };
        let mut out = Changes {
            rev,
            ..Changes::default()
        };
        for (id, deleted) in ids {
            match stored.get(&id).filter(|s| !deleted && s.target == target) {
                Some(s) => out.written.push(s.clone()),
                None => out.deleted.push(id),
            }
        }
        Ok(out)
    }

    async fn put_event(&self, e: &Event) -> Result<bool, StoreError> {
        Ok(insert_event(&mut lock(&self.events), e))
    }

    async fn put_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        let mut stored = lock(&self.events);
        Ok(events
            .iter()
            .filter(|e| insert_event(&mut stored, e))
            .count())
    }

    async fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let stored = lock(&self.events);
        Ok(match target {
            Some(t) => stored
                .range((t.to_string(), String::new())..)
                .take_while(|((target, _), _)| target == t)
                .map(|(_, e)| e.clone())
                .collect(),
            None => stored.values().cloned().collect(),
        })
    }

    async fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError> {
        let key = (target.to_string(), id.to_string());
        Ok(lock(&self.events).remove(&key).is_some())
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        lock(&self.audit).push_back(e.clone());
        Ok(())
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(lock(&self.audit)
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn trim_audit(&self, keep: usize) -> Result<usize, StoreError> {
        let mut audit = lock(&self.audit);
        let removed = audit.len().saturating_sub(keep);
        audit.drain(..removed);
        Ok(removed)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Nothing is written anywhere.
        Ok(())
    }
}

/// Inserts `e` unless its target and id are taken; `true` when inserted.
fn insert_event(stored: &mut BTreeMap<(String, String), Event>, e: &Event) -> bool {
    use std::collections::btree_map::Entry;
    match stored.entry((e.target.clone(), e.id.clone())) {
        Entry::Vacant(slot) => {
            slot.insert(e.clone());
            true
        }
        Entry::Occupied(_) => false,
    }
}
