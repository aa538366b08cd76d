//! Secrets never reach logs: the real `warmer serve` at debug level goes through warms,
//! logins, exports and API calls (with a token and a proxy with credentials); then all of its
//! output is searched for every cookie value, password, the token and the proxy password.

mod common;

use common::eventually;
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "tok-3f9a8c1d2e7b4a6f9c0d1e2f3a4b5c6d";
const PROXY_PASSWORD: &str = "proxy-pw-7c41d9e2";
const ACCOUNT_PASSWORD: &str = "wonderland";

#[test]
fn no_secret_reaches_the_debug_log_metrics_or_health() {
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
        "[server]\nlisten = '127.0.0.1:{port}'\ntoken_file = 'token'\n[store]\npath = 'store'\n\
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
        .args(["serve", "--config", "warmer.toml", "--log", "debug"])
        .env_remove("WARMER_TOKEN")
        .env("NO_COLOR", "1")
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
    let mut secrets: Vec<String> =
        vec![TOKEN.into(), PROXY_PASSWORD.into(), ACCOUNT_PASSWORD.into()];
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
        for v in [&served, &account] {
            for c in v["cookies"].as_array().unwrap() {
                secrets.push(c["value"].as_str().unwrap().to_string());
            }
        }
        let id = served["session_id"].as_str().unwrap();
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
        for s in &secrets {
            assert!(!metrics.contains(s.as_str()), "a secret in /metrics");
            assert!(!health.contains(s.as_str()), "a secret in /healthz");
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
    let mut leaks = Vec::new();
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        if text.contains(s.as_str()) {
            leaks.push(s.chars().take(4).collect::<String>() + "…");
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secret(s) reached the log: {leaks:?}",
        leaks.len()
    );
}
