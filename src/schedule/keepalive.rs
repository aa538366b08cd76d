//! Keep-alive of login sessions: rescans the account dirs (on every change the watcher reports,
//! and every few seconds as a fallback), applies the changes of the `sessions_dir`s (files
//! dropped, changed, removed: `dropped::DroppedWatcher`), then starts the check of every due
//! account and dropped session.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::keepalive::KeepAlive;

/// Rescan fallback when the watcher misses a change.
const RESCAN: Duration = Duration::from_secs(5);

/// The keep-alive worker: rescans the account dirs, then checks every due account, until
/// `token` is cancelled; then disposes the accounts' contexts.
pub async fn run(keepalive: Arc<KeepAlive>, token: CancellationToken, tracker: TaskTracker) {
    if !keepalive.enabled() {
        return;
    }
    tracing::debug!(worker = "keepalive", "worker started");
    let mut watch = crate::accounts::watch(&keepalive.dirs());
    let specs = keepalive.dropped_specs();
    let mut dropped = (!specs.is_empty()).then(|| crate::dropped::DroppedWatcher::new(specs));
    let notes = dropped.as_ref().map(|d| d.notes());
    let mut last_scan = tokio::time::Instant::now();
    keepalive.sync().await;
    loop {
        keepalive.tick(&tracker);
        // Cancel-safe: changes found while another branch won are returned next time.
        let files = async {
            match dropped.as_mut() {
                Some(d) => d.next().await,
                None => futures::future::pending().await,
            }
        };
        let changed = async {
            match watch.as_mut() {
                Some((_, rx)) => {
                    rx.recv().await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = token.cancelled() => break,
            events = files => {
                if let Some(notes) = &notes {
                    keepalive.apply_dropped(events, notes).await;
                }
            }
            _ = changed => {
                // Let the writer finish the file, then take every queued change at once.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some((_, rx)) = watch.as_mut() {
                    while rx.try_recv().is_ok() {}
                }
                keepalive.sync().await;
                last_scan = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if last_scan.elapsed() >= RESCAN {
                    keepalive.sync().await;
                    last_scan = tokio::time::Instant::now();
                }
            }
        }
    }
    keepalive.close().await;
    tracing::debug!(worker = "keepalive", "worker stopped");
}
