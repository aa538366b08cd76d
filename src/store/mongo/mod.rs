//! The MongoDB backend (`store.backend = "mongodb"`, cargo feature `mongodb`, on by default):
//! records ([`MongoStore`]) and pool coordination ([`MongoCoordination`]) in one MongoDB
//! database, shared by every daemon with the same `store.url` and `store.prefix`, so N daemons
//! are one pool, as with Redis.
//!
//! - **Layout**: one collection per entity, named `<prefix>_<entity>` in the URL's database
//!   (default `warmer`); see `records.rs` and `coordination.rs`. Sessions are documents (`_id` = session id, `target`,
//!   `state`, `blob`, `rev`, `expiresAt`), events and the audit trail too.
//! - **Every call is bounded** by `store.timeout` (default 2 s); a call that fails
//!   or times out is [`StoreError::Unavailable`], never a hang.
//! - **Atomic without transactions**: every read-then-decide is one single-document
//!   `findOneAndUpdate`, conditional `updateOne`, `$inc` or insert on a unique `_id`, so the
//!   backend needs neither a replica set nor multi-document transactions.
//! - **The server's clock**: leases, holds and heartbeats are measured on the server's clock,
//!   sampled from `hello`'s `localTime` (every [`CLOCK_RESAMPLE`]), so daemons' clocks need not
//!   agree. `$$NOW` in an update pipeline would be exact, but the test stand-in (nx-27017)
//!   refuses pipeline updates; the sampled clock behaves the same on both.
//! - **Expiry**: `expiresAt` (a BSON date) carries a TTL index on sessions, tombstones, holds and
//!   heartbeats; MongoDB purges only about once a minute, so every read filters
//!   `expiresAt > now` as well.
//! - **Encryption at rest**: with a key, a session's `blob` is the same envelope sled and Redis
//!   write (ChaCha20-Poly1305, bound to `sessions/<id>`); `<prefix>_meta` records the key id
//!   the first time a daemon with a key opens the store, and a daemon with another key (or
//!   none) is refused at open.
//! - **Revisions** ([`Store::changes`]): one counter for the whole store; a writer leaves a
//!   marker (the revision it saw) before taking its revision and removes it after writing, and
//!   a reader answers only up to the oldest marker, so a slow writer's change is never skipped.
//! - **Secrets**: the URL is never logged or shown; messages use it without credentials or
//!   query, and any password is scrubbed from the driver's error text.
//! - **Durability** is MongoDB's: writes use the server's default write concern (journaled on
//!   a default `mongod`); run a replica set with `w: "majority"` to survive losing a node.

mod coordination;
mod leases;
mod records;

pub use self::coordination::MongoCoordination;
pub use self::records::MongoStore;

use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Collection, Database, IndexModel};
use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::envelope::{self, Sealer};
use super::key::StoreKey;
use super::location::Shown;
use super::records::StoreInfo;
use super::{StoreError, SCHEMA_VERSION};
use crate::config::{StoreBackend, StoreConfig, STORE_URL_ENV};

/// How often the server's clock is sampled again (one `hello`).
pub const CLOCK_RESAMPLE: Duration = Duration::from_secs(10);

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "warmer";

/// Every entity this backend keeps, each in collection `<prefix>_<entity>`.
const ENTITIES: [&str; 13] = [
    "meta", "sessions", "gone", "counters", "writing", "events", "audit", "work", "lanes", "holds",
    "items", "usage", "nodes",
];

/// The server's clock as seen from here: an offset sampled from `hello`'s `localTime`.
#[derive(Debug)]
struct Clock {
    /// Server time minus local time, in ms.
    offset_ms: AtomicI64,
    /// When the offset was last sampled.
    sampled: Mutex<Option<Instant>>,
}

/// Local wall-clock time in ms since the epoch.
fn local_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The database handle and what every call needs. Cheap to clone (shared by the records and
/// the coordination).
#[derive(Clone)]
pub(crate) struct Conn {
    /// The database (the driver's client pools and reconnects on its own).
    db: Database,
    /// Every collection of this store, by entity ([`ENTITIES`]).
    colls: Arc<HashMap<&'static str, Collection<Document>>>,
    /// Where the store is, for messages, and the passwords to scrub from them.
    shown: Shown,
    /// The bound of every call (`store.timeout`).
    timeout: Duration,
    /// The server's clock.
    clock: Arc<Clock>,
}

/// A driver result.
type Driver<T> = mongodb::error::Result<T>;

impl Conn {
    /// One collection of this store.
    ///
    /// # Panics
    /// For an entity not in [`ENTITIES`] (a bug here, not a store condition).
    fn coll(&self, entity: &str) -> &Collection<Document> {
        &self.colls[entity]
    }

    /// `fut` bounded by `store.timeout`; the driver's own result is left to the caller (which
    /// may expect an error such as a duplicate key). Timing out is [`StoreError::Unavailable`].
    async fn within<T>(
        &self,
        call: &'static str,
        fut: impl IntoFuture<Output = Driver<T>>,
    ) -> Result<Driver<T>, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r),
            Err(_) => Err(self.unavailable(
                call,
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            )),
        }
    }

    /// `fut` bounded by `store.timeout`, any error as [`StoreError::Unavailable`].
    async fn bounded<T>(
        &self,
        call: &'static str,
        fut: impl IntoFuture<Output = Driver<T>>,
    ) -> Result<T, StoreError> {
        self.within(call, fut)
            .await?
            .map_err(|e| self.failed(call, &e))
    }

    /// A driver error as [`StoreError::Unavailable`].
    fn failed(&self, call: &'static str, e: &mongodb::error::Error) -> StoreError {
        self.unavailable(call, e.to_string())
    }

    /// A [`StoreError::Unavailable`] with any password scrubbed from `reason`.
    fn unavailable(&self, call: &'static str, reason: String) -> StoreError {
        self.shown.unavailable(call, reason)
    }

    /// Now on the server's clock, in ms since the epoch (samples it when the last sample is
    /// older than [`CLOCK_RESAMPLE`]).
    async fn now(&self) -> Result<i64, StoreError> {
        let fresh = self
            .clock
            .sampled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < CLOCK_RESAMPLE);
        if !fresh {
            self.sample_clock().await?;
        }
        Ok(local_ms().saturating_add(self.clock.offset_ms.load(Ordering::Relaxed)))
    }

    /// Samples the server's clock: `hello`'s `localTime` against the midpoint of the round trip.
    async fn sample_clock(&self) -> Result<(), StoreError> {
        let before = local_ms();
        let reply = self
            .bounded("clock", self.db.run_command(doc! {"hello": 1}))
            .await?;
        let after = local_ms();
        match reply.get_datetime("localTime") {
            Ok(t) => {
                let mid = before + (after - before) / 2;
                self.clock
                    .offset_ms
                    .store(t.timestamp_millis() - mid, Ordering::Relaxed);
            }
            Err(_) => tracing::warn!(
                store = %self.shown.location(),
                "the store's hello has no localTime; leases use this host's clock"
            ),
        }
        *self
            .clock
            .sampled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }
}

/// Whether a driver error is a duplicate key (E11000): the unique `_id` refused an insert.
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::InsertMany(i) => i
            .write_errors
            .as_ref()
            .is_some_and(|w| w.iter().all(|w| w.code == 11000)),
        _ => false,
    }
}

/// A number field as `i64`, however the server typed it (0 when missing).
fn int(d: &Document, key: &str) -> i64 {
    d.get(key).and_then(number).unwrap_or(0)
}

/// A number as `i64`, however the server typed it.
fn number(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        // Whole numbers only ever stored here; a double would be a server's choice.
        #[allow(clippy::cast_possible_truncation)]
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

/// A string field (empty when missing).
fn text<'a>(d: &'a Document, key: &str) -> &'a str {
    d.get_str(key).unwrap_or("")
}

/// A BSON date `ms` after the epoch, kept within what a date can say.
fn date(ms: i64) -> DateTime {
    DateTime::from_millis(ms.clamp(0, 253_402_300_799_000))
}

/// A `u64` as a BSON `i64` (saturating).
fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Milliseconds of a duration (saturating).
fn ms_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Opens the MongoDB store `config` names (URL from `WARMER_STORE_URL`, else `store.url`)
/// with `key`, and its coordination with `holder` as the name its tokens carry.
///
/// Creates the indexes (idempotent), checks the schema version and the key: the first daemon
/// with a key records its id; a later one with another key, or with none, is refused.
///
/// # Errors
/// [`StoreError::NotSupported`] without a URL; [`StoreError::Unavailable`] when MongoDB
/// cannot be reached within `store.timeout` or the URL is invalid;
/// [`StoreError::NewerSchema`], [`StoreError::KeyMismatch`], [`StoreError::KeyRequired`] as
/// for sled.
pub async fn open(
    config: &StoreConfig,
    key: Option<StoreKey>,
    holder: &str,
) -> Result<(Arc<MongoStore>, Arc<MongoCoordination>), StoreError> {
    let Some(url) = config.effective_url() else {
        return Err(StoreError::NotSupported {
            what: format!(
                "store.backend = \"mongodb\" needs store.url (or {STORE_URL_ENV}), e.g. \
                 mongodb://127.0.0.1:27017/warmer"
            ),
        });
    };
    let shown = Shown::new(url.expose(), &config.prefix);
    let timeout = config.timeout;
    let fail = |reason: String| shown.unavailable("open", reason);
    let no_answer = || {
        fail(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))
    };
    let mut options = tokio::time::timeout(timeout, ClientOptions::parse(url.expose()))
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| fail(e.to_string()))?;
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout / 2);
    options.app_name = Some("session-warmer".into());
    let database = options
        .default_database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let client = mongodb::Client::with_options(options).map_err(|e| fail(e.to_string()))?;
    let db = client.database(&database);
    let colls = ENTITIES
        .iter()
        .map(|e| (*e, db.collection(&format!("{}_{e}", config.prefix))))
        .collect();
    let conn = Conn {
        db,
        colls: Arc::new(colls),
        shown: shown.clone(),
        timeout,
        clock: Arc::new(Clock {
            offset_ms: AtomicI64::new(0),
            sampled: Mutex::new(None),
        }),
    };
    conn.sample_clock().await?;
    create_indexes(&conn).await?;

    let sealer = key.as_ref().map(Sealer::new);
    drop(key);
    let stored = meta(&conn, sealer.as_ref()).await?;
    let at_rest = envelope::at_rest(&shown.named(), sealer.as_ref(), &stored)?;
    let info = StoreInfo {
        backend: StoreBackend::Mongodb,
        location: shown.location().to_string(),
        at_rest,
    };
    let codec = Arc::new(records::Codec::new(sealer));
    let store = Arc::new(MongoStore::new(conn.clone(), codec.clone(), info));
    let coordination = Arc::new(MongoCoordination::new(conn, codec, holder));
    Ok((store, coordination))
}

/// Checks the schema version and records (or reads) the key id; returns the stored key id
/// (empty when the store is plaintext).
async fn meta(conn: &Conn, sealer: Option<&Sealer>) -> Result<String, StoreError> {
    let meta = conn.coll("meta");
    let seed = meta
        .update_one(
            doc! {"_id": "meta"},
            doc! {"$setOnInsert": {"schema_version": i64::from(SCHEMA_VERSION)}},
        )
        .upsert(true);
    match conn.within("open", seed).await? {
        Ok(_) => {}
        // Another daemon created it at the same moment.
        Err(e) if is_duplicate(&e) => {}
        Err(e) => return Err(conn.failed("open", &e)),
    }
    if let Some(s) = sealer {
        let claim = meta.update_one(
            doc! {"_id": "meta", "key_id": {"$exists": false}},
            doc! {"$set": {"key_id": s.key_id().to_string(), "cipher": "chacha20poly1305"}},
        );
        conn.bounded("open", claim).await?;
    }
    let found = conn
        .bounded("open", meta.find_one(doc! {"_id": "meta"}))
        .await?
        .unwrap_or_default();
    let schema = u32::try_from(int(&found, "schema_version")).unwrap_or(u32::MAX);
    if schema > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(text(&found, "key_id").to_string())
}

/// The indexes every query relies on, and the TTL indexes that purge expired documents
/// (`expireAfterSeconds: 0`: at the time `expiresAt` says). Creating an existing index is a
/// no-op.
async fn create_indexes(conn: &Conn) -> Result<(), StoreError> {
    let ttl = || {
        IndexModel::builder()
            .keys(doc! {"expiresAt": 1})
            .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
            .build()
    };
    let plain = |keys: Document| IndexModel::builder().keys(keys).build();
    let wanted = [
        ("sessions", ttl()),
        ("sessions", plain(doc! {"target": 1, "rev": 1})),
        ("gone", ttl()),
        ("gone", plain(doc! {"target": 1, "rev": 1})),
        (
            "work",
            plain(doc! {"target": 1, "state": 1, "due": 1, "order": 1}),
        ),
        ("work", plain(doc! {"state": 1, "until": 1})),
        ("holds", ttl()),
        ("items", ttl()),
        ("nodes", ttl()),
    ];
    for (entity, model) in wanted {
        conn.bounded("open", conn.coll(entity).create_index(model))
            .await?;
    }
    Ok(())
}
