//! The configured store as the commands that read or change records open it (`sessions`,
//! `events`): sled on disk, or Redis shared with running daemons.
//!
//! sled is single-process, so while a daemon runs the commands get [`StoreError::Locked`] and
//! either ask the daemon (`sessions export`) or say to stop it. Redis is shared by design: the
//! commands open it directly, next to any number of running daemons, with the same key they
//! use (`WARMER_KEY` or `store.key_file`; another key is refused at open, naming both key ids).

use anyhow::{bail, Result};

use crate::config::{StoreBackend, StoreConfig};
use crate::store::{self, Backend, StoreError};

/// Opens the store `[store]` names, with the configured key. A memory store is refused: it
/// lives inside one daemon, and a command opening one would only see a new, empty store.
///
/// # Errors
/// [`StoreError::Locked`] (kept as the error's root, so callers can fall back to a running
/// daemon) and every other open error of [`store::open_configured`]; a memory backend.
pub(super) async fn open_configured(config: &StoreConfig) -> Result<Backend> {
    if config.backend == StoreBackend::Memory {
        bail!(
            "store.backend = \"memory\" keeps records inside the daemon only; there is no store \
             for this command to open (use the daemon's HTTP API, or store.backend = \"sled\" \
             or \"redis\")"
        );
    }
    Ok(store::open_configured(config).await?)
}

/// Whether `err` (from [`open_configured`]) says a running daemon holds a sled store.
pub(super) fn is_locked(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Locked { .. })
    )
}

/// Where `config`'s store is, for messages: the sled directory, or the Redis URL without
/// credentials or query, and its prefix. Never holds a password.
pub(super) fn location(config: &StoreConfig) -> String {
    match config.backend {
        StoreBackend::Sled => config.path.display().to_string(),
        StoreBackend::Memory => "memory".to_string(),
        StoreBackend::Redis | StoreBackend::Mongodb => match config.effective_url() {
            Some(url) => format!("{} (prefix {})", store::redact(url.expose()), config.prefix),
            None => format!(
                "{} (no store.url; prefix {})",
                config.backend.as_str(),
                config.prefix
            ),
        },
    }
}
