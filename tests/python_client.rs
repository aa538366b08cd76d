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

use common::daemon::{run_client, Site};
use common::proxy::Proxy;
use std::path::Path;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_tests_pass_against_a_running_daemon() {
    require_python();
    let site = Site::start().await;
    let revocable = Site::start().await;
    let proxy = Proxy::start(PROXY_USER, PROXY_PASSWORD).await;

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut demo = site.target("demo", 2);
    demo.proxies = vec![proxy.url(PROXY_USER, PROXY_PASSWORD)];
    let mut config = common::daemon::config(dir.path(), vec![demo, revocable.target("fragile", 1)]);
    config.server.token_file = Some(token_file);
    let (d, base) = common::daemon::start(config).await;
    common::daemon::wait_ready(&d, 3, Duration::from_secs(90)).await;

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pytest = tokio::process::Command::new(PYTHON);
    pytest
        .args(["-m", "pytest", "clients/python/tests", "-q", "-rA"])
        .args(["-p", "no:cacheprovider"])
        .current_dir(repo)
        .env("PYTHONPATH", repo.join("clients/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("WARMER_URL", &base)
        .env("WARMER_TOKEN", TOKEN)
        .env("DEMO_URL", site.base_url())
        .env("DEMO_REVOCABLE_URL", revocable.base_url());
    let stdout = run_client(
        pytest,
        "pytest clients/python/tests",
        Duration::from_secs(200),
    )
    .await;
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
}
