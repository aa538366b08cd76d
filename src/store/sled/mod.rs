//! [`SledStore`]: records on sled — one tree per entity, JSON values, a schema version in
//! `meta`, the directory 0700 and every file in it 0600. With a key, session values are
//! envelopes (see `envelope.rs`) and `meta` records the key's id; `rekey` re-encrypts them.
//!
//! [`SledStore`]'s methods block (the CLI calls them as they are); [`SledRecords`] is the
//! async [`Store`](super::Store) over it that the daemon uses, each call on tokio's blocking pool.

mod records;

pub use records::SledRecords;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::envelope::{self, Sealer};
use super::key::{KeyId, StoreKey};
use super::{AuditEntry, Event, StoreError, SCHEMA_VERSION};
use crate::config::StoreConfig;
use crate::session::Session;

/// Mode of the store directory and every directory under it.
const DIR_MODE: u32 = 0o700;
/// Mode of every file under the store directory.
const FILE_MODE: u32 = 0o600;
/// Key of the schema version in the `meta` tree.
const SCHEMA_KEY: &[u8] = b"schema_version";
/// Key of the [`EncryptionMeta`] in the `meta` tree; absent while the store is unencrypted.
const ENCRYPTION_KEY: &[u8] = b"encryption";
/// Name of the sessions tree, also bound into every envelope.
const SESSIONS: &str = "sessions";
/// The cipher named in [`EncryptionMeta`].
const CIPHER: &str = "chacha20poly1305";
/// Separates target and id in `events` keys. Names never contain NUL; `list_events` still
/// re-checks the decoded target, so a name that did could not leak into another's list.
const EVENT_KEY_SEP: u8 = 0;
/// How long `open` keeps retrying a held lock before reporting [`StoreError::Locked`].
///
/// sled 0.34 releases its lock lazily: background threads may hold the database file for a
/// moment after the last handle is dropped (spacejam/sled#1234, #1289), so an open right
/// after a close in the same process can fail spuriously. A real holder (a running daemon)
/// keeps the lock far longer than this.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// The sled-backed store. One process at a time may open a store directory.
pub struct SledStore {
    /// The store directory, for messages and permission upkeep.
    path: PathBuf,
    /// The database; trees below are views into it.
    db: sled::Db,
    /// Sessions by id.
    sessions: sled::Tree,
    /// Events by `target\0id`.
    events: sled::Tree,
    /// Audit entries by big-endian sequence number, so iteration is chronological.
    audit: sled::Tree,
    /// `schema_version`, `encryption` and future bookkeeping.
    meta: sled::Tree,
    /// Encrypts session values; `None` for an unencrypted store.
    sealer: Option<Sealer>,
}

/// `meta/encryption`: the store's session records are encrypted, and under which key.
/// Recorded so that a store opened without its key (or with another) fails at open.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct EncryptionMeta {
    /// Always [`CIPHER`] for now.
    cipher: String,
    /// [`KeyId`] of the key, 16 hex characters.
    key_id: String,
}

impl SledStore {
    /// Opens (creating if needed) an unencrypted store at `path`: the directory is made 0700,
    /// the schema version written or checked, and every file under it made 0600.
    ///
    /// Blocking: when the store is locked it retries for up to a second before giving up
    /// (call it from `spawn_blocking` in async code).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process has the store open (this includes a second
    /// open of the same path in this process), [`StoreError::NewerSchema`] when a newer build
    /// wrote it, [`StoreError::KeyRequired`] when it is encrypted, [`StoreError::Io`] when the
    /// directory cannot be created or made private, and [`StoreError::Sled`] /
    /// [`StoreError::Corrupt`] when the database cannot be read.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, None)
    }

    /// Opens the store configured in `[store]`, with the key from `WARMER_KEY` or
    /// `store.key_file` when one is set ([`StoreKey::from_env_or_file`]).
    ///
    /// # Errors
    /// As [`StoreKey::from_env_or_file`] and [`SledStore::open_with`].
    pub fn open_configured(config: &StoreConfig) -> Result<Self, StoreError> {
        let key = StoreKey::from_env_or_file(config)?;
        Self::open_with(&config.path, key)
    }

    /// Opens (creating if needed) the store at `path` as [`SledStore::open`] does, encrypting
    /// session records with `key` when given.
    ///
    /// With a key, an unencrypted store becomes encrypted: `meta` records the key's id, new
    /// writes are encrypted, and plaintext records still load (each is encrypted when next
    /// written; [`SledStore::rekey`] does all at once). An encrypted store must be opened with
    /// its key.
    ///
    /// # Errors
    /// As [`SledStore::open`]; [`StoreError::KeyRequired`] when the store is encrypted and `key`
    /// is `None`, [`StoreError::KeyMismatch`] when `key` is not the store's key.
    pub fn open_with(path: &Path, key: Option<StoreKey>) -> Result<Self, StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
            .map_err(|e| io_at(path, e))?;
        // Also when it already existed, or the umask narrowed the mode above.
        set_mode(path, DIR_MODE)?;

        let db = open_db(path)?;
        let store = Self {
            path: path.to_path_buf(),
            sessions: db.open_tree("sessions")?,
            events: db.open_tree("events")?,
            audit: db.open_tree("audit")?,
            meta: db.open_tree("meta")?,
            sealer: key.as_ref().map(Sealer::new),
            db,
        };
        drop(key);
        store.check_schema()?;
        store.check_encryption()?;
        store.db.flush()?;
        make_private(&store.path)?;
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether session records are encrypted (the store was opened with its key).
    pub fn is_encrypted(&self) -> bool {
        self.sealer.is_some()
    }

    /// Id of the key session records are encrypted with, if any.
    pub fn key_id(&self) -> Option<KeyId> {
        self.sealer.as_ref().map(Sealer::key_id)
    }

    /// Re-encrypts every session record under `new` (or, with `None`, decrypts them all), in
    /// one sled transaction with the `meta` record, then flushes; from then on this store uses
    /// `new`. Returns how many session records were rewritten. Plaintext records of a store
    /// being encrypted are encrypted too; `new` may be the current key (to finish a migration).
    ///
    /// Records are decrypted with the key the store was opened with; nothing is written when
    /// any of them cannot be. sled keeps overwritten values in its files until it reuses their
    /// space, so the old bytes may linger on disk for a while (see README: Encryption at rest).
    ///
    /// # Errors
    /// [`StoreError::KeyRequired`], [`StoreError::KeyMismatch`] or [`StoreError::Tampered`] when
    /// a record cannot be decrypted, [`StoreError::Sled`] when writing or flushing fails.
    pub fn rekey(&mut self, new: Option<StoreKey>) -> Result<usize, StoreError> {
        use sled::transaction::TransactionError;
        use sled::Transactional as _;

        let sealer = new.as_ref().map(Sealer::new);
        drop(new);
        let mut rewritten: Vec<(sled::IVec, Vec<u8>)> = Vec::new();
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            let plain = self.open_value(&k, &v)?;
            let value = match &sealer {
                Some(s) => s.seal(SESSIONS, &k, &plain)?,
                None => plain.into_owned(),
            };
            rewritten.push((k, value));
        }
        let meta = sealer
            .as_ref()
            .map(|s| encode("meta/encryption", &EncryptionMeta::of(s.key_id())))
            .transpose()?;
        (&self.sessions, &self.meta)
            .transaction(|(sessions, m)| {
                for (k, v) in &rewritten {
                    sessions.insert(k, v.as_slice())?;
                }
                match &meta {
                    Some(value) => m.insert(ENCRYPTION_KEY, value.as_slice())?,
                    None => m.remove(ENCRYPTION_KEY)?,
                };
                Ok(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                // The closure never aborts.
                TransactionError::Abort(()) => StoreError::Sled(sled::Error::ReportableBug(
                    "rekey transaction aborted".into(),
                )),
            })?;
        self.flush_private()?;
        self.sealer = sealer;
        Ok(rewritten.len())
    }

    /// Checks the key against `meta/encryption`: an encrypted store needs its key; a key given
    /// to an unencrypted store turns encryption on. Warns about plaintext session records left
    /// in a store opened with a key.
    fn check_encryption(&self) -> Result<(), StoreError> {
        let what = || format!("store {}", self.path.display());
        let recorded: Option<EncryptionMeta> = self
            .meta
            .get(ENCRYPTION_KEY)?
            .map(|raw| decode("meta/encryption", &raw))
            .transpose()?;
        let Some(sealer) = &self.sealer else {
            return match recorded {
                Some(_) => Err(StoreError::KeyRequired { what: what() }),
                None => Ok(()),
            };
        };
        match recorded {
            Some(m) if m.key_id != sealer.key_id().to_string() => {
                return Err(StoreError::KeyMismatch {
                    what: what(),
                    stored: m.key_id,
                    given: sealer.key_id().to_string(),
                });
            }
            Some(_) => {}
            None => {
                let value = encode("meta/encryption", &EncryptionMeta::of(sealer.key_id()))?;
                self.meta.insert(ENCRYPTION_KEY, value)?;
                tracing::info!(
                    store = %self.path.display(),
                    key_id = %sealer.key_id(),
                    "store encryption turned on: session records are encrypted from now on"
                );
            }
        }
        let mut plaintext = 0usize;
        for v in self.sessions.iter().values() {
            plaintext += usize::from(!envelope::is_envelope(&v?));
        }
        if plaintext > 0 {
            tracing::warn!(
                store = %self.path.display(),
                plaintext,
                "session records still unencrypted; each is encrypted when next written, or run \
                 `warmer store rekey --new-key-file` with the current key to encrypt all now"
            );
        }
        Ok(())
    }

    /// The plaintext JSON of a stored session value.
    fn open_value<'a>(
        &self,
        key: &[u8],
        raw: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
        envelope::open(
            self.sealer.as_ref(),
            SESSIONS,
            key,
            &session_key_name(key),
            raw,
        )
    }

    /// Decodes a stored session value.
    fn decode_session(&self, key: &[u8], raw: &[u8]) -> Result<Session, StoreError> {
        decode(&session_key_name(key), &self.open_value(key, raw)?)
    }

    /// Writes the schema version into a new store; refuses a store from a newer build.
    fn check_schema(&self) -> Result<(), StoreError> {
        match self.meta.get(SCHEMA_KEY)? {
            None => {
                self.meta
                    .insert(SCHEMA_KEY, encode("meta/schema_version", &SCHEMA_VERSION)?)?;
                Ok(())
            }
            Some(raw) => {
                let found: u32 = decode("meta/schema_version", &raw)?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // found < SCHEMA_VERSION: migrations go here when the layout changes.
                Ok(())
            }
        }
    }

    /// Inserts an event unless its key exists; `true` when inserted. Does not flush.
    fn insert_event(&self, e: &Event) -> Result<bool, StoreError> {
        let key = event_key(&e.target, &e.id);
        let value = encode(&event_key_name(&key), e)?;
        Ok(self
            .events
            .compare_and_swap(key, None::<&[u8]>, Some(value))?
            .is_ok())
    }

    /// Flushes to disk, then re-applies the modes to files sled may have created since.
    /// Writes a session record, not flushed yet.
    fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        let key = s.id.as_bytes();
        let json = encode(&session_key_name(key), s)?;
        let value = match &self.sealer {
            Some(sealer) => sealer.seal(SESSIONS, key, &json)?,
            None => json,
        };
        self.sessions.insert(key, value)?;
        Ok(())
    }

    fn flush_private(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        make_private(&self.path)
    }
}

// Not derived: sled's `Debug` dumps tree contents, which hold cookie values.
impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The record operations, blocking (disk I/O, an fsync on every session write): the CLI's
/// commands call them directly; the daemon calls them through [`SledRecords`], on tokio's
/// blocking pool.
impl SledStore {
    /// Inserts or replaces a session, flushed before returning.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    pub fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        self.insert_session(s)?;
        self.flush_private()
    }

    /// Rewrites the sessions that are still stored (one deleted meanwhile is not brought back),
    /// with one flush for all; returns how many were written.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    pub fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        let mut n = 0;
        for s in sessions {
            if self.sessions.contains_key(s.id.as_bytes())? {
                self.insert_session(s)?;
                n += 1;
            }
        }
        if n > 0 {
            self.flush_private()?;
        }
        Ok(n)
    }

    /// The session with this id, if stored.
    ///
    /// # Errors
    /// When reading fails or the record is unreadable ([`StoreError::Corrupt`]), or cannot be
    /// decrypted ([`StoreError::KeyMismatch`], [`StoreError::Tampered`]).
    pub fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.sessions
            .get(id.as_bytes())?
            .map(|raw| self.decode_session(id.as_bytes(), &raw))
            .transpose()
    }

    /// Deletes a session, flushed before returning; `true` when it existed.
    ///
    /// # Errors
    /// When writing or flushing fails.
    pub fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.sessions.remove(id.as_bytes())?.is_some();
        self.flush_private()?;
        Ok(existed)
    }

    /// All stored sessions, in id order.
    ///
    /// # Errors
    /// When reading fails or any record is unreadable.
    pub fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.sessions
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                self.decode_session(&k, &v)
            })
            .collect()
    }

    /// Adds an event unless one with the same target and id exists (the first one is kept);
    /// `true` when newly added. Flushed before returning.
    ///
    /// # Errors
    /// When encoding, writing or flushing fails.
    pub fn put_event(&self, e: &Event) -> Result<bool, StoreError> {
        let added = self.insert_event(e)?;
        if added {
            self.flush_private()?;
        }
        Ok(added)
    }

    /// Adds many events with one flush at the end (for imports); returns how many were new.
    ///
    /// # Errors
    /// As [`SledStore::put_event`]; events before the failing one may have been added.
    pub fn put_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        let mut added = 0;
        for e in events {
            added += usize::from(self.insert_event(e)?);
        }
        if added > 0 {
            self.flush_private()?;
        }
        Ok(added)
    }

    /// Events of one target (or all), ordered by target then id.
    ///
    /// # Errors
    /// When reading fails or a record is unreadable.
    pub fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let iter = match target {
            Some(t) => self.events.scan_prefix(event_prefix(t)),
            None => self.events.iter(),
        };
        let mut out = Vec::new();
        for kv in iter {
            let (k, v) = kv?;
            let e: Event = decode(&event_key_name(&k), &v)?;
            // A prefix scan for "a" must not return target "a\0b"'s events.
            if target.is_none_or(|t| e.target == t) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Deletes an event, flushed before returning; `true` when it existed.
    ///
    /// # Errors
    /// When writing or flushing fails.
    pub fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError> {
        let existed = self.events.remove(event_key(target, id))?.is_some();
        if existed {
            self.flush_private()?;
        }
        Ok(existed)
    }

    /// Appends to the audit trail. Not flushed on its own (sled flushes periodically, and
    /// [`SledStore::flush`] and dropping the store do), so a crash may lose the last fraction
    /// of a second of audit.
    ///
    /// # Errors
    /// When encoding or writing fails.
    pub fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        // Monotonic across restarts (sled persists the counter ahead of use).
        let seq = self.db.generate_id()?;
        self.audit
            .insert(seq.to_be_bytes(), encode(&format!("audit/{seq}"), e)?)?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    ///
    /// # Errors
    /// When reading fails or a record is unreadable.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                decode(&audit_key_name(&k), &v)
            })
            .collect()
    }

    /// Removes all but the newest `keep` audit entries; returns how many were removed.
    ///
    /// # Errors
    /// When writing fails.
    pub fn trim_audit(&self, keep: usize) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for k in self.audit.iter().keys().rev().skip(keep) {
            batch.remove(k?);
            removed += 1;
        }
        if removed > 0 {
            self.audit.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Flushes everything written so far to disk.
    ///
    /// # Errors
    /// When flushing fails.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_private()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: audit entries are not flushed one by one.
        let _ = self.db.flush();
    }
}

impl EncryptionMeta {
    fn of(key_id: KeyId) -> Self {
        Self {
            cipher: CIPHER.to_string(),
            key_id: key_id.to_string(),
        }
    }
}

/// `sessions/<id>`, for messages.
fn session_key_name(key: &[u8]) -> String {
    format!("{SESSIONS}/{}", String::from_utf8_lossy(key))
}

/// `target\0id`.
fn event_key(target: &str, id: &str) -> Vec<u8> {
    let mut k = event_prefix(target);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `target\0`: the prefix of every key of that target.
fn event_prefix(target: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(target.len() + 1);
    k.extend_from_slice(target.as_bytes());
    k.push(EVENT_KEY_SEP);
    k
}

/// `events/target/id`, for messages.
fn event_key_name(key: &[u8]) -> String {
    format!(
        "events/{}",
        String::from_utf8_lossy(key).replacen('\0', "/", 1)
    )
}

/// `audit/<seq>`, for messages.
fn audit_key_name(key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(b) => format!("audit/{}", u64::from_be_bytes(b)),
        Err(_) => format!("audit/{key:?}"),
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        key: key.to_string(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

/// Opens the sled database, retrying a held lock for up to [`LOCK_WAIT`].
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(e) => match open_error(path, e) {
                StoreError::Locked { .. } if Instant::now() + pause < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                other => return Err(other),
            },
        }
    }
}

/// Maps sled's open error; its lock failure becomes [`StoreError::Locked`].
fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        // sled 0.34 reports a failed `try_lock_exclusive` on `<path>/db` only as this message
        // (src/config.rs, `try_lock`); there is no dedicated error kind to match.
        sled::Error::Io(ref io)
            if io.kind() == io::ErrorKind::Other
                && io.to_string().contains("could not acquire lock") =>
        {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        other => StoreError::Sled(other),
    }
}

/// An I/O error with the path it concerns in its message.
fn io_at(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Sets `path`'s permission bits to `mode` unless they already are.
fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    let meta = fs::metadata(path).map_err(|e| io_at(path, e))?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_at(path, e))?;
    }
    Ok(())
}

/// Makes `dir` and every directory under it 0700 and every file 0600. Entries that vanish
/// meanwhile (sled renames and removes snapshot files) are skipped; symlinks are left alone.
fn make_private(dir: &Path) -> Result<(), StoreError> {
    set_mode(dir, DIR_MODE)?;
    let entries = fs::read_dir(dir).map_err(|e| io_at(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_at(dir, e))?;
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_at(&path, e)),
        };
        let result = if kind.is_dir() {
            make_private(&path)
        } else if kind.is_file() {
            set_mode(&path, FILE_MODE)
        } else {
            Ok(())
        };
        match result {
            Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}
