//! [`Coordination`]: the pool's shared state, the store's second concern beside record storage
//! ([`super::Store`]): claims of warm work (a lease with a fencing token, renewed while
//! working, taken over when it lapses), scrapers' exclusive holds on sessions, and usage
//! counters. One daemon keeps them in process ([`LocalCoordination`], with sled or memory); a
//! shared backend keeps them where every daemon sees them, so N daemons are one pool.
//!
//! The contract is shaped after the lease protocol in the scale-out note (BullMQ's lock plus
//! stalled-job checker, with a fenced commit): every method is one atomic step, so a Redis
//! implementation is one Lua script per method over one target's keys (hash tag
//! `{t:<target>}`); times are durations, never instants, so such a backend measures them on
//! its own clock. The guarantees (tests/store_contract.rs checks them on every backend):
//!
//! - a work item is claimed by at most one holder at a time ([`Coordination::claim`]);
//! - a claim not renewed within its ttl is lost: renew and commit are refused
//!   ([`CoordError::LeaseLost`]), and [`Coordination::reap`] puts the item back for another
//!   holder (or dead-letters it after `max_attempts` lapses);
//! - a commit is fenced: it writes its record only while its claim is current, so a holder that
//!   lost its lease never overwrites its successor's work;
//! - a hold on a session is exclusive until it lapses or is released;
//! - usage increments are never lost, however many run at once.
//!
//! Beside the contract, each daemon counts what its coordination did ([`CoordCounters`]:
//! claims held, takeovers, lease losses, dead-lettered items) and beats a heartbeat that
//! publishes them ([`Coordination::heartbeat`]), so any daemon can list the cluster
//! ([`Coordination::nodes`]). The heartbeat is for operators and metrics only: nothing decides
//! on it (a lease lapsing is what hands a dead daemon's work over).

mod counters;
mod local;

pub use self::counters::CoordCounters;
pub(crate) use self::counters::Tally;
pub use self::local::LocalCoordination;

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

use super::StoreError;
use crate::session::Session;

/// What a [`Coordination`] call answers.
pub type CoordResult<T> = Result<T, CoordError>;

/// A claim granted, or `None` when there was nothing to grant (held elsewhere, resting, or
/// nothing queued).
pub type MaybeClaim = CoordResult<Option<Claim>>;

/// A hold granted, or `None` when another daemon holds the session.
pub type MaybeHold = CoordResult<Option<Hold>>;

/// Errors of [`Coordination`].
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The claim or hold is no longer the caller's: it lapsed (not renewed within its ttl), or
    /// it was reaped and taken over. The caller must stop: write nothing, close what it opened.
    #[error("lease on {what} lost: it lapsed or was taken over")]
    LeaseLost {
        /// The work item (`<target>/<key>`) or held session (`<target>/<id>`).
        what: String,
    },
    /// The store failed: writing a committed record (the claim is still the caller's), or,
    /// for a shared backend, reaching it at all ([`StoreError::Unavailable`]). A shared
    /// backend's commit that timed out may have been applied: a following renew then reports
    /// [`CoordError::LeaseLost`].
    #[error("store call failed")]
    Store(#[from] StoreError),
}

/// What a claim of warm work is for: one item of a target's work queue. Two items with the
/// same [`Work::key`] are the same item (queued or in flight once at a time).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Warm a new session (top-up); `seq` tells the target's new-session items apart.
    Warm {
        /// Per-target sequence number given by [`Coordination::top_up`].
        seq: u64,
    },
    /// Recapture a stored session's cookies in a fresh context.
    Refresh {
        /// The session's id.
        session: String,
    },
    /// Check that a stored session still passes the target's checks.
    Validate {
        /// The session's id.
        session: String,
    },
    /// Warm a replacement for a session, then retire it (make-before-break).
    Rotate {
        /// The session being replaced.
        session: String,
    },
    /// Keep an account signed in.
    KeepAlive {
        /// The account's name.
        account: String,
    },
}

impl Work {
    /// The item's stable key, unique within its target: `warm:<seq>`, `refresh:<id>`,
    /// `validate:<id>`, `rotate:<id>`, `keepalive:<account>` (a shared backend's member name).
    pub fn key(&self) -> String {
        match self {
            Work::Warm { seq } => format!("warm:{seq}"),
            Work::Refresh { session } => format!("refresh:{session}"),
            Work::Validate { session } => format!("validate:{session}"),
            Work::Rotate { session } => format!("rotate:{session}"),
            Work::KeepAlive { account } => format!("keepalive:{account}"),
        }
    }

    /// The item a [`Work::key`] names, if it is one.
    pub fn from_key(key: &str) -> Option<Work> {
        let (kind, rest) = key.split_once(':')?;
        let owned = rest.to_string();
        match kind {
            "warm" => rest.parse().ok().map(|seq| Work::Warm { seq }),
            "refresh" => Some(Work::Refresh { session: owned }),
            "validate" => Some(Work::Validate { session: owned }),
            "rotate" => Some(Work::Rotate { session: owned }),
            "keepalive" => Some(Work::KeepAlive { account: owned }),
            _ => None,
        }
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A fencing token: who holds a claim or hold, and which grant of it. Opaque; two tokens are
/// the same grant only when equal. Built as `<counter>:<nonce>:<holder>` so it stays unique
/// even if a shared backend's counter steps back after a failover.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A token from its text (as a backend stored it).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A new grant of `holder`: the next value of `counter`, a random nonce, the holder.
    pub(crate) fn mint(counter: &std::sync::atomic::AtomicU64, holder: &str) -> Self {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Self(format!("{n}:{:016x}:{holder}", rand::random::<u64>()))
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A granted claim of one work item: proof the caller may do it and commit its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The target whose queue the item came from.
    pub target: String,
    /// What to do.
    pub work: Work,
    /// The grant; renew, commit and abandon are refused once it is not current.
    pub token: Token,
}

impl Claim {
    /// The claim a backend granted on item `item` of `target` with `token`; `None` (and a
    /// warning) when `item` is not a [`Work::key`] this build knows: the claim then lapses and
    /// a reap puts the item back for the build that queued it.
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    pub(crate) fn granted(target: &str, item: &str, token: Token) -> Option<Self> {
        let Some(work) = Work::from_key(item) else {
            tracing::warn!(
                item = %item,
                target,
                "claimed a work item this build does not know; it lapses and is requeued"
            );
            return None;
        };
        Some(Self {
            target: target.to_string(),
            work,
            token,
        })
    }

    /// The claim of `work` of `target` under `token`.
    pub(crate) fn new(target: &str, work: &Work, token: Token) -> Self {
        Self {
            target: target.to_string(),
            work: work.clone(),
            token,
        }
    }

    /// `<target>/<key>`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.target, self.work.key())
    }
}

/// A scraper's exclusive hold on one session (`?lease=`), granted by [`Coordination::hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The session's target.
    pub target: String,
    /// The held session.
    pub session: String,
    /// The grant; renew and release act only while it is current.
    pub token: Token,
}

/// Usage counters of one session: what scrapers did with it, summed over every daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Times the session was handed out.
    pub uses: u64,
    /// Reported successes.
    pub successes: u64,
    /// Reported failures.
    pub failures: u64,
}

impl Usage {
    /// Takes these shared totals into a record's health, never below what it counts already
    /// (a record flushed after some reports may be ahead of totals read before them);
    /// whether anything changed.
    pub fn fold_into(self, h: &mut crate::session::Health) -> bool {
        let before = (h.uses, h.successes, h.failures);
        h.uses = h.uses.max(self.uses);
        h.successes = h.successes.max(self.successes);
        h.failures = h.failures.max(self.failures);
        (h.uses, h.successes, h.failures) != before
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, d: Usage) {
        self.uses += d.uses;
        self.successes += d.successes;
        self.failures += d.failures;
    }
}

/// A claim [`Coordination::reap`] found lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapsed {
    /// The target of the item.
    pub target: String,
    /// The item.
    pub work: Work,
    /// How many of its claims have lapsed so far, this one included.
    pub attempts: u32,
}

/// What one [`Coordination::reap`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Lapsed claims put back in their queue, claimable at once.
    pub requeued: Vec<Lapsed>,
    /// Lapsed claims dropped after `max_attempts` lapses (a poison item: report it).
    pub dead: Vec<Lapsed>,
}

/// How much work a target has queued and in flight, for top-up decisions and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Items waiting to be claimed (due or not yet).
    pub queued: usize,
    /// Items claimed and not yet committed, abandoned or reaped.
    pub in_flight: usize,
}

/// A daemon seen by [`Coordination::nodes`]: its name, how long ago it last beat (by the
/// backend's clock) and the counters it published with that beat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The daemon's name ([`Coordination::holder`]: `cluster.node`, or `hostname:pid`).
    pub node: String,
    /// Time since its last heartbeat, measured on the backend's clock (Redis's), so daemons'
    /// clocks need not agree.
    pub last_beat_ago: std::time::Duration,
    /// Its counters as of that heartbeat.
    pub counters: CoordCounters,
}

/// The pool's shared state: work claims, holds and usage counters. Every method is atomic
/// with respect to every other call on the same backend, from any daemon.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// The name this daemon's tokens carry (`hostname:pid` or `cluster.node`).
    fn holder(&self) -> &str;

    /// Queues `work` for `target`, claimable after `delay`, unless the same item is already
    /// queued or in flight; `true` when queued.
    ///
    /// # Errors
    /// When the backend is unreachable (never for the in-process one).
    async fn enqueue(&self, target: &str, work: Work, delay: Duration) -> CoordResult<bool>;

    /// Makes sure at least `missing` new-session items ([`Work::Warm`]) of `target` are queued
    /// or in flight, counting and adding in one step so daemons calling it together never
    /// overshoot; returns how many were added.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn top_up(&self, target: &str, missing: usize) -> CoordResult<usize>;

    /// Claims the due item of `target` queued first (earliest due time, then order of
    /// queueing) for `ttl`; `None` when nothing is due.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn claim(&self, target: &str, ttl: Duration) -> MaybeClaim;

    /// Extends a current claim to `ttl` from now (call it every ttl/3 while working).
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim lapsed or was taken over: stop the work.
    async fn renew(&self, claim: &Claim, ttl: Duration) -> CoordResult<()>;

    /// Finishes a current claim: writes `record` (when given) to the backend's records and
    /// removes the item, as one step; a claim that is not current writes nothing.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim lapsed or was taken over (nothing written);
    /// [`CoordError::Store`] when writing the record failed (the claim stays the caller's).
    async fn commit(&self, claim: &Claim, record: Option<&Session>) -> CoordResult<()>;

    /// Gives a current claim up: the item is queued again, claimable after `retry_after`, or
    /// dropped with `None`. Does not count as a lapse.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim is no longer current.
    async fn abandon(&self, claim: &Claim, retry_after: Option<Duration>) -> CoordResult<()>;

    /// Takes back every lapsed claim of every target: each is queued again, due at once, or
    /// dropped once `max_attempts` of its claims have lapsed. Run by every daemon every few
    /// seconds.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn reap(&self, max_attempts: u32) -> CoordResult<Reaped>;

    /// How much work `target` has queued and in flight.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn pending(&self, target: &str) -> CoordResult<Pending>;

    // Named work: periodic work every daemon finds due on its own (refresh, validation,
    // rotation, account keep-alive) is not queued; the daemon that finds an item due claims
    // it by name, and the others, finding it claimed, leave it. The grant is renewed, fenced
    // and lost exactly as a queued claim is, but a lapsed one is not requeued: the next daemon
    // to find the item due takes it over.

    /// Claims item `work` of `target` by name for `ttl`. `None` while another grant of it is
    /// current, or rests after [`Coordination::finish_item`]; a lapsed grant (its holder died
    /// or stalled) is taken over, counted as a takeover.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn claim_item(&self, target: &str, work: &Work, ttl: Duration) -> MaybeClaim;

    /// Extends a current grant of [`Coordination::claim_item`] to `ttl` from now (call it every
    /// ttl/3 while working).
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant lapsed or was taken over: stop the work.
    async fn renew_item(&self, claim: &Claim, ttl: Duration) -> CoordResult<()>;

    /// Writes `record` only while the grant of [`Coordination::claim_item`] is current: the
    /// holder of a lapsed grant never overwrites what its successor did. The grant goes on.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant is not current (nothing written);
    /// [`CoordError::Store`] when the write failed (the grant is still the caller's).
    async fn put_fenced(&self, claim: &Claim, record: &Session) -> CoordResult<()>;

    /// Ends a current grant of [`Coordination::claim_item`]. The item then rests for `rest`,
    /// claimed by nobody, so that daemons which have not seen the work's result yet (their
    /// copy of the record still says it is due) do not do it again; then it is free.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the grant is not current.
    async fn finish_item(&self, claim: &Claim, rest: Duration) -> CoordResult<()>;

    /// Holds session `session` of `target` exclusively for `ttl`; `None` when it is held
    /// already (a hold that lapsed is free again).
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn hold(&self, target: &str, session: &str, ttl: Duration) -> MaybeHold;

    /// Extends a current hold to `ttl` from now.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the hold lapsed or was released.
    async fn renew_hold(&self, hold: &Hold, ttl: Duration) -> CoordResult<()>;

    /// Ends a hold early; `true` when it was still current.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn release_hold(&self, hold: &Hold) -> CoordResult<bool>;

    /// Whether the session is held now.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn is_held(&self, target: &str, session: &str) -> CoordResult<bool>;

    /// The sessions of `target` held now (by any daemon), in no particular order: what a
    /// daemon's resync asks so that it serves none of them to a caller without a lease. One
    /// step proportional to the number of holds, not of sessions. Default: none (a backend
    /// that shares holds between daemons overrides it).
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn holds(&self, target: &str) -> CoordResult<Vec<String>> {
        let _ = target;
        Ok(Vec::new())
    }

    /// Sets a session's counters to `base` unless it has counters already (the first daemon to
    /// load the record seeds them from its stored health); `true` when set.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn seed_usage(&self, target: &str, session: &str, base: Usage) -> CoordResult<bool>;

    /// Adds `delta` to a session's counters (from zero when it has none), atomically; returns
    /// the new totals.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn add_usage(&self, target: &str, session: &str, delta: Usage) -> CoordResult<Usage>;

    /// A session's counters, if it has any.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn usage(&self, target: &str, session: &str) -> CoordResult<Option<Usage>>;

    /// Drops a session's counters and hold (it was deleted or retired for good).
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn forget(&self, target: &str, session: &str) -> CoordResult<()>;

    // The three below have defaults so a wrapper (a test's fault injector) need not spell
    // them out; both backends override them, and a wrapper that should show the cluster
    // forwards them.

    /// This daemon's coordination counters now (no backend call). Default: all zero.
    fn counters(&self) -> CoordCounters {
        CoordCounters::default()
    }

    /// Records that this daemon ([`Coordination::holder`]) is alive now, with its
    /// [`Coordination::counters`], and forgets daemons silent for longer than `forget_after`.
    /// Call it every few seconds; [`Coordination::nodes`] lists who beat recently. Default:
    /// records nothing.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn heartbeat(&self, forget_after: Duration) -> CoordResult<()> {
        let _ = forget_after;
        Ok(())
    }

    /// The daemons whose last heartbeat is at most `seen_within` old, most recent first (this
    /// daemon included once it has beaten). The in-process backend knows only this daemon.
    /// Default: none.
    ///
    /// # Errors
    /// As [`Coordination::enqueue`].
    async fn nodes(&self, seen_within: Duration) -> CoordResult<Vec<NodeInfo>> {
        let _ = seen_within;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_keys_round_trip() {
        let all = [
            Work::Warm { seq: 7 },
            Work::Refresh {
                session: "a1".into(),
            },
            Work::Validate {
                session: "b2".into(),
            },
            Work::Rotate {
                session: "c3".into(),
            },
            Work::KeepAlive {
                account: "alice:x".into(),
            },
        ];
        for w in all {
            assert_eq!(Work::from_key(&w.key()), Some(w.clone()), "{w}");
        }
        assert_eq!(Work::from_key("warm:x"), None);
        assert_eq!(Work::from_key("nope:1"), None);
        assert_eq!(Work::from_key("warm"), None);
    }
}
