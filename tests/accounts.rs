//! Login sessions kept alive against the demo site (inactivity expiry of a few seconds), with
//! the real daemon, a real Chromium and a real store.

mod common;

use common::eventually;
use serde_json::Value;
use session_warmer::config::{
    CheckConfig, Config, LoginConfig, LoginStep, StepAction, TargetConfig,
};
use session_warmer::daemon::Daemon;
use session_warmer::demo::{DemoConfig, DemoSite};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every log line of the test process, at debug level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    let c = Captured::default();
    let w = c.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(session_warmer::logging::filter("debug"))
        .with_writer(move || w.clone())
        .with_ansi(false)
        .try_init();
    c
}

struct Portal {
    site: DemoSite,
    stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Portal {
    async fn new(inactivity: Duration) -> Self {
        let stop = CancellationToken::new();
        let demo = DemoConfig {
            login_inactivity: inactivity,
            ..DemoConfig::default()
        };
        let site = DemoSite::start(demo, 0, stop.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("accounts")).unwrap();
        Self { site, stop, dir }
    }

    fn accounts(&self) -> std::path::PathBuf {
        self.dir.path().join("accounts")
    }

    fn add(&self, id: &str, user: &str, pw: &str) {
        std::fs::write(
            self.accounts().join(format!("{id}.toml")),
            format!("username = \"{user}\"\npassword = \"{pw}\"\n"),
        )
        .unwrap();
    }

    fn config(&self, refresh_every: Duration) -> Config {
        let base = self.site.base_url();
        let mut t = TargetConfig::ad_hoc("portal", "http://unused/{event}");
        t.event_url = None;
        t.refresh_every = refresh_every;
        t.accounts_dir = Some(self.accounts());
        t.login = Some(LoginConfig {
            url: format!("{base}/login"),
            steps: vec![
                LoginStep::new(StepAction::Fill {
                    selector: "#username".into(),
                    value: "{username}".into(),
                }),
                LoginStep::new(StepAction::Fill {
                    selector: "#password".into(),
                    value: "{password}".into(),
                }),
                LoginStep::new(StepAction::Click {
                    selector: "button[type=submit]".into(),
                }),
                LoginStep::new(StepAction::WaitForUrl {
                    pattern: "/account".into(),
                }),
            ],
            check: CheckConfig {
                url: Some(format!("{base}/account")),
                expect_status: 200,
                selector: Some("#account".into()),
                signed_out: None,
            },
            max_login_attempts: 3,
        });
        let mut c = Config::default();
        c.store.path = self.dir.path().join("store");
        c.browser = common::browser_config();
        c.targets = vec![t];
        c
    }

    async fn start(&self, config: Config) -> (Daemon, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = Daemon::start(config, Some(l)).await.unwrap();
        let base = format!("http://{}", d.addr);
        (d, base)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn status_of<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["account"] == id)
        .unwrap_or(&Value::Null)
}

/// Calls the demo `/account` with the served headers, redirects not followed.
async fn account_page(site: &DemoSite, served: &Value) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("{}/account", site.base_url()));
    for (k, v) in served["headers"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    req.send().await.unwrap().status().as_u16()
}

async fn signed_in(base: &str, id: &str) -> Value {
    eventually(
        &format!("{id} signed in"),
        Duration::from_secs(30),
        || async {
            let (s, v) = json(&format!("{base}/api/accounts/{id}/session")).await;
            (s == 200).then_some(v)
        },
    )
    .await
}

#[tokio::test]
async fn keep_alive_keeps_the_account_signed_in_with_refreshes_not_logins() {
    let logs = capture_logs();
    let inactivity = Duration::from_secs(3);
    let p = Portal::new(inactivity).await;
    p.add("alice", "alice", "wonderland");
    let (d, base) = p.start(p.config(Duration::from_secs(1))).await;
    let served = signed_in(&base, "alice").await;
    let cookie_values: Vec<String> = served["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_string())
        .collect();
    assert!(!cookie_values.is_empty());
    // 5x the inactivity time: the served cookies keep working all along.
    let end = tokio::time::Instant::now() + inactivity * 5;
    while tokio::time::Instant::now() < end {
        let (_, served) = json(&format!("{base}/api/accounts/alice/session")).await;
        assert_eq!(account_page(&p.site, &served).await, 200, "still signed in");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, st) = json(&format!("{base}/api/accounts/status")).await;
    let a = status_of(&st, "alice");
    assert_eq!(a["loginCount"], 1, "{st}");
    assert!(a["refreshCount"].as_u64().unwrap() >= 5, "{st}");
    assert_eq!(st["isRunning"], true);
    assert_eq!(p.site.stats().logins, 1);

    // Through the API: a new account, then its removal.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/accounts"))
        .json(&serde_json::json!({"id": "bob", "username": "bob", "password": "builder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = client
        .post(format!("{base}/api/accounts"))
        .json(&serde_json::json!({"id": "../x", "username": "bob", "password": "builder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    signed_in(&base, "bob").await;
    let r = client
        .delete(format!("{base}/api/accounts/bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, _) = json(&format!("{base}/api/accounts/bob/session")).await;
    assert_eq!(s, 404);
    let r = client
        .post(format!("{base}/api/accounts/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("warmer_worker_events_total{worker=\"account_refresh\",outcome=\"ok\"}")
    );
    assert!(
        metrics.contains("warmer_accounts{state=\"signed_in\"} 1"),
        "{metrics}"
    );
    d.shutdown().await;

    // No password and no cookie value anywhere in the debug log of the run.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("keep-alive"), "the log was captured");
    // Refreshed in the same context, parked between checks: not revived from the store.
    assert!(
        text.contains("account context unparked"),
        "the context was reused"
    );
    for secret in ["wonderland", "builder"]
        .iter()
        .map(|s| s.to_string())
        .chain(cookie_values)
    {
        assert!(!text.contains(&secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn a_keep_alive_slower_than_the_expiry_lapses_and_signs_in_again() {
    let p = Portal::new(Duration::from_millis(1500)).await;
    p.add("alice", "alice", "wonderland");
    let (d, base) = p.start(p.config(Duration::from_secs(3))).await;
    signed_in(&base, "alice").await;
    eventually(
        "a second login after the lapse",
        Duration::from_secs(30),
        || async {
            let (_, st) = json(&format!("{base}/api/accounts/status")).await;
            (status_of(&st, "alice")["loginCount"].as_u64() >= Some(2)).then_some(())
        },
    )
    .await;
    let served = signed_in(&base, "alice").await;
    assert_eq!(account_page(&p.site, &served).await, 200);
    d.shutdown().await;
}

#[tokio::test]
async fn a_new_account_file_is_signed_in_and_removing_it_disposes_its_context() {
    let p = Portal::new(Duration::from_secs(600)).await;
    let (d, base) = p.start(p.config(Duration::from_secs(2))).await;
    let sup = d.pool.warmer().supervisor();
    let before = sup.live_contexts();
    p.add("bob", "bob", "builder");
    let served = signed_in(&base, "bob").await;
    assert_eq!(account_page(&p.site, &served).await, 200);
    assert_eq!(
        sup.live_contexts(),
        before + 1,
        "one live context per account"
    );
    // Between checks the context is parked: its page closed, no `max_contexts` slot held.
    eventually("the context parked", Duration::from_secs(15), || async {
        (sup.open_contexts() == 0).then_some(())
    })
    .await;
    assert_eq!(sup.live_contexts(), before + 1, "parked, not disposed");
    std::fs::remove_file(p.accounts().join("bob.toml")).unwrap();
    eventually("the context disposed", Duration::from_secs(15), || async {
        (sup.live_contexts() == before).then_some(())
    })
    .await;
    let (s, _) = json(&format!("{base}/api/accounts/bob/session")).await;
    assert_eq!(s, 404);
    d.shutdown().await;
}

#[tokio::test]
async fn more_accounts_than_context_slots_are_all_kept_signed_in() {
    // Parked between checks, accounts hold no `max_contexts` slot: three accounts fit in two
    // slots (before parking, the third waited forever for one, and so did every warm).
    let p = Portal::new(Duration::from_secs(600)).await;
    p.site.set_password("carol", "cheshire");
    for (id, user, pw) in [
        ("a1", "alice", "wonderland"),
        ("a2", "bob", "builder"),
        ("a3", "carol", "cheshire"),
    ] {
        p.add(id, user, pw);
    }
    let mut config = p.config(Duration::from_secs(2));
    config.browser.max_contexts = 2;
    let (d, base) = p.start(config).await;
    for id in ["a1", "a2", "a3"] {
        let served = signed_in(&base, id).await;
        assert_eq!(account_page(&p.site, &served).await, 200, "{id}");
    }
    assert_eq!(d.pool.warmer().supervisor().live_contexts(), 3);
    d.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_reported_backed_off_and_does_not_loop() {
    let p = Portal::new(Duration::from_secs(600)).await;
    p.add("alice", "alice", "not-the-password");
    let (d, base) = p.start(p.config(Duration::from_secs(1))).await;
    let st = eventually("the failure reported", Duration::from_secs(30), || async {
        let (_, st) = json(&format!("{base}/api/accounts/status")).await;
        let a = status_of(&st, "alice").clone();
        (a["failedAttempts"].as_u64() >= Some(1)).then_some(a)
    })
    .await;
    // Rejected credentials land back on the form: the step waiting for /account times out.
    let err = st["lastError"].as_str().unwrap();
    assert!(
        err.contains("wait_for_url") || err.contains("still signed out"),
        "{st}"
    );
    assert!(!st["lastError"]
        .as_str()
        .unwrap()
        .contains("not-the-password"));
    let (s, v) = json(&format!("{base}/api/accounts/alice/session")).await;
    assert_eq!(s, 503, "{v}");
    // With 1 s ticks, back-off (1 s, 2 s, 4 s...) and 3 attempts at most: no storm.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let failures = p.site.stats().login_failures;
    assert!((1..=3).contains(&failures), "{failures} login attempts");
    let (_, st) = json(&format!("{base}/api/accounts/status")).await;
    let a = status_of(&st, "alice");
    assert_eq!(a["isActive"], false);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("worker=\"account_login\",outcome=\"step_timeout\"")
            || metrics.contains("worker=\"account_login\",outcome=\"rejected\""),
        "{metrics}"
    );
    // Fixing the file retries at once.
    p.add("alice", "alice", "wonderland");
    signed_in(&base, "alice").await;
    d.shutdown().await;
}

#[tokio::test]
async fn after_chromium_is_killed_the_account_is_back_without_a_new_login() {
    let p = Portal::new(Duration::from_secs(600)).await;
    p.add("alice", "alice", "wonderland");
    let (d, base) = p.start(p.config(Duration::from_secs(1))).await;
    signed_in(&base, "alice").await;
    let first = d.pool.warmer().supervisor().current().unwrap();
    d.pool.warmer().supervisor().kill_for_test();
    eventually("relaunch", Duration::from_secs(30), || async {
        d.pool
            .warmer()
            .supervisor()
            .current()
            .filter(|b| b.generation > first.generation)
    })
    .await;
    let refreshes_before = {
        let (_, st) = json(&format!("{base}/api/accounts/status")).await;
        status_of(&st, "alice")["refreshCount"].as_u64().unwrap()
    };
    eventually(
        "a refresh in the new browser",
        Duration::from_secs(30),
        || async {
            let (_, st) = json(&format!("{base}/api/accounts/status")).await;
            let a = status_of(&st, "alice");
            (a["refreshCount"].as_u64().unwrap() > refreshes_before + 1 && a["isActive"] == true)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        p.site.stats().logins,
        1,
        "no new login: the stored cookies were revived"
    );
    let served = signed_in(&base, "alice").await;
    assert_eq!(account_page(&p.site, &served).await, 200);
    d.shutdown().await;
}
