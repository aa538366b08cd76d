//! Resync: with a store other daemons write too (Redis), the pool's index is a cache of the
//! shared records, brought in line every [`PERIOD`] ([`crate::pool::Pool::resync`]), so a
//! session retired or deleted through any daemon is served by none within a second. Not run
//! for sled or memory, where this daemon is the only writer.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::{chain, Pool};

/// How often the index is resynced: well within the one second in which a session retired
/// elsewhere must stop being served, jitter and a slow store call included.
pub const PERIOD: Duration = Duration::from_millis(300);

/// The resync worker (only for a shared store): [`crate::pool::Pool::resync`] every
/// [`PERIOD`], each bounded by 2 s; a store that cannot be read leaves the index serving what
/// it last knew.
pub async fn run(pool: Arc<Pool>, token: CancellationToken) {
    super::every("sync", PERIOD, Duration::from_secs(2), token, || {
        let pool = pool.clone();
        async move {
            match pool.resync().await {
                Ok(r) if r != Default::default() => {
                    tracing::debug!(
                        added = r.added,
                        updated = r.updated,
                        removed = r.removed,
                        "index resynced from the shared store"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %chain(&e), "resyncing from the shared store"),
            }
        }
    })
    .await
}
