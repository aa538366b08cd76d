//! Validation: runs the target's validate request with each due session's headers; a failure
//! retires the session and the top-up replaces it.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("validate", tick, Duration::from_secs(300), token, || {
        let pool = pool.clone();
        async move {
            let (ok, bad) = pool.validate(false).await;
            if ok + bad > 0 {
                tracing::info!(passed = ok, retired = bad, "validation tick");
            }
        }
    })
    .await
}
