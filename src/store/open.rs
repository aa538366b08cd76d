//! [`open`]: the backend named by `store.backend`, as its two concerns ([`Backend`]): records
//! ([`AsyncStore`]) and pool coordination ([`Coordination`]). sled and memory pair their
//! records with [`LocalCoordination`]; a shared backend (Redis, MongoDB) will return its own
//! coordination over the same connection.

use std::sync::Arc;

use super::coordination::{Coordination, LocalCoordination};
use super::key::StoreKey;
use super::memory::MemoryStore;
use super::records::{join, AsyncStore, AtRest, Blocking, StoreInfo};
use super::sled::SledStore;
use super::{Store, StoreError};
use crate::config::{StoreBackend, StoreConfig};

/// An opened store backend: its records and its coordination.
#[derive(Clone)]
pub struct Backend {
    /// Sessions, events and the audit trail.
    pub records: Arc<dyn AsyncStore>,
    /// Claims of warm work, holds and usage counters; its commits write to `records`.
    pub coordination: Arc<dyn Coordination>,
}

impl Backend {
    /// What the records backend is and keeps at rest.
    pub fn info(&self) -> StoreInfo {
        self.records.info()
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("info", &self.info())
            .field("holder", &self.coordination.holder())
            .finish()
    }
}

/// Opens the backend `config.store.backend` names, encrypting session records with `key` where
/// records are at rest. With `memory` the key is not used (nothing is at rest).
///
/// # Errors
/// As [`SledStore::open_with`] for sled ([`StoreError::Locked`], [`StoreError::KeyRequired`],
/// [`StoreError::KeyMismatch`], ...); never for memory.
pub async fn open(config: &StoreConfig, key: Option<StoreKey>) -> Result<Backend, StoreError> {
    let records: Arc<dyn AsyncStore> = match open_records(config, key).await? {
        Opened::Sled(store, info) => Arc::new(Blocking::new(store, info)),
        Opened::Memory(store) => store,
    };
    let coordination = Arc::new(LocalCoordination::new(records.clone()));
    Ok(Backend {
        records,
        coordination,
    })
}

/// [`open`] with the configured key: `WARMER_KEY`, else `store.key_file`, else none; no key is
/// loaded for a backend that keeps nothing at rest (memory).
///
/// # Errors
/// As [`StoreKey::from_env_or_file`] and [`open`].
pub async fn open_configured(config: &StoreConfig) -> Result<Backend, StoreError> {
    open(config, configured_key(config)?).await
}

/// The configured key of a backend that keeps records at rest.
fn configured_key(config: &StoreConfig) -> Result<Option<StoreKey>, StoreError> {
    match config.backend {
        StoreBackend::Sled => StoreKey::from_env_or_file(config),
        StoreBackend::Memory => Ok(None),
    }
}

/// The configured backend as the synchronous [`Store`] the pool still calls, with what it is.
/// Transitional: it goes away when the pool is async.
#[derive(Clone)]
pub struct SyncBackend {
    /// The records, synchronously.
    pub store: Arc<dyn Store>,
    /// What the store is and keeps at rest (log it with [`StoreInfo::log_at_start`]).
    pub info: StoreInfo,
}

/// [`open_configured`] for the synchronous callers of the transition (the daemon's pool).
///
/// # Errors
/// As [`open_configured`].
pub async fn open_for_sync_callers(config: &StoreConfig) -> Result<SyncBackend, StoreError> {
    Ok(match open_records(config, configured_key(config)?).await? {
        Opened::Sled(store, info) => SyncBackend { store, info },
        Opened::Memory(store) => SyncBackend {
            store,
            info: MemoryStore::describe(),
        },
    })
}

/// A record store as opened, before it is wrapped for its callers.
enum Opened {
    /// sled, opened on the blocking pool, and what it keeps.
    Sled(Arc<SledStore>, StoreInfo),
    /// A new, empty memory store.
    Memory(Arc<MemoryStore>),
}

/// Opens the configured record store.
async fn open_records(config: &StoreConfig, key: Option<StoreKey>) -> Result<Opened, StoreError> {
    match config.backend {
        StoreBackend::Sled => {
            let path = config.path.clone();
            let store =
                join(tokio::task::spawn_blocking(move || SledStore::open_with(&path, key)).await)?;
            let info = sled_info(&store);
            Ok(Opened::Sled(Arc::new(store), info))
        }
        StoreBackend::Memory => {
            drop(key);
            Ok(Opened::Memory(Arc::new(MemoryStore::new())))
        }
    }
}

/// What an opened sled store keeps at rest.
fn sled_info(store: &SledStore) -> StoreInfo {
    StoreInfo {
        backend: StoreBackend::Sled,
        location: store.path().display().to_string(),
        at_rest: match store.key_id() {
            Some(id) => AtRest::Encrypted(id),
            None => AtRest::Plaintext,
        },
    }
}
