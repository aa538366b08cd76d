//! Seed 002's documented calls, run verbatim with real curl against a real daemon (backend
//! `memory`, which the body's `adapter` names), a real Chromium and the demo site: create a
//! session with a caller's User-Agent and viewport, use it through `POST /api/scrape`, delete
//! one, clear all. Plus seed 000's cookie stats shape, and the adapter rule's refusal.

mod common;

use common::daemon::{self, Site};
use serde_json::Value;
use session_warmer::config::StoreBackend;
use std::time::Duration;

/// Runs `curl -s -w '\n%{http_code}' <args>` (nothing between it and 127.0.0.1) and returns
/// the status and the body as JSON (`Null` when empty).
async fn curl(args: &[&str]) -> (u16, Value) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "--max-time", "90", "-w", "\n%{http_code}"])
        .args(args)
        .env("NO_PROXY", "*")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("curl finishes")
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}"))
    };
    (code.trim().parse().unwrap(), v)
}

/// A header of a served session's `headers`, by case-insensitive name.
fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn cookie<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["value"].as_str())
}

#[tokio::test]
async fn seed_002_curl_lines_work_as_written() {
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon::config(dir.path(), vec![site.target("demo", 1)]);
    config.store.backend = StoreBackend::Memory;
    let (d, base) = daemon::start(config).await;
    let sessions = format!("{base}/api/v1/sessions");

    // The adapter rule: a body naming another backend is refused, naming the configured one.
    let (s, v) = curl(&[
        "-X",
        "POST",
        &sessions,
        "-d",
        r#"{"adapter": "redis", "ttl": 3600, "browser": {"userAgent": "Custom Agent", "viewport": {"width": 1280, "height": 800}}}"#,
    ])
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "adapter_not_configured", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"memory\""),
        "{v}"
    );

    // Create: seed 002's body, with the adapter this daemon is configured with.
    let before = session_warmer::session::now_ms();
    let (s, created) = curl(&[
        "-X",
        "POST",
        &sessions,
        "-d",
        r#"{"adapter": "memory", "ttl": 3600, "browser": {"userAgent": "Custom Agent", "viewport": {"width": 1280, "height": 800}}}"#,
    ])
    .await;
    assert_eq!(s, 201, "{created}");
    let fp = &created["fingerprint"];
    assert_eq!(fp["user_agent"], "Custom Agent", "{created}");
    assert_eq!(fp["custom"], true, "{created}");
    assert_eq!(fp["viewport"]["width"], 1280);
    assert_eq!(fp["viewport"]["height"], 800);
    assert_eq!(header(&created, "User-Agent"), Some("Custom Agent"));
    for (k, _) in created["headers"].as_object().unwrap() {
        assert!(
            !k.to_ascii_lowercase().starts_with("sec-ch-ua"),
            "a custom UA is served without client hints: {created}"
        );
    }
    // ttl 3600 is seconds: served for an hour.
    let expires = humantime::parse_rfc3339(created["expires_at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        expires >= before + 3_590_000 && expires <= before + 3_700_000,
        "{created}"
    );

    // The demo page saw navigator.userAgent == "Custom Agent": its script bound the challenge
    // cookie to navigator.userAgent + nonce.
    let id = created["session_id"].as_str().unwrap().to_string();
    let (s, full) = curl(&[&format!("{sessions}/{id}/export?format=json")]).await;
    assert_eq!(s, 200, "{full}");
    let challenge = cookie(&full, "challenge").expect("challenge cookie");
    let (nonce, hash) = challenge.split_once('.').unwrap();
    assert_eq!(
        hash,
        session_warmer::demo::challenge_hash("Custom Agent", nonce),
        "the page's navigator.userAgent was the custom UA"
    );
    // Served with it: the protected API accepts the cookies with that User-Agent.
    let cookie_header = header(&created, "Cookie").expect("Cookie header");
    let event = full["event"].as_str().unwrap();
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/event/{event}", site.base_url()))
        .header("User-Agent", "Custom Agent")
        .header("Cookie", cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // A desktop Chrome UA of the running major keeps coherent client hints (not custom).
    let major = fp["browser_version"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let chrome = format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36");
    let body =
        serde_json::json!({"adapter": "memory", "browser": {"userAgent": chrome}}).to_string();
    let (s, v) = curl(&["-X", "POST", &sessions, "-d", &body]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["fingerprint"]["custom"], false, "{v}");
    assert_eq!(v["fingerprint"]["ch_platform"], "Windows", "{v}");
    assert_eq!(header(&v, "User-Agent"), Some(chrome.as_str()));
    assert_eq!(header(&v, "sec-ch-ua-platform"), Some("\"Windows\""), "{v}");
    assert!(header(&v, "sec-ch-ua").unwrap().contains(&major), "{v}");

    // Use: POST /api/scrape with X-Session-ID, as /api/v1/fetch.
    let url = format!("{}/api/event/{event}", site.base_url());
    let (s, v) = curl(&[
        "-X",
        "POST",
        &format!("{base}/api/scrape"),
        "-H",
        &format!("X-Session-ID: {id}"),
        "-d",
        &format!(r#"{{"url": "{url}"}}"#),
    ])
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], 200, "{v}");

    // Seed 000's cookie stats beside today's.
    let (s, v) = curl(&[&format!("{base}/api/cookies/stats")]).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["totalCookies"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["sessions"]["totalSessions"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["cookies"]["cachedHeaders"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["cookies"]["capturedState"]["hasCookies"], true, "{v}");
    assert!(
        v["cookies"]["capturedState"]["lastRefresh"].is_string(),
        "{v}"
    );

    // Delete one.
    let (s, _) = curl(&["-X", "DELETE", &format!("{sessions}/{id}")]).await;
    assert_eq!(s, 204);
    let (s, v) = curl(&[&format!("{sessions}/{id}")]).await;
    assert_eq!(s, 404, "{v}");

    // Clear all.
    let (s, v) = curl(&["-X", "DELETE", &sessions]).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["deleted"].as_u64().unwrap() >= 1, "{v}");
    d.shutdown().await;
}
