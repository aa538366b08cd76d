//! Shared fixtures of the integration tests: the demo site on 127.0.0.1:0, a real Chromium
//! supervisor, a real sled store in a temp dir, and polling with a deadline.
#![allow(dead_code)]

pub mod daemon;
pub mod proxy;
pub mod witness;

use session_warmer::browser::Supervisor;
use session_warmer::config::{BrowserConfig, TargetConfig};
use session_warmer::demo::{DemoConfig, DemoSite};
use session_warmer::fingerprint::FingerprintSource;
use session_warmer::warm::{WarmRequest, Warmer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running demo site and a browser to warm against it.
pub struct Rig {
    pub site: DemoSite,
    pub warmer: Warmer,
    pub sup: Supervisor,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    site_shutdown: CancellationToken,
}

pub fn browser_config() -> BrowserConfig {
    BrowserConfig {
        navigation_timeout: Duration::from_secs(10),
        ..BrowserConfig::default()
    }
}

impl Rig {
    pub async fn start() -> Self {
        Self::with(DemoConfig::default(), browser_config()).await
    }

    pub async fn with(demo: DemoConfig, browser: BrowserConfig) -> Self {
        let site_shutdown = CancellationToken::new();
        let site = DemoSite::start(demo, 0, site_shutdown.clone())
            .await
            .expect("demo site starts");
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let sup = Supervisor::start(browser, shutdown.clone(), &tracker);
        let warmer = Warmer::new(sup.clone(), Arc::new(FingerprintSource::embedded()));
        Self {
            site,
            warmer,
            sup,
            shutdown,
            tracker,
            site_shutdown,
        }
    }

    pub fn target(&self) -> TargetConfig {
        TargetConfig::ad_hoc("demo", &self.site.event_url_template())
    }

    pub fn request(&self, event: &str) -> WarmRequest {
        WarmRequest {
            target: "demo".into(),
            event: Some(event.into()),
            url: self.target().event_page(event).unwrap(),
            proxy: None,
            warmup: Duration::from_millis(800),
            navigation_timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(7200),
            seed: None,
            viewport: None,
            turn: None,
            ready_when: None,
            warm_steps: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Stops the browser (close, reap, remove dirs) and the site; at most 10 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("supervisor stops within 10 s");
        self.site_shutdown.cancel();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every live process of the browser launched under `dir` (renderers included).
pub fn processes_under(dir: &std::path::Path) -> Vec<u32> {
    session_warmer::browser::processes_of(dir)
}
