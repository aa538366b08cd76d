//! [`RedisCoordination`]: [`Coordination`] shared by every daemon on one Redis, one Lua script
//! (or one command) per method, so each is atomic across daemons and uses Redis's clock.
//!
//! The lease protocol is the scale-out note's (§1.4): a target's queued items are a ZSET by due
//! time (`work`; each member starts with its zero-padded queueing order, so items due in the
//! same millisecond sort in queueing order and a claim takes the head without scanning),
//! claimed items a ZSET by lease deadline
//! (`inflight`) with their fence token in `owner`; a claim is current while its token is the
//! owner's and its deadline is ahead of Redis's clock, so renew and commit are refused the
//! moment it lapses, reaped or not. Tokens are `<INCR fence>:<random nonce>:<node>`: unique
//! even if the counter steps back after a failover. Holds are one key per held session with
//! its token and a `PX` expiry; usage counters are one hash per session, updated by
//! `HINCRBY`, so concurrent reports from any number of daemons all count. Heartbeats are a
//! ZSET of daemon names by last beat (Redis's clock) plus one hash of counters per daemon.
//!
//! Round trips: every method is one (one script or one command); `reap` is one per target
//! with work queues, plus one to list them.

use async_trait::async_trait;
use redis::{FromRedisValue, Script, ToRedisArgs};
use std::sync::Arc;
use std::time::Duration;

use super::scripts::SESSION_ARGS;
use super::{Codec, Conn};
use crate::session::Session;
use crate::store::coordination::{
    Claim, CoordCounters, CoordError, CoordResult, Coordination, Hold, Lapsed, MaybeClaim,
    MaybeHold, NodeInfo, Pending, Reaped, Tally, Token, Usage, Work,
};

/// Work claims, holds and usage counters in Redis.
pub struct RedisCoordination {
    /// The connection shared with the records.
    conn: Conn,
    /// Encodes the records commits write, as the records store does.
    codec: Arc<Codec>,
    /// The node name tokens carry.
    holder: String,
    /// What this daemon's coordination did.
    tally: Tally,
}

impl std::fmt::Debug for RedisCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordination")
            .field("holder", &self.holder)
            .field("location", &self.conn.shown.location())
            .finish_non_exhaustive()
    }
}

/// Milliseconds of a duration for a script, at least 1 (Redis refuses a zero `PX`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Which keys a claim's scripts run on.
#[derive(Clone, Copy)]
enum Kind {
    /// A queued claim ([`Coordination::claim`]): its target's work-queue keys.
    Queued,
    /// A named item ([`Coordination::claim_item`]): its target's named-item keys.
    Named,
}

/// A random nonce for a token.
fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl RedisCoordination {
    /// Coordination over `conn`, writing commits' records with `codec`, as `holder`.
    pub(super) fn new(conn: Conn, codec: Arc<Codec>, holder: &str) -> Self {
        Self {
            conn,
            codec,
            holder: holder.to_string(),
            tally: Tally::default(),
        }
    }

    /// Runs a work-queue script of `target` (its `KEYS` are the target's lane, keys.rs).
    async fn on_lane<T: FromRedisValue + Send>(
        &self,
        call: &'static str,
        script: &Script,
        target: &str,
        args: impl ToRedisArgs + Send,
    ) -> CoordResult<T> {
        let c = &self.conn;
        Ok(c.eval(call, script, c.keys.lane(target), args).await?)
    }

    /// Runs `script` on the keys of `claim`'s kind (its target's work queue, or its named
    /// items) with `ARGV` `claim`'s item, its token, then `args`; the script answers 1 while
    /// the claim is current.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim is no longer current.
    async fn on_claim(
        &self,
        kind: Kind,
        call: &'static str,
        script: &Script,
        claim: &Claim,
        args: impl ToRedisArgs + Send,
    ) -> CoordResult<()> {
        let keys = match kind {
            Kind::Queued => self.conn.keys.lane(&claim.target),
            Kind::Named => self.conn.keys.items(&claim.target),
        };
        let args = (claim.work.key(), claim.token.as_str(), args);
        let n: i64 = self.conn.eval(call, script, keys, args).await?;
        if n == 1 {
            Ok(())
        } else {
            Err(self.lost(claim))
        }
    }

    /// Runs a usage script on the session's counters (`ARGV` uses, successes, failures).
    async fn on_usage<T: FromRedisValue + Send>(
        &self,
        call: &'static str,
        script: &Script,
        target: &str,
        session: &str,
        usage: Usage,
    ) -> CoordResult<T> {
        let c = &self.conn;
        let key = c.keys.usage(target, session);
        let args = (usage.uses, usage.successes, usage.failures);
        Ok(c.eval(call, script, key, args).await?)
    }

    /// [`CoordError::LeaseLost`] for a claim, counted as a lease loss.
    fn lost(&self, claim: &Claim) -> CoordError {
        self.tally.lost(&claim.token);
        CoordError::LeaseLost { what: claim.name() }
    }

    /// The targets that have had work queued (what `reap` walks).
    async fn targets(&self) -> CoordResult<Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.conn.keys.targets());
        Ok(self.conn.run("reap", &cmd).await?)
    }

    /// Reaps one target's lapsed claims: every `inflight` item whose deadline is behind
    /// Redis's clock loses its owner token and has its attempts counted; under
    /// `max_attempts` it is requeued, otherwise dropped as dead. Appends to `reaped` and
    /// collects the lapsed tokens so the tally can count lease losses. At most 100 items per
    /// call, to keep the script short; the rest wait for the next reap.
    async fn reap_target(
        &self,
        target: &str,
        max_attempts: u32,
        reaped: &mut Reaped,
        tokens: &mut Vec<Token>,
    ) -> CoordResult<()> {
        let script = &self.conn.scripts.reap;
        let flat: Vec<String> = self.on_lane("reap", script, target, max_attempts).await?;
        // The reply is flat: item key, attempts, dead flag ("1" or "0"), lapsed token.
        for t in flat.chunks_exact(4) {
            tokens.push(Token::new(t[3].clone()));
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

    /// One `enqueue` script: queues `work` due `delay` from Redis's now unless it is already
    /// queued or in flight (hence `Ok(false)`), registers the target for `reap` and counts a
    /// new-session item in `warms`. The member is prefixed with the next `qctr` value so
    /// items due in the same millisecond keep queueing order.
    async fn enqueue(&self, target: &str, work: Work, delay: Duration) -> CoordResult<bool> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let script = &self.conn.scripts.enqueue;
        let args = (work.key(), delay_ms, target);
        let n: i64 = self.on_lane("enqueue", script, target, args).await?;
        Ok(n == 1)
    }

    /// Queues new-session items until queued plus in-flight warms (`warms`) reach `missing`,
    /// in one script, so concurrent daemons topping up the same target count each other's
    /// warms and never overshoot. Returns how many this call queued.
    async fn top_up(&self, target: &str, missing: usize) -> CoordResult<usize> {
        if missing == 0 {
            return Ok(0);
        }
        let script = &self.conn.scripts.top_up;
        let n: i64 = self
            .on_lane("top_up", script, target, (missing, target))
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Pops the head of `work` if it is due, moves it to `inflight` with deadline now + `ttl`
    /// and records a fresh fence token in `owner`, all in one script. The third value returned
    /// is the item's lapsed-claim count, so the tally can tell a retry from a first claim.
    async fn claim(&self, target: &str, ttl: Duration) -> MaybeClaim {
        let script = &self.conn.scripts.claim;
        let args = (millis(ttl), nonce(), self.holder.as_str());
        let got: Option<(String, String, u64)> =
            self.on_lane("claim", script, target, args).await?;
        let Some((item, token, lapsed)) = got else {
            return Ok(None);
        };
        let token = Token::new(token);
        self.tally.claimed(&token, lapsed > 0);
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
            token,
        }))
    }

    /// Pushes the lease deadline to now + `ttl`, only while `owner` still has this token and
    /// the old deadline has not passed (a lapsed claim is not revived, even before a reap).
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim is no longer current.
    async fn renew(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let script = &self.conn.scripts.renew;
        self.on_claim(Kind::Queued, "renew", script, claim, millis(ttl))
            .await
    }

    /// Fenced commit: in one script, checks the token and deadline, writes the encoded record
    /// (if any) with its index entry, then drops the item from `inflight`, `owner`, `attempts`
    /// and `warms`. A claim that lapsed writes nothing, so a stale worker cannot overwrite
    /// the record of the daemon that took the item over.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim is no longer current; a codec error if the
    /// record cannot be encoded (before anything is sent).
    async fn commit(&self, claim: &Claim, record: Option<&Session>) -> CoordResult<()> {
        let c = &self.conn;
        let record = record.map(|s| self.codec.session_args(s)).transpose()?;
        debug_assert!(record.as_ref().is_none_or(|a| a.len() == SESSION_ARGS));
        let args = (c.keys.prefix(), record.unwrap_or_default());
        self.on_claim(Kind::Queued, "commit", &c.scripts.commit, claim, args)
            .await?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// Gives the item back while the claim is current: requeued `retry_after` from now, or
    /// dropped (with its attempts and `warms` count) when `retry_after` is `None`.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] when the claim had already lapsed or been taken over.
    async fn abandon(&self, claim: &Claim, retry_after: Option<Duration>) -> CoordResult<()> {
        let retry = retry_after
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string())
            .unwrap_or_default();
        let script = &self.conn.scripts.abandon;
        self.on_claim(Kind::Queued, "abandon", script, claim, retry)
            .await?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// One script: grants the item unless its entry in `items` is ahead of Redis's clock
    /// (claimed or resting), sweeping a few lapsed entries.
    async fn claim_item(&self, target: &str, work: &Work, ttl: Duration) -> MaybeClaim {
        let c = &self.conn;
        let script = &c.scripts.claim_item;
        let args = (work.key(), millis(ttl), nonce(), self.holder.as_str());
        let got: Option<(String, u8)> = c
            .eval("claim_item", script, c.keys.items(target), args)
            .await?;
        let Some((token, takeover)) = got else {
            return Ok(None);
        };
        let token = Token::new(token);
        self.tally.claimed(&token, takeover == 1);
        Ok(Some(Claim::new(target, work, token)))
    }

    async fn renew_item(&self, claim: &Claim, ttl: Duration) -> CoordResult<()> {
        let script = &self.conn.scripts.renew_item;
        self.on_claim(Kind::Named, "renew_item", script, claim, millis(ttl))
            .await
    }

    /// One script: checks the grant, then writes the record with its index entry (tagged with
    /// the grant's token), as a commit does.
    async fn put_fenced(&self, claim: &Claim, record: &Session) -> CoordResult<()> {
        let args = self.codec.session_args(record)?;
        debug_assert_eq!(args.len(), SESSION_ARGS);
        let script = &self.conn.scripts.put_fenced;
        let args = (self.conn.keys.prefix(), args);
        self.on_claim(Kind::Named, "put_fenced", script, claim, args)
            .await
    }

    async fn finish_item(&self, claim: &Claim, rest: Duration) -> CoordResult<()> {
        let rest_ms = u64::try_from(rest.as_millis()).unwrap_or(u64::MAX);
        let script = &self.conn.scripts.finish_item;
        self.on_claim(Kind::Named, "finish_item", script, claim, rest_ms)
            .await?;
        self.tally.finished(&claim.token);
        Ok(())
    }

    /// Walks every target ever queued, one script each. Stops at the first failing target but
    /// still tallies what earlier targets reaped, since those changes are already in Redis.
    async fn reap(&self, max_attempts: u32) -> CoordResult<Reaped> {
        let mut reaped = Reaped::default();
        let mut tokens = Vec::new();
        let mut result = Ok(());
        for target in self.targets().await? {
            result = self
                .reap_target(&target, max_attempts, &mut reaped, &mut tokens)
                .await;
            if result.is_err() {
                break;
            }
        }
        // What was reaped before a failure is counted (it happened).
        self.tally
            .reaped(&tokens, reaped.requeued.len(), reaped.dead.len());
        result.map(|()| reaped)
    }

    /// Both counts in one `MULTI` so they are from the same instant.
    async fn pending(&self, target: &str) -> CoordResult<Pending> {
        let k = &self.conn.keys;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZCARD")
            .arg(k.of(target, "work"))
            .cmd("ZCARD")
            .arg(k.of(target, "inflight"));
        let (queued, in_flight): (usize, usize) = self.conn.run("pending", &pipe).await?;
        Ok(Pending { queued, in_flight })
    }

    /// Takes the hold with `SET NX PX` semantics in one script, minting its token from the
    /// target's fence counter; `None` while another (unexpired) hold exists.
    async fn hold(&self, target: &str, session: &str, ttl: Duration) -> MaybeHold {
        let c = &self.conn;
        let keys = (
            c.keys.hold(target, session),
            c.keys.of(target, "fence"),
            c.keys.holds(target),
        );
        let args = (nonce(), self.holder.as_str(), millis(ttl), session);
        let token: Option<String> = c.eval("hold", &c.scripts.hold, keys, args).await?;
        Ok(token.map(|t| Hold {
            target: target.to_string(),
            session: session.to_string(),
            token: Token::new(t),
        }))
    }

    /// Resets the hold key's `PX` expiry only if it still holds this token.
    ///
    /// # Errors
    /// [`CoordError::LeaseLost`] if the hold expired or was taken by someone else.
    async fn renew_hold(&self, hold: &Hold, ttl: Duration) -> CoordResult<()> {
        let c = &self.conn;
        let keys = (
            c.keys.hold(&hold.target, &hold.session),
            c.keys.holds(&hold.target),
        );
        let args = (hold.token.as_str(), millis(ttl), hold.session.as_str());
        let n: i64 = c
            .eval("renew_hold", &c.scripts.renew_hold, keys, args)
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(CoordError::LeaseLost {
                what: format!("{}/{}", hold.target, hold.session),
            })
        }
    }

    /// Deletes the hold key only if it still holds this token (compare-and-delete), so a
    /// late release never frees a hold another daemon has since taken. `false`: it had lapsed
    /// (or been taken).
    async fn release_hold(&self, hold: &Hold) -> CoordResult<bool> {
        let c = &self.conn;
        let keys = (
            c.keys.hold(&hold.target, &hold.session),
            c.keys.holds(&hold.target),
        );
        let args = (hold.token.as_str(), hold.session.as_str());
        let n: i64 = c
            .eval("release_hold", &c.scripts.release_hold, keys, args)
            .await?;
        Ok(n == 1)
    }

    /// The target's holds zset, lapsed entries dropped first (one script, Redis's clock).
    async fn holds(&self, target: &str) -> CoordResult<Vec<String>> {
        let c = &self.conn;
        let held: Vec<String> = c
            .eval(
                "holds",
                &c.scripts.holds,
                c.keys.holds(target),
                Vec::<String>::new(),
            )
            .await?;
        Ok(held)
    }

    async fn is_held(&self, target: &str, session: &str) -> CoordResult<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.conn.keys.hold(target, session));
        let n: i64 = self.conn.run("is_held", &cmd).await?;
        Ok(n == 1)
    }

    /// Sets the counters only when the session has none yet (first writer wins), so a
    /// restarted daemon seeding from its record cannot wipe counts other daemons added.
    async fn seed_usage(&self, target: &str, session: &str, base: Usage) -> CoordResult<bool> {
        let script = &self.conn.scripts.seed_usage;
        let n: i64 = self
            .on_usage("seed_usage", script, target, session, base)
            .await?;
        Ok(n == 1)
    }

    /// `HINCRBY`s all three counters in one script and returns the totals after the add.
    async fn add_usage(&self, target: &str, session: &str, delta: Usage) -> CoordResult<Usage> {
        let script = &self.conn.scripts.add_usage;
        let (uses, successes, failures): (u64, u64, u64) = self
            .on_usage("add_usage", script, target, session, delta)
            .await?;
        Ok(Usage {
            uses,
            successes,
            failures,
        })
    }

    /// `None` when the hash does not exist (never seeded, or forgotten); a missing field of an
    /// existing hash reads as 0.
    async fn usage(&self, target: &str, session: &str) -> CoordResult<Option<Usage>> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.conn.keys.usage(target, session))
            .arg("uses")
            .arg("successes")
            .arg("failures");
        let got: (Option<u64>, Option<u64>, Option<u64>) = self.conn.run("usage", &cmd).await?;
        Ok(match got {
            (None, None, None) => None,
            (u, s, f) => Some(Usage {
                uses: u.unwrap_or(0),
                successes: s.unwrap_or(0),
                failures: f.unwrap_or(0),
            }),
        })
    }

    /// Drops the session's usage hash and any hold on it in one `DEL`.
    async fn forget(&self, target: &str, session: &str) -> CoordResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.conn.keys.usage(target, session))
            .arg(self.conn.keys.hold(target, session));
        self.conn.run::<i64>("forget", &cmd).await?;
        Ok(())
    }

    fn counters(&self) -> CoordCounters {
        self.tally.snapshot()
    }

    /// Records this node's beat at Redis's time with its counters as `name, value` pairs;
    /// the script also drops nodes silent for longer than `forget_after`.
    async fn heartbeat(&self, forget_after: Duration) -> CoordResult<()> {
        let c = &self.conn;
        let counters = self.counters().fields();
        let args = (
            c.keys.prefix(),
            self.holder.as_str(),
            millis(forget_after),
            &counters,
        );
        c.eval::<i64>("heartbeat", &c.scripts.heartbeat, c.keys.nodes(), args)
            .await?;
        Ok(())
    }

    /// Parses the script's flat reply: per node its name, ms since its last beat, the number
    /// of counter pairs, then those `name, value` pairs. A truncated tail is ignored.
    async fn nodes(&self, seen_within: Duration) -> CoordResult<Vec<NodeInfo>> {
        let c = &self.conn;
        let within = u64::try_from(seen_within.as_millis()).unwrap_or(u64::MAX);
        let args = (c.keys.prefix(), within);
        let flat: Vec<String> = c
            .eval("nodes", &c.scripts.nodes, c.keys.nodes(), args)
            .await?;
        let mut out = Vec::new();
        let mut it = flat.iter();
        while let (Some(node), Some(ago), Some(n)) = (it.next(), it.next(), it.next()) {
            let n: usize = n.parse().unwrap_or(0);
            let mut fields = Vec::with_capacity(n);
            for _ in 0..n {
                let (Some(name), Some(v)) = (it.next(), it.next()) else {
                    break;
                };
                fields.push((name.as_str(), v.parse().unwrap_or(0)));
            }
            out.push(NodeInfo {
                node: node.clone(),
                last_beat_ago: Duration::from_millis(ago.parse().unwrap_or(0)),
                counters: CoordCounters::from_fields(fields),
            });
        }
        Ok(out)
    }
}
