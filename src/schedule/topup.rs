//! Top-up: starts warms until every target has `pool_size` sessions; woken at once when a
//! session is retired.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    tracing::debug!(worker = "top_up", "worker started");
    loop {
        let n = pool.top_up();
        if n > 0 {
            tracing::debug!(warms = n, "top-up started warms");
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
            _ = pool.wake.notified() => {}
        }
    }
    tracing::debug!(worker = "top_up", "worker stopped");
}
