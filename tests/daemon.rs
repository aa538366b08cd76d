//! The real daemon on 127.0.0.1:0 with second-scale schedules, against the demo site, with a
//! real Chromium and a real sled store on disk.

mod common;

use common::eventually;
use serde_json::{json, Value};
use session_warmer::config::{Config, TargetConfig, ValidateConfig};
use session_warmer::daemon::{Daemon, DaemonError};
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Fixture {
    site: DemoSite,
    site_stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let site_stop = CancellationToken::new();
        let site = DemoSite::start(DemoConfig::default(), 0, site_stop.clone())
            .await
            .unwrap();
        Self {
            site,
            site_stop,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, pool_size: usize) -> Config {
        let mut t = TargetConfig::ad_hoc("demo", &self.site.event_url_template());
        t.events = demo_events();
        t.warmup = Duration::from_millis(500);
        t.pool_size = pool_size;
        t.max_concurrent_warms = 2;
        t.validate = Some(ValidateConfig {
            url: format!("{}/api/event/{{event}}", self.site.base_url()),
            expect_status: 200,
            require_cookies: vec!["visitor".into()],
        });
        let mut c = Config::default();
        c.store.path = self.dir.path().join("store");
        c.browser = common::browser_config();
        c.schedule.top_up_every = Duration::from_millis(300);
        c.schedule.persist_every = Duration::from_millis(500);
        c.targets = vec![t];
        c
    }

    async fn start(&self, config: Config) -> (Daemon, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = Daemon::start(config, Some(listener))
            .await
            .expect("daemon starts");
        let base = format!("http://{}", d.addr);
        (d, base)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.site_stop.cancel();
    }
}

/// Ids of the ready sessions now.
fn ready_ids(d: &Daemon) -> HashSet<String> {
    d.pool
        .list()
        .into_iter()
        .filter(|(s, _)| s.state == session_warmer::session::SessionState::Ready)
        .map(|(s, _)| s.id.clone())
        .collect()
}

async fn wait_ready(d: &Daemon, n: usize) {
    eventually(
        &format!("{n} ready sessions"),
        Duration::from_secs(60),
        || async { (d.pool.ready_count() >= n).then_some(()) },
    )
    .await;
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn send(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(body["error"]["code"].is_string(), "error shape: {body}");
    assert!(body["error"]["message"].is_string(), "error shape: {body}");
}

#[tokio::test]
async fn the_pool_fills_and_served_headers_work_on_the_demo_api() {
    let f = Fixture::new().await;
    let (d, base) = f.start(f.config(3)).await;
    wait_ready(&d, 3).await;
    let (status, s) = get(&format!("{base}/api/sessions/event/1002")).await;
    assert_eq!(status, 200, "{s}");
    let event = s["event"].as_str().unwrap();
    let mut req = reqwest::Client::new().get(format!("{}/api/event/{event}", f.site.base_url()));
    for (k, v) in s["headers"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served headers work");
    let (_, stats) = get(&format!("{base}/api/sessions/stats")).await;
    assert!(stats["activeSessions"].as_u64().unwrap() >= 3, "{stats}");
    for k in [
        "totalSessions",
        "validSessions",
        "averageAge",
        "oldestSession",
    ] {
        assert!(stats.get(k).is_some(), "{k} in {stats}");
    }
    let (status, _) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200);
    d.shutdown().await;
}

#[tokio::test]
async fn rotation_replaces_every_session_without_a_gap() {
    let f = Fixture::new().await;
    let mut config = f.config(2);
    config.targets[0].rotate_every = Duration::from_secs(3);
    let (d, base) = f.start(config).await;
    wait_ready(&d, 2).await;
    let originals: HashSet<String> = ready_ids(&d);
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut polls = 0;
    loop {
        let r = client
            .get(format!("{base}/api/sessions/event/1001"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "a gap during rotation: {}",
            r.text().await.unwrap()
        );
        polls += 1;
        let ready: HashSet<String> = ready_ids(&d);
        if ready.is_disjoint(&originals) && !ready.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation did not complete"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(polls > 10);
    d.shutdown().await;
}

#[tokio::test]
async fn validation_retires_revoked_sessions_and_replacements_appear() {
    let f = Fixture::new().await;
    let mut config = f.config(2);
    config.targets[0].validate_every = Duration::from_secs(2);
    let (d, base) = f.start(config).await;
    wait_ready(&d, 2).await;
    let before: HashSet<String> = d
        .pool
        .list()
        .into_iter()
        .map(|(s, _)| s.id.clone())
        .collect();
    f.site.revoke_all();
    let (status, v) = send(
        reqwest::Method::POST,
        &format!("{base}/api/sessions/validate"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(v["retired"].as_u64().unwrap() >= 2, "{v}");
    eventually(
        "replacements after validation",
        Duration::from_secs(60),
        || async {
            let fresh = ready_ids(&d).difference(&before).count();
            (fresh >= 2).then_some(())
        },
    )
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn failure_reports_retire_a_session_and_429_reports_do_not() {
    let f = Fixture::new().await;
    let mut config = f.config(2);
    config.targets[0].max_failures = 2;
    let (d, base) = f.start(config).await;
    wait_ready(&d, 2).await;
    let (_, s) = get(&format!("{base}/api/sessions/event/1001")).await;
    let id = s["session_id"].as_str().unwrap().to_string();
    let usage = format!("{base}/api/sessions/{id}/usage");
    for _ in 0..3 {
        let (status, v) = send(
            reqwest::Method::POST,
            &usage,
            Some(json!({"success": false, "status": 429})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["verdict"], "back_off", "{v}");
    }
    let (_, v) = send(
        reqwest::Method::POST,
        &usage,
        Some(json!({"success": true, "status": 200})),
    )
    .await;
    assert_eq!(v["verdict"], "keep");
    let (_, v) = send(
        reqwest::Method::POST,
        &usage,
        Some(json!({"success": false, "status": 500})),
    )
    .await;
    assert_eq!(v["verdict"], "keep");
    let (_, v) = send(
        reqwest::Method::POST,
        &usage,
        Some(json!({"success": false})),
    )
    .await;
    assert_eq!(v["verdict"], "retired", "{v}");
    let (_, one) = get(&format!("{base}/api/v1/sessions/{id}")).await;
    assert_eq!(one["state"], "retired");

    // A 403 retires at once.
    let (_, s) = get(&format!("{base}/api/sessions/event/1001")).await;
    let other = s["session_id"].as_str().unwrap().to_string();
    assert_ne!(other, id, "a retired session is never served");
    let (_, v) = send(
        reqwest::Method::POST,
        &format!("{base}/api/sessions/{other}/usage"),
        Some(json!({"success": false, "status": 403})),
    )
    .await;
    assert_eq!(v["verdict"], "retired");
    d.shutdown().await;
}

#[tokio::test]
async fn a_restart_serves_the_stored_pool_at_once_without_a_browser() {
    let f = Fixture::new().await;
    let (d, _) = f.start(f.config(2)).await;
    wait_ready(&d, 2).await;
    d.shutdown().await;
    let mut config = f.config(2);
    // No browser can start: whatever is served comes from the store.
    config.browser.executable = Some("/nonexistent/chromium".into());
    let (d, base) = f.start(config).await;
    let (status, s) = get(&format!("{base}/api/sessions/event/1001")).await;
    assert_eq!(status, 200, "{s}");
    assert!(s["headers"]["Cookie"]
        .as_str()
        .unwrap()
        .contains("visitor="));
    assert!(d.pool.warmer().supervisor().current().is_none());
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    d.shutdown().await;
}

/// The event route serves a memoised projection of each session: it must show a changed
/// session at once, and a target's `max_uses` is enforced when serving, not only by the
/// expiry worker. No browser: the session is put in through the pool.
#[tokio::test]
async fn the_served_answer_follows_session_changes_and_max_uses() {
    let f = Fixture::new().await;
    let mut config = f.config(1);
    config.browser.executable = Some("/nonexistent/chromium".into());
    config.targets[0].max_uses = Some(3);
    let (d, base) = f.start(config).await;
    let now = session_warmer::session::now_ms();
    let mut s: session_warmer::session::Session =
        serde_json::from_str(include_str!("fixtures/session_v1.json")).unwrap();
    s.target = "demo".into();
    s.event = Some("1001".into());
    s.proxy = None;
    s.health = Default::default();
    (s.created_at, s.refreshed_at, s.expires_at) = (now, now, now + 3_600_000);
    d.pool.upsert(s.clone()).await.unwrap();
    let url = format!("{base}/api/sessions/event/1001");
    let cookie_header = |v: &Value| v["headers"]["Cookie"].as_str().unwrap().to_string();

    let (status, first) = get(&url).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["session_id"], s.id.as_str());
    assert_eq!(first["match"], "event");
    assert!(cookie_header(&first).contains("visitor=v-1f3a"), "{first}");
    let (_, again) = get(&format!("{url}?lease=5s")).await;
    assert_eq!(again["lease"]["seconds"], 5);
    assert_eq!(again["cookies"], first["cookies"]);
    // A report ends the lease.
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{base}/api/sessions/{}/usage", s.id),
        Some(json!({"success": true})),
    )
    .await;
    assert_eq!(status, 200);

    s.cookies[0].value = "v-changed".into();
    s.health.uses = 2;
    d.pool.upsert(s.clone()).await.unwrap();
    let (status, changed) = get(&url).await;
    assert_eq!(status, 200, "{changed}");
    assert!(
        cookie_header(&changed).contains("visitor=v-changed"),
        "{changed}"
    );
    assert_eq!(changed["cookies"][0]["value"], "v-changed");

    // That was its third use.
    let (status, v) = get(&url).await;
    assert_error(status, &v, 503);
    d.shutdown().await;
}

#[tokio::test]
async fn non_loopback_needs_a_token_and_requests_without_it_get_401() {
    let f = Fixture::new().await;
    let mut config = f.config(1);
    config.server.listen = "0.0.0.0:0".parse().unwrap();
    std::env::remove_var("WARMER_TOKEN");
    match Daemon::start(config.clone(), None).await {
        Err(e @ DaemonError::TokenRequired(_)) => assert!(e.to_string().contains("WARMER_TOKEN")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started without a token"),
    }
    let token_file = f.dir.path().join("token");
    std::fs::write(&token_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    config.server.token_file = Some(token_file);
    let (d, base) = f.start(config).await;
    let (status, body) = get(&format!("{base}/api/sessions/stats")).await;
    assert_error(status, &body, 401);
    let wrong = reqwest::Client::new()
        .get(format!("{base}/api/sessions/stats"))
        .bearer_auth("0123456789abcdef0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = reqwest::Client::new()
        .get(format!("{base}/api/sessions/stats"))
        .bearer_auth("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "health stays open for probes");
    d.shutdown().await;
}

#[tokio::test]
async fn every_endpoint_has_a_happy_path_and_a_bad_input_path() {
    use reqwest::Method;
    let f = Fixture::new().await;
    let (d, base) = f.start(f.config(2)).await;
    wait_ready(&d, 2).await;
    let u = |p: &str| format!("{base}{p}");

    // GET /api/sessions/event/:id
    let (s, v) = get(&u("/api/sessions/event/1001?lease=30s")).await;
    assert_eq!(s, 200);
    assert_eq!(v["lease"]["seconds"], 30);
    let id = v["session_id"].as_str().unwrap().to_string();
    let (s, v) = get(&u("/api/sessions/event/1001?lease=forever")).await;
    assert_error(s, &v, 400);
    let (s, v) = get(&u("/api/sessions/event/1001?target=nope")).await;
    assert_error(s, &v, 404);
    let (s, v) = get(&u("/api/sessions/event/..%2F..%2Fetc")).await;
    assert_error(s, &v, 400);

    // POST /api/sessions/event/:id
    let (s, v) = send(Method::POST, &u("/api/sessions/event/1004"), None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["event"], "1004");
    let (s, v) = send(Method::POST, &u("/api/sessions/event/9999"), None).await;
    assert_error(s, &v, 404);
    assert_eq!(v["error"]["code"], "event_not_found");
    let (s, v) = send(
        Method::POST,
        &u("/api/sessions/event/1004?target=nope"),
        None,
    )
    .await;
    assert_error(s, &v, 404);

    // POST /api/sessions/:id/usage
    let (s, _) = send(
        Method::POST,
        &u(&format!("/api/sessions/{id}/usage")),
        Some(json!({"success": true})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = send(
        Method::POST,
        &u(&format!("/api/sessions/{id}/usage")),
        Some(json!({"success": "yes"})),
    )
    .await;
    assert_error(s, &v, 422);
    let (s, v) = send(
        Method::POST,
        &u(&format!("/api/sessions/{id}/usage")),
        Some(json!({"success": false, "status": 99})),
    )
    .await;
    assert_error(s, &v, 422);
    let (s, v) = send(
        Method::POST,
        &u("/api/sessions/nope/usage"),
        Some(json!({"success": true})),
    )
    .await;
    assert_error(s, &v, 404);
    let raw = reqwest::Client::new()
        .post(u(&format!("/api/sessions/{id}/usage")))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let big = reqwest::Client::new()
        .post(u(&format!("/api/sessions/{id}/usage")))
        .header("Content-Type", "application/json")
        .body(format!(
            "{{\"success\":true,\"pad\":\"{}\"}}",
            "x".repeat(200_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413, "body size limit");

    // stats, active, rotate, validate
    let (s, _) = get(&u("/api/sessions/stats")).await;
    assert_eq!(s, 200);
    let (s, v) = get(&u("/api/sessions/active")).await;
    assert_eq!(s, 200);
    assert!(
        v[0]["cookies"][0].get("value").is_none(),
        "no cookie values without reveal"
    );
    let (s, v) = get(&u("/api/sessions/active?reveal=true")).await;
    assert_error(s, &v, 403);
    let (s, v) = get(&u("/api/sessions/active?reveal=maybe")).await;
    assert_error(s, &v, 400);
    let (s, v) = send(Method::POST, &u("/api/sessions/validate"), None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(Method::GET, &u("/api/sessions/validate"), None).await;
    assert_error(s, &v, 405);

    // cookies
    let (s, v) = get(&u("/api/cookies/stats")).await;
    assert_eq!(s, 200);
    assert!(v["totalCookies"].as_u64().unwrap() >= 4, "{v}");
    let (s, v) = get(&u("/api/cookies/recent?limit=5")).await;
    assert_eq!(s, 200);
    assert!(!v.as_array().unwrap().is_empty());
    let (s, v) = get(&u("/api/cookies/recent?limit=0")).await;
    assert_error(s, &v, 400);
    let (s, v) = send(Method::POST, &u("/api/cookies/refresh"), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["refreshed"].as_u64().unwrap() >= 2, "{v}");

    // v1 resources
    let (s, v) = send(Method::POST, &u("/api/v1/sessions"), Some(json!({"event": "1007", "ttl": "10m", "browser": {"viewport": {"width": 1280, "height": 720}}}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["fingerprint"]["viewport"]["width"], 1280);
    let made = v["session_id"].as_str().unwrap().to_string();
    let (s, v) = send(
        Method::POST,
        &u("/api/v1/sessions"),
        // A caller's User-Agent is worn now (tests/seed_api.rs); an empty one is refused.
        Some(json!({"browser": {"userAgent": ""}})),
    )
    .await;
    assert_error(s, &v, 422);
    let (s, v) = send(
        Method::POST,
        &u("/api/v1/sessions"),
        Some(json!({"ttl": "soon"})),
    )
    .await;
    assert_error(s, &v, 422);
    let (s, v) = send(
        Method::POST,
        &u("/api/v1/sessions"),
        Some(json!({"target": "nope"})),
    )
    .await;
    assert_error(s, &v, 404);
    let (s, v) = send(
        Method::POST,
        &u("/api/v1/sessions"),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_error(s, &v, 422);
    let (s, v) = get(&u(&format!("/api/v1/sessions/{made}"))).await;
    assert_eq!(s, 200);
    assert_eq!(v["event"], "1007");
    let (s, v) = get(&u("/api/v1/sessions/unknown")).await;
    assert_error(s, &v, 404);
    let (s, _) = get(&u("/api/v1/sessions")).await;
    assert_eq!(s, 200);
    let r = reqwest::get(u(&format!(
        "/api/v1/sessions/{made}/export?format=cookies-txt"
    )))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("#HttpOnly_"));
    let (s, v) = get(&u(&format!("/api/v1/sessions/{made}/export?format=xml"))).await;
    assert_error(s, &v, 400);

    // fetch in the session's live context
    let fetch = |sid: Option<&str>, body: Value| {
        let mut req = reqwest::Client::new().post(u("/api/v1/fetch")).json(&body);
        if let Some(sid) = sid {
            req = req.header("X-Session-ID", sid);
        }
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = fetch(
        Some(&made),
        json!({"url": format!("{}/api/event/1007", f.site.base_url())}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["status"], 200,
        "the live context carries the session: {v}"
    );
    let (s, v) = fetch(
        Some(&made),
        json!({"url": format!("{}/no/such/page", f.site.base_url())}),
    )
    .await;
    assert_eq!(s, 200, "a fetched error page is a result: {v}");
    assert_eq!(v["status"], 404);
    let (s, v) = fetch(None, json!({"url": f.site.base_url()})).await;
    assert_error(s, &v, 400);
    let (s, v) = fetch(Some(&made), json!({"url": "file:///etc/passwd"})).await;
    assert_error(s, &v, 422);
    let (s, v) = fetch(Some("nope"), json!({"url": f.site.base_url()})).await;
    assert_error(s, &v, 404);

    let (s, _) = send(
        Method::DELETE,
        &u(&format!("/api/v1/sessions/{made}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = send(
        Method::DELETE,
        &u(&format!("/api/v1/sessions/{made}")),
        None,
    )
    .await;
    assert_error(s, &v, 404);

    // rotate: make-before-break, answered at once
    let (s, v) = send(Method::POST, &u("/api/sessions/rotate"), None).await;
    assert_eq!(s, 202);
    assert!(v["started"].as_u64().unwrap() >= 1);

    // operations
    let r = reqwest::get(u("/metrics")).await.unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("warmer_sessions{target=\"demo\",state=\"ready\"}"),
        "{text}"
    );
    assert!(text.contains("warmer_warms_total{target=\"demo\",outcome=\"ok\"}"));
    assert!(text.contains("warmer_warm_duration_seconds_bucket"));
    assert!(text.contains(
        "warmer_api_requests_total{route=\"/api/sessions/event/{eventId}\",status=\"200\"}"
    ));
    let (s, v) = get(&u("/openapi.json")).await;
    assert_eq!(s, 200);
    assert!(v["paths"]["/api/sessions/event/{eventId}"]["get"].is_object());
    let (s, v) = get(&u("/no/such/route")).await;
    assert_error(s, &v, 404);
    let r = reqwest::get(u("/")).await.unwrap();
    assert!(r.text().await.unwrap().contains("session-warmer"));

    // DELETE all: the pool refills
    let (s, v) = send(Method::DELETE, &u("/api/v1/sessions"), None).await;
    assert_eq!(s, 200);
    assert!(v["deleted"].as_u64().unwrap() >= 2);
    wait_ready(&d, 2).await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_failing_target_backs_off_is_never_served_and_does_not_starve_another() {
    let good = Fixture::new().await;
    let bad_stop = CancellationToken::new();
    let bad_site = DemoSite::start(DemoConfig::default(), 0, bad_stop.clone())
        .await
        .unwrap();
    bad_site.set_fault(Some(session_warmer::demo::Fault::ServerError));
    let mut config = good.config(2);
    let mut bad = TargetConfig::ad_hoc("broken", &bad_site.event_url_template());
    bad.events = demo_events();
    bad.warmup = Duration::from_millis(200);
    bad.pool_size = 2;
    config.targets.push(bad);
    let (d, base) = good.start(config).await;
    wait_ready(&d, 2).await;
    let (s, v) = get(&format!("{base}/api/sessions/event/1001?target=broken")).await;
    assert_error(s, &v, 503);
    let (s, v) = get(&format!("{base}/api/sessions/event/1001?target=demo")).await;
    assert_eq!(s, 200, "{v}");
    // Back-off: a handful of attempts, not a storm, each classified.
    let failures_before = d.pool.metrics.warm_count("broken", "target_http");
    assert!(failures_before >= 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures = d.pool.metrics.warm_count("broken", "target_http");
    assert!(
        failures <= failures_before + 4,
        "{failures_before} then {failures}: back-off"
    );
    assert!(bad_site.stats().event_visits <= failures + 2);
    d.shutdown().await;
    bad_stop.cancel();
}

#[tokio::test]
async fn warming_beyond_capacity_gets_429_with_retry_after() {
    let f = Fixture::new().await;
    let mut config = f.config(1);
    config.targets[0].max_concurrent_warms = 1; // queue of 4 warms at most
    config.targets[0].warmup = Duration::from_secs(2);
    let (d, base) = f.start(config).await;
    let client = reqwest::Client::new();
    let calls = (0..10).map(|i| {
        let c = client.clone();
        let url = format!("{base}/api/sessions/event/100{}", i % 10);
        async move { c.post(url).send().await.unwrap() }
    });
    let answers = futures::future::join_all(calls).await;
    let limited: Vec<_> = answers
        .iter()
        .filter(|r| r.status().as_u16() == 429)
        .collect();
    assert!(!limited.is_empty(), "some warms are refused");
    for r in &limited {
        let after: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1);
    }
    assert!(
        answers.iter().any(|r| r.status().as_u16() == 201),
        "the others are served"
    );
    d.shutdown().await;
}

#[test]
fn sigterm_stops_the_daemon_within_10_s_and_leaves_no_chromium() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(Fixture::new());
    let mut config = f.config(2);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[schedule]\ntop_up_every = \"300ms\"\n[[targets]]\nname = \"demo\"\nevent_url = \"{}\"\nevents = [\"1001\", \"1002\"]\nwarmup = \"300ms\"\npool_size = 2\n",
        f.dir.path().join("store").display(),
        f.site.event_url_template()
    );
    let cfg = f.dir.path().join("warmer.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(eventually(
        "the daemon to be ready",
        Duration::from_secs(60),
        || async {
            match reqwest::get(format!("{base}/readyz")).await {
                Ok(r) if r.status().as_u16() == 200 => Some(()),
                _ => None,
            }
        },
    ));
    let browsers = descendants(child.id());
    assert!(!browsers.is_empty(), "chromium runs under the daemon");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "daemon did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    for pid in browsers {
        assert!(!alive(pid), "chromium process {pid} survived the daemon");
    }
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z'),
        Err(_) => false,
    }
}

fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &c in &all {
            if ppid(c) == Some(p) && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}
