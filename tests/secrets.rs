//! Secrets never reach logs: the real `warmer serve` at trace level (`RUST_LOG=trace`, with
//! the CDP and transport crates asked for at trace by name too) goes through warms, logins,
//! a proxy with credentials, a fetch of a URL with a secret query string, exports and API
//! calls; then all of its output is searched for every cookie value, the account password,
//! the token, the proxy password and the query-string value.

mod common;

use common::eventually;
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "tok-3f9a8c1d2e7b4a6f9c0d1e2f3a4b5c6d";
const PROXY_PASSWORD: &str = "proxy-pw-7c41d9e2";
const ACCOUNT_PASSWORD: &str = "wonderland";
const QUERY_SECRET: &str = "qs-secret-5e8d2a7f91";
/// What the daemon is asked to log: everything, and by name the crates that print raw CDP
/// frames, HTTP traffic and URIs at debug and trace.
const ASKED: &str = "trace,tungstenite=trace,async_tungstenite=trace,chromiumoxide=trace,\
                     hyper=trace,hyper_util=trace,reqwest=trace,h2=trace,rustls=trace,axum=trace,\
                     tower_http=trace";

#[test]
fn no_secret_reaches_the_trace_log_metrics_or_health() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let site = rt
        .block_on(session_warmer::demo::DemoSite::start(
            Default::default(),
            0,
            stop.clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("accounts")).unwrap();
    std::fs::write(
        dir.path().join("accounts/alice.toml"),
        format!("username = 'alice'\npassword = '{ACCOUNT_PASSWORD}'\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = site.base_url();
    let toml = format!(
        "[server]\nlisten = '127.0.0.1:{port}'\ntoken_file = 'token'\nallow_custom_proxies = true\n[store]\npath = 'store'\n\
         [schedule]\ntop_up_every = '300ms'\n\
         [[targets]]\nname = 'demo'\nevent_url = '{tpl}'\nevents = ['1001', '1002']\nwarmup = '300ms'\npool_size = 2\n\
         cookie_refresh_every = '2s'\nvalidate_every = '2s'\n\
         [targets.validate]\nurl = '{base}/api/event/{{event}}'\n\
         [[targets]]\nname = 'proxied'\nevent_url = 'http://127.0.0.2:9/event/{{event}}'\nevents = ['1']\nwarmup = '100ms'\npool_size = 1\n\
         proxies = ['http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:9']\n\
         [[targets]]\nname = 'portal'\naccounts_dir = 'accounts'\nrefresh_every = '1s'\n[targets.login]\nurl = '{base}/login'\n\
         steps = [{{fill = '#username', value = '{{username}}'}}, {{fill = '#password', value = '{{password}}'}}, {{click = 'button[type=submit]'}}, {{wait_for_url = '/account'}}]\n\
         check = {{url = '{base}/account', selector = '#account'}}\n",
        tpl = site.event_url_template()
    );
    std::fs::write(dir.path().join("warmer.toml"), toml).unwrap();
    let log = dir.path().join("daemon.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
        .current_dir(dir.path())
        .args(["serve", "--config", "warmer.toml"])
        .env("RUST_LOG", ASKED)
        .env_remove("WARMER_TOKEN")
        .stdout(std::fs::File::create(dir.path().join("daemon.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: String| {
        let c = client.clone();
        let api = api.clone();
        async move {
            let r = c
                .get(format!("{api}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?;
            let s = r.status().as_u16();
            Some((s, r.text().await.unwrap_or_default()))
        }
    };
    // (what, value)
    let mut secrets: Vec<(String, String)> = vec![
        ("the API token".into(), TOKEN.into()),
        ("the proxy password".into(), PROXY_PASSWORD.into()),
        ("the account password".into(), ACCOUNT_PASSWORD.into()),
        ("the query-string value".into(), QUERY_SECRET.into()),
    ];
    let proxy = rt.block_on(common::proxy::Proxy::start("u", PROXY_PASSWORD));
    rt.block_on(async {
        let served: Value = eventually("an event session", Duration::from_secs(60), || async {
            let (s, body) = get("/api/sessions/event/1001".into()).await?;
            (s == 200).then(|| serde_json::from_str(&body).unwrap())
        })
        .await;
        let account: Value = eventually("alice signed in", Duration::from_secs(60), || async {
            let (s, body) = get("/api/accounts/alice/session".into()).await?;
            (s == 200).then(|| serde_json::from_str(&body).unwrap())
        })
        .await;
        let id = served["session_id"].as_str().unwrap();
        // A fetch in the session's live context, of its own target's event page, with a
        // secret in the query string.
        let r = client
            .post(format!("{api}/api/v1/fetch"))
            .bearer_auth(TOKEN)
            .header("X-Session-ID", id)
            .json(&serde_json::json!({"url": format!("{base}/event/1001?sig={QUERY_SECRET}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let fetched: Value = r.json().await.unwrap();
        assert_eq!(fetched["status"], 200, "{fetched}");
        for (what, v) in [
            ("event", &served),
            ("account", &account),
            ("fetch", &fetched),
        ] {
            for c in v["cookies"].as_array().unwrap() {
                let name = c["name"].as_str().unwrap();
                secrets.push((
                    format!("{what} cookie {name}"),
                    c["value"].as_str().unwrap().to_string(),
                ));
            }
        }
        for f in ["cookies-txt", "storage-state", "headers", "json"] {
            let (s, _) = get(format!("/api/v1/sessions/{id}/export?format={f}"))
                .await
                .unwrap();
            assert_eq!(s, 200);
        }
        let (s, _) = get("/api/sessions/active?reveal=true".into())
            .await
            .unwrap();
        assert_eq!(s, 200);
        let r = client
            .post(format!("{api}/api/v1/sessions"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"target": "demo", "proxy": proxy.url("u", PROXY_PASSWORD)}))
            .send()
            .await
            .unwrap();
        // Warmed through the proxy, which demanded the password.
        assert_eq!(r.status().as_u16(), 201);
        let seen = proxy.seen();
        assert!(
            seen.challenged > 0 && !seen.forwarded.is_empty(),
            "{seen:?}"
        );
        let r = client
            .post(format!("{api}/api/sessions/{id}/usage"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"success": true, "status": 200}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        // A wrong token is refused without echoing anything.
        let r = client
            .get(format!("{api}/api/sessions/stats"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // Let the refresh, validation and keep-alive workers run a few ticks.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, metrics) = get("/metrics".into()).await.unwrap();
        let health = reqwest::get(format!("{api}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for (what, s) in &secrets {
            assert!(!metrics.contains(s.as_str()), "{what} in /metrics");
            assert!(!health.contains(s.as_str()), "{what} in /healthz");
        }
        assert!(
            metrics.contains("warmer_warms_total{target=\"proxied\""),
            "the proxied target was tried"
        );
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    stop.cancel();
    let text = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(dir.path().join("daemon.out")).unwrap();
    assert!(text.contains("DEBUG"), "the run logged at debug level");
    // A clean run and shutdown log no error (chromiumoxide's "WS Connection error" when the
    // browser closes used to be one).
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "errors in the log: {errors:?}");
    assert!(
        text.contains("keep-alive") || text.contains("login"),
        "logins were logged"
    );
    // Every secret is searched for in the whole log; too short a value would match by chance.
    let mut leaks = Vec::new();
    let mut searched = 0;
    eprintln!(
        "log: {} bytes, {} lines (RUST_LOG={ASKED})",
        text.len(),
        text.lines().count()
    );
    for (what, s) in secrets.iter().filter(|(_, s)| s.len() >= 6) {
        searched += 1;
        let n = text.matches(s.as_str()).count();
        eprintln!("{what}: {n}");
        if n > 0 {
            leaks.push(format!("{what} ({n}x)"));
        }
    }
    assert!(
        searched >= 7,
        "the cookies were searched for too: {searched}"
    );
    assert!(
        leaks.is_empty(),
        "{} secret(s) reached the log: {leaks:?}",
        leaks.len()
    );
    assert!(
        !text.contains("\x1b["),
        "no ANSI escape codes in a log that is not a terminal"
    );
}
