//! Cookie refresh: every `cookie_refresh_every`, each ready event session's page is revisited
//! in a context revived from its stored cookies ([`Pool::revisit`]) and the cookies it ends
//! with are stored. HTTP 401/403 retires the session (`blocked`); other failures leave it be.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::TargetConfig;
use crate::pool::{chain, FetchOptions, Pool, PoolError};
use crate::session::{now_ms, RetireReason, Session};
use crate::store::Work;
use crate::warm::{Warm, WarmError};

/// The cookie-refresh worker: [`run_once`] every `tick`.
pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("refresh", tick, Duration::from_secs(600), token, || {
        let pool = pool.clone();
        async move {
            let Refreshed { refreshed, failed } = run_once(&pool, false).await;
            if refreshed + failed > 0 {
                tracing::info!(refreshed, failed, "cookie refresh tick");
            }
        }
    })
    .await
}

/// What a refresh round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Sessions whose cookies were refreshed.
    pub refreshed: usize,
    /// Sessions whose refresh failed (blocked ones are retired).
    pub failed: usize,
}

/// Refreshes the ready event sessions due for it (with `force`, every one not refreshed since:
/// `POST /api/cookies/refresh`), one after the other, until shutdown; each claimed by name,
/// so of the daemons sharing a store one refreshes it.
pub async fn run_once<W: Warm>(pool: &Pool<W>, force: bool) -> Refreshed {
    // Forced: every session not refreshed since it was asked (by any daemon).
    let asked = now_ms();
    let every = |s: &Session, t: &TargetConfig| {
        (force && s.refreshed_at <= asked)
            || now_ms().saturating_sub(s.refreshed_at) >= t.cookie_refresh_every.as_millis() as u64
    };
    let work = |session| Work::Refresh { session };
    let period = |t: &TargetConfig| t.cookie_refresh_every;
    let done = super::each_claimed(pool, work, period, every, |s| refresh_one(pool, s)).await;
    let refreshed = done.iter().filter(|ok| **ok).count();
    Refreshed {
        refreshed,
        failed: done.len() - refreshed,
    }
}

/// Revisits the session's page and stores the cookies it ends with (`true`); HTTP 401/403
/// retires it.
async fn refresh_one<W: Warm>(pool: &Pool<W>, s: Arc<Session>) -> bool {
    let url = s.url.clone();
    match pool.revisit(&s, &url, true, &FetchOptions::default()).await {
        Ok(_) => {
            pool.metrics.event("cookie_refresh", "ok");
            true
        }
        Err(PoolError::Warm(WarmError::TargetHttp {
            status: status @ (401 | 403),
            ..
        })) => {
            pool.metrics.event("cookie_refresh", "blocked");
            let _ = pool
                .retire(&s.id, RetireReason::BlockedOnRefresh { status }, true)
                .await;
            false
        }
        Err(e) => {
            pool.metrics.event("cookie_refresh", "failed");
            tracing::warn!(session = %s.id, error = %chain(&e), "cookie refresh failed");
            false
        }
    }
}
