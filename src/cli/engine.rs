//! A browser plus the warmer on it, for the commands that warm or sign in themselves.

use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::browser::Supervisor;
use crate::config::BrowserConfig;
use crate::fingerprint::FingerprintSource;
use crate::warm::Warmer;

/// A browser supervisor plus the warmer on it, with the tasks they own.
pub struct Engine {
    pub warmer: Warmer,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Engine {
    /// Loads fingerprints and starts the supervisor (Chromium launches in the background).
    ///
    /// # Errors
    /// When the fingerprint data cannot be loaded.
    pub fn start(browser: BrowserConfig) -> Result<Self> {
        let fingerprints = Arc::new(match &browser.fingerprints_dir {
            Some(dir) => FingerprintSource::load_dir(dir)?,
            None => FingerprintSource::embedded(),
        });
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let sup = Supervisor::start(browser, shutdown.clone(), &tracker);
        Ok(Self {
            warmer: Warmer::new(sup, fingerprints),
            shutdown,
            tracker,
        })
    }

    /// Closes and reaps the browser and removes its dirs.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("browser did not stop within 10 s");
        }
    }
}
