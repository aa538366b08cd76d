//! [`MongoStore`]: sessions, events and the audit trail as MongoDB documents.
//!
//! | Collection | `_id` | Holds |
//! |---|---|---|
//! | `P_meta` | `meta` | `schema_version`; `key_id` and `cipher` once a daemon with a key opened it |
//! | `P_sessions` | session id | `target`, `state`, `blob` (JSON, or the envelope), `created_at`, `expires_at`, `rev`, `warmed_by`, `expiresAt` (TTL) |
//! | `P_gone` | `<target>\0<id>` | a deleted session: `target`, `sid`, `rev`, `at`, `expiresAt` (TTL) |
//! | `P_counters` | `rev`, `audit` | `n`: the store's revision (and `floor`), the audit sequence |
//! | `P_writing` | random | a writer's marker: the revision it saw (`lower`) and when (`at`) |
//! | `P_events` | `<target>\0<id>` | `target`, `id`, `url`, `added_at` |
//! | `P_audit` | sequence number | `at`, `session`, `target`, `action`, `detail` |
//!
//! A session write takes a revision (`$inc` on `P_counters.rev`) after leaving a marker in
//! `P_writing`, writes the document only if its stored `rev` is lower (so of two racing writes
//! the later revision wins everywhere), then removes the marker. [`Store::changes`] answers up
//! to the oldest marker's revision, so a change whose document is not written yet is never
//! skipped; a marker older than [`STALE_MARKER`] (its writer died) is ignored and removed.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, Document};
use mongodb::options::ReturnDocument;
use std::sync::Arc;
use std::time::Duration;

use super::{date, i64_of, int, is_duplicate, ms_of, text, Conn};
use crate::session::Session;
use crate::store::changes::{Changes, DELETIONS_KEPT};
use crate::store::envelope::{self, Sealer};
use crate::store::records::{Store, StoreInfo};
use crate::store::redis::{AUDIT_CAP, GRACE_MS};
use crate::store::{AuditEntry, Event, StoreError};

/// Name of the sessions "tree", bound into every envelope as sled binds it.
const SESSIONS: &str = "sessions";

/// A writer's marker older than this is from a writer that died: readers ignore it.
pub const STALE_MARKER: Duration = Duration::from_secs(60);

/// How session records are written and read: JSON, sealed when the store has a key.
pub(crate) struct Codec {
    /// Encrypts session blobs; `None` for a plaintext store.
    sealer: Option<Sealer>,
}

impl Codec {
    /// A codec sealing with `sealer`, if any.
    pub(super) fn new(sealer: Option<Sealer>) -> Self {
        Self { sealer }
    }

    /// The stored blob of a session.
    fn blob(&self, s: &Session) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(s).map_err(|source| StoreError::Encode {
            key: format!("{SESSIONS}/{}", s.id),
            source,
        })?;
        match &self.sealer {
            Some(sealer) => sealer.seal(SESSIONS, s.id.as_bytes(), &json),
            None => Ok(json),
        }
    }

    /// A session from its stored document.
    fn decode(&self, d: &Document) -> Result<Session, StoreError> {
        let id = text(d, "_id");
        let name = format!("{SESSIONS}/{id}");
        let blob = match d.get("blob") {
            Some(Bson::Binary(b)) => b.bytes.as_slice(),
            _ => &[],
        };
        let plain = envelope::open(self.sealer.as_ref(), SESSIONS, id.as_bytes(), &name, blob)?;
        serde_json::from_slice(&plain).map_err(|source| StoreError::Corrupt { key: name, source })
    }
}

/// Revisions taken for one write, and the marker that holds readers back until it is done.
pub(super) struct Revs {
    /// The marker's `_id`.
    marker: ObjectId,
    /// The first revision taken.
    pub(super) first: i64,
}

/// `<target>\0<id>`: the `_id` of a target's event or tombstone.
fn pair_id(target: &str, id: &str) -> String {
    format!("{target}\0{id}")
}

impl Conn {
    /// Takes `count` revisions: leaves a marker with the revision seen now, then `$inc`s the
    /// counter. End with [`Conn::end_write`].
    pub(super) async fn begin_write(&self, count: u64) -> Result<Revs, StoreError> {
        let counters = self.coll("counters");
        let seen = self
            .bounded("write", counters.find_one(doc! {"_id": "rev"}))
            .await?
            .map_or(0, |d| int(&d, "n"));
        let marker = ObjectId::new();
        let now = self.now().await?;
        self.bounded(
            "write",
            self.coll("writing")
                .insert_one(doc! {"_id": marker, "lower": seen, "at": now}),
        )
        .await?;
        let taken = counters
            .find_one_and_update(doc! {"_id": "rev"}, doc! {"$inc": {"n": i64_of(count)}})
            .upsert(true)
            .return_document(ReturnDocument::After);
        let n = self
            .bounded("write", taken)
            .await?
            .map_or(0, |d| int(&d, "n"));
        Ok(Revs {
            marker,
            first: n - i64_of(count) + 1,
        })
    }

    /// Removes a write's marker (a failure only delays readers until it is stale).
    pub(super) async fn end_write(&self, revs: Revs) {
        let gone = self.coll("writing").delete_one(doc! {"_id": revs.marker});
        if let Err(e) = self.bounded("write", gone).await {
            tracing::warn!(error = %e, "a write's marker stays until it is stale");
        }
    }

    /// Writes session `s` at revision `rev`, tagged with `token` (the committing claim's, or
    /// empty), unless its stored revision is higher (a later write won). With `upsert`, a
    /// missing session is inserted; without, only a live one is rewritten. Returns whether it
    /// was written and the target it had before.
    pub(super) async fn write_session(
        &self,
        codec: &Codec,
        s: &Session,
        rev: i64,
        upsert: bool,
        token: &str,
    ) -> Result<(bool, Option<String>), StoreError> {
        let blob = codec.blob(s)?;
        let now = self.now().await?;
        let state = serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let keep = i64_of(s.expires_at)
            .max(now)
            .saturating_add(i64_of(GRACE_MS));
        let mut filter = doc! {"_id": &s.id, "rev": {"$lt": rev}};
        if !upsert {
            filter.insert("expiresAt", doc! {"$gt": date(now)});
        }
        let update = doc! {"$set": {
            "target": &s.target,
            "state": state,
            "blob": Binary { subtype: BinarySubtype::Generic, bytes: blob },
            "created_at": i64_of(s.created_at),
            "expires_at": i64_of(s.expires_at),
            "rev": rev,
            "warmed_by": token,
            "expiresAt": date(keep),
        }};
        let write = self
            .coll("sessions")
            .find_one_and_update(filter, update)
            .upsert(upsert)
            .return_document(ReturnDocument::Before);
        match self.within("write", write).await? {
            Ok(Some(old)) => Ok((true, Some(text(&old, "target").to_string()))),
            Ok(None) => Ok((upsert, None)),
            // A write with a higher revision got there first.
            Err(e) if is_duplicate(&e) => Ok((false, None)),
            Err(e) => Err(self.failed("write", &e)),
        }
    }

    /// Records that session `sid` left `target` (deleted, or moved to another target), at a
    /// revision of its own.
    pub(super) async fn tombstone(&self, target: &str, sid: &str) -> Result<(), StoreError> {
        let revs = self.begin_write(1).await?;
        let now = self.now().await?;
        let kept = ms_of(DELETIONS_KEPT);
        let written = self.bounded(
            "delete_session",
            self.coll("gone")
                .update_one(
                    doc! {"_id": pair_id(target, sid)},
                    doc! {"$set": {
                        "target": target,
                        "sid": sid,
                        "rev": revs.first,
                        "at": now,
                        "expiresAt": date(now + kept + i64_of(GRACE_MS)),
                    }},
                )
                .upsert(true),
        );
        let result = written.await;
        self.end_write(revs).await;
        result?;
        self.forget_old_tombstones(now - kept).await
    }

    /// Forgets tombstones from before `cutoff`, first raising the floor past their revisions
    /// (a `since` below the floor is answered with a reset).
    async fn forget_old_tombstones(&self, cutoff: i64) -> Result<(), StoreError> {
        let gone = self.coll("gone");
        let old = gone
            .find_one(doc! {"at": {"$lt": cutoff}})
            .sort(doc! {"rev": -1});
        let Some(newest) = self.bounded("delete_session", old).await? else {
            return Ok(());
        };
        let floor = int(&newest, "rev");
        self.bounded(
            "delete_session",
            self.coll("counters")
                .update_one(doc! {"_id": "rev"}, doc! {"$max": {"floor": floor}})
                .upsert(true),
        )
        .await?;
        self.bounded(
            "delete_session",
            gone.delete_many(doc! {"at": {"$lt": cutoff}, "rev": {"$lte": floor}}),
        )
        .await
        .map(drop)
    }

    /// The revision up to which every change is written: the counter, held back to just
    /// below the oldest live marker. Returns `(safe, counter, floor)`.
    async fn settled(&self, call: &'static str) -> Result<(i64, i64, i64), StoreError> {
        let counter = self
            .bounded(call, self.coll("counters").find_one(doc! {"_id": "rev"}))
            .await?
            .unwrap_or_default();
        let (rev, floor) = (int(&counter, "n"), int(&counter, "floor"));
        let stale = self.now().await? - ms_of(STALE_MARKER);
        let writing = self.coll("writing");
        let oldest = |filter: Document| writing.find_one(filter).sort(doc! {"lower": 1});
        let mut marker = self.bounded(call, oldest(doc! {})).await?;
        if marker.as_ref().is_some_and(|m| int(m, "at") < stale) {
            // Markers of writers that died: removed, so they cost nothing next time.
            self.bounded(call, writing.delete_many(doc! {"at": {"$lt": stale}}))
                .await?;
            marker = self
                .bounded(call, oldest(doc! {"at": {"$gte": stale}}))
                .await?;
        }
        let safe = marker.map_or(rev, |m| rev.min(int(&m, "lower")));
        Ok((safe, rev, floor))
    }

    /// The documents `filter` finds, in `sort` order, bounded as one call.
    pub(super) async fn all(
        &self,
        call: &'static str,
        entity: &str,
        filter: Document,
        sort: Document,
    ) -> Result<Vec<Document>, StoreError> {
        let coll = self.coll(entity);
        self.bounded(call, async move {
            coll.find(filter).sort(sort).await?.try_collect().await
        })
        .await
    }
}

/// Sessions, events and the audit trail in MongoDB (see the module docs for the layout).
pub struct MongoStore {
    /// The shared connection.
    conn: Conn,
    /// Session encoding, shared with the coordination's commits.
    codec: Arc<Codec>,
    /// What this store is, computed at open.
    info: StoreInfo,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl MongoStore {
    /// Records over `conn`.
    pub(super) fn new(conn: Conn, codec: Arc<Codec>, info: StoreInfo) -> Self {
        Self { conn, codec, info }
    }

    /// An event's document.
    fn event_doc(e: &Event) -> Result<Document, StoreError> {
        let mut d = mongodb::bson::to_document(e).map_err(|err| StoreError::Encode {
            key: format!("events/{}/{}", e.target, e.id),
            source: serde::ser::Error::custom(err.to_string()),
        })?;
        d.insert("_id", pair_id(&e.target, &e.id));
        Ok(d)
    }

    /// A stored document as `T`, or [`StoreError::Corrupt`] naming `key`.
    fn decode<T: serde::de::DeserializeOwned>(mut d: Document, key: &str) -> Result<T, StoreError> {
        d.remove("_id");
        mongodb::bson::from_document(d).map_err(|err| StoreError::Corrupt {
            key: key.to_string(),
            source: serde::de::Error::custom(err.to_string()),
        })
    }
}

/// Writes one session through the revision protocol (records and commits share it):
/// upserted, tagged with `token`; a tombstone goes to the target it left, if any.
pub(super) async fn put_one(
    conn: &Conn,
    codec: &Codec,
    s: &Session,
    token: &str,
) -> Result<(), StoreError> {
    let revs = conn.begin_write(1).await?;
    let result = conn.write_session(codec, s, revs.first, true, token).await;
    conn.end_write(revs).await;
    if let (_, Some(old)) = result? {
        if old != s.target {
            conn.tombstone(&old, &s.id).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for MongoStore {
    fn info(&self) -> StoreInfo {
        self.info.clone()
    }

    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        put_one(&self.conn, &self.codec, s, "").await
    }

    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let c = &self.conn;
        let revs = c.begin_write(sessions.len() as u64).await?;
        let mut written = 0;
        let mut moved = Vec::new();
        let mut result = Ok(());
        for (i, s) in sessions.iter().enumerate() {
            match c
                .write_session(&self.codec, s, revs.first + i64_of(i as u64), false, "")
                .await
            {
                Ok((true, old)) => {
                    written += 1;
                    moved.extend(old.filter(|o| *o != s.target).map(|o| (o, s.id.clone())));
                }
                Ok((false, _)) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        c.end_write(revs).await;
        result?;
        for (old, sid) in moved {
            c.tombstone(&old, &sid).await?;
        }
        Ok(written)
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let c = &self.conn;
        let now = c.now().await?;
        let found = c
            .bounded(
                "get_session",
                c.coll("sessions")
                    .find_one(doc! {"_id": id, "expiresAt": {"$gt": date(now)}}),
            )
            .await?;
        found.map(|d| self.codec.decode(&d)).transpose()
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let c = &self.conn;
        let now = c.now().await?;
        let sessions = c.coll("sessions");
        let live = c
            .bounded(
                "delete_session",
                sessions.find_one_and_delete(doc! {"_id": id, "expiresAt": {"$gt": date(now)}}),
            )
            .await?;
        let (old, was_live) = match live {
            Some(d) => (d, true),
            // Expired but not purged yet: removed all the same, and not counted.
            None => match c
                .bounded(
                    "delete_session",
                    sessions.find_one_and_delete(doc! {"_id": id}),
                )
                .await?
            {
                Some(d) => (d, false),
                None => return Ok(false),
            },
        };
        c.tombstone(text(&old, "target"), id).await?;
        Ok(was_live)
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        let c = &self.conn;
        let now = c.now().await?;
        let docs = c
            .all(
                "list_sessions",
                "sessions",
                doc! {"expiresAt": {"$gt": date(now)}},
                doc! {"_id": 1},
            )
            .await?;
        let mut out = docs
            .iter()
            .map(|d| self.codec.decode(d))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn changes(&self, target: &str, since: u64) -> Result<Changes, StoreError> {
        let c = &self.conn;
        let (safe, rev, floor) = c.settled("changes").await?;
        let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        let since_i = i64_of(since);
        if since_i > rev || since_i < floor {
            return Ok(Changes::reset_to(as_u64(safe)));
        }
        if safe <= since_i {
            return Ok(Changes {
                rev: since,
                ..Changes::default()
            });
        }
        let now = c.now().await?;
        let range = doc! {"$gt": since_i, "$lte": safe};
        let live = c
            .all(
                "changes",
                "sessions",
                doc! {"target": target, "rev": range.clone(), "expiresAt": {"$gt": date(now)}},
                doc! {"rev": 1},
            )
            .await?;
        let gone = c
            .all(
                "changes",
                "gone",
                doc! {"target": target, "rev": range},
                doc! {"rev": 1},
            )
            .await?;
        // Oldest change first (the queries sort too; this keeps it so whatever the server did).
        let mut live: Vec<(i64, &Document)> = live.iter().map(|d| (int(d, "rev"), d)).collect();
        live.sort_by_key(|(rev, _)| *rev);
        let mut gone: Vec<(i64, String)> = gone
            .iter()
            .map(|d| (int(d, "rev"), text(d, "sid").to_string()))
            .collect();
        gone.sort();
        let mut out = Changes {
            rev: as_u64(safe),
            ..Changes::default()
        };
        for (_, d) in live {
            out.written.push(self.codec.decode(d)?);
        }
        // A session stored now is written, whatever happened to it before.
        for (_, sid) in gone {
            if !out.written.iter().any(|s| s.id == sid) && !out.deleted.contains(&sid) {
                out.deleted.push(sid);
            }
        }
        Ok(out)
    }

    async fn put_event(&self, e: &Event) -> Result<bool, StoreError> {
        let c = &self.conn;
        let insert = c.coll("events").insert_one(Self::event_doc(e)?);
        match c.within("put_event", insert).await? {
            Ok(_) => Ok(true),
            Err(err) if is_duplicate(&err) => Ok(false),
            Err(err) => Err(c.failed("put_event", &err)),
        }
    }

    async fn put_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let c = &self.conn;
        let docs = events
            .iter()
            .map(Self::event_doc)
            .collect::<Result<Vec<_>, _>>()?;
        let insert = c.coll("events").insert_many(docs).ordered(false);
        match c.within("put_events", insert).await? {
            Ok(r) => Ok(r.inserted_ids.len()),
            Err(err) if is_duplicate(&err) => {
                let refused = match &*err.kind {
                    mongodb::error::ErrorKind::InsertMany(i) => {
                        i.write_errors.as_ref().map_or(0, Vec::len)
                    }
                    _ => 1,
                };
                Ok(events.len().saturating_sub(refused))
            }
            Err(err) => Err(c.failed("put_events", &err)),
        }
    }

    async fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let filter = match target {
            Some(t) => doc! {"target": t},
            None => doc! {},
        };
        let docs = self
            .conn
            .all("list_events", "events", filter, doc! {"target": 1, "id": 1})
            .await?;
        let mut out = docs
            .into_iter()
            .map(|d| Self::decode::<Event>(d, "events/<one event>"))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.target, &a.id).cmp(&(&b.target, &b.id)));
        Ok(out)
    }

    async fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError> {
        let c = &self.conn;
        let r = c
            .bounded(
                "delete_event",
                c.coll("events")
                    .delete_one(doc! {"_id": pair_id(target, id)}),
            )
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let c = &self.conn;
        let mut d = mongodb::bson::to_document(e).map_err(|err| StoreError::Encode {
            key: "audit/<new>".into(),
            source: serde::ser::Error::custom(err.to_string()),
        })?;
        let next = c
            .coll("counters")
            .find_one_and_update(doc! {"_id": "audit"}, doc! {"$inc": {"n": 1_i64}})
            .upsert(true)
            .return_document(ReturnDocument::After);
        let seq = c
            .bounded("append_audit", next)
            .await?
            .map_or(0, |d| int(&d, "n"));
        d.insert("_id", seq);
        let audit = c.coll("audit");
        c.bounded("append_audit", audit.insert_one(d)).await?;
        let cap = i64_of(AUDIT_CAP as u64);
        if seq % 1000 == 0 && seq > cap {
            c.bounded(
                "append_audit",
                audit.delete_many(doc! {"_id": {"$lte": seq - cap}}),
            )
            .await?;
        }
        Ok(())
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let coll = self.conn.coll("audit");
        // "All of it" (`usize::MAX`, as `store copy` asks) is no limit at all.
        let limit = i64::try_from(limit)
            .ok()
            .filter(|&n| n <= i64::from(i32::MAX));
        let docs: Vec<Document> = self
            .conn
            .bounded("recent_audit", async move {
                let mut find = coll.find(doc! {}).sort(doc! {"_id": -1});
                if let Some(n) = limit {
                    find = find.limit(n);
                }
                find.await?.try_collect().await
            })
            .await?;
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| Self::decode(d, &format!("audit/<newest - {i}>")))
            .collect()
    }

    async fn trim_audit(&self, keep: usize) -> Result<usize, StoreError> {
        let c = &self.conn;
        let audit = c.coll("audit");
        let boundary = audit
            .find_one(doc! {})
            .sort(doc! {"_id": -1})
            .skip(keep as u64);
        let Some(first_dropped) = c.bounded("trim_audit", boundary).await? else {
            return Ok(0);
        };
        let upto = first_dropped.get("_id").cloned().unwrap_or(Bson::Null);
        let r = c
            .bounded(
                "trim_audit",
                audit.delete_many(doc! {"_id": {"$lte": upto}}),
            )
            .await?;
        Ok(usize::try_from(r.deleted_count).unwrap_or(usize::MAX))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let c = &self.conn;
        c.bounded("ping", c.db.run_command(doc! {"ping": 1}))
            .await
            .map(drop)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write above was acknowledged under the server's write concern already.
        Ok(())
    }
}
