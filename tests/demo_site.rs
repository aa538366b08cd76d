//! The demo target site over plain HTTP (no browser): the UA-bound challenge cookie, login with
//! inactivity expiry, every fault knob, the admin endpoints and shutdown.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use reqwest::{header, redirect::Policy, Client, Response, StatusCode};
use serde_json::Value;
use session_warmer::demo::{challenge_hash, demo_events, DemoConfig, DemoSite, DemoStats, Fault};
use tokio_util::sync::CancellationToken;

const UA_A: &str = "Mozilla/5.0 (X11; Linux x86_64) DemoTest/1.0";
const UA_B: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) DemoTest/2.0";

/// A running site that shuts down when the test ends.
struct Fixture {
    site: DemoSite,
    token: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.site.base_url())
    }
}

async fn start(config: DemoConfig) -> Fixture {
    let token = CancellationToken::new();
    let site = DemoSite::start(config, 0, token.clone())
        .await
        .expect("demo site binds a loopback port");
    Fixture { site, token }
}

/// No redirects, no cookie jar: every cookie is sent by hand.
fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn client_with_timeout(timeout: Duration) -> Client {
    Client::builder().timeout(timeout).build().unwrap()
}

/// The full `Set-Cookie` line for cookie `name`.
fn set_cookie_line(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of cookie `name` from `Set-Cookie`.
fn set_cookie_value(resp: &Response, name: &str) -> Option<String> {
    let line = set_cookie_line(resp, name)?;
    let pair = line.split(';').next()?;
    Some(pair.split_once('=')?.1.to_owned())
}

/// The `data-nonce` attribute of an event page.
fn nonce_in(html: &str) -> String {
    let start = html.find("data-nonce=\"").expect("page has data-nonce") + "data-nonce=\"".len();
    let len = html[start..].find('"').unwrap();
    html[start..start + len].to_owned()
}

fn location(resp: &Response) -> &str {
    resp.headers()
        .get(header::LOCATION)
        .expect("redirect has Location")
        .to_str()
        .unwrap()
}

async fn error_reason(resp: Response) -> String {
    let body: Value = resp.json().await.unwrap();
    body["error"]
        .as_str()
        .expect("error is a string")
        .to_owned()
}

/// Polls `check` until it returns true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Visits an event page as `ua`; returns (visitor cookie value, nonce, page html).
async fn visit(
    fx: &Fixture,
    event: &str,
    ua: &str,
    visitor: Option<&str>,
) -> (String, String, String) {
    let mut req = client()
        .get(fx.url(&format!("/event/{event}")))
        .header(header::USER_AGENT, ua);
    if let Some(v) = visitor {
        req = req.header(header::COOKIE, format!("visitor={v}"));
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let visitor = set_cookie_value(&resp, "visitor").expect("event page sets visitor");
    let html = resp.text().await.unwrap();
    (visitor, nonce_in(&html), html)
}

async fn api(fx: &Fixture, event: &str, ua: &str, cookies: &str) -> Response {
    let mut req = client()
        .get(fx.url(&format!("/api/event/{event}")))
        .header(header::USER_AGENT, ua);
    if !cookies.is_empty() {
        req = req.header(header::COOKIE, cookies);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn api_refuses_cold_clients_with_a_reason() {
    let fx = start(DemoConfig::default()).await;

    let resp = api(&fx, "1001", UA_A, "").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_reason(resp).await, "missing visitor cookie");

    let resp = api(&fx, "1001", UA_A, "visitor=0123456789abcdef").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_reason(resp).await, "unknown visitor");

    let resp = api(&fx, "999", UA_A, "").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    assert_eq!(fx.site.stats().api_denied, 2);
}

#[tokio::test]
async fn challenge_is_bound_to_visitor_and_user_agent() {
    let fx = start(DemoConfig::default()).await;

    let resp = client()
        .get(fx.url("/event/1001"))
        .header(header::USER_AGENT, UA_A)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let line = set_cookie_line(&resp, "visitor").expect("visitor cookie set");
    for attr in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=7200"] {
        assert!(line.contains(attr), "{attr} missing from visitor cookie");
    }
    let visitor = set_cookie_value(&resp, "visitor").unwrap();
    let html = resp.text().await.unwrap();
    let nonce = nonce_in(&html);
    assert!(html.contains("Midnight Orchestra"));
    assert!(html.contains("data-event=\"1001\""));
    assert_eq!(fx.site.nonce_for(&visitor).as_deref(), Some(nonce.as_str()));

    let resp = api(&fx, "1001", UA_A, &format!("visitor={visitor}")).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_reason(resp).await, "missing challenge cookie");

    let foreign = format!("deadbeef.{}", challenge_hash(UA_A, "deadbeef"));
    let resp = api(
        &fx,
        "1001",
        UA_A,
        &format!("visitor={visitor}; challenge={foreign}"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_reason(resp).await, "challenge does not match visitor");

    let earned = format!(
        "visitor={visitor}; challenge={nonce}.{}",
        challenge_hash(UA_A, &nonce)
    );
    let resp = api(&fx, "1001", UA_A, &earned).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["event"], "1001");
    assert_eq!(body["title"], "Midnight Orchestra");
    assert!(body["price"].as_f64().unwrap() > 0.0);
    assert!(visitor.starts_with(body["visitor"].as_str().unwrap()));

    let resp = api(&fx, "1001", UA_B, &earned).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        error_reason(resp).await,
        "challenge not earned with this User-Agent"
    );

    // The challenge is per visitor, not per event.
    let resp = api(&fx, "1004", UA_A, &earned).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Revisiting with the cookie keeps the visitor and its nonce.
    let (again, again_nonce, _) = visit(&fx, "1002", UA_A, Some(&visitor)).await;
    assert_eq!(
        (again.as_str(), again_nonce.as_str()),
        (visitor.as_str(), nonce.as_str())
    );

    fx.site.revoke_all();
    let resp = api(&fx, "1001", UA_A, &earned).await;
    assert_eq!(error_reason(resp).await, "unknown visitor");
    let (fresh, _, _) = visit(&fx, "1002", UA_A, Some(&visitor)).await;
    assert_ne!(fresh, visitor, "a revoked visitor is replaced");

    let stats = fx.site.stats();
    assert_eq!(stats.event_visits, 3);
    assert_eq!(stats.api_ok, 2);
    assert_eq!(stats.api_denied, 4);
}

#[tokio::test]
async fn pages_list_the_demo_events_and_embed_the_js_delay() {
    let config = DemoConfig {
        js_delay: Duration::from_millis(1234),
        ..DemoConfig::default()
    };
    let fx = start(config).await;
    let events = demo_events();
    assert_eq!(events.len(), 10);
    assert_eq!(events.first().map(String::as_str), Some("1001"));
    assert_eq!(events.last().map(String::as_str), Some("1010"));
    assert_eq!(
        fx.site.event_url_template(),
        format!("http://127.0.0.1:{}/event/{{event}}", fx.site.addr().port())
    );
    assert!(fx.site.addr().ip().is_loopback());

    let index = client()
        .get(fx.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in &events {
        assert!(
            index.contains(&format!("href=\"/event/{id}\"")),
            "index links {id}"
        );
    }

    let (_, _, html) = visit(&fx, "1010", UA_A, None).await;
    assert!(html.contains("}, 1234);"), "script waits js_delay");
    assert!(html.contains("id=\"status\">loading<"));
    assert!(html.contains("localStorage.setItem(\"demo:last_event\""));

    let resp = client().get(fx.url("/event/42")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// The `data-token-delay` of a delayed-token page, in ms.
fn token_delay_in(html: &str) -> u64 {
    let key = "data-token-delay=\"";
    let start = html.find(key).expect("page has data-token-delay") + key.len();
    let len = html[start..].find('"').unwrap();
    html[start..start + len].parse().unwrap()
}

async fn page(fx: &Fixture, path: &str) -> (StatusCode, String) {
    let resp = client()
        .get(fx.url(path))
        .header(header::USER_AGENT, UA_A)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn readiness_knobs_delay_the_token_fetch_an_httponly_one_and_count_assets() {
    let fx = start(DemoConfig::default()).await;
    // A plain page has none of them.
    let (_, plain) = page(&fx, "/event/1001").await;
    assert!(!plain.contains("data-token-delay") && !plain.contains("app-ready"));
    assert!(!plain.contains("/__demo/asset/") && !plain.contains("/__demo/token"));
    assert!(plain.contains("}, 300);"), "js_delay");

    // A fixed delay replaces js_delay and brings the marker.
    let (status, html) = page(&fx, "/event/1001?token_delay=400").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token_delay_in(&html), 400);
    assert!(html.contains("}, 400);") && !html.contains("}, 300);"));
    assert!(html.contains("ready.id = \"app-ready\"") && html.contains("dataset.tokenAt"));

    // A range picks per load, within it, and not always the same.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        let (_, html) = page(&fx, "/event/1002?token_delay=200-4000").await;
        let d = token_delay_in(&html);
        assert!((200..=4000).contains(&d), "{d}");
        seen.insert(d);
    }
    assert!(seen.len() > 5, "{seen:?}");
    for bad in ["x", "400-200", "99999"] {
        let (status, body) = page(&fx, &format!("/event/1003?token_delay={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body.contains("token_delay"), "{body}");
    }

    // token_http: the challenge keeps js_delay; the delay fetches the HttpOnly token.
    let (_, html) = page(&fx, "/event/1004?token_delay=600&token_http=1").await;
    assert!(html.contains("}, 300);") && html.contains("fetch(\"/__demo/token\""));
    assert!(!html.contains("app-ready"));
    assert_eq!(fx.site.http_token_issued_at(), None);
    let resp = client().post(fx.url("/__demo/token")).send().await.unwrap();
    let line = set_cookie_line(&resp, "http_token").expect("sets http_token");
    assert!(line.contains("HttpOnly"), "{line}");
    let body: Value = resp.json().await.unwrap();
    let at = body["set_at_ms"].as_f64().unwrap();
    // The same instant, through JSON's float text (the last digit may differ).
    let issued = fx.site.http_token_issued_at().expect("issued");
    assert!((issued - at).abs() < 0.01, "issued {issued}, answered {at}");

    // assets=1 links one of each kind; each is served and counted.
    let (_, html) = page(&fx, "/event/1005?assets=1").await;
    for name in ["pic.png", "style.css", "font.woff2", "clip.webm"] {
        assert!(html.contains(&format!("/__demo/asset/{name}")), "{name}");
        let resp = client()
            .get(fx.url(&format!("/__demo/asset/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
    }
    let resp = client()
        .get(fx.url("/__demo/asset/other.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let hits: Value = client()
        .get(fx.url("/__demo/assets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        hits,
        serde_json::json!({"image": 1, "stylesheet": 1, "font": 1, "media": 1})
    );
    assert_eq!(fx.site.asset_hits().image, 1);
}

async fn login(fx: &Fixture, user: &str, pw: &str) -> Response {
    client()
        .post(fx.url("/login"))
        .form(&[("username", user), ("password", pw)])
        .send()
        .await
        .unwrap()
}

async fn get_with_sid(fx: &Fixture, path: &str, sid: &str) -> Response {
    client()
        .get(fx.url(path))
        .header(header::COOKIE, format!("sid={sid}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_lives_while_active_and_lapses_after_inactivity() {
    let inactivity = Duration::from_secs(1);
    let fx = start(DemoConfig {
        login_inactivity: inactivity,
        ..DemoConfig::default()
    })
    .await;

    let form = client()
        .get(fx.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "<form method=\"post\" action=\"/login\">",
        "id=\"username\" name=\"username\"",
        "id=\"password\" name=\"password\" type=\"password\"",
        "<button type=\"submit\">Sign in</button>",
    ] {
        assert!(form.contains(needle), "login form has {needle}");
    }
    assert!(!form.contains("id=\"error\""));
    let failed_form = client()
        .get(fx.url("/login?error=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(failed_form.contains("id=\"error\""));
    assert!(failed_form.contains("Wrong username or password"));

    let resp = login(&fx, "alice", "not-it").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login?error=1");
    assert!(set_cookie_line(&resp, "sid").is_none());

    let resp = login(&fx, "alice", "wonderland").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/account");
    let line = set_cookie_line(&resp, "sid").expect("sid cookie set");
    assert!(line.contains("HttpOnly") && line.contains("Path=/") && line.contains("SameSite=Lax"));
    let sid = set_cookie_value(&resp, "sid").unwrap();

    let resp = get_with_sid(&fx, "/account", &sid).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<div id=\"account\">Signed in as alice</div>"));

    // Activity keeps it alive well past one inactivity period.
    let active_since = Instant::now();
    while active_since.elapsed() < inactivity + inactivity / 2 {
        tokio::time::sleep(inactivity / 3).await;
        let resp = get_with_sid(&fx, "/api/me", &sid).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["user"], "alice");
    }

    // The behaviour under test is a lapse after `inactivity`, so wait just past it.
    tokio::time::sleep(inactivity + Duration::from_millis(200)).await;
    let resp = get_with_sid(&fx, "/account", &sid).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/login");
    let resp = get_with_sid(&fx, "/api/me", &sid).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client().get(fx.url("/api/me")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client().get(fx.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);

    let stats = fx.site.stats();
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.login_failures, 1);
    assert_eq!(stats.account_hits, 3);
}

#[tokio::test]
async fn password_changes_and_revocation_affect_logins() {
    let fx = start(DemoConfig::default()).await;

    // A browser-like client: cookie jar and redirects, as a login flow would use.
    let browser = Client::builder().cookie_store(true).build().unwrap();
    let resp = browser
        .post(fx.url("/login"))
        .form(&[("username", "bob"), ("password", "builder")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/account");
    assert!(resp.text().await.unwrap().contains("Signed in as bob"));

    fx.site.set_password("bob", "rebuilt");
    let me = browser.get(fx.url("/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "existing session survives a password change"
    );
    assert_eq!(
        location(&login(&fx, "bob", "builder").await),
        "/login?error=1"
    );
    assert_eq!(location(&login(&fx, "bob", "rebuilt").await), "/account");

    fx.site.revoke_all();
    let me = browser.get(fx.url("/api/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let resp = browser.get(fx.url("/account")).send().await.unwrap();
    assert_eq!(
        resp.url().path(),
        "/login",
        "a lapsed session lands on the login form"
    );
}

#[tokio::test]
async fn status_faults_touch_only_the_requested_page() {
    let fx = start(DemoConfig::default()).await;

    let resp = client()
        .get(fx.url("/event/1001?fault=5xx"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert!(set_cookie_line(&resp, "visitor").is_none());

    let resp = client()
        .get(fx.url("/event/1001?fault=429"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));

    let resp = client().get(fx.url("/event/1001")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = client()
        .get(fx.url("/event/1001?fault=boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reset_fault_drops_the_connection_without_a_response() {
    let fx = start(DemoConfig::default()).await;
    let client = client();

    let err = client
        .get(fx.url("/event/1001?fault=reset"))
        .send()
        .await
        .expect_err("no response on a reset connection");
    assert!(err.status().is_none(), "no status: {err:?}");
    assert!(!err.is_timeout(), "not a timeout: {err:?}");
    assert!(
        err.is_request() || err.is_connect(),
        "a connection error: {err:?}"
    );

    // Only that connection died; the site and the same client carry on.
    let resp = client.get(fx.url("/event/1001")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn hang_and_slow_faults_trip_client_timeouts() {
    let fx = start(DemoConfig::default()).await;
    let client = client_with_timeout(Duration::from_secs(1));

    for fault in ["hang", "slow"] {
        let started = Instant::now();
        let err = client
            .get(fx.url(&format!("/event/1001?fault={fault}")))
            .send()
            .await
            .expect_err("times out");
        assert!(err.is_timeout(), "{fault}: {err:?}");
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
}

#[tokio::test]
async fn redirect_loop_fault_is_a_redirect_error() {
    let fx = start(DemoConfig::default()).await;

    let resp = client()
        .get(fx.url("/event/1003?fault=redirect-loop"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/event/1003?fault=redirect-loop");

    let err = client_with_timeout(Duration::from_secs(10))
        .get(fx.url("/event/1003?fault=redirect-loop"))
        .send()
        .await
        .expect_err("redirects forever");
    assert!(err.is_redirect(), "{err:?}");
}

#[tokio::test]
async fn large_and_never_load_faults_still_serve_the_page() {
    let fx = start(DemoConfig::default()).await;

    let resp = client()
        .get(fx.url("/event/1005?fault=large"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(set_cookie_line(&resp, "visitor").is_some());
    let html = resp.text().await.unwrap();
    assert!(
        html.len() > 4 * 1024 * 1024,
        "large page is {} bytes",
        html.len()
    );
    assert!(!nonce_in(&html).is_empty());

    let resp = client()
        .get(fx.url("/event/1005?fault=never-load"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<img src=\"/__demo/stall\""));
    assert!(!nonce_in(&html).is_empty());

    let err = client_with_timeout(Duration::from_secs(1))
        .get(fx.url("/__demo/stall"))
        .send()
        .await
        .expect_err("the stalled image never answers");
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn global_fault_applies_to_event_pages_until_cleared() {
    let fx = start(DemoConfig::default()).await;

    fx.site.set_fault(Some(Fault::ServerError));
    for id in ["1001", "1007"] {
        let resp = client()
            .get(fx.url(&format!("/event/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // Only event pages are affected, and a per-request fault wins.
    assert_eq!(
        client().get(fx.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        api(&fx, "1001", UA_A, "").await.status(),
        StatusCode::FORBIDDEN
    );
    let resp = client()
        .get(fx.url("/event/1001?fault=429"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    fx.site
        .set_fault(Some(Fault::Slow(Duration::from_millis(300))));
    let started = Instant::now();
    let resp = client().get(fx.url("/event/1001")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fx.site.set_fault(None);
    let resp = client().get(fx.url("/event/1001")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_endpoints_set_faults_revoke_and_report_stats() {
    let fx = start(DemoConfig::default()).await;
    let admin = client();

    let resp = admin
        .post(fx.url("/__demo/fault"))
        .json(&serde_json::json!({ "fault": "5xx" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["fault"], "5xx");
    let current: Value = admin
        .get(fx.url("/__demo/fault"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["fault"], "5xx");
    let resp = client().get(fx.url("/event/1002")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

    let resp = admin
        .post(fx.url("/__demo/fault"))
        .json(&serde_json::json!({ "fault": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = admin
        .post(fx.url("/__demo/fault"))
        .json(&serde_json::json!({ "fault": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["fault"], Value::Null);
    let (visitor, _, _) = visit(&fx, "1002", UA_A, None).await;
    assert!(fx.site.nonce_for(&visitor).is_some());

    let resp = admin.post(fx.url("/__demo/revoke")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(fx.site.nonce_for(&visitor).is_none());

    let stats: DemoStats = admin
        .get(fx.url("/__demo/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, fx.site.stats());
    assert_eq!(stats.event_visits, 2);
}

#[tokio::test]
async fn shutdown_ends_hanging_requests_and_closes_the_port() {
    let fx = start(DemoConfig::default()).await;
    let url = fx.url("/event/1001?fault=hang");
    let hanging = tokio::spawn(async move { client().get(url).send().await });
    let site = fx.site.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let site = site.clone();
            async move { site.stats().event_visits == 1 }
        })
        .await,
        "hanging request reached the site"
    );

    fx.token.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), hanging)
        .await
        .expect("shutdown releases the hanging request")
        .unwrap();
    if let Ok(resp) = outcome {
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    let addr = fx.site.addr();
    assert!(
        eventually(Duration::from_secs(5), || async move {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "port closed after shutdown"
    );
}

#[tokio::test]
async fn start_reports_a_taken_port() {
    let fx = start(DemoConfig::default()).await;
    let port = fx.site.addr().port();
    let err = DemoSite::start(DemoConfig::default(), port, CancellationToken::new())
        .await
        .expect_err("port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn config_debug_hides_passwords() {
    let shown = format!("{:?}", DemoConfig::default());
    assert!(shown.contains("alice"));
    assert!(!shown.contains("wonderland") && !shown.contains("builder"));
}
