//! Warming end to end: real Chromium, the demo site on 127.0.0.1, a real sled store on disk.

mod common;

use common::{eventually, processes_under, Rig};
use session_warmer::export;
use session_warmer::session::now_ms;
use session_warmer::store::SledStore;
use session_warmer::warm::{WarmError, WarmStep};
use std::time::{Duration, Instant};

fn no_progress(_: WarmStep) {}

async fn api(rig: &Rig, event: &str, headers: &[(String, String)]) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{}/api/event/{event}", rig.site.base_url()));
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.expect("demo API answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn warm_captures_httponly_and_js_cookies_and_storage_and_the_headers_work() {
    let rig = Rig::start().await;
    let s = rig
        .warmer
        .warm(&rig.request("1003"), &no_progress)
        .await
        .expect("warm succeeds");

    let visitor = s
        .cookies
        .iter()
        .find(|c| c.name == "visitor")
        .expect("visitor cookie");
    assert!(
        visitor.http_only,
        "the Set-Cookie visitor cookie is HttpOnly"
    );
    let challenge = s
        .cookies
        .iter()
        .find(|c| c.name == "challenge")
        .expect("JS cookie");
    assert!(!challenge.http_only);
    let storage = &s.origins[0];
    assert_eq!(storage.origin, rig.site.base_url());
    assert!(storage
        .local_storage
        .iter()
        .any(|(k, v)| k == "demo:last_event" && v == "1003"));

    // The exported headers get 200; a cold request 403; the same cookies with another UA 403.
    let headers = export::headers(&s, now_ms());
    let (status, body) = api(&rig, "1003", &headers).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(&rig, "1003", &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("missing visitor cookie"), "{body}");
    let other_ua: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("user-agent") {
                (k.clone(), format!("{v} Other/1.0"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (status, body) = api(&rig, "1003", &other_ua).await;
    assert_eq!(status, 403);
    assert!(body.contains("User-Agent"), "{body}");
    rig.stop().await;
}

#[tokio::test]
async fn fingerprint_is_coherent_in_the_page_and_pinned_to_the_real_browser() {
    let rig = Rig::start().await;
    let real = rig.sup.ready().await.unwrap().version;
    for seed in [1u64, 2, 3] {
        let mut req = rig.request("1001");
        req.seed = Some(seed);
        req.warmup = Duration::from_millis(400);
        let s = rig.warmer.warm(&req, &no_progress).await.expect("warm");
        let fp = &s.fingerprint;
        let seen = s.observed.as_ref().expect("observed");
        let header_ua = export::headers(&s, now_ms())
            .into_iter()
            .find(|(k, _)| k == "User-Agent")
            .unwrap()
            .1;
        assert_eq!(seen.user_agent, header_ua);
        assert_eq!(seen.user_agent, fp.user_agent);
        assert!(seen
            .user_agent
            .contains(&format!("Chrome/{}.0.0.0", real.major)));
        let chrome = seen
            .brands
            .iter()
            .find(|(b, _)| b == "Google Chrome")
            .expect("Google Chrome brand");
        assert_eq!(chrome.1, real.major.to_string());
        assert_eq!(fp.browser_version, real.full);
        assert_eq!(seen.platform, fp.profile.platform);
        assert_eq!(seen.ua_platform, fp.profile.ch_platform);
        assert_eq!(seen.timezone, fp.timezone);
        assert_eq!(seen.languages[0], fp.languages[0]);
        assert_eq!(
            seen.screen,
            (fp.profile.screen.width, fp.profile.screen.height)
        );
        assert_eq!(seen.hardware_concurrency, fp.profile.hardware_concurrency);
        // A maximised window on that screen around the emulated viewport.
        assert_eq!(seen.inner, fp.viewport);
        assert_eq!(
            seen.outer,
            (
                fp.profile.screen.avail_width,
                fp.profile.screen.avail_height
            )
        );
        assert!(seen.outer.0 >= seen.inner.0 && seen.outer.1 > seen.inner.1);
        let all = serde_json::to_string(&s).unwrap();
        assert!(!all.contains("HeadlessChrome"), "HeadlessChrome leaked");
        assert!(!all.contains("Headless"), "Headless leaked");
    }
    rig.stop().await;
}

#[tokio::test]
async fn cookies_txt_works_with_curl_and_storage_state_has_playwrights_shape() {
    let rig = Rig::start().await;
    let s = rig
        .warmer
        .warm(&rig.request("1005"), &no_progress)
        .await
        .expect("warm");
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies.txt");
    std::fs::write(&jar, export::cookies_txt(&s)).unwrap();
    let text = std::fs::read_to_string(&jar).unwrap();
    assert!(text.contains("#HttpOnly_127.0.0.1"), "{text}");
    let out = tokio::process::Command::new("curl")
        .arg("-sS")
        .arg("-w")
        .arg("\n%{http_code}")
        .arg("-b")
        .arg(&jar)
        .arg("-A")
        .arg(&s.fingerprint.user_agent)
        .arg(format!("{}/api/event/1005", rig.site.base_url()))
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with("200"), "curl got: {stdout}");

    let state = export::storage_state(&s);
    let cookies = state["cookies"].as_array().unwrap();
    assert!(!cookies.is_empty());
    for c in cookies {
        for k in [
            "name", "value", "domain", "path", "expires", "httpOnly", "secure", "sameSite",
        ] {
            assert!(c.get(k).is_some(), "cookie lacks {k}: {c}");
        }
        let exp = c["expires"].as_f64().unwrap();
        // Seconds, not milliseconds: within a day or two of now.
        assert!(
            exp == -1.0 || (exp > 1.7e9 && exp < 1.0e10),
            "expires {exp}"
        );
    }
    let origins = state["origins"].as_array().unwrap();
    assert_eq!(origins[0]["origin"], rig.site.base_url());
    assert!(origins[0]["localStorage"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "demo:last_event"));
    rig.stop().await;
}

#[tokio::test]
async fn a_stored_session_reads_back_equal_after_reopening_the_store() {
    let rig = Rig::start().await;
    let s = rig
        .warmer
        .warm(&rig.request("1002"), &no_progress)
        .await
        .expect("warm");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sled");
    {
        let store = SledStore::open(&path).unwrap();
        store.put_session(&s).unwrap();
    }
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.get_session(&s.id).unwrap().as_ref(), Some(&s));
    rig.stop().await;
}

#[tokio::test]
async fn killing_chromium_mid_warm_fails_fast_then_the_supervisor_relaunches() {
    let rig = Rig::start().await;
    let first = rig.sup.ready().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = move |step: WarmStep| {
        if matches!(step, WarmStep::Warmup(_)) {
            let _ = tx.send(());
        }
    };
    let mut req = rig.request("1004");
    req.warmup = Duration::from_secs(120);
    let warmer = rig.warmer.clone();
    let warm = tokio::spawn(async move { warmer.warm(&req, &progress).await });
    rx.recv().await.expect("the warm reaches its warm-up");
    let alive = processes_under(&first.profile_dir);
    assert!(
        alive.len() >= 3,
        "browser, zygote and renderer are found: {alive:?}"
    );
    let killed_at = Instant::now();
    rig.sup.kill_for_test().expect("a browser to kill");
    let result = tokio::time::timeout(Duration::from_secs(20), warm)
        .await
        .expect("the warm does not hang on a dead browser")
        .unwrap();
    assert!(
        matches!(result, Err(WarmError::BrowserGone(_))),
        "got {result:?}"
    );
    eprintln!("warm failed {:?} after the kill", killed_at.elapsed());

    let second = eventually("a relaunched browser", Duration::from_secs(30), || async {
        rig.sup
            .current()
            .filter(|b| b.generation > first.generation)
    })
    .await;
    assert_ne!(second.pid, first.pid);
    // The dead browser's profile dir is gone and none of its processes survive.
    assert!(!first.profile_dir.exists(), "old profile dir removed");
    assert!(processes_under(&first.profile_dir).is_empty());

    let s = rig
        .warmer
        .warm(&rig.request("1004"), &no_progress)
        .await
        .expect("the next warm succeeds");
    assert!(s.cookies.iter().any(|c| c.name == "challenge"));

    rig.stop().await;
    assert!(
        !second.profile_dir.exists(),
        "profile dir removed on shutdown"
    );
    assert!(
        processes_under(&second.profile_dir).is_empty(),
        "no chromium process left after shutdown"
    );
}

#[tokio::test]
async fn target_faults_are_classified() {
    let rig = Rig::start().await;
    let mut req = rig.request("1001");
    req.url = format!("{}/event/1001?fault=5xx", rig.site.base_url());
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(
        matches!(e, WarmError::TargetHttp { status: 503, .. }),
        "{e:?}"
    );

    req.url = format!("{}/event/1001?fault=hang", rig.site.base_url());
    req.navigation_timeout = Duration::from_secs(2);
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(matches!(e, WarmError::NavigationTimeout { .. }), "{e:?}");

    req.url = format!("{}/event/1001?fault=reset", rig.site.base_url());
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(matches!(e, WarmError::Network { .. }), "{e:?}");
    assert_eq!(e.kind(), "network");

    req.url = format!("{}/event/1001?fault=redirect-loop", rig.site.base_url());
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(
        matches!(&e, WarmError::Network { message, .. } if message.contains("REDIRECT")),
        "{e:?}"
    );

    req.url = format!("{}/event/1001?fault=never-load", rig.site.base_url());
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(matches!(e, WarmError::NavigationTimeout { .. }), "{e:?}");

    req.url = format!("{}/event/1001?fault=429", rig.site.base_url());
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(
        matches!(e, WarmError::TargetHttp { status: 429, .. }),
        "{e:?}"
    );

    // A download instead of a page fails at once (not after the navigation timeout).
    req.url = format!("{}/event/1001?fault=download", rig.site.base_url());
    req.navigation_timeout = Duration::from_secs(60);
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(
        matches!(&e, WarmError::Network { message, .. } if message.contains("download")),
        "{e:?}"
    );

    req.url = format!("{}/event/1001?fault=large", rig.site.base_url());
    req.navigation_timeout = Duration::from_secs(10);
    let e = rig.warmer.warm(&req, &no_progress).await.unwrap_err();
    assert!(matches!(e, WarmError::PageTooLarge { .. }), "{e:?}");
    assert_eq!(e.kind(), "page_too_large");

    // The browser is fine after all that.
    rig.warmer
        .warm(&rig.request("1001"), &no_progress)
        .await
        .expect("a normal warm");
    rig.stop().await;
}

#[tokio::test]
async fn the_memory_guard_recycles_the_browser_make_before_break() {
    let mut browser = common::browser_config();
    browser.max_pss_mib = 1; // any real browser is above this
    browser.memory_check_every = Duration::from_millis(500);
    let rig = Rig::with(Default::default(), browser).await;
    let first = rig.sup.ready().await.unwrap();
    assert!(
        rig.sup.pss_bytes().unwrap() > 1024 * 1024,
        "PSS is measured"
    );
    // A context opened on the first browser keeps working through the recycle.
    let ctx = rig.sup.new_context(None).await.unwrap();
    assert_eq!(ctx.generation(), first.generation);
    let second = eventually("a recycled browser", Duration::from_secs(30), || async {
        rig.sup
            .current()
            .filter(|b| b.generation > first.generation)
    })
    .await;
    let nav = ctx
        .navigate(
            &format!("{}/event/1001", rig.site.base_url()),
            Duration::from_secs(10),
        )
        .await
        .expect("the old browser still serves its context");
    assert_eq!(nav.status, Some(200));
    // New work goes to the new browser, and it succeeds.
    let s = rig
        .warmer
        .warm(&rig.request("1002"), &no_progress)
        .await
        .expect("warm");
    assert!(s.cookies.iter().any(|c| c.name == "challenge"));
    ctx.dispose().await;
    eventually(
        "the old browser closed after its last context",
        Duration::from_secs(30),
        || async {
            (!first.profile_dir.exists() && processes_under(&first.profile_dir).is_empty())
                .then_some(())
        },
    )
    .await;
    assert!(second.pid != first.pid);
    rig.stop().await;
}
