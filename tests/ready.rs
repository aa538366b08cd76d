//! `ready_when` and `block` against real Chromium and the demo site on 127.0.0.1: a warm's wait
//! ends within milliseconds of the page setting its token (measured against the time the page
//! or the site recorded, not a fixed sleep), for script and HttpOnly cookies, a selector, a URL
//! and a script condition; a condition never met fails at the deadline naming it; blocked
//! resource types never reach the site. Then the same wired into warms and the daemon: a
//! target's `ready_when` (a session without its token is never served), `warm_steps` (a
//! journey, a failing step named) and `block` (through an authenticated proxy too), and their
//! config checks.

mod common;

#[path = "common/timed.rs"]
mod timed;
use common::daemon::{self, Site};
use common::proxy::Proxy;
use common::Rig;
use session_warmer::browser::guard::{block_resources, BlockedResource};
use session_warmer::browser::BrowserContext;
use session_warmer::config::{Config, ScrollTo, StepAction, TargetConfig};
use session_warmer::config::{ScheduleConfig, StoreBackend, StoreConfig};
use session_warmer::demo::{demo_events, epoch_ms, AssetHits, DemoConfig};
use session_warmer::export::headers;
use session_warmer::metrics::Metrics;
use session_warmer::pool::Pool;
use session_warmer::schedule::topup;
use session_warmer::session::{now_ms, Session};
use session_warmer::store;
use session_warmer::warm::ready::{
    wait_ready, Ready, ReadyError, ReadyWatch, ReadyWhen, Trigger, SAFETY_CHECK,
};
use session_warmer::warm::{Blame, WarmError, WarmRequest, WarmStep};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timed::Timed;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    // The navigation event, or a page signal that reached the check first (Chromium 156 sends
    // one around a pushState): either way the reaction bound below holds.
    assert!(
        matches!(ready.trigger, Trigger::Navigation | Trigger::Page),
        "{:?}",
        ready.trigger
    );
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
    // A plain variable is seen by the safety check, or by a check a page signal asked for
    // first: either way within the bound below.
    assert!(
        matches!(ready.trigger, Trigger::Safety | Trigger::Page),
        "{:?}",
        ready.trigger
    );
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

// ---------------------------------------------------------------------------------------------
// Wired into warms (phase B): a target's `ready_when`, `warm_steps` and `block`.
// ---------------------------------------------------------------------------------------------

/// The demo's event pages with their token arriving 0.2–4 s after load, at random.
const SLOW_TOKEN: &str = "?token_delay=200-4000";

/// What the protected API answers a session's served headers (200: the session works).
async fn api_status(site_base: &str, s: &Session) -> u16 {
    let event = s.event.as_deref().expect("an event session");
    let mut req = reqwest::Client::new().get(format!("{site_base}/api/event/{event}"));
    for (k, v) in headers(s, now_ms()) {
        req = req.header(k, v);
    }
    req.send()
        .await
        .expect("demo API answers")
        .status()
        .as_u16()
}

fn has_cookie(s: &Session, name: &str) -> bool {
    s.cookies.iter().any(|c| c.name == name)
}

/// A warm request on the slow-token page with `ready_when = { cookies = ["challenge"] }`.
fn slow_token_request(rig: &Rig, event: &str, warmup: Duration) -> WarmRequest {
    let mut req = rig.request(event);
    req.url.push_str(SLOW_TOKEN);
    req.warmup = warmup;
    req.ready_when = Some(cookies(&["challenge"]));
    req
}

#[tokio::test]
async fn a_warm_with_ready_when_ends_at_the_token_or_fails_not_ready() {
    let rig = rig().await;
    // A token 300 ms after load and a 10 s warm-up: the warm ends at the token, not at 10 s.
    let mut req = rig.request("1001");
    req.url.push_str("?token_delay=300");
    req.warmup = Duration::from_secs(10);
    req.ready_when = Some(cookies(&["challenge"]));
    let started = Instant::now();
    let s = rig.warmer.warm(&req, &|_| {}).await.expect("warm");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}: the warm waited for its warm-up, not its token",
        started.elapsed()
    );
    assert!(has_cookie(&s, "challenge"));
    assert_eq!(api_status(&rig.site.base_url(), &s).await, 200);

    // Tokens 0.2–4 s after load and at most 1 s to wait: most warms fail, by name; every one
    // that succeeds has its token and works.
    let (mut ok, mut not_ready) = (0, 0);
    for i in 0..6 {
        let event = demo_events()[i % 10].clone();
        let req = slow_token_request(&rig, &event, Duration::from_secs(1));
        match rig.warmer.warm(&req, &|_| {}).await {
            Ok(s) => {
                ok += 1;
                assert!(has_cookie(&s, "challenge"), "a ready session has its token");
                assert_eq!(api_status(&rig.site.base_url(), &s).await, 200);
            }
            Err(e) => {
                not_ready += 1;
                assert_eq!(e.kind(), "not_ready", "{e}");
                assert_eq!(e.blame(), Blame::Target, "{e}");
                let text = e.to_string();
                assert!(
                    text.starts_with("not_ready: ") && text.contains("cookie \"challenge\""),
                    "{text}"
                );
                assert!(matches!(e, WarmError::NotReady(ref n) if n.missing.len() == 1));
            }
        }
    }
    eprintln!("1 s warm-up on 0.2-4 s tokens: {ok} ready, {not_ready} not ready");
    assert!(not_ready >= 1, "some tokens come after 1 s");
    rig.stop().await;
}

/// `warm_steps` and `block` from a config as a user writes them.
fn journey_target(base: &str, steps: &str) -> TargetConfig {
    let text = format!(
        "[[targets]]\nname = \"demo\"\nevent_url = \"{base}/event/{{event}}\"\nwarmup = \"5s\"\n\
         ready_when = {{ selector = \"body[data-ready='1']\" }}\nwarm_steps = {steps}\n"
    );
    let c = Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"));
    c.targets[0].clone()
}

fn journey_request(rig: &Rig, t: &TargetConfig, event: &str) -> WarmRequest {
    let mut req = rig.request(event);
    req.url = t.event_page(event).unwrap();
    req.warmup = t.warmup;
    req.ready_when = t.ready_when.clone();
    req.warm_steps = t.warm_steps.clone();
    req.block = t.block.clone();
    req
}

#[tokio::test]
async fn a_warm_journey_goes_home_then_listing_then_event_and_names_a_failing_step() {
    let rig = rig().await;
    let base = rig.site.base_url();
    // Home (the listing) -> scroll -> a pause -> click an event in the listing -> its page
    // ready -> the event warmed on.
    let t = journey_target(
        &base,
        &format!(
            "[ {{ goto = \"{base}/\" }}, {{ scroll = \"bottom\" }}, {{ sleep = \"20ms-80ms\" }}, \
             {{ click = \"a[href='/event/1004']\" }}, {{ wait_for = \"body[data-ready='1']\" }}, \
             {{ goto = \"{{event_url}}\" }} ]"
        ),
    );
    assert_eq!(t.warm_steps.len(), 6);
    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |s: WarmStep| {
        if let WarmStep::Step(line) = s {
            lines.lock().unwrap().push(line);
        }
    };
    let s = rig
        .warmer
        .warm(&journey_request(&rig, &t, "1007"), &progress)
        .await
        .unwrap_or_else(|e| panic!("journey: {e}"));
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(
        lines[3].starts_with("step 4/6: click a[href='/event/1004']"),
        "{lines:?}"
    );
    // Both event pages ran their script in this session: the clicked one, then the event's.
    let storage = &s.origins[0].local_storage;
    let get = |k: &str| {
        storage
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("demo:visits"), Some("2"), "{storage:?}");
    assert_eq!(get("demo:last_event"), Some("1007"), "{storage:?}");
    assert!(has_cookie(&s, "challenge"));
    assert_eq!(api_status(&base, &s).await, 200);

    // A step that cannot be done fails the warm, named with its number and selector.
    let t = journey_target(
        &base,
        &format!(
            "[ {{ goto = \"{base}/\" }}, {{ click = \"a.listing-that-is-not-there\", timeout = \"1s\" }}, \
             {{ goto = \"{{event_url}}\" }} ]"
        ),
    );
    let started = Instant::now();
    let e = rig
        .warmer
        .warm(&journey_request(&rig, &t, "1002"), &|_| {})
        .await
        .expect_err("the click cannot happen");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), "step_timeout", "{e}");
    assert!(
        e.to_string()
            .contains("step 2 (click \"a.listing-that-is-not-there\") timed out after 1s"),
        "{e}"
    );
    // A journey's page load keeps its classification: an unknown event blames the event.
    let t = journey_target(&base, "[ { goto = \"{event_url}\" } ]");
    let e = rig
        .warmer
        .warm(&journey_request(&rig, &t, "no-such-event"), &|_| {})
        .await
        .expect_err("404");
    assert_eq!((e.kind(), e.blame()), ("target_http", Blame::Event), "{e}");
    assert!(e.to_string().starts_with("warm step 1 (goto "), "{e}");
    rig.stop().await;
}

#[tokio::test]
async fn a_warm_with_block_loads_none_of_those_types_even_through_an_authenticated_proxy() {
    let proxy = Proxy::start("u", "proxy-pass").await;
    let rig = rig().await;
    let base = rig.site.base_url();
    let warm = |block: Vec<BlockedResource>, proxied: bool| {
        let mut req = rig.request("1005");
        req.url.push_str("?assets=1&token_delay=100");
        req.ready_when = Some(ReadyWhen {
            cookies: vec!["challenge".into()],
            // The page painted twice and its fonts settled: lazy loads had their chance.
            js: Some(
                "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => \
                 document.fonts.ready.then(() => r(true)))))"
                    .into(),
            ),
            ..ReadyWhen::default()
        });
        req.warmup = Duration::from_secs(5);
        req.block = block;
        req.proxy = proxied.then(|| proxy.url("u", "proxy-pass"));
        req
    };
    let delta = |before: AssetHits, after: AssetHits| AssetHits {
        image: after.image - before.image,
        stylesheet: after.stylesheet - before.stylesheet,
        font: after.font - before.font,
        media: after.media - before.media,
    };
    for proxied in [false, true] {
        let before = rig.site.asset_hits();
        let s = rig
            .warmer
            .warm(&warm(Vec::new(), proxied), &|_| {})
            .await
            .expect("warm");
        let open = delta(before, rig.site.asset_hits());
        assert!(
            open.image >= 1 && open.stylesheet >= 1 && open.font >= 1,
            "unblocked (proxy {proxied}): {open:?}"
        );
        assert_eq!(api_status(&base, &s).await, 200);

        let before = rig.site.asset_hits();
        let s = rig
            .warmer
            .warm(&warm(BlockedResource::ALL.to_vec(), proxied), &|_| {})
            .await
            .expect("a blocked warm still works");
        let blocked = delta(before, rig.site.asset_hits());
        assert_eq!(blocked, AssetHits::default(), "blocked (proxy {proxied})");
        assert!(has_cookie(&s, "challenge"));
        assert_eq!(api_status(&base, &s).await, 200);
    }
    let seen = proxy.seen();
    assert!(
        seen.challenged >= 1,
        "the proxy asked for credentials: {seen:?}"
    );
    assert!(
        seen.forwarded.iter().any(|r| r.contains("/event/1005")),
        "the proxied warms went through it: {seen:?}"
    );
    rig.stop().await;
}

/// `warmer_warms_total{target="demo",outcome=...}` from the daemon's `/metrics`.
async fn warms(base: &str, outcome: &str) -> u64 {
    let text = metrics(base).await;
    let key = format!("warmer_warms_total{{target=\"demo\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The daemon's `/metrics` text.
async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .unwrap()
}

/// Every `warmer_warms_total` line of the daemon at `base`: its warms by outcome.
async fn outcomes(base: &str) -> String {
    metrics(base)
        .await
        .lines()
        .filter(|l| l.starts_with("warmer_warms_total{"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The daemon's target on the slow-token page, waiting for the token at most `warmup`.
fn slow_token_target(site: &Site, pool_size: usize, warmup: Duration) -> TargetConfig {
    let mut t = site.target("demo", pool_size);
    t.event_url = Some(format!("{}{SLOW_TOKEN}", site.event_url_template()));
    t.warmup = warmup;
    t.ready_when = Some(cookies(&["challenge"]));
    t
}

#[tokio::test]
async fn the_daemon_serves_only_sessions_that_got_their_token() {
    let site = Site::start().await;
    let base_site = site.base_url();

    // Up to 6 s for a token that comes within 4 s: the pool fills, every session has it.
    let dir = tempfile::tempdir().unwrap();
    let t = slow_token_target(&site, 4, Duration::from_secs(6));
    let (d, base) = daemon::start(daemon::config(dir.path(), vec![t])).await;
    daemon::wait_ready(&d, 4, Duration::from_secs(90)).await;
    let listed = d.pool.list();
    assert!(listed.len() >= 4);
    for (s, _) in &listed {
        assert!(has_cookie(s, "challenge"), "session {} has its token", s.id);
        assert_eq!(
            api_status(&base_site, s).await,
            200,
            "session {} works",
            s.id
        );
    }
    assert_eq!(warms(&base, "not_ready").await, 0);
    d.shutdown().await;

    // At most 1 s: most warms fail not_ready (the target backs off, naming the cookie), and
    // none of those is stored or served: the pool holds exactly the warms that succeeded.
    let dir = tempfile::tempdir().unwrap();
    let t = slow_token_target(&site, 3, Duration::from_secs(1));
    let (d, base) = daemon::start(daemon::config(dir.path(), vec![t])).await;
    // One is enough to show it: the first not_ready backs the target off (the next warm may
    // wait out the back-off), so waiting for a second could outlast the deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while warms(&base, "not_ready").await == 0 {
        // Should it not come, say what the warms did instead.
        assert!(
            std::time::Instant::now() < deadline,
            "no not_ready warm within 60 s; warms so far: {}; the target: {:?}",
            outcomes(&base).await,
            d.pool.stats().targets[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let backoff = d.pool.stats().targets[0].backoff.clone();
    if let Some(b) = backoff {
        if b.kind == "not_ready" {
            assert!(b.reason.contains("cookie \"challenge\""), "{}", b.reason);
        }
    }
    common::eventually(
        "the pool holds the warms that succeeded",
        Duration::from_secs(20),
        || async {
            let ok = warms(&base, "ok").await;
            let listed = d.pool.list();
            (ok == listed.len() as u64 && warms(&base, "ok").await == ok).then_some(listed)
        },
    )
    .await
    .iter()
    .for_each(|(s, _)| assert!(has_cookie(s, "challenge"), "session {} has its token", s.id));
    for (s, _) in d.pool.list() {
        assert_eq!(
            api_status(&base_site, &s).await,
            200,
            "session {} works",
            s.id
        );
    }
    d.shutdown().await;
}

#[test]
fn ready_when_warm_steps_and_block_are_checked_in_the_config() {
    let target = |extra: &str| {
        format!("[[targets]]\nname = \"t\"\nevent_url = \"http://x/e/{{event}}\"\n{extra}\n")
    };
    let err = |extra: &str| {
        Config::parse(&target(extra), "t.toml")
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
            .to_string()
    };
    let c = Config::parse(
        &target(
            "ready_when = { cookies = [\"challenge\"], selector = \"#app\" }\n\
             warm_steps = [ { goto = \"http://x/\" }, { scroll = \"600px\" }, { sleep = \"1s-3s\" }, \
             { click = \"a.listing\" }, { goto = \"{event_url}\" } ]\nblock = [\"image\", \"font\"]",
        ),
        "t.toml",
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(t.ready_when.as_ref().unwrap().cookies, ["challenge"]);
    assert_eq!(t.block, [BlockedResource::Image, BlockedResource::Font]);
    assert_eq!(
        t.warm_steps
            .iter()
            .map(|s| s.action.clone())
            .collect::<Vec<_>>(),
        [
            StepAction::Goto {
                url: "http://x/".into()
            },
            StepAction::Scroll {
                to: ScrollTo::By(600)
            },
            StepAction::SleepBetween {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3)
            },
            StepAction::Click {
                selector: "a.listing".into()
            },
            StepAction::Goto {
                url: "{event_url}".into()
            },
        ]
    );
    // Each journey step's timeout (10 s here) plus its longest sleep.
    assert_eq!(
        t.journey_bound(Duration::from_secs(10)),
        Duration::from_secs(53)
    );
    let c = Config::parse(&target(""), "t.toml").unwrap();
    assert!(c.targets[0].ready_when.is_none() && c.targets[0].warm_steps.is_empty());

    for (extra, field, says) in [
        (
            "ready_when = {}",
            "targets[0].ready_when (line 4",
            "at least one condition",
        ),
        (
            "ready_when = { selector = \" \" }",
            "targets[0].ready_when (line 4",
            "selector is empty",
        ),
        (
            "ready_when = { cookie = [\"a\"] }",
            "targets[0].ready_when",
            "cookie",
        ),
        (
            "warm_steps = [ { goto = \"http://x/\" }, { fill = \"#q\", value = \"{username}\" } ]",
            "targets[0].warm_steps (line 4",
            "step 2 (fill): a warm has no account",
        ),
        (
            "warm_steps = [ { goto = \"{event_url}?x=1\" } ]",
            "targets[0].warm_steps",
            "stands for the whole URL",
        ),
        (
            "warm_steps = [ { goto = \"ftp://x/\" } ]",
            "targets[0].warm_steps",
            "not http",
        ),
        (
            "warm_steps = [ { sleep = \"3s-1s\" } ]",
            "targets[0].warm_steps",
            "ends before it starts",
        ),
        (
            "warm_steps = [ { sleep = \"0s-1s\" } ]",
            "targets[0].warm_steps",
            "greater than zero",
        ),
        (
            "warm_steps = [ { scroll = \"\" } ]",
            "targets[0].warm_steps",
            "scroll needs",
        ),
        ("block = [\"script\"]", "targets[0].block", "script"),
    ] {
        let e = err(extra);
        assert!(e.contains(field) && e.contains(says), "{extra}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    // `{event_url}` has no meaning in a login, and a journey needs an event page.
    let e = Config::parse(
        "[[targets]]\nname = \"p\"\naccounts_dir = \"a\"\n[targets.login]\nurl = \"http://x/login\"\n\
         steps = [ { goto = \"{event_url}\" } ]\ncheck = { url = \"http://x/account\" }\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("targets[0].login.steps[0].goto") && e.contains("warm_steps"),
        "{e}"
    );
    let e = Config::parse(
        "[[targets]]\nname = \"p\"\nwarm_steps = [ { goto = \"http://x/\" } ]\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("targets[0].warm_steps") && e.contains("event_url"),
        "{e}"
    );
    // Scroll targets read as written.
    assert_eq!(ScrollTo::parse("bottom"), Ok(ScrollTo::Bottom));
    assert_eq!(ScrollTo::parse("-300px"), Ok(ScrollTo::By(-300)));
    assert_eq!(
        ScrollTo::parse("#more"),
        Ok(ScrollTo::Element("#more".into()))
    );
}

#[tokio::test]
async fn a_filling_pool_leaves_its_host_idle_at_most_the_jitter_between_warms() {
    let rig = rig().await;
    let mut t = TargetConfig::ad_hoc(
        "demo",
        &format!("{}?token_delay=300", rig.site.event_url_template()),
    );
    t.events = demo_events();
    t.pool_size = 6;
    t.ready_when = Some(cookies(&["challenge"]));
    assert_eq!(t.max_concurrent_warms, 1, "one warm at a time by default");
    assert_eq!(
        t.warm_jitter,
        Duration::from_millis(250),
        "the default jitter"
    );
    let backend = store::open(
        &StoreConfig {
            backend: StoreBackend::Memory,
            ..StoreConfig::default()
        },
        None,
    )
    .await
    .unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let timed = Timed {
        inner: rig.warmer.clone(),
        spans: spans.clone(),
    };
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let pool = Arc::new(Pool::new(
        &[t],
        backend,
        timed,
        Arc::new(Metrics::default()),
        stop.clone(),
        tracker.clone(),
    ));
    // The daemon's top-up worker with its default tick: the next warm must not wait for it.
    let tick = ScheduleConfig::default().top_up_every;
    assert_eq!(tick, Duration::from_secs(2));
    let worker = tokio::spawn(topup::run(pool.clone(), tick, stop.clone()));
    common::eventually("a pool of 6", Duration::from_secs(60), || async {
        (pool.ready_count() >= 6).then_some(())
    })
    .await;
    stop.cancel();
    worker.await.unwrap();
    tracker.close();
    tracker.wait().await;
    assert_eq!(spans.lock().unwrap().len(), 6, "six warms, none failed");
    // The host's turns (from a warm's first navigation to its page ready): one at a time,
    // and the next one's context already open when the last one is done with the host.
    let turns = pool.targets()[0].host.recent();
    assert_eq!(turns.len(), 6, "{turns:?}");
    for w in turns.windows(2) {
        assert!(w[0].left <= w[1].entered, "turns overlap: {turns:?}");
    }
    let gaps: Vec<f64> = turns[1..]
        .iter()
        .map(|t| t.idle_before.expect("a turn before it").as_secs_f64() * 1000.0)
        .collect();
    eprintln!("idle between consecutive turns at the host (ms): {gaps:.0?}");
    for g in &gaps {
        // Never idle longer than the jitter (plus a loaded machine's scheduling: 80 ms).
        assert!(*g < 250.0 + 80.0, "an idle gap of {g:.0} ms: {gaps:.0?}");
    }
    rig.stop().await;
}
