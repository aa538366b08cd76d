//! Cleanup: writes in-memory use counts and health to the store, drops retired sessions after
//! their retention, and trims the audit log.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::ScheduleConfig;
use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, cfg: ScheduleConfig, token: CancellationToken) {
    let persist = cfg.persist_every;
    let rounds_per_cleanup = (cfg.cleanup_every.as_millis() / persist.as_millis().max(1)).max(1);
    let mut round = 0u128;
    super::every("cleanup", persist, Duration::from_secs(60), token, || {
        round += 1;
        let pool = pool.clone();
        let clean = round % rounds_per_cleanup == 0;
        let (retention, keep) = (cfg.retired_retention, cfg.audit_keep);
        async move {
            if let Err(e) = pool.persist().await {
                tracing::warn!(error = %e, "persisting session counters");
            }
            if clean {
                match pool.cleanup(retention, keep).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "retired sessions cleaned up"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cleanup"),
                }
            }
        }
    })
    .await
}
