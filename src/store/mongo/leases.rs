//! [`MongoCoordination`]'s single-document leases: named work items (`P_items`, see
//! [`Coordination::claim_item`](crate::store::Coordination::claim_item)) and scrapers' holds on
//! sessions (`P_holds`). Each grant is one document whose `until` is compared with the server's
//! clock; a current one makes a second grant's insert a duplicate, so concurrent callers get
//! one grant. The [`Coordination`](crate::store::Coordination) impl in `coordination.rs`
//! forwards to these.

use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;
use std::time::Duration;

use super::coordination::{key_of, MongoCoordination};
use super::records::put_one;
use super::{date, int, is_duplicate, ms_of, text};
use crate::session::Session;
use crate::store::coordination::{
    Claim, CoordError, CoordResult, Hold, MaybeClaim, MaybeHold, Work,
};

/// The TTL date of a lease document whose grant ends at `until` (server ms): a minute after
/// it, so MongoDB's once-a-minute purge never removes a grant that is still current.
fn expires(until: i64) -> mongodb::bson::DateTime {
    date(until.saturating_add(60_000))
}

impl MongoCoordination {
    /// The filter of a current grant of a named item: its token, deadline ahead of `now`.
    fn current_item(claim: &Claim, now: i64) -> Document {
        doc! {
            "_id": key_of(&claim.target, &claim.work.key()),
            "token": claim.token.as_str(),
            "until": {"$gt": now},
        }
    }

    /// Sets `until` (and the TTL with it) of a current grant of a named item, plus `token`
    /// when given; the document as it was before.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant is not current.
    async fn on_item(
        &self,
        call: &'static str,
        claim: &Claim,
        until: impl FnOnce(i64) -> i64,
        token: Option<&str>,
    ) -> CoordResult<Document> {
        let c = &self.conn;
        let now = c.now().await?;
        let until = until(now);
        let mut set = doc! {"until": until, "expiresAt": expires(until)};
        if let Some(t) = token {
            set.insert("token", t);
        }
        let update = c
            .coll("items")
            .find_one_and_update(Self::current_item(claim, now), doc! {"$set": set})
            .return_document(ReturnDocument::Before);
        c.bounded(call, update)
            .await?
            .ok_or_else(|| self.lost(claim))
    }

    /// A hold's `_id`.
    fn hold_id(target: &str, session: &str) -> String {
        key_of(target, session)
    }

    /// Takes the item's document when its deadline passed (a lapsed grant: a takeover, or a
    /// rest that ended), else inserts it; a current or resting document makes the insert a
    /// duplicate, so nothing is granted. Two single-document steps, each atomic.
    pub(super) async fn claim_named(&self, target: &str, work: &Work, ttl: Duration) -> MaybeClaim {
        let c = &self.conn;
        let now = c.now().await?;
        let token = self.token();
        let until = now.saturating_add(ms_of(ttl).max(1));
        let id = key_of(target, &work.key());
        let grant = doc! {
            "target": target,
            "token": token.as_str(),
            "until": until,
            "expiresAt": expires(until),
        };
        let take = c
            .coll("items")
            .find_one_and_update(
                doc! {"_id": &id, "until": {"$lte": now}},
                doc! {"$set": grant.clone()},
            )
            .return_document(ReturnDocument::Before);
        let takeover = match c.bounded("claim_item", take).await? {
            Some(before) => !text(&before, "token").is_empty(),
            None => {
                let mut fresh = grant;
                fresh.insert("_id", &id);
                match c
                    .within("claim_item", c.coll("items").insert_one(fresh))
                    .await?
                {
                    Ok(_) => false,
                    Err(e) if is_duplicate(&e) => return Ok(None),
                    Err(e) => return Err(c.failed("claim_item", &e).into()),
                }
            }
        };
        self.tally.claimed(&token, takeover);
        Ok(Some(Claim::new(target, work, token)))
    }

    pub(super) async fn renew_named(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let ttl = ms_of(ttl).max(1);
        self.on_item("renew_item", claim, |now| now.saturating_add(ttl), None)
            .await
            .map(drop)
    }

    /// Stretches the grant's deadline over the write while it is current (so nobody takes it
    /// over mid-write), writes the record, then puts the deadline back.
    pub(super) async fn put_named(&self, claim: &Claim, record: &Session) -> CoordResult<()> {
        let c = &self.conn;
        let window = ms_of(c.timeout) * 3 + 1000;
        let stretch = |now: i64| now.saturating_add(window);
        let before = self.on_item("put_fenced", claim, stretch, None).await?;
        let written = put_one(c, &self.codec, record, claim.token.as_str()).await;
        let until = int(&before, "until");
        let back = c.coll("items").update_one(
            doc! {"_id": key_of(&claim.target, &claim.work.key()), "token": claim.token.as_str()},
            doc! {"$set": {"until": until, "expiresAt": expires(until)}},
        );
        if let Err(e) = c.bounded("put_fenced", back).await {
            tracing::warn!(error = %e, "a fenced write's grant keeps its stretched deadline");
        }
        Ok(written?)
    }

    pub(super) async fn finish_named(&self, claim: &Claim, rest: Duration) -> CoordResult<()> {
        let rest = ms_of(rest);
        let until = |now: i64| now.saturating_add(rest);
        self.on_item("finish_item", claim, until, Some("")).await?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// An upsert of the hold that matches only a lapsed one: a current hold makes the upsert
    /// collide on `_id` (or match nothing), so exactly one of concurrent callers gets it.
    pub(super) async fn take_hold(&self, target: &str, session: &str, ttl: Duration) -> MaybeHold {
        let c = &self.conn;
        let now = c.now().await?;
        let token = self.token();
        let until = now.saturating_add(ms_of(ttl).max(1));
        let take = c
            .coll("holds")
            .find_one_and_update(
                doc! {"_id": Self::hold_id(target, session), "until": {"$lte": now}},
                doc! {"$set": {
                    "target": target,
                    "token": token.as_str(),
                    "until": until,
                    "expiresAt": expires(until),
                }},
            )
            .upsert(true)
            .return_document(ReturnDocument::After);
        match c.within("hold", take).await? {
            Ok(Some(d)) if text(&d, "token") == token.as_str() => Ok(Some(Hold {
                target: target.to_string(),
                session: session.to_string(),
                token,
            })),
            Ok(_) => Ok(None),
            Err(e) if is_duplicate(&e) => Ok(None),
            Err(e) => Err(c.failed("hold", &e).into()),
        }
    }

    /// The target's current holds, in one query (`target`, deadline ahead of now).
    pub(super) async fn list_holds(&self, target: &str) -> CoordResult<Vec<String>> {
        let c = &self.conn;
        let now = c.now().await?;
        let docs = c
            .all(
                "holds",
                "holds",
                doc! {"target": target, "until": {"$gt": now}},
                doc! {"_id": 1},
            )
            .await?;
        let prefix = format!("{target}\0");
        Ok(docs
            .iter()
            .filter_map(|d| text(d, "_id").strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    pub(super) async fn extend_hold(&self, hold: &Hold, ttl: Duration) -> CoordResult<()> {
        let c = &self.conn;
        let now = c.now().await?;
        let until = now.saturating_add(ms_of(ttl).max(1));
        let r = c
            .bounded(
                "renew_hold",
                c.coll("holds").update_one(
                    doc! {
                        "_id": Self::hold_id(&hold.target, &hold.session),
                        "token": hold.token.as_str(),
                        "until": {"$gt": now},
                    },
                    doc! {"$set": {"until": until, "expiresAt": expires(until)}},
                ),
            )
            .await?;
        if r.matched_count == 1 {
            Ok(())
        } else {
            Err(CoordError::LeaseLost {
                what: format!("{}/{}", hold.target, hold.session),
            })
        }
    }

    pub(super) async fn end_hold(&self, hold: &Hold) -> CoordResult<bool> {
        let c = &self.conn;
        let now = c.now().await?;
        let r = c
            .bounded(
                "release_hold",
                c.coll("holds").delete_one(doc! {
                    "_id": Self::hold_id(&hold.target, &hold.session),
                    "token": hold.token.as_str(),
                    "until": {"$gt": now},
                }),
            )
            .await?;
        Ok(r.deleted_count == 1)
    }

    pub(super) async fn hold_current(&self, target: &str, session: &str) -> CoordResult<bool> {
        let c = &self.conn;
        let now = c.now().await?;
        let found = c
            .bounded(
                "is_held",
                c.coll("holds")
                    .find_one(doc! {"_id": Self::hold_id(target, session), "until": {"$gt": now}}),
            )
            .await?;
        Ok(found.is_some())
    }
}
