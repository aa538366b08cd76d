//! Heartbeat: a log line every minute (by default) that the daemon is alive, and a status
//! report with counts per state per target every ten minutes; and the cluster heartbeat
//! ([`beat`]): every few seconds this daemon's name and coordination counters go to the store,
//! and the daemons seen come back for `/metrics` and the status.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::ScheduleConfig;
use crate::pool::Pool;

/// The heartbeat worker: a line every `heartbeat_every`, the status report every
/// `status_every`.
pub async fn run(pool: Arc<Pool>, cfg: ScheduleConfig, token: CancellationToken) {
    let per_report = (cfg.status_every.as_millis() / cfg.heartbeat_every.as_millis().max(1)).max(1);
    let mut beats = 0u128;
    super::every(
        "heartbeat",
        cfg.heartbeat_every,
        Duration::from_secs(5),
        token,
        || {
            beats += 1;
            let report = beats.is_multiple_of(per_report);
            let pool = pool.clone();
            async move {
                let browser = pool.warmer().supervisor().current();
                tracing::info!(
                    ready = pool.ready_count(),
                    browser_up = browser.is_some(),
                    live_contexts = pool.warmer().supervisor().live_contexts(),
                    open_contexts = pool.warmer().supervisor().open_contexts(),
                    uptime_s = pool.started.elapsed().as_secs(),
                    "heartbeat"
                );
                if report {
                    let mut counts: Vec<_> = pool.counts().into_iter().collect();
                    counts.sort();
                    for ((target, state), n) in counts {
                        tracing::info!(target = %target, state, sessions = n, "status");
                    }
                }
            }
        },
    )
    .await
}

/// The cluster heartbeat: [`Pool::beat`] at once and then every
/// [`crate::pool::BEAT_EVERY`], each bounded by 5 s (two store calls), so `/metrics` and the
/// status list the daemons seen. Runs on every backend (with sled or memory the cluster is
/// this daemon alone).
pub async fn beat(pool: Arc<Pool>, token: CancellationToken) {
    tokio::select! {
        _ = token.cancelled() => return,
        _ = tokio::time::timeout(Duration::from_secs(5), pool.beat()) => {}
    }
    super::every(
        "cluster",
        crate::pool::BEAT_EVERY,
        Duration::from_secs(5),
        token,
        || {
            let pool = pool.clone();
            async move { pool.beat().await }
        },
    )
    .await
}
