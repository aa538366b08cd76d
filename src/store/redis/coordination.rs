//! [`RedisCoordination`]: [`Coordination`] shared by every daemon on one Redis, one Lua script
//! (or one command) per method, so each is atomic across daemons and uses Redis's clock.
//!
//! The lease protocol is the scale-out note's (§1.4): a target's queued items are a ZSET by due
//! time (`work`, ties in queueing order via `qseq`), claimed items a ZSET by lease deadline
//! (`inflight`) with their fence token in `owner`; a claim is current while its token is the
//! owner's and its deadline is ahead of Redis's clock, so renew and commit are refused the
//! moment it lapses, reaped or not. Tokens are `<INCR fence>:<random nonce>:<node>`: unique
//! even if the counter steps back after a failover. Holds are one key per held session with
//! its token and a `PX` expiry; usage counters are one hash per session, updated by
//! `HINCRBY`, so concurrent reports from any number of daemons all count.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use super::scripts::SESSION_ARGS;
use super::{Codec, Conn};
use crate::session::Session;
use crate::store::coordination::{
    Claim, CoordError, Coordination, Hold, Lapsed, Pending, Reaped, Token, Usage, Work,
};

/// Work claims, holds and usage counters in Redis.
pub struct RedisCoordination {
    /// The connection shared with the records.
    conn: Conn,
    /// Encodes the records commits write, as the records store does.
    codec: Arc<Codec>,
    /// The node name tokens carry.
    holder: String,
}

impl std::fmt::Debug for RedisCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordination")
            .field("holder", &self.holder)
            .field("location", &&*self.conn.location)
            .finish_non_exhaustive()
    }
}

/// Milliseconds of a duration for a script, at least 1 (Redis refuses a zero `PX`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A random nonce for a token.
fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The keys the queue scripts take, in their order: work, inflight, owner, attempts, qseq,
/// qctr.
struct Lane {
    work: String,
    inflight: String,
    owner: String,
    attempts: String,
    qseq: String,
    qctr: String,
}

impl RedisCoordination {
    /// Coordination over `conn`, writing commits' records with `codec`, as `holder`.
    pub(super) fn new(conn: Conn, codec: Arc<Codec>, holder: &str) -> Self {
        Self {
            conn,
            codec,
            holder: holder.to_string(),
        }
    }

    /// The queue keys of `target`.
    fn lane(&self, target: &str) -> Lane {
        let k = &self.conn.keys;
        Lane {
            work: k.of(target, "work"),
            inflight: k.of(target, "inflight"),
            owner: k.of(target, "owner"),
            attempts: k.of(target, "attempts"),
            qseq: k.of(target, "qseq"),
            qctr: k.of(target, "qctr"),
        }
    }

    /// [`CoordError::LeaseLost`] for a claim.
    fn lost(claim: &Claim) -> CoordError {
        CoordError::LeaseLost { what: claim.name() }
    }

    /// The targets that have had work queued (what `reap` walks).
    async fn targets(&self) -> Result<Vec<String>, CoordError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.conn.keys.targets());
        Ok(self.conn.cmd("reap", &cmd).await?)
    }

    /// Reaps one target's lapsed claims.
    async fn reap_target(
        &self,
        target: &str,
        max_attempts: u32,
        reaped: &mut Reaped,
    ) -> Result<(), CoordError> {
        let c = &self.conn;
        let l = self.lane(target);
        let flat: Vec<String> = c
            .script(
                "reap",
                c.scripts
                    .reap
                    .key(&l.work)
                    .key(&l.inflight)
                    .key(&l.owner)
                    .key(&l.attempts)
                    .key(&l.qseq)
                    .key(&l.qctr)
                    .arg(max_attempts),
            )
            .await?;
        for t in flat.chunks_exact(3) {
            // An item key this build does not know is left to the build that queued it.
            let Some(work) = Work::from_key(&t[0]) else {
                continue;
            };
            let entry = Lapsed {
                target: target.to_string(),
                work,
                attempts: t[1].parse().unwrap_or(u32::MAX),
            };
            if t[2] == "1" {
                reaped.dead.push(entry);
            } else {
                reaped.requeued.push(entry);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Coordination for RedisCoordination {
    fn holder(&self) -> &str {
        &self.holder
    }

    async fn enqueue(&self, target: &str, work: Work, delay: Duration) -> Result<bool, CoordError> {
        let c = &self.conn;
        let l = self.lane(target);
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let n: i64 = c
            .script(
                "enqueue",
                c.scripts
                    .enqueue
                    .key(&l.work)
                    .key(&l.inflight)
                    .key(&l.qseq)
                    .key(&l.qctr)
                    .key(c.keys.targets())
                    .arg(work.key())
                    .arg(delay_ms)
                    .arg(target),
            )
            .await?;
        Ok(n == 1)
    }

    async fn top_up(&self, target: &str, missing: usize) -> Result<usize, CoordError> {
        if missing == 0 {
            return Ok(0);
        }
        let c = &self.conn;
        let l = self.lane(target);
        let n: i64 = c
            .script(
                "top_up",
                c.scripts
                    .top_up
                    .key(&l.work)
                    .key(&l.inflight)
                    .key(&l.qseq)
                    .key(&l.qctr)
                    .key(c.keys.of(target, "seq"))
                    .key(c.keys.targets())
                    .arg(missing)
                    .arg(target),
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn claim(&self, target: &str, ttl: Duration) -> Result<Option<Claim>, CoordError> {
        let c = &self.conn;
        let l = self.lane(target);
        let got: Option<(String, String)> = c
            .script(
                "claim",
                c.scripts
                    .claim
                    .key(&l.work)
                    .key(&l.inflight)
                    .key(&l.owner)
                    .key(&l.qseq)
                    .key(c.keys.of(target, "fence"))
                    .arg(millis(ttl))
                    .arg(nonce())
                    .arg(&self.holder),
            )
            .await?;
        let Some((item, token)) = got else {
            return Ok(None);
        };
        let Some(work) = Work::from_key(&item) else {
            // Queued by another build: its claim lapses and a reap puts it back.
            tracing::warn!(
                item = %item,
                target,
                "claimed a work item this build does not know; it lapses and is requeued"
            );
            return Ok(None);
        };
        Ok(Some(Claim {
            target: target.to_string(),
            work,
            token: Token::new(token),
        }))
    }

    async fn renew(&self, claim: &Claim, ttl: Duration) -> Result<(), CoordError> {
        let c = &self.conn;
        let l = self.lane(&claim.target);
        let n: i64 = c
            .script(
                "renew",
                c.scripts
                    .renew
                    .key(&l.inflight)
                    .key(&l.owner)
                    .arg(claim.work.key())
                    .arg(claim.token.as_str())
                    .arg(millis(ttl)),
            )
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(Self::lost(claim))
        }
    }

    async fn commit(&self, claim: &Claim, record: Option<&Session>) -> Result<(), CoordError> {
        let c = &self.conn;
        let l = self.lane(&claim.target);
        let args = record.map(|s| self.codec.session_args(s)).transpose()?;
        let mut inv = c.scripts.commit.key(&l.inflight);
        inv.key(&l.owner)
            .key(&l.attempts)
            .key(c.keys.index())
            .arg(claim.work.key())
            .arg(claim.token.as_str())
            .arg(c.keys.prefix());
        if let Some(args) = &args {
            debug_assert_eq!(args.len(), SESSION_ARGS);
            for a in args {
                inv.arg(a.as_slice());
            }
        }
        let n: i64 = c.script("commit", &inv).await?;
        if n == 1 {
            Ok(())
        } else {
            Err(Self::lost(claim))
        }
    }

    async fn abandon(
        &self,
        claim: &Claim,
        retry_after: Option<Duration>,
    ) -> Result<(), CoordError> {
        let c = &self.conn;
        let l = self.lane(&claim.target);
        let retry = retry_after
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string())
            .unwrap_or_default();
        let n: i64 = c
            .script(
                "abandon",
                c.scripts
                    .abandon
                    .key(&l.work)
                    .key(&l.inflight)
                    .key(&l.owner)
                    .key(&l.attempts)
                    .key(&l.qseq)
                    .key(&l.qctr)
                    .arg(claim.work.key())
                    .arg(claim.token.as_str())
                    .arg(retry),
            )
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(Self::lost(claim))
        }
    }

    async fn reap(&self, max_attempts: u32) -> Result<Reaped, CoordError> {
        let mut reaped = Reaped::default();
        for target in self.targets().await? {
            self.reap_target(&target, max_attempts, &mut reaped).await?;
        }
        Ok(reaped)
    }

    async fn pending(&self, target: &str) -> Result<Pending, CoordError> {
        let l = self.lane(target);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZCARD")
            .arg(&l.work)
            .cmd("ZCARD")
            .arg(&l.inflight);
        let (queued, in_flight): (usize, usize) = self.conn.pipe("pending", &pipe).await?;
        Ok(Pending { queued, in_flight })
    }

    async fn hold(
        &self,
        target: &str,
        session: &str,
        ttl: Duration,
    ) -> Result<Option<Hold>, CoordError> {
        let c = &self.conn;
        let token: Option<String> = c
            .script(
                "hold",
                c.scripts
                    .hold
                    .key(c.keys.hold(target, session))
                    .key(c.keys.of(target, "fence"))
                    .arg(nonce())
                    .arg(&self.holder)
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(token.map(|t| Hold {
            target: target.to_string(),
            session: session.to_string(),
            token: Token::new(t),
        }))
    }

    async fn renew_hold(&self, hold: &Hold, ttl: Duration) -> Result<(), CoordError> {
        let c = &self.conn;
        let n: i64 = c
            .script(
                "renew_hold",
                c.scripts
                    .renew_hold
                    .key(c.keys.hold(&hold.target, &hold.session))
                    .arg(hold.token.as_str())
                    .arg(millis(ttl)),
            )
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(CoordError::LeaseLost {
                what: format!("{}/{}", hold.target, hold.session),
            })
        }
    }

    async fn release_hold(&self, hold: &Hold) -> Result<bool, CoordError> {
        let c = &self.conn;
        let n: i64 = c
            .script(
                "release_hold",
                c.scripts
                    .release_hold
                    .key(c.keys.hold(&hold.target, &hold.session))
                    .arg(hold.token.as_str()),
            )
            .await?;
        Ok(n == 1)
    }

    async fn is_held(&self, target: &str, session: &str) -> Result<bool, CoordError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.conn.keys.hold(target, session));
        let n: i64 = self.conn.cmd("is_held", &cmd).await?;
        Ok(n == 1)
    }

    async fn seed_usage(
        &self,
        target: &str,
        session: &str,
        base: Usage,
    ) -> Result<bool, CoordError> {
        let c = &self.conn;
        let n: i64 = c
            .script(
                "seed_usage",
                c.scripts
                    .seed_usage
                    .key(c.keys.usage(target, session))
                    .arg(base.uses)
                    .arg(base.successes)
                    .arg(base.failures),
            )
            .await?;
        Ok(n == 1)
    }

    async fn add_usage(
        &self,
        target: &str,
        session: &str,
        delta: Usage,
    ) -> Result<Usage, CoordError> {
        let c = &self.conn;
        let (uses, successes, failures): (u64, u64, u64) = c
            .script(
                "add_usage",
                c.scripts
                    .add_usage
                    .key(c.keys.usage(target, session))
                    .arg(delta.uses)
                    .arg(delta.successes)
                    .arg(delta.failures),
            )
            .await?;
        Ok(Usage {
            uses,
            successes,
            failures,
        })
    }

    async fn usage(&self, target: &str, session: &str) -> Result<Option<Usage>, CoordError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.conn.keys.usage(target, session))
            .arg("uses")
            .arg("successes")
            .arg("failures");
        let got: (Option<u64>, Option<u64>, Option<u64>) = self.conn.cmd("usage", &cmd).await?;
        Ok(match got {
            (None, None, None) => None,
            (u, s, f) => Some(Usage {
                uses: u.unwrap_or(0),
                successes: s.unwrap_or(0),
                failures: f.unwrap_or(0),
            }),
        })
    }

    async fn forget(&self, target: &str, session: &str) -> Result<(), CoordError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.conn.keys.usage(target, session))
            .arg(self.conn.keys.hold(target, session));
        self.conn.cmd::<i64>("forget", &cmd).await?;
        Ok(())
    }
}
