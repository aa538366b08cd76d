//! The store, in two concerns:
//!
//! - **Records**: durable sessions, the event list and the audit trail. [`Store`]
//!   (`records.rs`) is the async contract every backend implements; [`SledStore`] keeps them on
//!   disk (one sled tree per entity, JSON values, a schema version, private files; the daemon
//!   calls it through [`SledRecords`], on tokio's blocking pool) and [`MemoryStore`] in this
//!   process only. With a [`StoreKey`], sled encrypts session records at
//!   rest (`envelope.rs`); events and the audit trail hold no secrets and stay plaintext.
//! - **Coordination**: the pool's shared state, claims of warm work with fenced leases, scrapers'
//!   holds and usage counters ([`Coordination`], `coordination/`); [`LocalCoordination`] keeps
//!   them in process for the single-daemon backends, a shared backend implements them
//!   atomically for every daemon.
//!
//! A shared backend keeps both in one place for every daemon: Redis (`redis/`) or, with the
//! `mongodb` cargo feature (on by default), MongoDB (`mongo/`).
//!
//! [`open`] picks the backend named by `store.backend` and returns both ([`Backend`]).
//! tests/store_contract.rs runs one contract suite against every backend.

mod changes;
mod coordination;
mod envelope;
mod key;
mod location;
mod memory;
#[cfg(feature = "mongodb")]
mod mongo;
mod open;
mod records;
mod redis;
mod sled;

pub use self::changes::{Changes, DELETIONS_KEPT};
pub use self::coordination::{
    Claim, CoordCounters, CoordError, CoordResult, Coordination, Hold, Lapsed, LocalCoordination,
    MaybeClaim, MaybeHold, NodeInfo, Pending, Reaped, Token, Usage, Work,
};
pub use self::key::{KeyId, StoreKey, KEY_ENV};
pub use self::location::redact;
pub use self::memory::MemoryStore;
#[cfg(feature = "mongodb")]
pub use self::mongo::{MongoCoordination, MongoStore};
pub use self::open::{open, open_as, open_configured, open_node, Backend};
pub use self::records::{AtRest, Store, StoreInfo};
pub use self::redis::{RedisCoordination, RedisStore, AUDIT_CAP, CALL_TIMEOUT, GRACE_MS};
pub use self::sled::{SledRecords, SledStore};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::session::UnixMillis;

/// Version of the on-disk layout written by this build. A store written by a newer build is
/// refused ([`StoreError::NewerSchema`]); when the layout changes, this is bumped and older
/// stores are migrated on open.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store (sled is single-process).
    #[error(
        "store {} is in use by another process (is `warmer serve` running?)",
        path.display()
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// Creating the directory or setting its permissions failed.
    #[error("store I/O error")]
    Io(#[from] std::io::Error),
    /// sled itself failed.
    #[error("store database error")]
    Sled(#[from] ::sled::Error),
    /// A write made under a claim of work ([`Coordination::claim_item`]) was refused: the
    /// claim lapsed or was taken over, so another daemon does that work now.
    #[error("write refused: the claim on {what} was lost (another daemon took the work over)")]
    Fenced {
        /// The work item, `<target>/<key>`.
        what: String,
    },
    /// A stored record is not valid JSON of its type.
    #[error("store record {key} is unreadable")]
    Corrupt {
        /// Tree and key of the record, e.g. `sessions/<id>`.
        key: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A record could not be encoded (not expected with the current types).
    #[error("store record {key} could not be encoded")]
    Encode {
        /// Tree and key of the record.
        key: String,
        /// Why it could not be encoded.
        source: serde_json::Error,
    },
    /// The store (or one record) is encrypted and no key was given.
    #[error(
        "{what} is encrypted; set WARMER_KEY or store.key_file (see README: Encryption at rest)"
    )]
    KeyRequired {
        /// `store <path>` or `store record sessions/<id>`.
        what: String,
    },
    /// The key given is not the one the store (or one record) was written with.
    #[error(
        "{what}: the key does not match the one the store was written with \
         (store key id {stored}, given key id {given})"
    )]
    KeyMismatch {
        /// `store <path>` or `store record sessions/<id>`.
        what: String,
        /// [`KeyId`] the store or record was written with.
        stored: String,
        /// [`KeyId`] of the key given.
        given: String,
    },
    /// A key could not be loaded: the file is missing, unreadable or readable by others, or the
    /// text is not a 32-byte key. Never contains the key.
    #[error("{origin}: {message}")]
    KeyInvalid {
        /// Where the key came from: `WARMER_KEY`, `store.key_file <path>`, `--new-key-file <path>`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// An encrypted record failed authentication under the right key: it was altered or damaged.
    #[error("store record {key} failed authentication: it was altered or damaged")]
    Tampered {
        /// Tree and key of the record.
        key: String,
    },
    /// A network store (Redis) refused a call, failed it, or did not answer within its
    /// timeout. The store may be down or unreachable; calls work again once it is back.
    /// Never contains credentials: `location` is the URL without them, and `reason` has any
    /// password scrubbed.
    #[error("store {location} is unavailable ({call}): {reason}")]
    Unavailable {
        /// The store's URL without credentials, and its prefix.
        location: String,
        /// Which call failed (`get_session`, `claim`, `open`, ...).
        call: &'static str,
        /// What happened: the client's error, or `no answer within 2s`.
        reason: String,
    },
    /// The configured backend cannot be used this way (yet), e.g. a command that only knows
    /// how to work on a local sled store.
    #[error("{what}")]
    NotSupported {
        /// What cannot be done, and what to do instead.
        what: String,
    },
    /// A blocking store call was dropped because the runtime is shutting down.
    #[error("store call interrupted: the runtime is shutting down")]
    Interrupted,
    /// The store was written by a newer build of warmer.
    #[error(
        "store schema version {found} is newer than this build supports ({supported}); \
         upgrade warmer or point it at another store"
    )]
    NewerSchema {
        /// Version found on disk.
        found: u32,
        /// [`SCHEMA_VERSION`] of this build.
        supported: u32,
    },
}

/// An event page of a target that sessions can be warmed on (the user-filled "event database").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Name of the configured target.
    pub target: String,
    /// Event id, substituted into the target's `event_url`.
    pub id: String,
    /// An explicit URL, overriding the target's `event_url` template.
    #[serde(default)]
    pub url: Option<String>,
    /// When it was added.
    #[serde(default)]
    pub added_at: UnixMillis,
}

/// One line of the audit trail: what happened to which session, and why.
///
/// Never holds secrets: no cookie values, credentials, tokens or proxy passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened.
    pub at: UnixMillis,
    /// Session concerned, if any.
    #[serde(default)]
    pub session: Option<String>,
    /// Target concerned, if any.
    #[serde(default)]
    pub target: Option<String>,
    /// What happened, a short stable word such as `warmed`, `retired`, `refreshed`.
    pub action: String,
    /// Free text for operators.
    #[serde(default)]
    pub detail: String,
}
