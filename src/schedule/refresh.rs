//! Cookie refresh: revisits the event page in a context revived from each due session's
//! stored cookies and stores the refreshed cookies.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("refresh", tick, Duration::from_secs(600), token, || {
        let pool = pool.clone();
        async move {
            let (ok, bad) = pool.refresh_cookies(false).await;
            if ok + bad > 0 {
                tracing::info!(refreshed = ok, failed = bad, "cookie refresh tick");
            }
        }
    })
    .await
}
