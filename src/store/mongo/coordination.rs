//! [`MongoCoordination`]: [`Coordination`] shared by every daemon on one MongoDB database,
//! each step one single-document atomic operation, times on the server's clock.
//!
//! | Collection | `_id` | Holds |
//! |---|---|---|
//! | `P_work` | `<target>\0<item>` | one work item: `target`, `item`, `state` (`queued`, `inflight`, `committing`), `due`, `order`, `owner` (fence token), `until` (lease deadline), `attempts`, `warm` |
//! | `P_lanes` | target | `warms` (new-session items queued or in flight), `settled` (deadlines of new sessions committed lately), `seq`, `qctr` (queueing order), `rev` (bumped by every change of `warms` or `settled`) |
//! | `P_items` | `<target>\0<item>` | a named work item's grant: `target`, `token` (`''` while it rests after finishing), `until` (deadline of the grant or the rest), `expiresAt` (TTL) |
//! | `P_holds` | `<target>\0<id>` | a scraper's hold: `target`, `token`, `until`, `expiresAt` (TTL) |
//! | `P_usage` | `<target>\0<id>` | `uses`, `successes`, `failures` (`$inc`) |
//! | `P_nodes` | node name | `beat` (server ms), `counters`, `expiresAt` (TTL) |
//!
//! The lease protocol is Redis's: a claim is a `findOneAndUpdate` of the due item queued first
//! (sort `due`, `order`) from `queued` to `inflight` with a fresh fence token and deadline; a
//! claim is current while `owner` is its token and `until` is ahead of the server's clock, so
//! renew and commit are refused the moment it lapses, reaped or not. A commit first moves its
//! item to `committing` (refused unless current), writes the record, then deletes the item; a
//! reap takes back `inflight` or `committing` items whose deadline passed, checking the owner it
//! read, so two daemons reaping at once count each lapse once. `top_up` reserves its items by a
//! conditional update of the lane (it matches only at the `rev` read), so daemons topping up
//! together never overshoot; a new session committed lately still counts for [`SETTLE`], as in
//! Redis, because another daemon's index has it only after its next resync.

use async_trait::async_trait;
use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::records::{put_one, Codec};
use super::{date, i64_of, int, is_duplicate, ms_of, number, text, Conn};
use crate::session::Session;
use crate::store::coordination::{
    Claim, CoordCounters, CoordError, CoordResult, Coordination, Hold, Lapsed, MaybeClaim,
    MaybeHold, NodeInfo, Pending, Reaped, Tally, Token, Usage, Work,
};

/// How many times `top_up` retries its conditional reservation when other daemons change the
/// lane at the same moment.
const TOP_UP_TRIES: usize = 100;

/// How long a committed new session still counts for `top_up` (Redis's `SETTLE_MS`): several
/// resync periods (300 ms), so a daemon whose index has not seen it yet does not queue its
/// replacement.
const SETTLE: Duration = Duration::from_secs(3);

/// Most lapsed claims one `reap` takes back; the rest wait for the next reap.
const REAP_BATCH: i64 = 100;

/// Work claims, holds and usage counters in MongoDB.
pub struct MongoCoordination {
    /// The connection shared with the records.
    pub(super) conn: Conn,
    /// Encodes the records commits write, as the records store does.
    pub(super) codec: Arc<Codec>,
    /// The node name tokens carry.
    holder: String,
    /// Grants made by this process (the counter part of its tokens).
    grants: AtomicU64,
    /// What this daemon's coordination did.
    pub(super) tally: Tally,
}

impl std::fmt::Debug for MongoCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoCoordination")
            .field("holder", &self.holder)
            .field("location", &self.conn.shown.location())
            .finish_non_exhaustive()
    }
}

/// `<target>\0<key>`.
pub(super) fn key_of(target: &str, key: &str) -> String {
    format!("{target}\0{key}")
}

/// The three usage counters as fields of a usage document.
fn usage_fields(u: Usage) -> Document {
    doc! {
        "uses": i64_of(u.uses),
        "successes": i64_of(u.successes),
        "failures": i64_of(u.failures),
    }
}

/// The usage counters of a document.
fn usage_of(d: &Document) -> Usage {
    let n = |k| u64::try_from(int(d, k)).unwrap_or(0);
    Usage {
        uses: n("uses"),
        successes: n("successes"),
        failures: n("failures"),
    }
}

impl MongoCoordination {
    /// Coordination over `conn`, writing commits' records with `codec`, as `holder`.
    pub(super) fn new(conn: Conn, codec: Arc<Codec>, holder: &str) -> Self {
        Self {
            conn,
            codec,
            holder: holder.to_string(),
            grants: AtomicU64::new(0),
            tally: Tally::default(),
        }
    }

    /// A fresh fence token: `<grant counter>:<random nonce>:<holder>`.
    pub(super) fn token(&self) -> Token {
        Token::mint(&self.grants, &self.holder)
    }

    /// [`CoordError::LeaseLost`] for a claim, counted as a lease loss.
    pub(super) fn lost(&self, claim: &Claim) -> CoordError {
        self.tally.lost(&claim.token);
        CoordError::LeaseLost { what: claim.name() }
    }

    /// The filter of a current claim: its item, its token, its state, deadline ahead of `now`.
    fn current(claim: &Claim, now: i64) -> Document {
        doc! {
            "_id": key_of(&claim.target, &claim.work.key()),
            "owner": claim.token.as_str(),
            "state": "inflight",
            "until": {"$gt": now},
        }
    }

    /// The next `count` queueing orders of `target` (the last one returned).
    async fn orders(&self, call: &'static str, target: &str, count: i64) -> CoordResult<i64> {
        let c = &self.conn;
        let next = c
            .coll("lanes")
            .find_one_and_update(
                doc! {"_id": target},
                doc! {"$inc": {"qctr": count, "warms": 0_i64, "seq": 0_i64, "rev": 0_i64}},
            )
            .upsert(true)
            .return_document(ReturnDocument::After);
        Ok(c.bounded(call, next)
            .await?
            .map_or(count, |d| int(&d, "qctr")))
    }

    /// One fewer new-session item of `target` queued or in flight; `settled_until`: it wrote a
    /// new session, which counts for `top_up` until then.
    async fn warm_done(
        &self,
        call: &'static str,
        target: &str,
        settled_until: Option<i64>,
    ) -> CoordResult<()> {
        let c = &self.conn;
        let mut change = doc! {"$inc": {"warms": -1_i64, "rev": 1_i64}};
        if let Some(until) = settled_until {
            change.insert("$push", doc! {"settled": until});
        }
        c.bounded(
            call,
            c.coll("lanes").update_one(doc! {"_id": target}, change),
        )
        .await?;
        Ok(())
    }

    /// Takes back one lapsed claim (`item` as read, with its owner and deadline) unless another
    /// reap did first: requeued due now, or deleted once `max_attempts` claims have lapsed.
    /// Returns the entry and whether it is dead, or `None` when another reap took it.
    async fn reap_one(
        &self,
        item: &Document,
        max_attempts: u32,
        now: i64,
    ) -> CoordResult<Option<(Lapsed, bool)>> {
        let c = &self.conn;
        let target = text(item, "target");
        let attempts = int(item, "attempts") + 1;
        let same = doc! {
            "_id": item.get("_id").cloned(),
            "owner": text(item, "owner"),
            "until": int(item, "until"),
        };
        let dead = attempts >= i64::from(max_attempts);
        let taken = if dead {
            let r = c.bounded("reap", c.coll("work").delete_one(same)).await?;
            if r.deleted_count == 1 && item.get_bool("warm").unwrap_or(false) {
                self.warm_done("reap", target, None).await?;
            }
            r.deleted_count == 1
        } else {
            let order = self.orders("reap", target, 1).await?;
            let requeue = doc! {
                "$set": {"state": "queued", "due": now, "order": order, "attempts": attempts},
                "$unset": {"owner": "", "until": ""},
            };
            let r = c
                .bounded("reap", c.coll("work").update_one(same, requeue))
                .await?;
            r.matched_count == 1
        };
        let Some(work) = Work::from_key(text(item, "item")) else {
            // An item this build does not know is left to the build that queued it.
            return Ok(None);
        };
        Ok(taken.then(|| {
            (
                Lapsed {
                    target: target.to_string(),
                    work,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                },
                dead,
            )
        }))
    }
}

#[async_trait]
impl Coordination for MongoCoordination {
    fn holder(&self) -> &str {
        &self.holder
    }

    /// Inserts the item (its `_id` is unique, so an item queued or in flight already is
    /// refused: `Ok(false)`); a new-session item counts in the lane's `warms`.
    async fn enqueue(&self, target: &str, work: Work, delay: Duration) -> CoordResult<bool> {
        let c = &self.conn;
        let item = work.key();
        let warm = matches!(work, Work::Warm { .. });
        let order = self.orders("enqueue", target, 1).await?;
        let now = c.now().await?;
        let insert = c.coll("work").insert_one(doc! {
            "_id": key_of(target, &item),
            "target": target,
            "item": &item,
            "state": "queued",
            "due": now.saturating_add(ms_of(delay)),
            "order": order,
            "attempts": 0_i64,
            "warm": warm,
        });
        match c.within("enqueue", insert).await? {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => return Ok(false),
            Err(e) => return Err(c.failed("enqueue", &e).into()),
        }
        if warm {
            c.bounded(
                "enqueue",
                c.coll("lanes")
                    .update_one(
                        doc! {"_id": target},
                        doc! {"$inc": {"warms": 1_i64, "rev": 1_i64, "seq": 0_i64, "qctr": 0_i64}},
                    )
                    .upsert(true),
            )
            .await?;
        }
        Ok(true)
    }

    /// Reserves `missing - warms - settled` new-session items by a conditional update of the
    /// lane (it matches only if `warms`, `seq` and `rev` are still what was read), then
    /// inserts them in one call, all due now, in sequence order.
    async fn top_up(&self, target: &str, missing: usize) -> CoordResult<usize> {
        if missing == 0 {
            return Ok(0);
        }
        let c = &self.conn;
        let lanes = c.coll("lanes");
        let want = i64_of(missing as u64);
        for _ in 0..TOP_UP_TRIES {
            let lane = lanes
                .find_one_and_update(
                    doc! {"_id": target},
                    // Every field exists from the first call on, so the reservation can match it.
                    doc! {"$inc": {"warms": 0_i64, "seq": 0_i64, "qctr": 0_i64, "rev": 0_i64}},
                )
                .upsert(true)
                .return_document(ReturnDocument::After);
            let lane = c.bounded("top_up", lane).await?.unwrap_or_default();
            let (warms, seq, rev) = (int(&lane, "warms"), int(&lane, "seq"), int(&lane, "rev"));
            let now = c.now().await?;
            let settled: Vec<i64> = lane
                .get_array("settled")
                .map(|a| a.iter().filter_map(number).filter(|&t| t > now).collect())
                .unwrap_or_default();
            let counted = warms + i64_of(settled.len() as u64);
            if counted >= want {
                return Ok(0);
            }
            let add = want - counted;
            let reserve = lanes
                .find_one_and_update(
                    doc! {"_id": target, "warms": warms, "seq": seq, "rev": rev},
                    doc! {
                        // The settled entries still counting: those read (any change since
                        // bumped `rev`), less the lapsed ones.
                        "$set": {"warms": warms + add, "settled": settled},
                        "$inc": {"seq": add, "qctr": add, "rev": 1_i64},
                    },
                )
                .return_document(ReturnDocument::After);
            let Some(reserved) = c.bounded("top_up", reserve).await? else {
                continue;
            };
            let last_order = int(&reserved, "qctr");
            let items: Vec<Document> = (1..=add)
                .map(|i| {
                    let item = Work::Warm {
                        seq: u64::try_from(seq + i).unwrap_or(0),
                    }
                    .key();
                    doc! {
                        "_id": key_of(target, &item),
                        "target": target,
                        "item": item,
                        "state": "queued",
                        "due": now,
                        "order": last_order - add + i,
                        "attempts": 0_i64,
                        "warm": true,
                    }
                })
                .collect();
            c.bounded("top_up", c.coll("work").insert_many(items))
                .await?;
            return Ok(usize::try_from(add).unwrap_or(0));
        }
        Err(c
            .unavailable(
                "top_up",
                format!("the lane of {target} changed under {TOP_UP_TRIES} tries"),
            )
            .into())
    }

    /// One `findOneAndUpdate`: the due queued item with the earliest due time, then queueing
    /// order, becomes `inflight` under a fresh token with deadline now + `ttl`.
    async fn claim(&self, target: &str, ttl: Duration) -> MaybeClaim {
        let c = &self.conn;
        let now = c.now().await?;
        let token = self.token();
        let take = c
            .coll("work")
            .find_one_and_update(
                doc! {"target": target, "state": "queued", "due": {"$lte": now}},
                doc! {
                    "$set": {
                        "state": "inflight",
                        "owner": token.as_str(),
                        "until": now.saturating_add(ms_of(ttl).max(1)),
                    },
                },
            )
            .sort(doc! {"due": 1, "order": 1})
            .return_document(ReturnDocument::After);
        let Some(item) = c.bounded("claim", take).await? else {
            return Ok(None);
        };
        self.tally.claimed(&token, int(&item, "attempts") > 0);
        Ok(Claim::granted(target, text(&item, "item"), token))
    }

    /// Pushes the deadline to now + `ttl` only while the claim is current (a lapsed claim is
    /// not revived, even before a reap).
    async fn renew(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let c = &self.conn;
        let now = c.now().await?;
        let r = c
            .bounded(
                "renew",
                c.coll("work").update_one(
                    Self::current(claim, now),
                    doc! {"$set": {"until": now.saturating_add(ms_of(ttl).max(1))}},
                ),
            )
            .await?;
        if r.matched_count == 1 {
            Ok(())
        } else {
            Err(self.lost(claim))
        }
    }

    /// Fenced commit: the item moves to `committing` only while the claim is current (its
    /// deadline stretched to cover the write), the record is written, then the item deleted.
    /// If writing fails the item goes back to `inflight` with its deadline, still the caller's.
    async fn commit(&self, claim: &Claim, record: Option<&Session>) -> CoordResult<()> {
        let c = &self.conn;
        let now = c.now().await?;
        let window = ms_of(c.timeout) * 3 + 1000;
        let begin = c
            .coll("work")
            .find_one_and_update(
                Self::current(claim, now),
                doc! {"$set": {"state": "committing", "until": now.saturating_add(window)}},
            )
            .return_document(ReturnDocument::Before);
        let Some(item) = c.bounded("commit", begin).await? else {
            return Err(self.lost(claim));
        };
        let id = key_of(&claim.target, &claim.work.key());
        if let Some(s) = record {
            if let Err(e) = put_one(c, &self.codec, s, claim.token.as_str()).await {
                let back = c.coll("work").update_one(
                    doc! {"_id": &id, "owner": claim.token.as_str(), "state": "committing"},
                    doc! {"$set": {"state": "inflight", "until": int(&item, "until")}},
                );
                if let Err(again) = c.bounded("commit", back).await {
                    tracing::warn!(error = %again, "a failed commit's claim stays committing until it lapses");
                }
                return Err(e.into());
            }
        }
        let done = c
            .bounded(
                "commit",
                c.coll("work")
                    .delete_one(doc! {"_id": &id, "owner": claim.token.as_str()}),
            )
            .await?;
        if done.deleted_count == 1 && matches!(claim.work, Work::Warm { .. }) {
            let settled = record.map(|_| now.saturating_add(ms_of(SETTLE)));
            self.warm_done("commit", &claim.target, settled).await?;
        }
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// Gives the item back while the claim is current: queued again `retry_after` from now
    /// (keeping its lapse count), or deleted with `None`.
    async fn abandon(&self, claim: &Claim, retry_after: Option<Duration>) -> CoordResult<()> {
        let c = &self.conn;
        let work = c.coll("work");
        let given_back = match retry_after {
            Some(delay) => {
                let order = self.orders("abandon", &claim.target, 1).await?;
                let now = c.now().await?;
                let requeue = doc! {
                    "$set": {"state": "queued", "due": now.saturating_add(ms_of(delay)), "order": order},
                    "$unset": {"owner": "", "until": ""},
                };
                c.bounded(
                    "abandon",
                    work.update_one(Self::current(claim, now), requeue),
                )
                .await?
                .matched_count
                    == 1
            }
            None => {
                let now = c.now().await?;
                let gone = c
                    .bounded("abandon", work.delete_one(Self::current(claim, now)))
                    .await?
                    .deleted_count
                    == 1;
                if gone && matches!(claim.work, Work::Warm { .. }) {
                    self.warm_done("abandon", &claim.target, None).await?;
                }
                gone
            }
        };
        if given_back {
            self.tally.finished(&claim.token);
            Ok(())
        } else {
            Err(self.lost(claim))
        }
    }

    /// Reads up to [`REAP_BATCH`] claims whose deadline passed (any target) and takes each
    /// back with a conditional write on the owner and deadline read. What was taken before a
    /// failure is still counted (it happened).
    async fn reap(&self, max_attempts: u32) -> CoordResult<Reaped> {
        let c = &self.conn;
        let now = c.now().await?;
        let coll = c.coll("work");
        let lapsed: Vec<Document> = c
            .bounded("reap", async move {
                use futures::TryStreamExt;
                coll.find(doc! {
                    "state": {"$in": ["inflight", "committing"]},
                    "until": {"$lte": now},
                })
                .limit(REAP_BATCH)
                .await?
                .try_collect()
                .await
            })
            .await?;
        let mut reaped = Reaped::default();
        let mut tokens = Vec::new();
        let mut result = Ok(());
        for item in &lapsed {
            match self.reap_one(item, max_attempts, now).await {
                Ok(Some((entry, dead))) => {
                    tokens.push(Token::new(text(item, "owner")));
                    if dead {
                        reaped.dead.push(entry);
                    } else {
                        reaped.requeued.push(entry);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.tally
            .reaped(&tokens, reaped.requeued.len(), reaped.dead.len());
        result.map(|()| reaped)
    }

    /// One aggregation: the target's items counted by state.
    async fn pending(&self, target: &str) -> CoordResult<Pending> {
        let c = &self.conn;
        let coll = c.coll("work");
        let target = target.to_string();
        let groups: Vec<Document> = c
            .bounded("pending", async move {
                use futures::TryStreamExt;
                coll.aggregate([
                    doc! {"$match": {"target": target}},
                    doc! {"$group": {"_id": "$state", "n": {"$sum": 1}}},
                ])
                .await?
                .try_collect()
                .await
            })
            .await?;
        let mut p = Pending::default();
        for g in &groups {
            let n = usize::try_from(int(g, "n")).unwrap_or(0);
            match text(g, "_id") {
                "queued" => p.queued += n,
                _ => p.in_flight += n,
            }
        }
        Ok(p)
    }

    async fn claim_item(&self, target: &str, work: &Work, ttl: Duration) -> MaybeClaim {
        self.claim_named(target, work, ttl).await
    }

    async fn renew_item(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        self.renew_named(claim, ttl).await
    }

    async fn put_fenced(&self, claim: &Claim, record: &Session) -> CoordResult<()> {
        self.put_named(claim, record).await
    }

    async fn finish_item(&self, claim: &Claim, rest: Duration) -> CoordResult<()> {
        self.finish_named(claim, rest).await
    }

    async fn hold(&self, target: &str, session: &str, ttl: Duration) -> MaybeHold {
        self.take_hold(target, session, ttl).await
    }

    async fn holds(&self, target: &str) -> CoordResult<Vec<String>> {
        self.list_holds(target).await
    }

    async fn renew_hold(&self, hold: &Hold, ttl: Duration) -> CoordResult<()> {
        self.extend_hold(hold, ttl).await
    }

    async fn release_hold(&self, hold: &Hold) -> CoordResult<bool> {
        self.end_hold(hold).await
    }

    async fn is_held(&self, target: &str, session: &str) -> CoordResult<bool> {
        self.hold_current(target, session).await
    }

    /// `$setOnInsert` upsert: only the first seed sets the counters.
    async fn seed_usage(&self, target: &str, session: &str, base: Usage) -> CoordResult<bool> {
        let c = &self.conn;
        let seed = c
            .coll("usage")
            .update_one(
                doc! {"_id": key_of(target, session)},
                doc! {"$setOnInsert": usage_fields(base)},
            )
            .upsert(true);
        match c.within("seed_usage", seed).await? {
            Ok(r) => Ok(r.upserted_id.is_some()),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(c.failed("seed_usage", &e).into()),
        }
    }

    /// `$inc` upsert returning the new totals; retried once if two first increments collide
    /// on the new document's `_id`.
    async fn add_usage(&self, target: &str, session: &str, delta: Usage) -> CoordResult<Usage> {
        let c = &self.conn;
        for _ in 0..2 {
            let add = c
                .coll("usage")
                .find_one_and_update(
                    doc! {"_id": key_of(target, session)},
                    doc! {"$inc": usage_fields(delta)},
                )
                .upsert(true)
                .return_document(ReturnDocument::After);
            match c.within("add_usage", add).await? {
                Ok(Some(d)) => return Ok(usage_of(&d)),
                Ok(None) => {
                    return Err(c
                        .unavailable("add_usage", "no document returned".into())
                        .into())
                }
                Err(e) if is_duplicate(&e) => continue,
                Err(e) => return Err(c.failed("add_usage", &e).into()),
            }
        }
        Err(c
            .unavailable("add_usage", "the counters' upsert collided twice".into())
            .into())
    }

    async fn usage(&self, target: &str, session: &str) -> CoordResult<Option<Usage>> {
        let c = &self.conn;
        let found = c
            .bounded(
                "usage",
                c.coll("usage")
                    .find_one(doc! {"_id": key_of(target, session)}),
            )
            .await?;
        Ok(found.as_ref().map(usage_of))
    }

    async fn forget(&self, target: &str, session: &str) -> CoordResult<()> {
        let c = &self.conn;
        let id = key_of(target, session);
        c.bounded("forget", c.coll("usage").delete_one(doc! {"_id": &id}))
            .await?;
        c.bounded("forget", c.coll("holds").delete_one(doc! {"_id": &id}))
            .await?;
        Ok(())
    }

    fn counters(&self) -> CoordCounters {
        self.tally.snapshot()
    }

    /// Upserts this daemon's beat (server clock) with its counters, then deletes daemons
    /// silent for longer than `forget_after` (the TTL index is the backstop).
    async fn heartbeat(&self, forget_after: Duration) -> CoordResult<()> {
        let c = &self.conn;
        let now = c.now().await?;
        let forget = ms_of(forget_after);
        let mut counters = Document::new();
        for (name, v) in self.tally.snapshot().fields() {
            counters.insert(name, i64_of(v));
        }
        let nodes = c.coll("nodes");
        c.bounded(
            "heartbeat",
            nodes
                .update_one(
                    doc! {"_id": &self.holder},
                    doc! {"$set": {
                        "beat": now,
                        "counters": counters,
                        "expiresAt": date(now.saturating_add(forget)),
                    }},
                )
                .upsert(true),
        )
        .await?;
        c.bounded(
            "heartbeat",
            nodes.delete_many(doc! {"beat": {"$lt": now.saturating_sub(forget)}}),
        )
        .await?;
        Ok(())
    }

    async fn nodes(&self, seen_within: Duration) -> CoordResult<Vec<NodeInfo>> {
        let c = &self.conn;
        let now = c.now().await?;
        let docs = c
            .all(
                "nodes",
                "nodes",
                doc! {"beat": {"$gte": now.saturating_sub(ms_of(seen_within))}},
                doc! {"beat": -1},
            )
            .await?;
        let mut out: Vec<NodeInfo> = docs
            .iter()
            .map(|d| {
                let counters = d.get_document("counters").cloned().unwrap_or_default();
                let fields: Vec<(String, u64)> = counters
                    .keys()
                    .map(|k| (k.clone(), u64::try_from(int(&counters, k)).unwrap_or(0)))
                    .collect();
                let ago = u64::try_from(now - int(d, "beat")).unwrap_or(0);
                NodeInfo {
                    node: text(d, "_id").to_string(),
                    last_beat_ago: Duration::from_millis(ago),
                    counters: CoordCounters::from_fields(
                        fields.iter().map(|(k, v)| (k.as_str(), *v)),
                    ),
                }
            })
            .collect();
        out.sort_by_key(|n| n.last_beat_ago);
        Ok(out)
    }
}
