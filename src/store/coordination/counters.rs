//! What one daemon's coordination did, counted in process ([`Tally`]) and read as
//! [`CoordCounters`] for `/metrics`, the status output and the cluster view
//! ([`super::Coordination::heartbeat`] publishes them, [`super::Coordination::nodes`] reads
//! every daemon's). Both backends count the same way, from what their calls return, so the
//! numbers mean the same with sled, memory or Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Token;

/// One daemon's coordination counters: claims it holds now, and totals since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoordCounters {
    /// Claims granted to this daemon and not yet committed, abandoned, refused or reaped:
    /// the warm work it is doing now.
    pub claims_held: u64,
    /// Claims granted to this daemon since it started.
    pub claims: u64,
    /// Of those, claims of an item whose earlier claim lapsed and was reaped: work this daemon
    /// took over (from a daemon that died or stalled, or from itself).
    pub takeovers: u64,
    /// Claims of this daemon whose renew, commit or abandon was refused because the lease had
    /// lapsed or been taken over (counted once per claim).
    pub lease_losses: u64,
    /// Lapsed claims (of any daemon) this daemon's reaps put back in their queue.
    pub requeued: u64,
    /// Lapsed claims (of any daemon) this daemon's reaps dropped after `max_attempts` lapses.
    pub dead_lettered: u64,
}

impl CoordCounters {
    /// The counters in a fixed order with their names, for a backend that stores them as
    /// fields (Redis's node hash) and for `/metrics`.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("claims_held", self.claims_held),
            ("claims", self.claims),
            ("takeovers", self.takeovers),
            ("lease_losses", self.lease_losses),
            ("requeued", self.requeued),
            ("dead_lettered", self.dead_lettered),
        ]
    }

    /// Counters from `(name, value)` pairs as [`CoordCounters::fields`] names them; unknown
    /// names are ignored and missing ones are zero.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut c = Self::default();
        for (name, v) in fields {
            match name {
                "claims_held" => c.claims_held = v,
                "claims" => c.claims = v,
                "takeovers" => c.takeovers = v,
                "lease_losses" => c.lease_losses = v,
                "requeued" => c.requeued = v,
                "dead_lettered" => c.dead_lettered = v,
                _ => {}
            }
        }
        c
    }
}

/// Most tokens remembered as "reaped but not yet refused" (a lapsed claim whose holder never
/// calls again would otherwise be remembered forever).
const LAPSED_CAP: usize = 4096;

/// The in-process tally behind [`CoordCounters`]. Claims held are tracked by token, so a claim
/// refused twice (renew, then abandon) counts as one lease loss, and a claim this daemon's own
/// reap took back stops counting as held.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Tokens of this daemon's current claims, and of its claims reaped but not yet refused.
    tokens: Mutex<Tokens>,
    /// Claims granted.
    claims: AtomicU64,
    /// Claims of items that had lapsed before.
    takeovers: AtomicU64,
    /// Claims refused (once each).
    lease_losses: AtomicU64,
    /// Lapsed claims requeued by this daemon's reaps.
    requeued: AtomicU64,
    /// Lapsed claims dropped by this daemon's reaps.
    dead_lettered: AtomicU64,
}

/// The token sets of a [`Tally`].
#[derive(Debug, Default)]
struct Tokens {
    /// Claims granted and not finished, refused or reaped.
    held: HashSet<Token>,
    /// This daemon's claims a reap took back, not yet refused to it.
    lapsed: HashSet<Token>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    /// A claim was granted; `takeover` when its item had lapsed before.
    pub(crate) fn claimed(&self, token: &Token, takeover: bool) {
        lock(&self.tokens).held.insert(token.clone());
        self.claims.fetch_add(1, Ordering::Relaxed);
        if takeover {
            self.takeovers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A claim was committed or abandoned: no longer held.
    pub(crate) fn finished(&self, token: &Token) {
        lock(&self.tokens).held.remove(token);
    }

    /// A renew, commit or abandon of a claim was refused: a lease loss, counted once per claim
    /// this daemon was granted.
    pub(crate) fn lost(&self, token: &Token) {
        let mut t = lock(&self.tokens);
        if t.held.remove(token) || t.lapsed.remove(token) {
            self.lease_losses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reap took back claims with these tokens (any daemon's), `requeued` of them put back
    /// in their queue and `dead` dropped.
    pub(crate) fn reaped<'a>(
        &self,
        tokens: impl IntoIterator<Item = &'a Token>,
        requeued: usize,
        dead: usize,
    ) {
        let mut t = lock(&self.tokens);
        for token in tokens {
            if t.held.remove(token) {
                if t.lapsed.len() >= LAPSED_CAP {
                    t.lapsed.clear();
                }
                t.lapsed.insert(token.clone());
            }
        }
        drop(t);
        self.requeued.fetch_add(requeued as u64, Ordering::Relaxed);
        self.dead_lettered.fetch_add(dead as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> CoordCounters {
        CoordCounters {
            claims_held: lock(&self.tokens).held.len() as u64,
            claims: self.claims.load(Ordering::Relaxed),
            takeovers: self.takeovers.load(Ordering::Relaxed),
            lease_losses: self.lease_losses.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_refused_twice_is_one_loss_and_a_reaped_one_is_not_held() {
        let t = Tally::default();
        let (a, b, c) = (
            Token::new("1:x:n"),
            Token::new("2:y:n"),
            Token::new("3:z:n"),
        );
        t.claimed(&a, false);
        t.claimed(&b, true);
        t.claimed(&c, false);
        assert_eq!(t.snapshot().claims_held, 3);
        t.lost(&a);
        t.lost(&a);
        t.finished(&b);
        // Another daemon's token in the reap changes nothing here but the totals.
        t.reaped([&c, &Token::new("9:q:other")], 1, 1);
        assert_eq!(t.snapshot().claims_held, 0);
        t.lost(&c);
        t.lost(&c);
        assert_eq!(
            t.snapshot(),
            CoordCounters {
                claims_held: 0,
                claims: 3,
                takeovers: 1,
                lease_losses: 2,
                requeued: 1,
                dead_lettered: 1,
            }
        );
    }

    #[test]
    fn fields_round_trip() {
        let c = CoordCounters {
            claims_held: 1,
            claims: 2,
            takeovers: 3,
            lease_losses: 4,
            requeued: 5,
            dead_lettered: 6,
        };
        assert_eq!(CoordCounters::from_fields(c.fields()), c);
        assert_eq!(
            CoordCounters::from_fields([("nope", 7)]),
            CoordCounters::default()
        );
    }
}
