//! Seed 004's dropped session files against a real daemon, a real Chromium and the demo site:
//! a storageState file written by "another process" (here: a plain HTTP sign-in at the demo)
//! is listed within 5 s and kept alive, its session opens the protected API, write-back
//! rewrites the file (0600), a bad file is reported by name and skipped (a good file turned bad
//! keeps its last good session), a lapsed session is reported inactive and kept (the file
//! too), and removing the file unregisters it within 5 s. Two daemons on one Redis sharing the
//! folder keep one session per file. Plus the config rules.

#[allow(dead_code)]
#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/redis.rs"]
mod redis_server;

use common::daemon::{self, Site};
use common::eventually;
use serde_json::{json, Value};
use session_warmer::config::{CheckConfig, Config, LoginConfig, TargetConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user` in at the demo site over plain HTTP; returns the `sid` cookie's value.
async fn sign_in(base: &str, user: &str, pw: &str) -> String {
    let r = client()
        .post(format!("{base}/login"))
        .form(&[("username", user), ("password", pw)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.strip_prefix("sid="))
        .expect("sid cookie")
        .to_string();
    set.split(';').next().unwrap().to_string()
}

/// A Playwright storageState with the demo's `sid`, written with `mode`.
fn write_state(path: &Path, sid: &str, mode: u32) {
    let state = json!({
        "cookies": [{"name": "sid", "value": sid, "domain": "127.0.0.1", "path": "/",
                     "expires": -1, "httpOnly": true, "secure": false, "sameSite": "Lax"}],
        "origins": []
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn portal(site: &Site, sessions: &Path) -> TargetConfig {
    let mut t = TargetConfig::ad_hoc("portal", "http://unused/{event}");
    t.event_url = None;
    t.refresh_every = Duration::from_secs(1);
    t.sessions_grace = Duration::from_secs(3);
    t.sessions_dir = Some(sessions.to_path_buf());
    t.write_back = true;
    t.login = Some(LoginConfig {
        url: String::new(),
        steps: Vec::new(),
        check: CheckConfig {
            url: Some(format!("{}/account", site.base_url())),
            expect_status: 200,
            ..CheckConfig::default()
        },
        max_login_attempts: 5,
    });
    t
}

async fn status(base: &str) -> Value {
    client()
        .get(format!("{base}/api/accounts/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn entry<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["account"] == id)
}

fn skipped<'a>(v: &'a Value, file: &str) -> Option<&'a Value> {
    v["skippedFiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"].as_str().unwrap().ends_with(file))
}

#[tokio::test]
async fn dropped_session_files_are_kept_alive_reported_and_unregistered() {
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let config = daemon::config(dir.path(), vec![portal(&site, &sessions)]);
    let (d, base) = daemon::start(config).await;
    let five = Duration::from_secs(5);

    // Another process signs in and drops the session; a bad file lands beside it.
    let sid = sign_in(&site.base_url(), "alice", "wonderland").await;
    let file = sessions.join("session-0912.json");
    write_state(&file, &sid, 0o640);
    std::fs::write(sessions.join("broken.json"), "{ not json").unwrap();

    let v = eventually("the dropped file listed", five, || async {
        let v = status(&base).await;
        entry(&v, "session-0912").is_some().then_some(v)
    })
    .await;
    let e = entry(&v, "session-0912").unwrap();
    assert_eq!(e["source"], "file", "{v}");
    assert!(e["file"].as_str().unwrap().ends_with("session-0912.json"));
    assert_eq!(e["target"], "portal");
    let bad = eventually("the bad file reported", five, || async {
        skipped(&status(&base).await, "broken.json").cloned()
    })
    .await;
    assert_eq!(bad["reason"], "not_json", "{bad}");
    assert!(entry(&status(&base).await, "broken").is_none());

    // Kept alive: checked in the browser, refreshed, active.
    eventually(
        "the session checked and active",
        Duration::from_secs(30),
        || async {
            let v = status(&base).await;
            let e = entry(&v, "session-0912")?;
            (e["isActive"] == true && e["refreshCount"].as_u64()? >= 2 && e["lastRefresh"].is_u64())
                .then_some(())
        },
    )
    .await;

    // Used as a session: its cookies open the demo's protected API.
    let served: Value = client()
        .get(format!("{base}/api/accounts/session-0912/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = served["headers"]["Cookie"].as_str().expect("Cookie header");
    assert!(cookie.contains(&format!("sid={sid}")), "{served}");
    let me = client()
        .get(format!("{}/api/me", site.base_url()))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["user"], "alice");

    // Write-back: the file was rewritten atomically and privately, in its own format.
    eventually("the file written back (0600)", five, || async {
        let mode = std::fs::metadata(&file).ok()?.permissions().mode() & 0o777;
        (mode == 0o600).then_some(())
    })
    .await;
    let back: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        back["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "sid" && c["value"] == sid.as_str()),
        "storageState with the session's cookie"
    );
    // The daemon's own write-backs are not taken for changes (no reload loop): still active.
    let count = entry(&status(&base).await, "session-0912").unwrap()["refreshCount"]
        .as_u64()
        .unwrap();
    eventually(
        "more checks, still active",
        Duration::from_secs(10),
        || async {
            let v = status(&base).await;
            let e = entry(&v, "session-0912")?;
            (e["isActive"] == true && e["refreshCount"].as_u64()? > count).then_some(())
        },
    )
    .await;

    // Changed into a bad file: reported and skipped, the last good session kept.
    std::fs::write(&file, "{ half written").unwrap();
    let v = eventually("the broken change reported", five, || async {
        let v = status(&base).await;
        skipped(&v, "session-0912.json").is_some().then_some(v)
    })
    .await;
    let e = entry(&v, "session-0912").expect("still listed");
    assert!(
        e["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("last good version is kept"),
        "{v}"
    );
    assert!(e["sessionId"].is_string());
    // Fixed again: loaded again, the report cleared.
    write_state(&file, &sid, 0o600);
    eventually("the fixed file loaded", five, || async {
        let v = status(&base).await;
        skipped(&v, "session-0912.json").is_none().then_some(())
    })
    .await;

    // Lapsed at the site: reported inactive with the reason, kept listed and stored; after
    // the grace period its session is retired, but it stays listed and the file stays.
    let r = client()
        .post(format!("{}/__demo/revoke", site.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = eventually("the lapse reported", Duration::from_secs(15), || async {
        let v = status(&base).await;
        let e = entry(&v, "session-0912")?;
        (e["isActive"] == false && e["lastError"].as_str()?.contains("lapsed")).then_some(v)
    })
    .await;
    let sid_record = entry(&v, "session-0912").unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        d.pool.get(&sid_record).is_some(),
        "a lapsed session is kept during the grace period"
    );
    let r = client()
        .get(format!("{base}/api/accounts/session-0912/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "an inactive session is not served");
    eventually(
        "retired after the grace period, still listed",
        Duration::from_secs(15),
        || async {
            let v = status(&base).await;
            let e = entry(&v, "session-0912")?;
            (e["gaveUp"] == true && e["lastError"].as_str()?.contains("sessions_grace"))
                .then_some(())
        },
    )
    .await;
    assert!(file.exists(), "the file is never deleted");

    // Removed: unregistered within 5 s.
    std::fs::remove_file(&file).unwrap();
    eventually("the removed file unregistered", five, || async {
        entry(&status(&base).await, "session-0912")
            .is_none()
            .then_some(())
    })
    .await;
    d.shutdown().await;
}

#[test]
fn sessions_only_targets_need_a_check_url_and_nothing_to_sign_in_with() {
    let ok = r#"
        [[targets]]
        name = "sms"
        sessions_dir = "sessions"
        [targets.login]
        check = { url = "https://portal.example/account", expect_status = 200 }
    "#;
    let c = Config::parse(ok, "test").expect("a sessions_dir-only target needs no login url");
    let t = &c.targets[0];
    assert!(!t.write_back, "write_back is off by default");
    assert_eq!(t.sessions_grace, Duration::from_secs(3600));
    assert!(!t.login.as_ref().unwrap().can_sign_in());

    let no_login = "[[targets]]\nname = \"sms\"\nsessions_dir = \"s\"\n";
    let e = Config::parse(no_login, "test").unwrap_err().to_string();
    assert!(e.contains("targets[0].login.check"), "{e}");

    let no_url = "[[targets]]\nname = \"sms\"\nsessions_dir = \"s\"\n[targets.login]\ncheck = { selector = \"#me\" }\n";
    let e = Config::parse(no_url, "test").unwrap_err().to_string();
    assert!(e.contains("targets[0].login.check.url"), "{e}");

    let steps_without_accounts = "[[targets]]\nname = \"sms\"\nsessions_dir = \"s\"\n[targets.login]\nurl = \"https://p.example/login\"\nsteps = [{ click = \"button\" }]\ncheck = { url = \"https://p.example/account\" }\n";
    let e = Config::parse(steps_without_accounts, "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("targets[0].accounts_dir"), "{e}");

    let accounts_without_url = "[[targets]]\nname = \"p\"\naccounts_dir = \"a\"\n[targets.login]\ncheck = { url = \"https://p.example/account\" }\n";
    let e = Config::parse(accounts_without_url, "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("targets[0].login.url"), "{e}");
}

/// Ready sessions of dropped file `id` in the shared store (what every daemon serves from).
async fn stored_for(store: &session_warmer::store::Backend, id: &str) -> Vec<String> {
    store
        .records
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| {
            s.account.as_deref() == Some(id)
                && s.state == session_warmer::session::SessionState::Ready
        })
        .map(|s| s.id)
        .collect()
}

/// Two daemons on one Redis, sharing one remote Chromium and one `sessions_dir` (a volume
/// mounted into both): a dropped file becomes one session, not one per daemon; its keep-alive
/// is claimed by name, so one daemon checks it at a time and the other follows the same
/// record; a write-back by one is not taken by the other for a new file (which would have them
/// check and rewrite it in turns); removing the file unregisters it on both.
#[tokio::test]
async fn two_daemons_sharing_a_sessions_dir_keep_one_session_per_file() {
    use session_warmer::config::{Endpoint, SecretUrl, StoreBackend};
    let site = Site::start().await;
    let redis = redis_server::RedisServer::start();
    let chrome = cluster::Chrome::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let config = |node: &str| {
        let mut t = portal(&site, &sessions);
        t.refresh_every = Duration::from_secs(2);
        let mut c = daemon::config(&dir.path().join(node), vec![t]);
        c.store.backend = StoreBackend::Redis;
        c.store.url = Some(SecretUrl::new(redis.url()));
        c.store.prefix = "dropped".into();
        c.cluster.node = Some(node.into());
        c.browser.endpoint = Some(Endpoint::new(chrome.endpoint()));
        c
    };
    let store = session_warmer::store::open(&config("test").store, None)
        .await
        .unwrap();
    let (a, base_a) = daemon::start(config("a")).await;
    let (b, base_b) = daemon::start(config("b")).await;

    let sid = sign_in(&site.base_url(), "alice", "wonderland").await;
    let file = sessions.join("session-0912.json");
    write_state(&file, &sid, 0o600);

    // Both list it, active, on the same session.
    let twenty = Duration::from_secs(20);
    let one = eventually(
        "both daemons list the file active on one session",
        twenty,
        || async {
            let (va, vb) = (status(&base_a).await, status(&base_b).await);
            let (ea, eb) = (entry(&va, "session-0912")?, entry(&vb, "session-0912")?);
            let same = ea["sessionId"].as_str()? == eb["sessionId"].as_str()?;
            (ea["isActive"] == true && eb["isActive"] == true && same)
                .then(|| ea["sessionId"].as_str().unwrap().to_string())
        },
    )
    .await;

    // Through four keep-alive periods and their write-backs: still one session record, the
    // one both daemons name, and the file keeps opening the account page.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    let mut checks = 0;
    while std::time::Instant::now() < until {
        let ids = stored_for(&store, "session-0912").await;
        assert_eq!(ids.len(), 1, "one ready session for the file, not {ids:?}");
        checks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(checks > 10);
    let (va, vb) = (status(&base_a).await, status(&base_b).await);
    let refreshed = |v: &Value| {
        entry(v, "session-0912").unwrap()["refreshCount"]
            .as_u64()
            .unwrap()
    };
    assert!(
        refreshed(&va) + refreshed(&vb) >= 3,
        "kept alive meanwhile: {va} {vb}"
    );
    let now = stored_for(&store, "session-0912").await;
    assert_eq!(
        now,
        vec![one.clone()],
        "the session the file became at first stays the one"
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        written["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "sid"),
        "written back: {written}"
    );

    // Removed: unregistered on both, its session retired.
    std::fs::remove_file(&file).unwrap();
    eventually(
        "the removed file unregistered on both",
        Duration::from_secs(5),
        || async {
            let gone = entry(&status(&base_a).await, "session-0912").is_none()
                && entry(&status(&base_b).await, "session-0912").is_none();
            gone.then_some(())
        },
    )
    .await;
    eventually("its session retired", Duration::from_secs(5), || async {
        stored_for(&store, "session-0912")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
