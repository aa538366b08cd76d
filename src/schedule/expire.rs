//! Expiry: retires ready sessions the target's health policy no longer serves: past their max
//! age or max uses, or missing a required cookie (`HealthPolicy::check`).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;
use crate::session::{now_ms, SessionState, Verdict};
use crate::warm::Warm;

/// The expiry worker: [`run_once`] every `tick`.
pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("expire", tick, Duration::from_secs(30), token, || {
        let pool = pool.clone();
        async move {
            let n = run_once(&pool).await;
            if n > 0 {
                tracing::info!(sessions = n, "expired sessions retired");
            }
        }
    })
    .await
}

/// Retires every ready session its target's policy retires now; returns how many.
pub async fn run_once<W: Warm>(pool: &Pool<W>) -> usize {
    let now = now_ms();
    let due: Vec<_> = pool
        .sessions_where(|e| e.session.state == SessionState::Ready)
        .into_iter()
        .filter_map(
            |s| match pool.target(&s.target).ok()?.policy.check(&s, now) {
                Verdict::Retire(reason) => Some((s.id.clone(), reason)),
                _ => None,
            },
        )
        .collect();
    for (id, reason) in &due {
        let _ = pool.retire(id, reason.clone(), false).await;
    }
    due.len()
}
