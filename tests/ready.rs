//! `ready_when` and `block` against real Chromium and the demo site on 127.0.0.1: a warm's wait
//! ends within milliseconds of the page setting its token (measured against the time the page
//! or the site recorded, not a fixed sleep), for script and HttpOnly cookies, a selector, a URL
//! and a script condition; a condition never met fails at the deadline naming it; blocked
//! resource types never reach the site.

mod common;

use common::Rig;
use session_warmer::browser::guard::{block_resources, BlockedResource};
use session_warmer::browser::BrowserContext;
use session_warmer::demo::{epoch_ms, AssetHits, DemoConfig};
use session_warmer::warm::ready::{
    wait_ready, Ready, ReadyError, ReadyWatch, ReadyWhen, Trigger, SAFETY_CHECK,
};
use std::time::Duration;
use tokio::time::Instant;

/// Most a wait may end after the page set what it waited for. Event-driven, it is a few ms; the
/// margin absorbs a loaded 2-core machine. The waits measured run with the safety check
/// pushed out to [`NO_SAFETY`], so only the page's events can end them in time.
const MARGIN_MS: f64 = 150.0;

/// The safety check's period in the timed waits: longer than any wait here.
const NO_SAFETY: Duration = Duration::from_secs(30);

/// Median reaction the event path must reach over a test's runs.
const MEDIAN_MS: f64 = 60.0;

const NAV: Duration = Duration::from_secs(10);

async fn rig() -> Rig {
    Rig::with(DemoConfig::default(), common::browser_config()).await
}

async fn page(rig: &Rig, path: &str) -> BrowserContext {
    let ctx = rig.sup.new_context(None).await.expect("context");
    ctx.navigate(&format!("{}{path}", rig.site.base_url()), NAV)
        .await
        .expect("page loads");
    ctx
}

/// When the page's script set its token (`<body data-token-at>`, epoch ms).
async fn token_at(ctx: &BrowserContext) -> f64 {
    let at: String = ctx
        .evaluate("document.body.dataset.tokenAt || ''")
        .await
        .expect("page answers");
    at.parse().expect("the page recorded when it set its token")
}

fn cookies(names: &[&str]) -> ReadyWhen {
    ReadyWhen {
        cookies: names.iter().map(|n| n.to_string()).collect(),
        ..ReadyWhen::default()
    }
}

/// Waits for `cond` on the loaded page with the safety check out of the way (at most 5 s).
async fn by_events(ctx: &BrowserContext, cond: &ReadyWhen) -> Ready {
    let ready = ReadyWatch::arm(ctx, cond)
        .await
        .expect("armed")
        .safety_check(NO_SAFETY)
        .wait(ctx, Instant::now() + Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", cond.describe()));
    assert_ne!(ready.trigger, Trigger::Safety);
    ready
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Asserts one reaction: not before the page acted, at most `MARGIN_MS` after.
fn reaction(what: &str, set_at: f64, returned_at: f64) -> f64 {
    let lag = returned_at - set_at;
    eprintln!("{what}: the wait ended {lag:.1} ms after the page set it");
    assert!(
        lag >= -1.0,
        "{what}: the wait ended {:.1} ms before the page set it",
        -lag
    );
    assert!(
        lag < MARGIN_MS,
        "{what}: the wait ended {lag:.1} ms after the page set it"
    );
    lag
}

#[tokio::test]
async fn a_cookie_set_by_script_ends_the_wait_within_milliseconds() {
    let rig = rig().await;
    let cond = cookies(&["challenge"]);
    let mut lags = Vec::new();
    for (i, delay) in [400u64, 250, 600].into_iter().enumerate() {
        let ctx = page(&rig, &format!("/event/100{}?token_delay={delay}", i + 1)).await;
        let loaded = Instant::now();
        let ready = by_events(&ctx, &cond).await;
        let returned_at = epoch_ms();
        assert_eq!(ready.trigger, Trigger::Page, "the script's cookie signal");
        let lag = reaction("challenge cookie", token_at(&ctx).await, returned_at);
        lags.push(lag);
        // It waited for the token (not a fixed dwell): about the delay after load, less the
        // script's start.
        assert!(
            loaded.elapsed() < Duration::from_millis(delay) + Duration::from_millis(300),
            "{:?} for a {delay} ms token",
            loaded.elapsed()
        );
        // Signals, not a poll: the first check, the script's arming, the cookie.
        assert!(
            ready.checks <= 4,
            "{} checks in {:?}",
            ready.checks,
            ready.waited
        );
        ctx.dispose().await;
    }
    assert!(median(lags.clone()) < MEDIAN_MS, "reactions {lags:?} ms");

    // Armed before the navigation (as a warm can, after its fingerprint): same reaction.
    let ctx = rig.sup.new_context(None).await.expect("context");
    let watch = ReadyWatch::arm(&ctx, &cond)
        .await
        .expect("armed")
        .safety_check(NO_SAFETY);
    ctx.navigate(
        &format!("{}/event/1004?token_delay=300", rig.site.base_url()),
        NAV,
    )
    .await
    .expect("page loads");
    watch
        .wait(&ctx, Instant::now() + Duration::from_secs(5))
        .await
        .expect("the token arrives");
    reaction("armed before navigation", token_at(&ctx).await, epoch_ms());
    ctx.dispose().await;
    rig.stop().await;
}

#[tokio::test]
async fn an_httponly_cookie_from_a_response_ends_the_wait() {
    let rig = rig().await;
    let mut lags = Vec::new();
    for (i, delay) in [600u64, 450, 700].into_iter().enumerate() {
        let ctx = page(
            &rig,
            &format!("/event/100{}?token_delay={delay}&token_http=1", i + 1),
        )
        .await;
        let before = rig.site.http_token_issued_at();
        let ready = by_events(&ctx, &cookies(&["http_token", "visitor"])).await;
        let returned_at = epoch_ms();
        assert_eq!(
            ready.trigger,
            Trigger::SetCookie,
            "the response's Set-Cookie"
        );
        let issued = rig.site.http_token_issued_at().expect("issued");
        assert_ne!(Some(issued), before, "this page's token");
        lags.push(reaction("http_token", issued, returned_at));
        // Invisible to the page's scripts: only the response could have told the watch.
        let seen: String = ctx.evaluate("document.cookie").await.unwrap();
        assert!(!seen.contains("http_token"), "{seen}");
        ctx.dispose().await;
    }
    assert!(median(lags.clone()) < MEDIAN_MS, "reactions {lags:?} ms");
    rig.stop().await;
}

#[tokio::test]
async fn selector_url_and_script_conditions_end_the_wait_when_met() {
    let rig = rig().await;

    // A selector that appears with the token.
    let ctx = page(&rig, "/event/1001?token_delay=400").await;
    let cond = ReadyWhen {
        selector: Some("#app-ready".into()),
        ..ReadyWhen::default()
    };
    by_events(&ctx, &cond).await;
    let mut lags = vec![reaction("#app-ready", token_at(&ctx).await, epoch_ms())];
    ctx.dispose().await;

    // A script condition, set by the page right after the token (a promise is awaited).
    let ctx = page(&rig, "/event/1002?token_delay=350").await;
    let cond = ReadyWhen {
        js: Some("Promise.resolve(document.body.dataset.ready === '1')".into()),
        ..ReadyWhen::default()
    };
    by_events(&ctx, &cond).await;
    lags.push(reaction("js", token_at(&ctx).await, epoch_ms()));
    ctx.dispose().await;

    // A URL reached by history.pushState (no DOM change, no cookie): the navigation event.
    let ctx = page(&rig, "/event/1003").await;
    let _: bool = ctx
        .evaluate(
            "setTimeout(() => { window.__pushedAt = performance.timeOrigin + performance.now(); \
             history.pushState({}, '', '/event/1003?step=2'); }, 300); true",
        )
        .await
        .unwrap();
    let cond = ReadyWhen {
        url: Some("step=2".into()),
        ..ReadyWhen::default()
    };
    let ready = by_events(&ctx, &cond).await;
    assert_eq!(ready.trigger, Trigger::Navigation);
    let returned_at = epoch_ms();
    let pushed: f64 = ctx.evaluate("window.__pushedAt").await.unwrap();
    lags.push(reaction("pushState url", pushed, returned_at));
    ctx.dispose().await;

    // A URL reached by a new document, as a /regex/, with every other condition at once.
    let ctx = page(&rig, "/event/1004").await;
    let _: bool = ctx
        .evaluate("setTimeout(() => { location.href = '/event/1005?token_delay=200'; }, 200); true")
        .await
        .unwrap();
    let cond = ReadyWhen {
        cookies: vec!["challenge".into(), "visitor".into()],
        selector: Some("#app-ready".into()),
        url: Some(r"/event\/100[5]/".into()),
        js: Some("document.body.dataset.event === '1005'".into()),
    };
    by_events(&ctx, &cond).await;
    lags.push(reaction("new document", token_at(&ctx).await, epoch_ms()));
    let href: String = ctx.evaluate("location.pathname").await.unwrap();
    assert_eq!(href, "/event/1005");
    ctx.dispose().await;

    assert!(median(lags.clone()) < MEDIAN_MS, "reactions {lags:?} ms");

    // What no event announces (a plain variable) is caught by the safety check.
    let ctx = page(&rig, "/event/1006").await;
    let _: bool = ctx
        .evaluate(
            "setTimeout(() => { window.__flagAt = performance.timeOrigin + performance.now(); \
             window.__flag = true; }, 100); true",
        )
        .await
        .unwrap();
    let cond = ReadyWhen {
        js: Some("window.__flag === true".into()),
        ..ReadyWhen::default()
    };
    let ready = wait_ready(&ctx, &cond, Instant::now() + Duration::from_secs(5))
        .await
        .expect("flag");
    let returned_at = epoch_ms();
    let set_at: f64 = ctx.evaluate("window.__flagAt").await.unwrap();
    assert_eq!(ready.trigger, Trigger::Safety);
    assert!(
        returned_at - set_at < SAFETY_CHECK.as_millis() as f64 + MARGIN_MS,
        "{:.1} ms",
        returned_at - set_at
    );
    ctx.dispose().await;
    rig.stop().await;
}

#[tokio::test]
async fn a_condition_never_met_fails_at_the_deadline_naming_it() {
    let rig = rig().await;
    let ctx = page(&rig, "/event/1001?token_delay=100").await;
    let cond = ReadyWhen {
        cookies: vec!["challenge".into(), "token".into()],
        selector: Some("#never".into()),
        url: Some("/elsewhere".into()),
        js: Some("window.noSuchThing.deeper".into()),
    };
    let wait = Duration::from_millis(800);
    let started = Instant::now();
    let e = wait_ready(&ctx, &cond, started + wait)
        .await
        .expect_err("never ready");
    let took = started.elapsed();
    assert!(
        took >= wait && took < wait + Duration::from_millis(300),
        "gave up after {took:?}, deadline {wait:?}"
    );
    let ReadyError::NotReady(not_ready) = e else {
        panic!("not a NotReady: {e}");
    };
    let text = not_ready.to_string();
    assert!(text.starts_with("not_ready: "), "{text}");
    assert!(text.contains(r#"cookie "token" missing"#), "{text}");
    assert!(!text.contains(r#"cookie "challenge""#), "met: {text}");
    assert!(text.contains(r##"selector "#never" not found"##), "{text}");
    assert!(text.contains(r#"url "/elsewhere" not reached"#), "{text}");
    assert!(
        text.contains(r#"js "window.noSuchThing.deeper" threw"#),
        "{text}"
    );
    assert_eq!(not_ready.missing.len(), 4, "{text}");
    // Cookie values never appear.
    assert!(!text.contains("challenge="), "{text}");

    // An invalid selector is reported as such, at the deadline too.
    let cond = ReadyWhen {
        selector: Some("##".into()),
        ..ReadyWhen::default()
    };
    let e = wait_ready(&ctx, &cond, Instant::now() + Duration::from_millis(300))
        .await
        .expect_err("invalid selector");
    assert!(
        e.to_string().contains(r###"selector "##" is not valid"###),
        "{e}"
    );
    ctx.dispose().await;
    rig.stop().await;
}

/// Loads the `assets=1` page in a fresh context, with `block` types blocked; returns what the
/// site received for it and how many requests the interceptor failed.
async fn load_assets(rig: &Rig, block: &[BlockedResource]) -> (AssetHits, u64) {
    let before = rig.site.asset_hits();
    let ctx = rig.sup.new_context(None).await.expect("context");
    let interceptor = block_resources(&ctx, block, rig.sup.config().cdp_timeout)
        .await
        .expect("interception starts");
    ctx.navigate(
        &format!(
            "{}/event/1002?assets=1&token_delay=100",
            rig.site.base_url()
        ),
        NAV,
    )
    .await
    .expect("page loads");
    // The page still works: its token arrives.
    wait_ready(
        &ctx,
        &cookies(&["challenge"]),
        Instant::now() + Duration::from_secs(5),
    )
    .await
    .expect("token");
    // Lazily started loads (the font, the video) have had their chance once the token is in
    // and the page has painted twice.
    let _: bool = ctx
        .evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => \
             document.fonts.ready.then(() => r(true)))))",
        )
        .await
        .unwrap();
    let after = rig.site.asset_hits();
    let failed = interceptor.as_ref().map_or(0, |i| i.blocked_resources());
    ctx.dispose().await;
    let hits = AssetHits {
        image: after.image - before.image,
        stylesheet: after.stylesheet - before.stylesheet,
        font: after.font - before.font,
        media: after.media - before.media,
    };
    (hits, failed)
}

#[tokio::test]
async fn blocked_resource_types_never_reach_the_site() {
    let rig = rig().await;
    // Unblocked, the page asks for each kind.
    let (open, failed) = load_assets(&rig, &[]).await;
    assert_eq!(failed, 0);
    assert!(
        open.image >= 1 && open.stylesheet >= 1 && open.font >= 1 && open.media >= 1,
        "{open:?}"
    );
    // Everything blocked: none arrives, and each was failed in the browser.
    let (blocked, failed) = load_assets(&rig, &BlockedResource::ALL).await;
    assert_eq!(blocked, AssetHits::default());
    assert!(failed >= 4, "{failed} requests failed");
    // Only images and fonts blocked: the stylesheet and the video still load.
    let (some, _) = load_assets(&rig, &[BlockedResource::Image, BlockedResource::Font]).await;
    assert_eq!((some.image, some.font), (0, 0), "{some:?}");
    assert!(some.stylesheet >= 1 && some.media >= 1, "{some:?}");
    rig.stop().await;
}
