//! The Node client (`clients/node`) and the `crawlee` export against the real thing: the daemon
//! on 127.0.0.1:0 with a token, real Chromium and sled, the demo site; the pool-wide Crawlee
//! export through the API and through `warmer sessions export --all` (asking the running
//! daemon, then reading the store once it has stopped); then `node --test clients/node/test/`
//! with real `@crawlee/core` and `@crawlee/http` from npm (scripts/setup runs `npm ci`). The
//! Node tests load the export into Crawlee's `SessionPool` and get 200 from the demo site's
//! protected API with the cookie string Crawlee builds and `userData.warmer.userAgent`, take
//! and report with `WarmerClient`, and crawl the demo API with an `HttpCrawler` whose sessions
//! come from `createSessionFunction`.

mod common;

use common::daemon::{run_client, Site};
use serde_json::Value;
use session_warmer::demo::demo_events;
use session_warmer::export::CRAWLEE_SESSION_KEYS;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "node-client-token-0123456789abcdef";

/// Fails loudly when Node or the client's npm packages are missing (scripts/setup installs
/// them); never skips.
fn require_node(repo: &Path) {
    let out = std::process::Command::new("node").arg("--version").output();
    let version = out
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(version) = version else {
        panic!("node is needed (18 or later): run scripts/setup: {out:?}");
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 18, "node {version} is too old: 18 or later");
    for pkg in ["@crawlee/core", "@crawlee/http"] {
        let dir = repo.join("clients/node/node_modules").join(pkg);
        assert!(
            dir.join("package.json").is_file(),
            "{} is missing: run scripts/setup (npm ci --prefix clients/node)",
            dir.display()
        );
    }
}

/// The ids of a Crawlee record's sessions, after checking every session has only Crawlee's keys.
fn crawlee_ids(record: &Value) -> BTreeSet<String> {
    let sessions = record["sessions"].as_array().expect("a sessions array");
    assert_eq!(record["usableSessionsCount"], sessions.len());
    sessions
        .iter()
        .map(|s| {
            for k in s.as_object().unwrap().keys() {
                assert!(CRAWLEE_SESSION_KEYS.contains(&k.as_str()), "key {k} in {s}");
            }
            for c in s["cookieJar"]["cookies"].as_array().unwrap() {
                assert!(!c["domain"].as_str().unwrap().starts_with('.'), "{c}");
                assert!(c["hostOnly"].is_boolean(), "{c}");
            }
            s["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `warmer sessions export --all --format crawlee` with `config_file`; its stdout as JSON.
fn cli_export(dir: &Path, config_file: &Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
        .current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("WARMER_KEY")
        .env_remove("RUST_LOG")
        .env("WARMER_TOKEN", TOKEN)
        .arg("--config")
        .arg(config_file)
        .args(["sessions", "export", "--all", "--format", "crawlee"])
        .args(["--target", "demo"])
        .output()
        .expect("warmer runs");
    assert!(
        out.status.success(),
        "warmer sessions export --all failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the export is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_and_crawlee_export_work_with_real_crawlee() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    require_node(repo);
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut config = common::daemon::config(dir.path(), vec![site.target("demo", 3)]);
    config.server.token_file = Some(token_file.clone());
    let (d, base) = common::daemon::start(config).await;
    common::daemon::wait_ready(&d, 3, Duration::from_secs(90)).await;

    // The pool-wide record through the API.
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(TOKEN).send();
    let resp = get("/api/v1/sessions/export?format=crawlee").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    let ids = crawlee_ids(&record);
    assert!(ids.len() >= 3, "{text}");
    let export_file = dir.path().join("crawlee-export.json");
    std::fs::write(&export_file, &text).unwrap();
    for (path, status) in [
        ("/api/v1/sessions/export?format=json", 400),
        ("/api/v1/sessions/export?format=crawlee&target=nope", 404),
        ("/api/v1/sessions/export?target=demo", 200),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), status, "{path}: {}", r.text().await.unwrap());
    }
    let r = http
        .get(format!("{base}/api/v1/sessions/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the export needs the token");

    // The same through the CLI, which asks the running daemon (it holds the store).
    let config_file = dir.path().join("warmer.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server]\nlisten = \"{}\"\ntoken_file = {:?}\n\n[store]\npath = {:?}\n\n\
             [[targets]]\nname = \"demo\"\nevent_url = \"{}\"\n",
            d.addr,
            token_file.display().to_string(),
            dir.path().join("store").display().to_string(),
            site.event_url_template(),
        ),
    )
    .unwrap();
    let via_daemon = tokio::task::spawn_blocking({
        let (dir, config_file) = (dir.path().to_path_buf(), config_file.clone());
        move || cli_export(&dir, &config_file)
    })
    .await
    .unwrap();
    // The pool may warm or retire a session between the two reads: the CLI's sessions are
    // the API's of just before or just after it, and it lists every one in both.
    let again = get("/api/v1/sessions/export?format=crawlee").await.unwrap();
    let after = crawlee_ids(&serde_json::from_str(&again.text().await.unwrap()).unwrap());
    let cli = crawlee_ids(&via_daemon);
    assert!(
        cli.iter().all(|id| ids.contains(id) || after.contains(id))
            && ids.intersection(&after).all(|id| cli.contains(id)),
        "CLI (via the daemon) and API agree: API before {ids:?}, CLI {cli:?}, API after {after:?}"
    );

    // node --test with real Crawlee; its storage in a temp dir, never in the repo.
    let storage = tempfile::tempdir().unwrap();
    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-concurrency=1", "clients/node/test/"])
        .current_dir(repo)
        .env("WARMER_URL", &base)
        .env("WARMER_TOKEN", TOKEN)
        .env("DEMO_URL", site.base_url())
        .env("WARMER_EVENTS", demo_events().join(","))
        .env("WARMER_CRAWLEE_EXPORT", &export_file)
        .env("CRAWLEE_STORAGE_DIR", storage.path())
        .env("CRAWLEE_LOG_LEVEL", "WARNING");
    let stdout = run_client(
        node,
        "node --test clients/node/test/",
        Duration::from_secs(240),
    )
    .await;
    let count = |label: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {label} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no '# {label}' line in node's output"))
    };
    assert!(count("pass") >= 8, "every Node test ran: {stdout}");
    assert_eq!(count("fail"), 0);
    assert_eq!(count("skipped"), 0);
    assert_eq!(count("todo"), 0);
    assert!(
        !repo.join("clients/node/storage").exists() && !repo.join("storage").exists(),
        "Crawlee wrote into the repo"
    );

    // With the daemon stopped, the CLI reads the store itself.
    d.shutdown().await;
    let offline = tokio::task::spawn_blocking({
        let (dir, config_file) = (dir.path().to_path_buf(), config_file.clone());
        move || cli_export(&dir, &config_file)
    })
    .await
    .unwrap();
    let offline_ids = crawlee_ids(&offline);
    assert!(!offline_ids.is_empty(), "{offline}");
}
