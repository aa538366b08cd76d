//! [`LocalCoordination`]: [`Coordination`] inside one daemon (the sled and memory backends).
//! Work queues, holds and usage counters are maps behind their own locks, never held across an
//! await; deadlines are `tokio::time::Instant`s, so tests drive them with paused time.
//!
//! A commit is fenced without holding a lock over the record write: the claim is first marked
//! as committing (reap and a second commit leave it alone), the record is written, then the
//! item is removed; if the write fails, the mark is lifted and the claim is the caller's again.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

use super::{
    Claim, CoordCounters, CoordError, CoordResult, Coordination, Hold, Lapsed, MaybeClaim,
    MaybeHold, NodeInfo, Pending, Reaped, Tally, Token, Usage, Work,
};
use crate::session::Session;
use crate::store::Store;

/// In-process coordination for a single daemon.
pub struct LocalCoordination {
    /// Name carried by tokens (`local:<pid>` unless given).
    holder: String,
    /// Where commits write their records: the backend's record store.
    records: Arc<dyn Store>,
    /// Every target's work queue.
    lanes: Mutex<HashMap<String, Lane>>,
    /// Holds by (target, session).
    holds: Mutex<HashMap<(String, String), Granted>>,
    /// Named work items ([`Coordination::claim_item`]) by (target, item key).
    items: Mutex<HashMap<(String, String), Item>>,
    /// Usage counters by (target, session).
    usage: Mutex<HashMap<(String, String), Usage>>,
    /// Source of token counters, shared by claims and holds.
    fence: AtomicU64,
    /// What this daemon's coordination did ([`Coordination::counters`]).
    tally: Tally,
    /// The last heartbeat: when, and the counters it published.
    beat: Mutex<Option<(Instant, CoordCounters)>>,
}

/// One target's work: queued, in flight, and how often each item's claim lapsed.
#[derive(Default)]
struct Lane {
    /// Items waiting, in no particular order (claim picks the earliest due).
    queued: Vec<Queued>,
    /// Claimed items by key.
    in_flight: HashMap<String, InFlight>,
    /// Lapses per item key, cleared by commit and abandon.
    attempts: HashMap<String, u32>,
    /// Next [`Work::Warm`] sequence number.
    next_warm: u64,
    /// Order of queueing, the tie-break between items due at the same time.
    next_order: u64,
}

/// A queued item.
struct Queued {
    /// The item.
    work: Work,
    /// When it may be claimed.
    due: Instant,
    /// Order of queueing.
    order: u64,
}

/// A claimed item.
struct InFlight {
    /// The item.
    work: Work,
    /// The current grant.
    token: Token,
    /// When the claim lapses unless renewed.
    deadline: Instant,
    /// A commit of this claim is writing its record: reap and other commits keep off.
    committing: bool,
}

/// A current grant of a hold.
struct Granted {
    /// The grant.
    token: Token,
    /// When the hold lapses unless renewed.
    deadline: Instant,
}

/// A named work item's grant ([`Coordination::claim_item`]).
struct Item {
    /// The current grant; `None` while the item rests after it was finished.
    token: Option<Token>,
    /// When the grant lapses (or the rest ends) unless renewed.
    deadline: Instant,
    /// A fenced write of this grant is under way: it is current until the write ends.
    writing: bool,
}

/// Named items kept before lapsed and rested ones are swept out.
const ITEMS_SWEEP_AT: usize = 1024;

/// Locks `m`; a panic while it was held leaves the maps consistent per entry.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalCoordination {
    /// Coordination whose commits write to `records`, with tokens naming this process.
    pub fn new(records: Arc<dyn Store>) -> Self {
        Self::with_holder(records, format!("local:{}", std::process::id()))
    }

    /// As [`LocalCoordination::new`], with tokens naming `holder`.
    pub fn with_holder(records: Arc<dyn Store>, holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            records,
            lanes: Mutex::default(),
            holds: Mutex::default(),
            items: Mutex::default(),
            usage: Mutex::default(),
            fence: AtomicU64::new(0),
            tally: Tally::default(),
            beat: Mutex::default(),
        }
    }

    /// A new grant: the next counter, a random nonce, this holder.
    fn token(&self) -> Token {
        Token::mint(&self.fence, &self.holder)
    }

    /// Runs `f` on the in-flight entry of `claim` when its grant is current (same token, not
    /// lapsed, not committing); [`CoordError::LeaseLost`] otherwise.
    fn with_current<T>(
        &self,
        claim: &Claim,
        f: impl FnOnce(&mut Lane, String) -> T,
    ) -> CoordResult<T> {
        let now = Instant::now();
        let key = claim.work.key();
        let mut lanes = lock(&self.lanes);
        let lane = lanes.get_mut(&claim.target);
        let current = lane.as_ref().is_some_and(|l| {
            l.in_flight
                .get(&key)
                .is_some_and(|f| f.token == claim.token && f.deadline > now && !f.committing)
        });
        match lane {
            Some(lane) if current => Ok(f(lane, key)),
            _ => {
                self.tally.lost(&claim.token);
                Err(CoordError::LeaseLost { what: claim.name() })
            }
        }
    }

    /// Runs `f` on the named item of `claim` when its grant is current (same token, not
    /// lapsed or writing); [`CoordError::LeaseLost`] otherwise.
    fn with_item<T>(&self, claim: &Claim, f: impl FnOnce(&mut Item) -> T) -> CoordResult<T> {
        let now = Instant::now();
        let mut items = lock(&self.items);
        match items.get_mut(&(claim.target.clone(), claim.work.key())) {
            Some(i) if i.token.as_ref() == Some(&claim.token) && i.deadline > now && !i.writing => {
                Ok(f(i))
            }
            _ => {
                drop(items);
                self.tally.lost(&claim.token);
                Err(CoordError::LeaseLost { what: claim.name() })
            }
        }
    }
}

impl Lane {
    /// Whether the item with this key is queued or in flight.
    fn has(&self, key: &str) -> bool {
        self.in_flight.contains_key(key) || self.queued.iter().any(|q| q.work.key() == key)
    }

    /// Queues `work`, due at `due`.
    fn push(&mut self, work: Work, due: Instant) {
        self.next_order += 1;
        self.queued.push(Queued {
            work,
            due,
            order: self.next_order,
        });
    }
}

// Not derived: the records store is not `Debug`, and the maps say little.
impl std::fmt::Debug for LocalCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCoordination")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Coordination for LocalCoordination {
    fn holder(&self) -> &str {
        &self.holder
    }

    /// `Ok(false)` when the same item is already queued or in flight: an item exists once.
    async fn enqueue(&self, target: &str, work: Work, delay: Duration) -> CoordResult<bool> {
        let mut lanes = lock(&self.lanes);
        let lane = lanes.entry(target.to_string()).or_default();
        if lane.has(&work.key()) {
            return Ok(false);
        }
        lane.push(work, Instant::now() + delay);
        Ok(true)
    }

    /// Counts `missing` against warms already queued or in flight, so repeated top-ups of a
    /// target that is still warming queue nothing more; new items take fresh `seq` numbers.
    async fn top_up(&self, target: &str, missing: usize) -> CoordResult<usize> {
        let now = Instant::now();
        let mut lanes = lock(&self.lanes);
        let lane = lanes.entry(target.to_string()).or_default();
        let is_warm = |w: &Work| matches!(w, Work::Warm { .. });
        let have = lane.queued.iter().filter(|q| is_warm(&q.work)).count()
            + lane.in_flight.values().filter(|f| is_warm(&f.work)).count();
        let add = missing.saturating_sub(have);
        for _ in 0..add {
            lane.next_warm += 1;
            let seq = lane.next_warm;
            lane.push(Work::Warm { seq }, now);
        }
        Ok(add)
    }

    /// Takes the earliest due item (ties in queueing order) and grants it for `ttl` under a
    /// fresh token. A claim of an item with lapsed attempts counts as a takeover.
    async fn claim(&self, target: &str, ttl: Duration) -> MaybeClaim {
        let now = Instant::now();
        let mut lanes = lock(&self.lanes);
        let Some(lane) = lanes.get_mut(target) else {
            return Ok(None);
        };
        let Some(i) = (lane.queued.iter().enumerate())
            .filter(|(_, q)| q.due <= now)
            .min_by_key(|(_, q)| (q.due, q.order))
            .map(|(i, _)| i)
        else {
            return Ok(None);
        };
        let work = lane.queued.swap_remove(i).work;
        let token = self.token();
        let takeover = lane.attempts.get(&work.key()).is_some_and(|&n| n > 0);
        self.tally.claimed(&token, takeover);
        lane.in_flight.insert(
            work.key(),
            InFlight {
                work: work.clone(),
                token: token.clone(),
                deadline: now + ttl,
                committing: false,
            },
        );
        Ok(Some(Claim {
            target: target.to_string(),
            work,
            token,
        }))
    }

    /// Extends a current grant to now + `ttl`; a lapsed one is not revived, reaped or not.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant is not current (see `with_current`).
    async fn renew(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let deadline = Instant::now() + ttl;
        self.with_current(claim, |lane, key| {
            if let Some(f) = lane.in_flight.get_mut(&key) {
                f.deadline = deadline;
            }
        })
    }

    /// Marks the grant committing under the lock, writes `record` with the lock released (the
    /// store is async), then removes the item. While marked, reap, renew and a second commit
    /// leave the entry alone, so the write cannot race a takeover.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] if the grant was not current; [`CoordError::Store`] if the
    /// write failed, after which the mark is lifted and the claim is still the caller's.
    async fn commit(&self, claim: &Claim, record: Option<&Session>) -> CoordResult<()> {
        self.with_current(claim, |lane, key| {
            if let Some(f) = lane.in_flight.get_mut(&key) {
                f.committing = true;
            }
        })?;
        let written = match record {
            Some(s) => self.records.put_session(s).await,
            None => Ok(()),
        };
        let mut lanes = lock(&self.lanes);
        let key = claim.work.key();
        let lane = lanes.get_mut(&claim.target);
        match (written, lane) {
            (Ok(()), Some(lane)) => {
                lane.in_flight.remove(&key);
                lane.attempts.remove(&key);
                self.tally.finished(&claim.token);
                Ok(())
            }
            // Unreachable while marked committing (nothing else removes the lane or entry);
            // the record is written, so the commit stands.
            (Ok(()), None) => Ok(()),
            (Err(e), lane) => {
                if let Some(f) = lane.and_then(|l| l.in_flight.get_mut(&key)) {
                    f.committing = false;
                }
                Err(CoordError::Store(e))
            }
        }
    }

    /// Ends a current grant: requeued due `retry_after` from now (its attempt count kept), or
    /// dropped with its attempts forgotten when `retry_after` is `None`.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant is not current.
    async fn abandon(&self, claim: &Claim, retry_after: Option<Duration>) -> CoordResult<()> {
        let now = Instant::now();
        self.with_current(claim, |lane, key| {
            if let Some(f) = lane.in_flight.remove(&key) {
                match retry_after {
                    Some(d) => lane.push(f.work, now + d),
                    None => {
                        lane.attempts.remove(&key);
                    }
                }
            }
        })?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// Takes back every lapsed grant not marked committing, counting one attempt per lapse:
    /// under `max_attempts` it is requeued due now, at the limit it is dead and its count
    /// forgotten. All lanes are walked under one lock, so it is atomic in this daemon.
    async fn reap(&self, max_attempts: u32) -> CoordResult<Reaped> {
        let now = Instant::now();
        let mut reaped = Reaped::default();
        let mut tokens = Vec::new();
        let mut lanes = lock(&self.lanes);
        for (target, lane) in lanes.iter_mut() {
            let lapsed: Vec<String> = (lane.in_flight.iter())
                .filter(|(_, f)| f.deadline <= now && !f.committing)
                .map(|(k, _)| k.clone())
                .collect();
            for key in lapsed {
                let Some(f) = lane.in_flight.remove(&key) else {
                    continue;
                };
                tokens.push(f.token.clone());
                let attempts = lane.attempts.entry(key.clone()).or_insert(0);
                *attempts += 1;
                let entry = Lapsed {
                    target: target.clone(),
                    work: f.work.clone(),
                    attempts: *attempts,
                };
                if *attempts < max_attempts {
                    lane.push(f.work, now);
                    reaped.requeued.push(entry);
                } else {
                    lane.attempts.remove(&key);
                    reaped.dead.push(entry);
                }
            }
        }
        drop(lanes);
        self.tally
            .reaped(&tokens, reaped.requeued.len(), reaped.dead.len());
        Ok(reaped)
    }

    async fn pending(&self, target: &str) -> CoordResult<Pending> {
        Ok(lock(&self.lanes)
            .get(target)
            .map(|l| Pending {
                queued: l.queued.len(),
                in_flight: l.in_flight.len(),
            })
            .unwrap_or_default())
    }

    /// Grants the hold unless an unexpired one exists; an expired grant is simply replaced,
    /// so a holder that died frees the session after `ttl` without any reaping.
    async fn holds(&self, target: &str) -> CoordResult<Vec<String>> {
        let now = Instant::now();
        Ok(lock(&self.holds)
            .iter()
            .filter(|((t, _), g)| t == target && g.deadline > now)
            .map(|((_, s), _)| s.clone())
            .collect())
    }

    /// Grants the item unless a grant of it is current, writing, or resting; sweeps lapsed
    /// entries out once there are many.
    async fn claim_item(&self, target: &str, work: &Work, ttl: Duration) -> MaybeClaim {
        let now = Instant::now();
        let mut items = lock(&self.items);
        if items.len() >= ITEMS_SWEEP_AT {
            items.retain(|_, i| i.deadline > now || i.writing);
        }
        let key = (target.to_string(), work.key());
        let takeover = match items.get(&key) {
            Some(i) if i.deadline > now || i.writing => return Ok(None),
            Some(i) => i.token.is_some(),
            None => false,
        };
        let token = self.token();
        self.tally.claimed(&token, takeover);
        items.insert(
            key,
            Item {
                token: Some(token.clone()),
                deadline: now + ttl,
                writing: false,
            },
        );
        Ok(Some(Claim::new(target, work, token)))
    }

    async fn renew_item(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let deadline = Instant::now() + ttl;
        self.with_item(claim, |i| i.deadline = deadline)
    }

    /// Marks the grant writing under the lock (it stays current however long the write
    /// takes), writes with the lock released, then lifts the mark.
    async fn put_fenced(&self, claim: &Claim, record: &Session) -> CoordResult<()> {
        self.with_item(claim, |i| i.writing = true)?;
        let written = self.records.put_session(record).await;
        let key = (claim.target.clone(), claim.work.key());
        if let Some(i) = lock(&self.items).get_mut(&key) {
            i.writing = false;
        }
        Ok(written?)
    }

    async fn finish_item(&self, claim: &Claim, rest: Duration) -> CoordResult<()> {
        let until = Instant::now() + rest;
        self.with_item(claim, |i| {
            i.token = None;
            i.deadline = until;
        })?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    async fn hold(&self, target: &str, session: &str, ttl: Duration) -> MaybeHold {
        let now = Instant::now();
        let mut holds = lock(&self.holds);
        let key = (target.to_string(), session.to_string());
        if holds.get(&key).is_some_and(|g| g.deadline > now) {
            return Ok(None);
        }
        let token = self.token();
        holds.insert(
            key,
            Granted {
                token: token.clone(),
                deadline: now + ttl,
            },
        );
        Ok(Some(Hold {
            target: target.to_string(),
            session: session.to_string(),
            token,
        }))
    }

    /// # Errors
    /// [`CoordError::LeaseLost`] if the hold expired or is now another grant's.
    async fn renew_hold(&self, hold: &Hold, ttl: Duration) -> CoordResult<()> {
        let now = Instant::now();
        let mut holds = lock(&self.holds);
        let key = (hold.target.clone(), hold.session.clone());
        match holds.get_mut(&key) {
            Some(g) if g.token == hold.token && g.deadline > now => {
                g.deadline = now + ttl;
                Ok(())
            }
            _ => Err(CoordError::LeaseLost {
                what: format!("{}/{}", hold.target, hold.session),
            }),
        }
    }

    /// Removes the entry only if it is still this grant (even lapsed, to tidy it up); returns
    /// whether the hold was current, i.e. no one could have taken the session meanwhile.
    async fn release_hold(&self, hold: &Hold) -> CoordResult<bool> {
        let now = Instant::now();
        let mut holds = lock(&self.holds);
        let key = (hold.target.clone(), hold.session.clone());
        let current = holds
            .get(&key)
            .is_some_and(|g| g.token == hold.token && g.deadline > now);
        if holds.get(&key).is_some_and(|g| g.token == hold.token) {
            holds.remove(&key);
        }
        Ok(current)
    }

    async fn is_held(&self, target: &str, session: &str) -> CoordResult<bool> {
        let now = Instant::now();
        let key = (target.to_string(), session.to_string());
        Ok(lock(&self.holds)
            .get(&key)
            .is_some_and(|g| g.deadline > now))
    }

    /// Sets the counters only if the session has none yet; `false` leaves existing counts.
    async fn seed_usage(&self, target: &str, session: &str, base: Usage) -> CoordResult<bool> {
        use std::collections::hash_map::Entry;
        let key = (target.to_string(), session.to_string());
        match lock(&self.usage).entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(base);
                Ok(true)
            }
            Entry::Occupied(_) => Ok(false),
        }
    }

    async fn add_usage(&self, target: &str, session: &str, delta: Usage) -> CoordResult<Usage> {
        let key = (target.to_string(), session.to_string());
        let mut usage = lock(&self.usage);
        let counters = usage.entry(key).or_default();
        *counters += delta;
        Ok(*counters)
    }

    /// `None` for a session never seeded or counted (or forgotten).
    async fn usage(&self, target: &str, session: &str) -> CoordResult<Option<Usage>> {
        let key = (target.to_string(), session.to_string());
        Ok(lock(&self.usage).get(&key).copied())
    }

    async fn forget(&self, target: &str, session: &str) -> CoordResult<()> {
        let key = (target.to_string(), session.to_string());
        lock(&self.usage).remove(&key);
        lock(&self.holds).remove(&key);
        Ok(())
    }

    fn counters(&self) -> CoordCounters {
        self.tally.snapshot()
    }

    async fn heartbeat(&self, _forget_after: Duration) -> CoordResult<()> {
        // Only this daemon uses an in-process backend: nobody else to forget.
        *lock(&self.beat) = Some((Instant::now(), self.counters()));
        Ok(())
    }

    async fn nodes(&self, seen_within: Duration) -> CoordResult<Vec<NodeInfo>> {
        let beat = *lock(&self.beat);
        Ok(beat
            .map(|(at, counters)| (at.elapsed(), counters))
            .filter(|(ago, _)| *ago <= seen_within)
            .map(|(last_beat_ago, counters)| NodeInfo {
                node: self.holder.clone(),
                last_beat_ago,
                counters,
            })
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const TTL: Duration = Duration::from_secs(30);

    fn coord(holder: &str) -> (Arc<MemoryStore>, LocalCoordination) {
        let records = Arc::new(MemoryStore::new());
        let c = LocalCoordination::with_holder(records.clone(), holder);
        (records, c)
    }

    fn refresh(id: &str) -> Work {
        Work::Refresh {
            session: id.to_string(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_lapses_after_its_ttl_unless_renewed() {
        let (_, c) = coord("a");
        c.enqueue("t", refresh("s1"), Duration::ZERO).await.unwrap();
        let claim = c.claim("t", TTL).await.unwrap().unwrap();
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        c.renew(&claim, TTL).await.unwrap();
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        // Still current: renewed 29 s ago with a 30 s ttl.
        assert!(c.reap(5).await.unwrap().requeued.is_empty());
        c.renew(&claim, TTL).await.unwrap();
        tokio::time::advance(TTL).await;
        assert!(matches!(
            c.renew(&claim, TTL).await,
            Err(CoordError::LeaseLost { .. })
        ));
        let reaped = c.reap(5).await.unwrap();
        assert_eq!(reaped.requeued.len(), 1);
        assert_eq!(reaped.requeued[0].attempts, 1);
        let again = c.claim("t", TTL).await.unwrap().unwrap();
        assert_eq!(again.work, claim.work);
        assert_ne!(again.token, claim.token);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_claim_cannot_commit_even_before_it_is_reaped() {
        let (records, c) = coord("a");
        c.enqueue("t", refresh("s1"), Duration::ZERO).await.unwrap();
        let claim = c.claim("t", TTL).await.unwrap().unwrap();
        tokio::time::advance(TTL).await;
        let mut s: Session =
            serde_json::from_str(include_str!("../../../tests/fixtures/session_v1.json")).unwrap();
        s.id = "s1".into();
        assert!(matches!(
            c.commit(&claim, Some(&s)).await,
            Err(CoordError::LeaseLost { .. })
        ));
        assert!(Store::get_session(records.as_ref(), "s1")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn queued_items_are_claimed_when_due_in_due_then_queue_order() {
        let (_, c) = coord("a");
        c.enqueue("t", refresh("late"), Duration::from_secs(10))
            .await
            .unwrap();
        c.enqueue("t", refresh("first"), Duration::ZERO)
            .await
            .unwrap();
        c.enqueue("t", refresh("second"), Duration::ZERO)
            .await
            .unwrap();
        assert!(!c
            .enqueue("t", refresh("first"), Duration::ZERO)
            .await
            .unwrap());
        let a = c.claim("t", TTL).await.unwrap().unwrap();
        let b = c.claim("t", TTL).await.unwrap().unwrap();
        assert_eq!((a.work, b.work), (refresh("first"), refresh("second")));
        assert!(c.claim("t", TTL).await.unwrap().is_none(), "not due yet");
        // In flight: the same item is not queued twice.
        assert!(!c
            .enqueue("t", refresh("first"), Duration::ZERO)
            .await
            .unwrap());
        tokio::time::advance(Duration::from_secs(10)).await;
        let late = c.claim("t", TTL).await.unwrap().unwrap();
        assert_eq!(late.work, refresh("late"));
        assert!(c.claim("other", TTL).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn reap_dead_letters_after_max_attempts() {
        let (_, c) = coord("a");
        c.enqueue("t", refresh("poison"), Duration::ZERO)
            .await
            .unwrap();
        for attempt in 1..=3 {
            let claim = c.claim("t", TTL).await.unwrap().unwrap();
            assert_eq!(claim.work, refresh("poison"));
            tokio::time::advance(TTL).await;
            let reaped = c.reap(3).await.unwrap();
            if attempt < 3 {
                assert_eq!(reaped.requeued.len(), 1, "attempt {attempt}");
                assert_eq!(reaped.requeued[0].attempts, attempt);
            } else {
                assert!(reaped.requeued.is_empty());
                assert_eq!(reaped.dead.len(), 1);
                assert_eq!(reaped.dead[0].attempts, 3);
            }
        }
        assert!(c.claim("t", TTL).await.unwrap().is_none());
        assert_eq!(c.pending("t").await.unwrap(), Pending::default());
    }

    #[tokio::test(start_paused = true)]
    async fn abandon_requeues_after_a_delay_or_drops() {
        let (_, c) = coord("a");
        c.enqueue("t", refresh("x"), Duration::ZERO).await.unwrap();
        let claim = c.claim("t", TTL).await.unwrap().unwrap();
        c.abandon(&claim, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(matches!(
            c.abandon(&claim, None).await,
            Err(CoordError::LeaseLost { .. })
        ));
        assert!(c.claim("t", TTL).await.unwrap().is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        let claim = c.claim("t", TTL).await.unwrap().unwrap();
        c.abandon(&claim, None).await.unwrap();
        assert_eq!(c.pending("t").await.unwrap(), Pending::default());
    }

    #[tokio::test(start_paused = true)]
    async fn top_up_counts_queued_and_in_flight_warms() {
        let (_, c) = coord("a");
        assert_eq!(c.top_up("t", 3).await.unwrap(), 3);
        assert_eq!(c.top_up("t", 3).await.unwrap(), 0);
        let claim = c.claim("t", TTL).await.unwrap().unwrap();
        assert!(matches!(claim.work, Work::Warm { .. }));
        // Refresh items do not count as new sessions.
        c.enqueue("t", refresh("s"), Duration::ZERO).await.unwrap();
        assert_eq!(c.top_up("t", 4).await.unwrap(), 1);
        c.commit(&claim, None).await.unwrap();
        assert_eq!(c.top_up("t", 4).await.unwrap(), 1);
        let p = c.pending("t").await.unwrap();
        assert_eq!((p.queued, p.in_flight), (5, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn holds_are_exclusive_until_they_lapse_or_are_released() {
        let (_, c) = coord("a");
        let h = c.hold("t", "s", TTL).await.unwrap().unwrap();
        assert!(c.hold("t", "s", TTL).await.unwrap().is_none());
        assert!(c.is_held("t", "s").await.unwrap());
        assert!(!c.is_held("u", "s").await.unwrap(), "holds are per target");
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        c.renew_hold(&h, TTL).await.unwrap();
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert!(c.is_held("t", "s").await.unwrap());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!c.is_held("t", "s").await.unwrap());
        assert!(c.renew_hold(&h, TTL).await.is_err());
        let h2 = c.hold("t", "s", TTL).await.unwrap().unwrap();
        // The lapsed grant releases nothing of its successor's.
        assert!(!c.release_hold(&h).await.unwrap());
        assert!(c.is_held("t", "s").await.unwrap());
        assert!(c.release_hold(&h2).await.unwrap());
        assert!(!c.is_held("t", "s").await.unwrap());
    }

    #[tokio::test]
    async fn usage_is_seeded_once_added_and_forgotten() {
        let (_, c) = coord("a");
        let base = Usage {
            uses: 10,
            successes: 4,
            failures: 1,
        };
        assert!(c.seed_usage("t", "s", base).await.unwrap());
        assert!(!c.seed_usage("t", "s", Usage::default()).await.unwrap());
        let one_use = Usage {
            uses: 1,
            ..Usage::default()
        };
        let total = c.add_usage("t", "s", one_use).await.unwrap();
        assert_eq!(total.uses, 11);
        assert_eq!(c.usage("t", "s").await.unwrap(), Some(total));
        c.forget("t", "s").await.unwrap();
        assert_eq!(c.usage("t", "s").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_name_the_holder_and_differ_per_grant() {
        let (_, c) = coord("node-1");
        assert_eq!(c.holder(), "node-1");
        let a = c.hold("t", "a", TTL).await.unwrap().unwrap();
        let b = c.hold("t", "b", TTL).await.unwrap().unwrap();
        assert_ne!(a.token, b.token);
        assert!(a.token.as_str().ends_with(":node-1"), "{}", a.token);
    }
}
