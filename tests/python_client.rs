//! The Python client (`clients/python`, package `session_warmer`) against the real thing: the
//! daemon on 127.0.0.1:0 with a token, real Chromium and sled, two demo sites, a forward proxy
//! with credentials; then `python3 -m pytest clients/python/tests` with Debian's Python, its
//! requests, Scrapy and pytest (scripts/setup installs them). The Python tests take and report
//! sessions, lease, wait on 503, call the demo site's protected API with requests and with a real
//! Scrapy crawl through `SessionWarmerMiddleware`, and see a 403 retried once with a fresh
//! session.
//!
//! The daemon's targets, as clients/python/tests/conftest.py expects them:
//! - `demo`: two sessions on `DEMO_URL`'s site, each with the proxy (credentials required);
//! - `fragile`: one session on `DEMO_REVOCABLE_URL`'s site, no proxy; the tests revoke that
//!   site's cookies to get a 403.

mod common;

use common::eventually;
use common::proxy::Proxy;
use session_warmer::config::{Config, TargetConfig};
use session_warmer::daemon::Daemon;
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Debian's python3, with python3-requests, python3-scrapy and python3-pytest.
const PYTHON: &str = "/usr/bin/python3";
const TOKEN: &str = "python-client-token-0123456789abcdef";
const PROXY_USER: &str = "scraper";
const PROXY_PASSWORD: &str = "pr0xy-secret";

/// Fails loudly when the Python side is missing (scripts/setup installs it).
fn require_python() {
    let out = std::process::Command::new(PYTHON)
        .args(["-c", "import requests, scrapy, pytest"])
        .output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{PYTHON} with requests, scrapy and pytest is needed: run scripts/setup (installs \
         python3-requests, python3-scrapy, python3-pytest): {:?}",
        out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
}

fn target(name: &str, site: &DemoSite, pool_size: usize) -> TargetConfig {
    let mut t = TargetConfig::ad_hoc(name, &site.event_url_template());
    t.events = demo_events();
    t.warmup = Duration::from_millis(500);
    t.pool_size = pool_size;
    t.max_concurrent_warms = 2;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_tests_pass_against_a_running_daemon() {
    require_python();
    let stop = CancellationToken::new();
    let site = DemoSite::start(DemoConfig::default(), 0, stop.clone())
        .await
        .expect("demo site starts");
    let revocable = DemoSite::start(DemoConfig::default(), 0, stop.clone())
        .await
        .expect("second demo site starts");
    let proxy = Proxy::start(PROXY_USER, PROXY_PASSWORD).await;

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut demo = target("demo", &site, 2);
    demo.proxies = vec![proxy.url(PROXY_USER, PROXY_PASSWORD)];
    let mut config = Config::default();
    config.store.path = dir.path().join("store");
    config.browser = common::browser_config();
    config.server.token_file = Some(token_file);
    config.schedule.top_up_every = Duration::from_millis(300);
    config.schedule.persist_every = Duration::from_millis(500);
    config.targets = vec![demo, target("fragile", &revocable, 1)];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let d = Daemon::start(config, Some(listener))
        .await
        .expect("daemon starts");
    eventually("3 ready sessions", Duration::from_secs(90), || async {
        (d.pool.ready_count() >= 3).then_some(())
    })
    .await;

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pytest = tokio::process::Command::new(PYTHON);
    pytest
        .args(["-m", "pytest", "clients/python/tests", "-q", "-rA"])
        .args(["-p", "no:cacheprovider"])
        .current_dir(repo)
        .env("PYTHONPATH", repo.join("clients/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("WARMER_URL", format!("http://{}", d.addr))
        .env("WARMER_TOKEN", TOKEN)
        .env("DEMO_URL", site.base_url())
        .env("DEMO_REVOCABLE_URL", revocable.base_url())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Everything stays on 127.0.0.1: no proxy from the environment in between.
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ] {
        pytest.env_remove(var);
    }
    let out = tokio::time::timeout(Duration::from_secs(200), pytest.output())
        .await
        .expect("pytest finishes within 200 s")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "pytest clients/python/tests failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(" passed") && !stdout.contains(" skipped"),
        "every Python test ran: {stdout}"
    );

    // The clients' requests to the demo API went through the sessions' proxy, with its
    // credentials (the proxy forwards nothing without them).
    let api = format!("GET {}/api/event/", site.base_url());
    let proxied = proxy
        .seen()
        .forwarded
        .iter()
        .filter(|r| r.starts_with(&api))
        .count();
    assert!(
        proxied >= 16,
        "requests + Scrapy calls through the proxy: {proxied}"
    );
    d.shutdown().await;
    stop.cancel();
}
