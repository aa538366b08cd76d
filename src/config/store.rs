//! `[store]`: where sessions are kept, and the key that encrypts them at rest.

use serde::Deserialize;
use std::path::PathBuf;

/// Where sessions, events and accounts are kept (`store.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// An embedded sled database at `store.path`: survives restarts and `kill -9`. The default.
    #[default]
    Sled,
    /// In memory only: nothing is persisted, everything is lost when the daemon stops (for
    /// development and tests; the daemon says so at start). `path` and `key_file` are unused.
    Memory,
}

impl StoreBackend {
    /// The name as written in the config (`sled`, `memory`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Sled => "sled",
            StoreBackend::Memory => "memory",
        }
    }
}

/// `[store]`: which backend keeps the records, and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Which backend: `"sled"` or `"memory"`. Default: `"sled"`.
    pub backend: StoreBackend,
    /// sled directory (used by the `sled` backend). Default: `data/warmer.sled`.
    pub path: PathBuf,
    /// File holding the 32-byte key that encrypts session records at rest (64 hex characters
    /// or base64; the file must be 0600 or 0400). `WARMER_KEY` overrides it. Relative to the
    /// working directory, like `path`. Default: none — records are stored unencrypted and the
    /// daemon warns at start.
    pub key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sled,
            path: PathBuf::from("data/warmer.sled"),
            key_file: None,
        }
    }
}
