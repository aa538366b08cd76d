//! A session's browser goes only where its target lives. `POST /api/v1/fetch` loads URLs of the
//! session's own target, follows redirects only within it, and a caller cannot name a proxy
//! unless the config allows it. Refusals are proved by a second local site (a witness on
//! 127.0.0.1) that must see no connection at all, never by sending a request elsewhere.

mod common;

use common::daemon::{config, start, Site};
use common::eventually;
use common::proxy::Proxy;
use common::witness::Witness;
use serde_json::{json, Value};
use session_warmer::daemon::Daemon;
use std::time::Duration;

async fn ready_session(d: &Daemon, target: &str) -> String {
    eventually(
        &format!("a ready session of {target}"),
        Duration::from_secs(60),
        || async {
            d.pool
                .list()
                .into_iter()
                .find(|(s, _)| {
                    s.target == target && s.state == session_warmer::session::SessionState::Ready
                })
                .map(|(s, _)| s.id.clone())
        },
    )
    .await
}

async fn fetch(base: &str, session: &str, url: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/fetch"))
        .header("X-Session-ID", session)
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(base: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/sessions"))
        .json(&body)
        .send()
        .await
        .expect("API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn fetch_stays_on_the_sessions_target_redirects_included() {
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start(true).await;
    // The demo target's sessions go through an authenticating proxy: the browser's request
    // guard also answers the proxy's challenge.
    let proxy = Proxy::start("u", "proxy-pw").await;
    let mut demo = site.target("demo", 1);
    demo.proxies = vec![proxy.url("u", "proxy-pw")];
    let mut open = site.target("open", 1);
    open.allowed_origins = vec![witness.url("")];
    let (d, base) = start(config(dir.path(), vec![demo, open])).await;
    let sid = ready_session(&d, "demo").await;
    let site = site.base_url();

    // The target's own URLs load, through its proxy, redirects within it followed.
    let (s, v) = fetch(&base, &sid, &format!("{site}/api/event/1001")).await;
    assert_eq!((s, v["status"].as_u64()), (200, Some(200)), "{v}");
    let to = format!("{site}/event/1002");
    let (s, v) = fetch(
        &base,
        &sid,
        &format!("{site}/__demo/redirect?to={}", urlencode(&to)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["url"], to, "{v}");
    assert!(
        proxy
            .seen()
            .forwarded
            .iter()
            .any(|r| r.contains("/api/event/1001")),
        "the fetch went through the session's proxy: {:?}",
        proxy.seen()
    );

    // Another local service: refused before the browser is involved, naming the origins.
    let (s, v) = fetch(&base, &sid, &witness.url("/secret")).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "url_not_allowed", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&site),
        "names the allowed origins: {message}"
    );
    for url in [
        format!("http://localhost:{}/", witness.port),
        format!("https://127.0.0.1:{}/", witness.port),
    ] {
        let (s, v) = fetch(&base, &sid, &url).await;
        assert_eq!(s, 403, "{url}: {v}");
    }

    // A redirect out of the target: stopped inside the browser and reported.
    let (s, v) = fetch(
        &base,
        &sid,
        &format!(
            "{site}/__demo/redirect?to={}",
            urlencode(&witness.url("/x"))
        ),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "url_not_allowed", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("redirect"),
        "{v}"
    );
    assert_eq!(witness.hits(), 0, "no request reached the second site");
    assert!(
        !proxy
            .seen()
            .forwarded
            .iter()
            .any(|r| r.starts_with(&format!("GET {}", witness.url("")))),
        "nor was one sent through the proxy: {:?}",
        proxy.seen()
    );

    // A target's `allowed_origins` are loaded.
    let open_sid = ready_session(&d, "open").await;
    let (s, v) = fetch(&base, &open_sid, &witness.url("/page")).await;
    assert_eq!((s, v["status"].as_u64()), (200, Some(200)), "{v}");
    assert!(witness.hits() >= 1);
    d.shutdown().await;
}

#[tokio::test]
async fn a_caller_named_proxy_is_off_by_default_and_never_tells_ports_apart() {
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start(false).await;
    let (d, base) = start(config(dir.path(), vec![site.target("demo", 1)])).await;
    let (s, v) = create(&base, json!({"target": "demo", "proxy": witness.url("")})).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "custom_proxy_not_allowed", "{v}");
    assert_eq!(witness.hits(), 0, "the browser never connected to it");
    d.shutdown().await;

    let mut open = config(dir.path(), vec![site.target("demo", 1)]);
    open.server.allow_custom_proxies = true;
    let (d, base) = start(open).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut messages = Vec::new();
    for proxy in [format!("http://127.0.0.1:{closed}"), witness.url("")] {
        let (s, v) = create(&base, json!({"target": "demo", "proxy": proxy})).await;
        assert_eq!(s, 502, "{proxy}: {v}");
        assert_eq!(v["error"]["code"], "proxy_unreachable", "{v}");
        messages.push(v["error"]["message"].as_str().unwrap().to_string());
    }
    assert_eq!(messages[0], "proxy unreachable");
    assert_eq!(
        messages[0], messages[1],
        "a closed and an open port read the same"
    );
    assert!(witness.hits() >= 1, "the open port was tried");
    d.shutdown().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
