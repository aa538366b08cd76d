//! The `warmer` binary as a user runs it: bad config is named and exits non-zero; `warm`,
//! `sessions` and `events` work against the demo site with a real store on disk.

mod common;

use std::process::Command;

fn warmer(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warmer"));
    c.current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("RUST_LOG");
    c
}

fn run_with_config(toml: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warmer.toml"), toml).unwrap();
    let out = warmer(dir.path()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_names_the_field_and_exits_non_zero() {
    let cases = [
        ("[browser]\nmax_tabs = 3\n", "max_tabs"),
        (
            "[[targets]]\nname = 'a'\nwarmup = 'soon'\n",
            "targets[0].warmup",
        ),
        (
            "[[targets]]\nname = 'a'\nrotate_every = '-5m'\n",
            "targets[0].rotate_every",
        ),
        (
            "[[targets]]\nname = 'a'\n[[targets]]\nname = 'a'\n",
            "targets[1].name",
        ),
        ("[server]\nlisten = 'everywhere'\n", "server.listen"),
    ];
    for (toml, field) in cases {
        let (code, err) = run_with_config(toml, &["check"]);
        assert_ne!(code, 0, "{toml}");
        assert!(
            err.contains(field),
            "{toml}: error should name {field}: {err}"
        );
        assert!(err.contains("warmer.toml"), "error names the file: {err}");
    }
    // TOML syntax, duplicate-key and overflow errors belong to no field: they name the line and
    // column, on one line.
    let cases = [
        (
            "[server]\nlisten = '127.0.0.1:1'\ntoken_file = \n",
            "line 3, column 14: ",
        ),
        (
            "[browser]\nmax_contexts = 2\nmax_contexts = 3\n",
            "line 3, column 1: duplicate key",
        ),
        (
            "[[targets]]\nname = 'a'\npool_size = 99999999999999999999\n",
            "line 3, column 13: ",
        ),
    ];
    for (toml, at) in cases {
        let (code, err) = run_with_config(toml, &["check"]);
        assert_ne!(code, 0, "{toml}");
        assert!(
            err.starts_with(&format!("error: config warmer.toml: {at}")),
            "{toml}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let toml = "[[targets]]\nname = 'a'\nevent_url = 'http://127.0.0.1:9/e/{event}'\n";
    let (code, err) = run_with_config(toml, &["warm", "--target", "nope", "--event", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("--target") && err.contains("nope"), "{err}");
}

/// `warmer events add|import` take only ids the API can serve (`GET
/// /api/sessions/event/{id}`): a bad one is refused by name and nothing is stored, not even
/// the good ids given with it.
#[test]
fn events_with_an_id_the_api_cannot_serve_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[store]\npath = 'store'\n[[targets]]\nname = 'a'\n\
                event_url = 'http://127.0.0.1:9/e/{event}'\n";
    std::fs::write(dir.path().join("warmer.toml"), toml).unwrap();
    let listed = || {
        let out = warmer(dir.path())
            .args(["events", "list"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for bad in ["a b", "../x", "x/y", "é"] {
        let out = warmer(dir.path())
            .args(["events", "add", "1001", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?} was accepted: {err}");
        assert!(
            err.contains(&format!("invalid event id {bad:?}")),
            "the error names {bad:?}: {err}"
        );
        assert_eq!(listed(), "", "nothing stored after {bad:?}");
    }
    std::fs::write(dir.path().join("events.txt"), "# ok\n1001\nsold out\n").unwrap();
    let out = warmer(dir.path())
        .args(["events", "import", "events.txt"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("events.txt") && err.contains("invalid event id \"sold out\""),
        "{err}"
    );
    assert_eq!(listed(), "");
    // The same ids, good ones only, go in.
    let out = warmer(dir.path())
        .args(["events", "add", "1001", "a-b_c.d:e"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed(), "a\t1001\na\ta-b_c.d:e\n");
}

#[test]
fn a_config_over_1_mib_is_refused_with_a_clear_message() {
    let mut toml = String::from("[server]\nlisten = '127.0.0.1:3000'\n");
    while toml.len() <= 2 << 20 {
        toml.push_str("# a comment line that pads the file beyond the limit of one MiB\n");
    }
    let (code, err) = run_with_config(&toml, &["check"]);
    assert_ne!(code, 0);
    assert!(
        err.starts_with("error: config warmer.toml: the file is ") && err.contains("at most 1 MiB"),
        "{err}"
    );
}

#[test]
fn check_refuses_an_open_listen_without_token_and_warns_of_no_targets() {
    let target = "[[targets]]\nname = 'a'\nevent_url = 'http://127.0.0.1:9/e/{event}'\n";
    // A non-loopback listen without a token: the daemon would refuse to start; so does check.
    let toml = format!("[server]\nlisten = '0.0.0.0:3000'\n{target}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warmer.toml"), &toml).unwrap();
    let out = warmer(dir.path())
        .env_remove("WARMER_TOKEN")
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("server.listen") && err.contains("WARMER_TOKEN"),
        "{err}"
    );
    // With a token it passes.
    let out = warmer(dir.path())
        .env("WARMER_TOKEN", "0123456789abcdef0123")
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("token required"));
    assert!(!err.contains("warning"), "{err}");

    // No targets: a warning, not an error.
    std::fs::write(
        dir.path().join("warmer.toml"),
        "[server]\nlisten = '127.0.0.1:3000'\n",
    )
    .unwrap();
    let out = warmer(dir.path()).arg("check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: no [[targets]]"), "{err}");
}

#[test]
fn warm_by_hand_then_list_show_export_delete() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site_stop = tokio_util::sync::CancellationToken::new();
    let site = rt
        .block_on(session_warmer::demo::DemoSite::start(
            Default::default(),
            0,
            site_stop.clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[store]\npath = 'store'\n[[targets]]\nname = 'demo'\nevent_url = '{}'\nwarmup = '500ms'\n",
        site.event_url_template()
    );
    std::fs::write(dir.path().join("warmer.toml"), toml).unwrap();

    let out = warmer(dir.path())
        .args(["events", "add", "1001", "1002"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warmer(dir.path())
        .args(["events", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    // Chromium writes nothing into the user's home (it gets its own, in its launch dir).
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = warmer(dir.path())
        .args(["warm", "--json"])
        .env("HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let written: Vec<_> = std::fs::read_dir(&home).unwrap().collect();
    assert!(written.is_empty(), "written into HOME: {written:?}");
    assert!(
        stderr.contains("navigating to"),
        "progress is shown: {stderr}"
    );
    let session: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = session["id"].as_str().unwrap().to_string();
    let event = session["event"].as_str().unwrap().to_string();
    assert!(
        event == "1001" || event == "1002",
        "random stored event: {event}"
    );

    let out = warmer(dir.path())
        .args(["sessions", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = warmer(dir.path())
        .args(["sessions", "show", &id])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("visitor"));
    let secret = session["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "visitor")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!shown.contains(&secret), "show hides cookie values");

    let out = warmer(dir.path())
        .args(["sessions", "export", &id, "--format", "headers"])
        .output()
        .unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert!(headers["Cookie"].as_str().unwrap().contains("visitor="));
    let out = warmer(dir.path())
        .args(["sessions", "export", &id, "--format", "cookies-txt"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("#HttpOnly_"));
    let out = warmer(dir.path())
        .args(["sessions", "export", &id, "--format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));

    let out = warmer(dir.path())
        .args(["sessions", "delete", &id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = warmer(dir.path())
        .args(["sessions", "show", &id])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The store is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("store"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    site_stop.cancel();
}

#[test]
fn warm_asks_a_running_daemon_and_accounts_login_by_hand() {
    use session_warmer::config::Config;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site_stop = tokio_util::sync::CancellationToken::new();
    let site = rt
        .block_on(session_warmer::demo::DemoSite::start(
            Default::default(),
            0,
            site_stop.clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = site.base_url();
    let toml = format!(
        "[server]\nlisten = '127.0.0.1:{port}'\n[store]\npath = 'store'\n\
         [[targets]]\nname = 'demo'\nevent_url = '{}'\nevents = ['1001']\nwarmup = '300ms'\npool_size = 1\n\
         [[targets]]\nname = 'portal'\naccounts_dir = 'accounts'\n[targets.login]\nurl = '{base}/login'\n\
         steps = [{{fill = '#username', value = '{{username}}'}}, {{fill = '#password', value = '{{password}}'}}, {{click = 'button[type=submit]'}}, {{wait_for_url = '/account'}}]\n\
         check = {{url = '{base}/account', selector = '#account'}}\n",
        site.event_url_template()
    );
    std::fs::write(dir.path().join("warmer.toml"), &toml).unwrap();

    // accounts add / list / login by hand (no daemon: the CLI opens the store itself)
    let mut add = warmer(dir.path())
        .args([
            "accounts",
            "add",
            "alice",
            "--username",
            "alice",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"wonderland\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let out = warmer(dir.path())
        .args(["accounts", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("alice") && !listed.contains("wonderland"),
        "{listed}"
    );
    let out = warmer(dir.path())
        .args(["login", "--account", "alice"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("step 1/4: fill #username"),
        "progress: {stderr}"
    );
    assert!(!stderr.contains("wonderland"), "no password in progress");
    assert_eq!(site.stats().logins, 1);

    // While a daemon holds the store, `warm` asks it.
    let config = Config::load(&dir.path().join("warmer.toml")).unwrap();
    let mut config = config;
    config.store.path = dir.path().join("store");
    config.targets[1].accounts_dir = Some(dir.path().join("accounts"));
    let daemon = rt
        .block_on(session_warmer::daemon::Daemon::start(config, None))
        .unwrap();
    let out = warmer(dir.path())
        .args(["warm", "--event", "1001", "--target", "demo", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("asking it"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["event"], "1001");
    assert!(v["headers"]["Cookie"]
        .as_str()
        .unwrap()
        .contains("visitor="));

    // While a daemon holds the store, `sessions export` asks it too.
    let id = v["session_id"].as_str().unwrap();
    let out = warmer(dir.path())
        .args(["sessions", "export", id, "--format", "cookies-txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("asking it"), "{stderr}");
    let txt = String::from_utf8_lossy(&out.stdout);
    assert!(txt.starts_with("# Netscape HTTP Cookie File"), "{txt}");
    assert!(txt.contains("#HttpOnly_127.0.0.1\t") && txt.contains("\tvisitor\t"));
    let out = warmer(dir.path())
        .args(["sessions", "export", id, "--format", "headers"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let headers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(headers["Cookie"], v["headers"]["Cookie"]);
    let out = warmer(dir.path())
        .args(["sessions", "export", "0123456789abcdef0123456789abcdef"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session"));
    let out = warmer(dir.path())
        .args(["accounts", "refresh"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warmer(dir.path())
        .args(["accounts", "remove", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    rt.block_on(daemon.shutdown());
    site_stop.cancel();
}

#[test]
fn an_encrypted_store_opens_with_its_key_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("warmer.toml"),
        "[store]\npath = 'store'\n[[targets]]\nname = 'a'\nevent_url = 'http://127.0.0.1:9/e/{event}'\n",
    )
    .unwrap();
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let out = warmer(dir.path())
        .env("WARMER_KEY", key)
        .args(["events", "add", "1001"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warmer(dir.path())
        .env("WARMER_KEY", key)
        .args(["sessions", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warmer(dir.path())
        .env_remove("WARMER_KEY")
        .args(["sessions", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted"));
}

#[path = "common/redis.rs"]
mod redis_server;

/// `events add|list` and `sessions list|show` on `store.backend = "redis"` work on the shared
/// store itself (no daemon needed, none asked): the events are in Redis, where a daemon's
/// store sees them, and nothing is written to a sled directory.
#[tokio::test]
async fn events_and_sessions_work_against_a_redis_store() {
    let redis = redis_server::shared();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[store]\nbackend = 'redis'\nurl = '{}'\nprefix = 'cli-test'\npath = 'store'\n\
         [[targets]]\nname = 'a'\nevent_url = 'http://127.0.0.1:9/e/{{event}}'\n",
        redis.url()
    );
    std::fs::write(dir.path().join("warmer.toml"), &toml).unwrap();
    let run = |args: &[&str]| {
        let out = warmer(dir.path())
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err,
        )
    };
    let (ok, _, err) = run(&["events", "add", "1001", "1002"]);
    assert!(ok, "{err}");
    assert!(err.contains("added 2 event(s) to a"), "{err}");
    let (ok, _, err) = run(&["events", "add", "1002"]);
    assert!(ok && err.contains("added 0 event(s)"), "{err}");
    let (ok, out, err) = run(&["events", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out, "a\t1001\na\t1002\n");
    let (ok, out, err) = run(&["sessions", "list", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([])
    );
    let (ok, _, err) = run(&["sessions", "show", "nope"]);
    assert!(!ok && err.contains("no session \"nope\""), "{err}");
    assert!(
        !dir.path().join("store").exists(),
        "no sled store was opened"
    );
    // The events are in Redis: a daemon's store (same config) sees them.
    let config: session_warmer::config::Config = toml::from_str(&toml).unwrap();
    let backend = session_warmer::store::open(&config.store, None)
        .await
        .unwrap();
    let events = backend.records.list_events(Some("a")).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["1001", "1002"]);
}
