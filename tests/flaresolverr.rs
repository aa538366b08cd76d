//! FlareSolverr's `/v1` answered from the warm pool: the real daemon (both listeners), the demo
//! site, real Chromium. Every command and error text of the contract
//! (`../shared/notes/flaresolverr-v1.md`), a Jackett-like flow (only the returned cookies and
//! userAgent on the next request), a Prowlarr-like one (deprecated fields, maxTimeout, POST),
//! named sessions, and URLs of no target refused with a second local site seeing no connection.

mod common;

use common::daemon::Site;
use common::eventually;
use common::witness::Witness;
use serde_json::{json, Value};
use session_warmer::config::{Config, TargetConfig};
use session_warmer::daemon::{Daemon, DaemonError};
use session_warmer::session::SessionState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Fixture {
    site: Site,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        Self {
            site: Site::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> Config {
        let mut c = common::daemon::config(self.dir.path(), vec![self.site.target("demo", 1)]);
        c.flaresolverr.listen = Some("127.0.0.1:0".parse().unwrap());
        c
    }

    /// The daemon, its API base and its FlareSolverr listener's base.
    async fn start(&self, config: Config) -> (Daemon, String, String) {
        let (d, api) = common::daemon::start(config).await;
        let fs = format!("http://{}", d.flaresolverr_addr.expect("listener on"));
        (d, api, fs)
    }
}

async fn ready_session(d: &Daemon) -> String {
    eventually("a ready session", Duration::from_secs(60), || async {
        d.pool
            .list()
            .into_iter()
            .find(|(s, _)| s.state == SessionState::Ready)
            .map(|(s, _)| s.id.clone())
    })
    .await
}

/// `POST {base}/v1` with `body`: status, parsed body, raw text.
async fn v1(base: &str, body: Value) -> (u16, Value, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1"))
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("v1 answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// An `ok` answer: HTTP 200, the message, FlareSolverr's timestamps and version.
fn assert_ok(status: u16, v: &Value, message: &str) {
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["message"], message, "{v}");
    assert_eq!(v["version"], "3.5.0", "{v}");
    let (start, end) = (
        v["startTimestamp"].as_u64().unwrap(),
        v["endTimestamp"].as_u64().unwrap(),
    );
    assert!(
        start > 1_600_000_000_000 && end >= start,
        "ms timestamps: {v}"
    );
}

/// An error answer exactly as FlareSolverr's: HTTP 500, `status: error`, the text, no
/// `solution`.
fn assert_error(status: u16, v: &Value, message: &str) {
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["message"], message, "{v}");
    assert_eq!(v["version"], "3.5.0", "{v}");
    assert!(
        v["startTimestamp"].is_u64() && v["endTimestamp"].is_u64(),
        "{v}"
    );
    assert!(v.get("solution").is_none(), "{v}");
}

/// Keys appear in this order in the raw JSON text.
fn assert_key_order(text: &str, keys: &[&str]) {
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "{keys:?} in order: {text}"
    );
}

/// `name=value; ...` of a solution's cookies.
fn cookie_header(solution: &Value) -> String {
    solution["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["value"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Calls the demo site's protected API with nothing but `cookie` and `ua`.
async fn protected_api(site: &str, event: &str, cookie: &str, ua: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{site}/api/event/{event}"))
        .header("Cookie", cookie)
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_non_loopback_listener_needs_allow_public() {
    let f = Fixture::new().await;
    let mut c = f.config();
    c.flaresolverr.listen = Some("0.0.0.0:0".parse().unwrap());
    let err = Daemon::start(c, None).await.err().expect("refused");
    assert!(matches!(err, DaemonError::FlareSolverrPublic(_)), "{err}");
    assert!(err.to_string().contains("allow_public"), "{err}");
}

#[tokio::test]
async fn every_command_and_error_text_on_both_listeners() {
    let f = Fixture::new().await;
    let witness = Witness::start(false).await;
    let (d, api, fs) = f.start(f.config()).await;
    ready_session(&d).await;
    let site = f.site.base_url();
    let http = reqwest::Client::new();

    // The FlareSolverr listener's own routes, and Bottle's router errors.
    let index: Value = http
        .get(format!("{fs}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["msg"], "FlareSolverr is ready!", "{index}");
    assert_eq!(index["version"], "3.5.0");
    assert!(
        index["userAgent"].as_str().unwrap().contains("Chrome/"),
        "{index}"
    );
    let health = http.get(format!("{fs}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let r = http.get(format!("{fs}/wrong")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Not found: '/wrong'", "status_code": 404})
    );
    let r = http.get(format!("{fs}/v1")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Method not allowed.", "status_code": 405})
    );
    let r = http
        .post(format!("{fs}/v1"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Invalid JSON", "status_code": 400})
    );
    // A form-encoded body has no `cmd` either.
    let r = http
        .post(format!("{fs}/v1"))
        .form(&[("cmd", "sessions.list")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_error(status, &v, "Error: Request parameter 'cmd' is mandatory.");

    // The same errors on both listeners (the main API has no token here).
    for base in [&fs, &api] {
        let (s, v, text) = v1(base, json!({})).await;
        assert_error(s, &v, "Error: Request parameter 'cmd' is mandatory.");
        assert_key_order(
            &text,
            &[
                "status",
                "message",
                "startTimestamp",
                "endTimestamp",
                "version",
            ],
        );
        let (s, v, _) = v1(base, json!({"cmd": "request.bad"})).await;
        assert_error(
            s,
            &v,
            "Error: Request parameter 'cmd' = 'request.bad' is invalid.",
        );
        let (s, v, _) = v1(base, json!({"cmd": "request.get"})).await;
        assert_error(
            s,
            &v,
            "Error: Request parameter 'url' is mandatory in 'request.get' command.",
        );
        let url = format!("{site}/event/1001");
        let (s, v, _) = v1(
            base,
            json!({"cmd": "request.get", "url": url, "postData": "a=1"}),
        )
        .await;
        assert_error(
            s,
            &v,
            "Error: Cannot use 'postBody' when sending a GET request.",
        );
        let (s, v, _) = v1(base, json!({"cmd": "request.post", "url": url})).await;
        assert_error(
            s,
            &v,
            "Error: Request parameter 'postData' is mandatory in 'request.post' command.",
        );
        let (s, v, _) = v1(base, json!({"cmd": "sessions.destroy", "session": "nope"})).await;
        assert_error(s, &v, "Error: The session doesn't exist.");
        let (s, v, _) = v1(
            base,
            json!({"cmd": "request.get", "url": url, "maxTimeout": 10}),
        )
        .await;
        assert_error(
            s,
            &v,
            "Error: Error solving the challenge. Timeout after 0.01 seconds.",
        );
    }

    // Sessions: created (a uuid when unnamed), listed in order, destroyed; shared by both
    // listeners.
    let (s, v, text) = v1(&fs, json!({"cmd": "sessions.create"})).await;
    assert_ok(s, &v, "Session created successfully.");
    assert_key_order(
        &text,
        &[
            "status",
            "message",
            "session",
            "startTimestamp",
            "endTimestamp",
            "version",
        ],
    );
    let unnamed = v["session"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&unnamed).is_ok(), "{unnamed}");
    let (s, v, _) = v1(&api, json!({"cmd": "sessions.create", "session": "s1"})).await;
    assert_ok(s, &v, "Session created successfully.");
    assert_eq!(v["session"], "s1");
    let (s, v, _) = v1(&fs, json!({"cmd": "sessions.create", "session": "s1"})).await;
    assert_ok(s, &v, "Session already exists.");
    let (s, v, text) = v1(&fs, json!({"cmd": "sessions.list"})).await;
    assert_ok(s, &v, "");
    assert_eq!(v["sessions"], json!([unnamed, "s1"]));
    assert_key_order(&text, &["status", "message", "sessions", "startTimestamp"]);
    let (s, v, _) = v1(&api, json!({"cmd": "sessions.destroy", "session": "s1"})).await;
    assert_ok(s, &v, "The session has been removed.");
    assert!(v.get("session").is_none(), "{v}");
    let (_, v, _) = v1(&fs, json!({"cmd": "sessions.list"})).await;
    assert_eq!(v["sessions"], json!([unnamed]));

    // Not an open proxy: a URL of no target, and a caller's proxy while custom proxies are
    // off, are refused; the second site sees no connection.
    for url in [
        witness.url("/secret"),
        format!("http://localhost:{}/", witness.port),
        "file:///etc/passwd".to_string(),
    ] {
        for body in [
            json!({"cmd": "request.get", "url": url}),
            json!({"cmd": "request.post", "url": url, "postData": "a=1"}),
            json!({"cmd": "request.get", "url": url, "returnOnlyCookies": true}),
        ] {
            let (s, v, _) = v1(&fs, body).await;
            assert_eq!((s, &v["status"]), (500, &json!("error")), "{url}: {v}");
            let m = v["message"].as_str().unwrap();
            assert!(m.starts_with("Error: Request parameter 'url'"), "{m}");
        }
    }
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/event/1001"),
               "proxy": {"url": witness.url("")}}),
    )
    .await;
    assert_eq!(s, 500, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("allow_custom_proxies"),
        "{v}"
    );
    assert_eq!(witness.hits(), 0, "no connection reached the second site");
    d.shutdown().await;
}

#[tokio::test]
async fn jackett_like_flow_and_cookies_straight_from_the_pool() {
    let f = Fixture::new().await;
    let (d, _api, fs) = f.start(f.config()).await;
    let sid = ready_session(&d).await;
    let site = f.site.base_url();
    let sup = d.pool.warmer().supervisor().clone();

    // returnOnlyCookies: from the pool, no browser context, no request to the site.
    let visits = f.site.stats().event_visits;
    let refreshed = d.pool.get(&sid).unwrap().refreshed_at;
    assert_eq!(sup.live_contexts(), 0);
    let (s, v, text) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/event/1004"), "returnOnlyCookies": true}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    assert_key_order(
        &text,
        &[
            "status",
            "message",
            "solution",
            "startTimestamp",
            "endTimestamp",
            "version",
        ],
    );
    let sol = &v["solution"];
    assert!(
        sol.get("headers").is_none() && sol.get("response").is_none(),
        "{sol}"
    );
    assert_eq!(sol["url"], format!("{site}/event/1004"));
    assert_eq!(sol["status"], 200);
    assert_eq!(sup.live_contexts(), 0, "no context was opened");
    assert_eq!(
        f.site.stats().event_visits,
        visits,
        "the site saw no request"
    );
    assert_eq!(d.pool.get(&sid).unwrap().refreshed_at, refreshed);
    let visitor = sol["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "visitor")
        .expect("the visitor cookie");
    assert!(visitor["expiry"].is_i64(), "integer expiry: {visitor}");
    assert_eq!(visitor["httpOnly"], true);
    let ua = sol["userAgent"].as_str().unwrap();
    assert!(ua.contains("Chrome/") && !ua.contains("Headless"), "{ua}");
    assert_eq!(
        protected_api(&site, "1004", &cookie_header(sol), ua).await,
        200,
        "pool cookies and userAgent alone open the protected API"
    );

    // Jackett: request.get with maxTimeout 55000, then its own request with only the returned
    // cookies and userAgent.
    let (s, v, text) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/event/1003"), "maxTimeout": 55000}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    let sol = &v["solution"];
    let in_solution = &text[text.find("\"solution\":").unwrap()..];
    assert_key_order(
        in_solution,
        &[
            "url",
            "status",
            "cookies",
            "userAgent",
            "headers",
            "response",
        ],
    );
    assert_eq!(sol["url"], format!("{site}/event/1003"));
    assert_eq!(sol["status"], 200);
    assert_eq!(sol["headers"], json!({}));
    assert!(sol["response"].as_str().unwrap().contains("<html"), "{sol}");
    assert!(
        f.site.stats().event_visits > visits,
        "this one went through the browser"
    );
    let ua = sol["userAgent"].as_str().unwrap();
    assert_eq!(
        protected_api(&site, "1003", &cookie_header(sol), ua).await,
        200,
        "Jackett's next request with the solution's cookies and userAgent"
    );
    assert_eq!(
        protected_api(&site, "1003", &cookie_header(sol), "curl/8").await,
        403,
        "the cookies are bound to the userAgent"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn prowlarr_like_flow_post_and_named_sessions() {
    let f = Fixture::new().await;
    f.site.set_password("alice", "pw-alice");
    let (d, api, fs) = f.start(f.config()).await;
    let sid = ready_session(&d).await;
    let site = f.site.base_url();
    let old_chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.138 Safari/537.36";

    // Prowlarr's GET: deprecated userAgent sent and ignored (the session's own is answered).
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/event/1002"),
               "maxTimeout": 60000, "userAgent": old_chrome}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    let ua = v["solution"]["userAgent"].as_str().unwrap().to_string();
    assert_ne!(ua, old_chrome);
    assert_eq!(
        protected_api(&site, "1002", &cookie_header(&v["solution"]), &ua).await,
        200
    );

    // Prowlarr's POST (postData + deprecated headers): a form post from a page of the site.
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.post", "url": format!("{site}/login"),
               "postData": "username=alice&password=pw-alice", "maxTimeout": 60000,
               "headers": {"contentType": "application/x-www-form-urlencoded"},
               "userAgent": old_chrome}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    let sol = &v["solution"];
    assert_eq!(sol["url"], format!("{site}/account"), "{sol}");
    assert_eq!(sol["status"], 200);
    assert!(sol["response"]
        .as_str()
        .unwrap()
        .contains("Signed in as alice"));
    let sid_cookie = sol["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sid")
        .expect("signed in")
        .clone();
    assert!(
        sid_cookie.get("expiry").is_none(),
        "a session cookie: {sid_cookie}"
    );
    assert_eq!(sid_cookie["expires"], -1.0);
    assert!(
        d.pool
            .get(&sid)
            .unwrap()
            .cookies
            .iter()
            .all(|c| c.name != "sid"),
        "an anonymous POST leaves the shared pool session as it was"
    );
    // A wrong password: the site's own answer, followed to its page.
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.post", "url": format!("{site}/login"),
               "postData": "username=alice&password=wrong"}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    assert_eq!(v["solution"]["url"], format!("{site}/login?error=1"));

    // A named session pins the pool session (leased: the pool has none other to serve) and
    // keeps what the POST earned on the next request.
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "sessions.create", "session": "prowlarr"}),
    )
    .await;
    assert_ok(s, &v, "Session created successfully.");
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.post", "url": format!("{site}/login"), "session": "prowlarr",
               "postData": "username=alice&password=pw-alice"}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/account"), "session": "prowlarr",
               "cookies": [{"name": "extra", "value": "1"}]}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    assert_eq!(
        v["solution"]["url"],
        format!("{site}/account"),
        "still signed in: {v}"
    );
    assert!(
        v["solution"]["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "extra"),
        "the caller's cookie was set: {v}"
    );
    let r = reqwest::get(format!("{api}/api/sessions/event/1001"))
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        503,
        "the only session is leased to 'prowlarr'"
    );

    // Destroyed: its session, changed by the caller, is retired and the pool warms another.
    let (s, v, _) = v1(
        &api,
        json!({"cmd": "sessions.destroy", "session": "prowlarr"}),
    )
    .await;
    assert_ok(s, &v, "The session has been removed.");
    assert_eq!(d.pool.get(&sid).unwrap().state, SessionState::Retired);
    eventually(
        "a fresh session served",
        Duration::from_secs(60),
        || async {
            let r = reqwest::get(format!("{api}/api/sessions/event/1001"))
                .await
                .unwrap();
            (r.status().as_u16() == 200).then_some(())
        },
    )
    .await;
    d.shutdown().await;
}

/// A site whose event page loads an image and a stylesheet, counting requests for them.
async fn media_site(stop: CancellationToken) -> (String, Arc<AtomicUsize>) {
    use axum::routing::get;
    let media = Arc::new(AtomicUsize::new(0));
    let (m1, m2) = (media.clone(), media.clone());
    let app = axum::Router::new()
        .route(
            "/event/{id}",
            get(|| async {
                axum::response::Html(
                    "<html><head><link rel=\"stylesheet\" href=\"/s.css?v=1\"></head>\
                     <body><img src=\"/pic.png\"><p>event</p></body></html>",
                )
            }),
        )
        .route(
            "/pic.png",
            get(move || async move {
                m1.fetch_add(1, Ordering::SeqCst);
                ([("content-type", "image/png")], Vec::<u8>::new())
            }),
        )
        .route(
            "/s.css",
            get(move || async move {
                m2.fetch_add(1, Ordering::SeqCst);
                ([("content-type", "text/css")], "p{}")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    (base, media)
}

#[tokio::test]
async fn disable_media_and_wait_in_seconds_are_honoured() {
    let f = Fixture::new().await;
    let stop = CancellationToken::new();
    let _stop_guard = stop.clone().drop_guard();
    let (media_base, media) = media_site(stop).await;
    let mut config = f.config();
    let mut t = TargetConfig::ad_hoc("media", &format!("{media_base}/event/{{event}}"));
    t.events = vec!["1".into()];
    t.warmup = Duration::from_millis(100);
    t.pool_size = 1;
    config.targets.push(t);
    let (d, _api, fs) = f.start(config).await;
    eventually("both targets ready", Duration::from_secs(60), || async {
        (d.pool.ready_count() >= 2).then_some(())
    })
    .await;

    let before = media.load(Ordering::SeqCst);
    assert!(before >= 2, "the warm loaded the page's media");
    let url = format!("{media_base}/event/1");
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": url, "disableMedia": true}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    assert!(v["solution"]["response"]
        .as_str()
        .unwrap()
        .contains("event"));
    assert_eq!(
        media.load(Ordering::SeqCst),
        before,
        "no image or stylesheet was requested"
    );
    let (s, v, _) = v1(&fs, json!({"cmd": "request.get", "url": url})).await;
    assert_ok(s, &v, "Challenge not detected!");
    assert!(media.load(Ordering::SeqCst) > before, "without it they are");

    // The demo's event page says "ready" 300 ms after its load: read at once, and after a wait.
    let site = f.site.base_url();
    let event = format!("{site}/event/1005");
    let (_, v, _) = v1(&fs, json!({"cmd": "request.get", "url": event})).await;
    assert!(
        v["solution"]["response"]
            .as_str()
            .unwrap()
            .contains("id=\"status\">loading<"),
        "{v}"
    );
    let (_, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": event, "waitInSeconds": 1}),
    )
    .await;
    assert!(
        v["solution"]["response"]
            .as_str()
            .unwrap()
            .contains("id=\"status\">ready<"),
        "{v}"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn an_idle_named_session_expires_and_its_session_goes_back_to_the_pool() {
    let f = Fixture::new().await;
    let mut config = f.config();
    config.flaresolverr.session_idle = Duration::from_secs(2);
    let (d, api, fs) = f.start(config).await;
    ready_session(&d).await;
    let site = f.site.base_url();
    let (s, v, _) = v1(
        &fs,
        json!({"cmd": "request.get", "url": format!("{site}/event/1001"), "session": "idle",
               "returnOnlyCookies": true}),
    )
    .await;
    assert_ok(s, &v, "Challenge not detected!");
    let (_, v, _) = v1(&fs, json!({"cmd": "sessions.list"})).await;
    assert_eq!(v["sessions"], json!(["idle"]), "created on first use");
    let r = reqwest::get(format!("{api}/api/sessions/event/1001"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "pinned to 'idle'");
    eventually(
        "the idle session expired",
        Duration::from_secs(30),
        || async {
            let (_, v, _) = v1(&fs, json!({"cmd": "sessions.list"})).await;
            (v["sessions"] == json!([])).then_some(())
        },
    )
    .await;
    let r = reqwest::get(format!("{api}/api/sessions/event/1001"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "unchanged, it is served again");
    d.shutdown().await;
    let gone = reqwest::Client::new()
        .get(format!("{fs}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        gone.is_err(),
        "the FlareSolverr listener stopped with the daemon"
    );
}
