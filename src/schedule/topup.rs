//! Top-up: keeps every target at `pool_size` sessions (ready or rotating, over every daemon
//! sharing the store), unless the target backs off (its site failed lately, or every one of
//! its events did). The warms the pool lacks are queued and claimed through the store's
//! coordination (`pool::claims`), so daemons sharing a store never warm more than the pool
//! lacks; at most twice the host's `max_concurrent_warms` are under way here at once, so a
//! back-off can take effect. Each round first takes back lapsed claims (a dead daemon's work).
//! Woken at once when a session is retired.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::{chain, Pool};
use crate::warm::Warm;

/// The top-up worker: [`run_once`] every `tick`, and whenever the pool wakes it.
pub async fn run<W: Warm>(pool: Arc<Pool<W>>, tick: Duration, token: CancellationToken) {
    tracing::debug!(worker = "top_up", "worker started");
    loop {
        let n = tokio::select! {
            _ = token.cancelled() => break,
            n = run_once(&pool) => n,
        };
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

/// Takes back lapsed claims, then claims and starts the warms each target lacks; returns how
/// many were started here.
pub async fn run_once<W: Warm>(pool: &Arc<Pool<W>>) -> usize {
    pool.reap().await;
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
        let missing = t
            .config
            .pool_size
            .saturating_sub(n("ready") + n("rotating"));
        // Queue at most what the host allows at once, so the back-off can take effect.
        let room = (t.config.max_concurrent_warms * 2).saturating_sub(t.warming());
        match pool.claim_warms(t, missing, room).await {
            Ok(n) => started += n,
            Err(e) => {
                tracing::warn!(target = %name, error = %chain(&e), "top-up could not claim warms")
            }
        }
    }
    started
}
