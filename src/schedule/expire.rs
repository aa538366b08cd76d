//! Expiry: retires sessions past their max age, max uses, or required-cookie expiry.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("expire", tick, Duration::from_secs(30), token, || {
        let pool = pool.clone();
        async move {
            let n = pool.expire().await;
            if n > 0 {
                tracing::info!(sessions = n, "expired sessions retired");
            }
        }
    })
    .await
}
