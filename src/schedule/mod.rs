//! The workers that keep the pool healthy, one file each, and each file holds its policy
//! (what is due, what to do with it) besides its loop: [`rotate`], [`expire`], [`validate`],
//! [`refresh`] (cookies), [`topup`], [`cleanup`] (with persistence of in-memory counters),
//! [`sync`] (the index resynced from a shared store),
//! `heartbeat` (a log line, and the cluster heartbeat through the store's coordination), and `keepalive` (the loop of [`crate::keepalive`]). The pool gives them its
//! primitives (list, mark rotating, warm, revisit, retire); the API's "now" buttons call the
//! same `run_once` with `force`. Each ticks on a jittered interval, runs every tick under a
//! timeout, and stops when its token is cancelled.

pub mod cleanup;
pub mod expire;
mod heartbeat;
mod keepalive;
pub mod refresh;
pub mod rotate;
pub mod sync;
pub mod topup;
pub mod validate;

use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ScheduleConfig, TargetConfig};
use crate::keepalive::KeepAlive;
use crate::pool::Pool;
use crate::session::{Session, SessionState};
use crate::store::Work;
use crate::warm::Warm;

/// Whether `s` is a ready event session (login sessions have their own keep-alive; rotating
/// ones are about to go) for which `due` says it is time (validation, cookie refresh).
fn is_due<W: Warm>(
    pool: &Pool<W>,
    e: &crate::pool::Entry,
    due: &impl Fn(&Session, &TargetConfig) -> bool,
) -> bool {
    e.session.state == SessionState::Ready
        && !e.rotating
        && e.session.account.is_none()
        && pool
            .target(&e.session.target)
            .is_ok_and(|t| due(&e.session, &t.config))
}

/// Does `job` on every session [`is_due`] for, one after the other until shutdown, each under
/// a claim of `work` (its item named by the session's id, [`Pool::claimed`], of its target's
/// `period`), so that of the
/// daemons sharing a store one does it. Once the claim is granted, `due` is asked again of the
/// session as this daemon knows it then: another daemon may have done the work meanwhile, and
/// this daemon's copy has caught up. Returns what `job` returned for each session it ran on.
async fn each_claimed<W, T, Fut>(
    pool: &Pool<W>,
    work: fn(String) -> Work,
    period: fn(&TargetConfig) -> Duration,
    due: impl Fn(&Session, &TargetConfig) -> bool,
    job: impl Fn(Arc<Session>) -> Fut,
) -> Vec<T>
where
    W: Warm,
    Fut: Future<Output = T>,
{
    let candidates = pool.sessions_where(|e| is_due(pool, e, &due));
    let mut out = Vec::new();
    for s in candidates {
        if pool.shutting_down() {
            break;
        }
        let every = pool
            .target(&s.target)
            .map_or(Duration::ZERO, |t| period(&t.config));
        let done = pool
            .claimed(&s.target, work(s.id.clone()), every, async {
                match pool.session_if(&s.id, |e| is_due(pool, e, &due)) {
                    Some(now) => Some(job(now).await),
                    None => None,
                }
            })
            .await;
        out.extend(done.flatten());
    }
    out
}

/// Tick of a worker whose per-session interval is `interval`: often enough to act within a
/// tenth of it, between 1 s and 60 s.
pub fn tick_for(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs `tick` every `period` (plus up to 10 % jitter) until `token` is cancelled; each tick
/// is bounded by `limit` and a tick that overruns is logged and abandoned.
///
/// The first tick comes after one period, not at once. The jitter keeps daemons sharing a
/// store from ticking in lockstep. An abandoned tick is dropped at its next `.await`, so a
/// tick must leave the pool consistent at every await point. Cancellation also interrupts a
/// running tick.
pub async fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    limit: Duration,
    token: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    tracing::debug!(
        worker = name,
        period_ms = period.as_millis() as u64,
        "worker started"
    );
    loop {
        let jitter = period.as_millis() as u64 / 10;
        let delay = period + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter.max(1)));
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        tokio::select! {
            _ = token.cancelled() => break,
            r = tokio::time::timeout(limit, tick()) => {
                if r.is_err() {
                    tracing::warn!(worker = name, limit_ms = limit.as_millis() as u64, "tick overran its timeout; abandoned");
                }
            }
        }
    }
    tracing::debug!(worker = name, "worker stopped");
}

/// Starts every worker on `tracker`.
///
/// Per-session intervals differ by target, so each worker ticks for the most demanding one
/// (the smallest interval, 60 s without targets) and checks each session against its own
/// target's interval. `expire` ticks at least as often as `rotate`, so a session past
/// `max_age` does not outlive a rotation tick. `sync` runs only with a shared store.
/// Callers cancel `token` and wait on `tracker` to stop them all.
pub fn spawn_all(
    pool: &Arc<Pool>,
    accounts: &Arc<KeepAlive>,
    schedule: &ScheduleConfig,
    token: &CancellationToken,
    tracker: &TaskTracker,
) {
    let targets = pool.targets();
    let min = |f: fn(&crate::config::TargetConfig) -> Duration| {
        targets
            .iter()
            .map(|t| f(&t.config))
            .min()
            .unwrap_or(Duration::from_secs(60))
    };
    let rotate_tick = tick_for(min(|t| t.rotate_every));
    let validate_tick = tick_for(min(|t| t.validate_every));
    let refresh_tick = tick_for(min(|t| t.cookie_refresh_every));
    let expire_tick = tick_for(min(|t| t.max_age)).min(rotate_tick);
    tracker.spawn(rotate::run(pool.clone(), rotate_tick, token.clone()));
    tracker.spawn(expire::run(pool.clone(), expire_tick, token.clone()));
    tracker.spawn(validate::run(pool.clone(), validate_tick, token.clone()));
    tracker.spawn(refresh::run(pool.clone(), refresh_tick, token.clone()));
    tracker.spawn(topup::run(
        pool.clone(),
        schedule.top_up_every,
        token.clone(),
    ));
    tracker.spawn(cleanup::run(pool.clone(), schedule.clone(), token.clone()));
    if pool.is_shared() {
        tracker.spawn(sync::run(pool.clone(), token.clone()));
    }
    tracker.spawn(heartbeat::run(
        pool.clone(),
        schedule.clone(),
        token.clone(),
    ));
    tracker.spawn(heartbeat::beat(pool.clone(), token.clone()));
    tracker.spawn(keepalive::run(
        accounts.clone(),
        token.clone(),
        tracker.clone(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_a_tenth_of_the_interval_within_bounds() {
        assert_eq!(tick_for(Duration::from_secs(1800)), Duration::from_secs(60));
        assert_eq!(tick_for(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(tick_for(Duration::from_secs(3)), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticks_and_stops_when_cancelled() {
        let token = CancellationToken::new();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let t = token.clone();
        let task = tokio::spawn(every(
            "test",
            Duration::from_secs(10),
            Duration::from_secs(1),
            t,
            move || {
                let c = c.clone();
                async move {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        let n = count.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=3).contains(&n), "{n}");
        token.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_tick_is_abandoned_at_its_timeout() {
        let token = CancellationToken::new();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let task = tokio::spawn(every(
            "hang",
            Duration::from_secs(1),
            Duration::from_secs(2),
            token.clone(),
            move || {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                futures::future::pending::<()>()
            },
        ));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            count.load(std::sync::atomic::Ordering::SeqCst) >= 3,
            "later ticks still run"
        );
        token.cancel();
        task.await.unwrap();
    }
}
