//! Rotation: replaces sessions older than their target's `rotate_every`, make-before-break
//! (the old session is served until its replacement is ready).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every(
        "rotate",
        tick,
        tick.max(Duration::from_secs(5)),
        token,
        || {
            let pool = pool.clone();
            async move {
                let n = pool.rotate(false);
                if n > 0 {
                    tracing::info!(sessions = n, "rotation started");
                }
            }
        },
    )
    .await
}
