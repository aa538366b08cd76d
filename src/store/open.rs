//! [`open`]: the backend named by `store.backend`, as its two concerns ([`Backend`]): records
//! ([`Store`]) and pool coordination ([`Coordination`]). sled and memory pair their
//! records with [`LocalCoordination`]; a shared backend (Redis, MongoDB) returns its own
//! coordination over the same connection.

use std::sync::Arc;

use super::coordination::{Coordination, LocalCoordination};
use super::key::StoreKey;
use super::memory::MemoryStore;
use super::records::{join, Store, StoreInfo};
use super::sled::{SledRecords, SledStore};
use super::StoreError;
use crate::config::{ClusterConfig, StoreBackend, StoreConfig};

/// An opened store backend: its records and its coordination.
#[derive(Clone)]
pub struct Backend {
    /// Sessions, events and the audit trail.
    pub records: Arc<dyn Store>,
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
    open_as(config, key, &ClusterConfig::default().node_name()).await
}

/// [`open`] with `holder` as the node name the coordination's tokens carry (`cluster.node`).
///
/// # Errors
/// As [`open`]; for Redis as [`super::redis::open`] ([`StoreError::Unavailable`],
/// [`StoreError::KeyMismatch`] naming both key ids, ...).
pub async fn open_as(
    config: &StoreConfig,
    key: Option<StoreKey>,
    holder: &str,
) -> Result<Backend, StoreError> {
    if config.backend == StoreBackend::Redis {
        let (records, coordination) = super::redis::open(config, key, holder).await?;
        return Ok(Backend {
            records,
            coordination,
        });
    }
    if config.backend == StoreBackend::Mongodb {
        return open_mongodb(config, key, holder).await;
    }
    let records: Arc<dyn Store> = match open_records(config, key).await? {
        Opened::Sled(store) => Arc::new(SledRecords::new(store)),
        Opened::Memory(store) => store,
    };
    let coordination = Arc::new(LocalCoordination::with_holder(records.clone(), holder));
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

/// [`open_configured`] for a daemon: its coordination's tokens carry `cluster.node` (default
/// `hostname:pid`), so claims and holds say which daemon has them.
///
/// # Errors
/// As [`open_configured`].
pub async fn open_node(
    config: &StoreConfig,
    cluster: &ClusterConfig,
) -> Result<Backend, StoreError> {
    open_as(config, configured_key(config)?, &cluster.node_name()).await
}

/// The configured key of a backend that keeps records at rest.
fn configured_key(config: &StoreConfig) -> Result<Option<StoreKey>, StoreError> {
    match config.backend {
        StoreBackend::Sled | StoreBackend::Redis | StoreBackend::Mongodb => {
            StoreKey::from_env_or_file(config)
        }
        StoreBackend::Memory => Ok(None),
    }
}

/// A record store as opened, before it is wrapped for its callers.
enum Opened {
    /// sled, opened on the blocking pool.
    Sled(Arc<SledStore>),
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
            Ok(Opened::Sled(Arc::new(store)))
        }
        StoreBackend::Memory => {
            drop(key);
            Ok(Opened::Memory(Arc::new(MemoryStore::new())))
        }
        // `open_as` opens Redis and MongoDB itself (records and coordination over one
        // connection).
        StoreBackend::Redis | StoreBackend::Mongodb => Err(StoreError::NotSupported {
            what: format!(
                "a {} store is opened with its coordination (store::open)",
                config.backend.as_str()
            ),
        }),
    }
}

/// Opens the MongoDB backend (records and coordination over one client).
#[cfg(feature = "mongodb")]
async fn open_mongodb(
    config: &StoreConfig,
    key: Option<StoreKey>,
    holder: &str,
) -> Result<Backend, StoreError> {
    let (records, coordination) = super::mongo::open(config, key, holder).await?;
    Ok(Backend {
        records,
        coordination,
    })
}

/// Without the `mongodb` cargo feature: says how to get it.
#[cfg(not(feature = "mongodb"))]
async fn open_mongodb(
    _config: &StoreConfig,
    _key: Option<StoreKey>,
    _holder: &str,
) -> Result<Backend, StoreError> {
    Err(StoreError::NotSupported {
        what: "store.backend = \"mongodb\" needs a build with the `mongodb` cargo feature (on \
               by default; it was built with --no-default-features)"
            .into(),
    })
}
