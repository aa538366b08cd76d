//! Top-up: starts warms until every target has `pool_size` sessions (ready, rotating or
//! warming), unless the target backs off (its site failed lately, or every one of its events
//! did); at most twice the host's `max_concurrent_warms` queued at once, so a back-off can
//! take effect. Woken at once when a session is retired.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;
use crate::warm::Warm;

/// The top-up worker: [`run_once`] every `tick`, and whenever the pool wakes it.
pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    tracing::debug!(worker = "top_up", "worker started");
    loop {
        let n = run_once(&pool);
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

/// Starts the warms each target lacks; returns how many were started.
pub fn run_once<W: Warm>(pool: &Arc<Pool<W>>) -> usize {
    let counts = pool.counts();
    let mut started = 0;
    for t in pool.targets() {
        if !t.has_events() {
            continue;
        }
        if t.backoff().is_some() {
            // The site failed lately, or every event did.
            continue;
        }
        let name = &t.config.name;
        let n = |state: &'static str| counts.get(&(name.clone(), state)).copied().unwrap_or(0);
        let ready = n("ready") + n("rotating");
        let warming = t.warming();
        let deficit = t.config.pool_size.saturating_sub(ready + warming);
        // Queue at most what the host allows at once, so the back-off can take effect.
        let room = (t.config.max_concurrent_warms * 2).saturating_sub(warming);
        for _ in 0..deficit.min(room) {
            pool.start_warm(t);
            started += 1;
        }
    }
    started
}
