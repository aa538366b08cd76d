//! Sessions behind a proxy, end to end: a forward HTTP proxy on 127.0.0.1 that demands Basic
//! credentials, the demo site behind it, a real Chromium warming through it, and the daemon's
//! validation over plain HTTP going through it too. The proxy URL carries the credentials the
//! way users write them (`http://user:pass@host:port`); Chromium takes none in its proxy
//! setting, so the warm must answer the proxy's challenge itself.

mod common;

use common::proxy::Proxy;
use common::Rig;
use std::time::Duration;

const USER: &str = "scraper";
const PASSWORD: &str = "s3cr3t-proxy-pass";

fn proxied(rig: &Rig, event: &str, proxy: String) -> session_warmer::warm::WarmRequest {
    let mut r = rig.request(event);
    r.proxy = Some(proxy);
    r
}

#[tokio::test]
async fn a_warm_goes_through_its_authenticated_proxy_and_the_session_keeps_it() {
    let proxy = Proxy::start(USER, PASSWORD).await;
    let rig = Rig::start().await;
    let s = rig
        .warmer
        .warm(&proxied(&rig, "1003", proxy.url(USER, PASSWORD)), &|_| {})
        .await
        .expect("warm through the proxy succeeds");
    assert_eq!(s.proxy.as_deref(), Some(proxy.url(USER, PASSWORD).as_str()));
    assert!(s.cookies.iter().any(|c| c.name == "visitor"));
    assert!(s.cookies.iter().any(|c| c.name == "challenge"));
    let seen = proxy.seen();
    let page = format!("GET {}", rig.target().event_page("1003").unwrap());
    assert!(
        seen.forwarded.iter().any(|r| r == &page),
        "the event page came through the proxy: {seen:?}"
    );
    assert!(seen.challenged >= 1, "the proxy challenged first: {seen:?}");

    // The session's headers work through the same proxy over plain HTTP (what scrapers and
    // the validate worker do).
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy.url(USER, PASSWORD)).unwrap())
        .build()
        .unwrap();
    let mut req = client.get(format!("{}/api/event/1003", rig.site.base_url()));
    for (k, v) in session_warmer::export::headers(&s, session_warmer::session::now_ms()) {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(proxy
        .seen()
        .forwarded
        .iter()
        .any(|r| r.ends_with("/api/event/1003")));
    rig.stop().await;
}

#[tokio::test]
async fn wrong_proxy_credentials_fail_the_warm_quickly_and_say_so() {
    let proxy = Proxy::start(USER, PASSWORD).await;
    let rig = Rig::start().await;
    let started = std::time::Instant::now();
    let err = rig
        .warmer
        .warm(&proxied(&rig, "1003", proxy.url(USER, "wrong")), &|_| {})
        .await
        .expect_err("a warm with the wrong proxy password fails");
    let text = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "failed within the navigation timeout, not by it: {text}"
    );
    assert!(
        text.contains("407") || text.to_lowercase().contains("proxy"),
        "names the proxy's refusal: {text}"
    );
    assert!(!text.contains("wrong"), "no password in the error: {text}");
    assert!(proxy.seen().forwarded.is_empty());
    rig.stop().await;
}
