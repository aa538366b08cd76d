//! The real daemon on 127.0.0.1:0 against demo sites, with second-scale schedules, a real
//! Chromium and sled on disk; and the client programs (pytest, node) run against it.

use session_warmer::config::{Config, TargetConfig};
use session_warmer::daemon::Daemon;
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A demo site on 127.0.0.1:0, stopped when dropped.
pub struct Site {
    pub site: DemoSite,
    stop: CancellationToken,
}

impl Site {
    pub async fn start() -> Self {
        let stop = CancellationToken::new();
        let site = DemoSite::start(DemoConfig::default(), 0, stop.clone())
            .await
            .expect("demo site starts");
        Self { site, stop }
    }

    /// A target on this site: the demo events, a 500 ms dwell, two warms at once.
    pub fn target(&self, name: &str, pool_size: usize) -> TargetConfig {
        let mut t = TargetConfig::ad_hoc(name, &self.site.event_url_template());
        t.events = demo_events();
        t.warmup = Duration::from_millis(500);
        t.pool_size = pool_size;
        t.max_concurrent_warms = 2;
        t
    }

    pub fn base_url(&self) -> String {
        self.site.base_url()
    }
}

impl std::ops::Deref for Site {
    type Target = DemoSite;
    fn deref(&self) -> &DemoSite {
        &self.site
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A daemon config with its store under `dir` and schedules of a few hundred milliseconds.
pub fn config(dir: &Path, targets: Vec<TargetConfig>) -> Config {
    let mut c = Config::default();
    c.store.path = dir.join("store");
    c.browser = super::browser_config();
    c.schedule.top_up_every = Duration::from_millis(300);
    c.schedule.persist_every = Duration::from_millis(500);
    c.targets = targets;
    c
}

/// Starts the daemon on 127.0.0.1:0; returns it and its base URL.
pub async fn start(config: Config) -> (Daemon, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let d = Daemon::start(config, Some(listener))
        .await
        .expect("daemon starts");
    let base = format!("http://{}", d.addr);
    (d, base)
}

/// Waits (at most `deadline`) until the pool has `n` ready sessions.
pub async fn wait_ready(d: &Daemon, n: usize, deadline: Duration) {
    super::eventually(&format!("{n} ready sessions"), deadline, || async {
        (d.pool.ready_count() >= n).then_some(())
    })
    .await;
}

/// Runs a client program (pytest, node) to its end, at most `timeout`, with nothing between it
/// and 127.0.0.1 (no proxy from the environment); prints its output and fails the test when it
/// fails. Returns its stdout.
pub async fn run_client(mut cmd: tokio::process::Command, what: &str, timeout: Duration) -> String {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "NODE_OPTIONS",
    ] {
        cmd.env_remove(var);
    }
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}
