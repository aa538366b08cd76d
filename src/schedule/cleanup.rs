//! Cleanup: writes in-memory use counts and health to the store (every `persist_every`), and
//! every `cleanup_every` drops retired sessions past `retired_retention` and trims the audit
//! log to `audit_keep` entries.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::ScheduleConfig;
use crate::pool::{chain, Pool, PoolError};
use crate::session::{now_ms, Session, SessionState, UnixMillis};
use crate::warm::Warm;

/// The cleanup worker: persists every `persist_every`, cleans up every `cleanup_every`.
pub async fn run(pool: Arc<Pool>, cfg: ScheduleConfig, token: CancellationToken) {
    let persist = cfg.persist_every;
    let rounds_per_cleanup = (cfg.cleanup_every.as_millis() / persist.as_millis().max(1)).max(1);
    let mut round = 0u128;
    super::every("cleanup", persist, Duration::from_secs(60), token, || {
        round += 1;
        let pool = pool.clone();
        let clean = round.is_multiple_of(rounds_per_cleanup);
        let (retention, keep) = (cfg.retired_retention, cfg.audit_keep);
        async move {
            if let Err(e) = pool.persist().await {
                tracing::warn!(error = %chain(&e), "persisting session counters");
            }
            if clean {
                match run_once(&pool, retention, keep).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "retired sessions cleaned up"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %chain(&e), "cleanup"),
                }
            }
        }
    })
    .await
}

/// When a retired session was retired, as far as its record tells: its last refresh or its
/// creation.
fn retired_at(s: &Session) -> UnixMillis {
    s.refreshed_at.max(s.created_at)
}

/// Drops retired sessions older than `retention` from memory and store and trims the audit
/// to `audit_keep` entries; returns how many sessions were dropped.
///
/// # Errors
/// When the store fails.
pub async fn run_once<W: Warm>(
    pool: &Pool<W>,
    retention: Duration,
    audit_keep: usize,
) -> Result<usize, PoolError> {
    let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
    let old = pool
        .sessions_where(|e| {
            e.session.state == SessionState::Retired && retired_at(&e.session) <= cutoff
        })
        .into_iter()
        .map(|s| s.id.clone())
        .collect();
    pool.forget_retired(old, audit_keep).await
}
