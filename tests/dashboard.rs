//! The dashboard (`GET /`) as an operator sees it: a real daemon with a token keeps three
//! sessions warm on the demo site, and a real headless Chromium opens the page, signs in through
//! its form, finds every session the API lists, the pool per target and the daemon's browser,
//! then — without a reload — sees a session retired by a scraper's 403 and another one deleted
//! through the API disappear. Nothing on the way logs a console error, throws, or puts a cookie
//! value or the token into the page. A full-page screenshot is written to
//! `$WARMER_DASHBOARD_SCREENSHOT` (the README's `docs/dashboard.png` came from it), else to
//! cargo's temp dir for tests.
//!
//! The page is driven in the daemon's own Chromium (a context of its supervisor, like the
//! daemon's warms but with no URL guard): one browser instead of two on a small machine.

mod common;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::{EnableParams as LogEnable, EventEntryAdded};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{EventConsoleApiCalled, EventExceptionThrown};
use chromiumoxide::page::ScreenshotParams;
use common::eventually;
use futures::StreamExt as _;
use serde_json::Value;
use session_warmer::browser::BrowserContext;
use session_warmer::config::Config;
use session_warmer::daemon::Daemon;
use session_warmer::demo::{DemoConfig, DemoSite};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "dashboard-test-token-5f0c9a7e41d2";
const POOL: usize = 3;

/// A daemon with a token, warming `POOL` sessions on a demo site.
struct Rig {
    daemon: Option<Daemon>,
    base: String,
    site_stop: CancellationToken,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Self {
        let site_stop = CancellationToken::new();
        let site = DemoSite::start(DemoConfig::default(), 0, site_stop.clone())
            .await
            .expect("demo site starts");
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let text = format!(
            r#"
[server]
token_file = {token:?}

[browser]
navigation_timeout = "15s"

[store]
path = {store:?}

[[targets]]
name = "demo"
event_url = {url:?}
events = ["1001", "1002", "1003", "1004"]
warmup = "300ms"
pool_size = {POOL}
"#,
            token = token_file.display().to_string(),
            store = dir.path().join("store").display().to_string(),
            url = site.event_url_template(),
        );
        let config = Config::parse(&text, "dashboard test").expect("config parses");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let daemon = Daemon::start(config, Some(listener))
            .await
            .expect("daemon starts");
        let base = format!("http://{}", daemon.addr);
        Self {
            daemon: Some(daemon),
            base,
            site_stop,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("running")
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Ids of the ready sessions the API lists.
    async fn ready_ids(&self) -> Vec<String> {
        self.get("/api/v1/sessions")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "ready")
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
        self.site_stop.cancel();
    }
}

/// Everything the page's console says at level error, and every uncaught exception.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<String>>>);

impl Console {
    /// Starts collecting from `ctx`'s page: `console.error`/`console.assert` calls, uncaught
    /// exceptions, and the browser's own log entries at level error (failed loads, CSP refusals).
    async fn listen(ctx: &BrowserContext) -> Self {
        let page = ctx.page();
        page.execute(LogEnable::default())
            .await
            .expect("Log.enable");
        let console = Self::default();
        let mut calls = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let mut thrown = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let mut entries = page.event_listener::<EventEntryAdded>().await.unwrap();
        let c = console.clone();
        tokio::spawn(async move {
            loop {
                let line = tokio::select! {
                    Some(e) = calls.next() => {
                        let kind = format!("{:?}", e.r#type).to_lowercase();
                        if !(kind.contains("error") || kind.contains("assert")) {
                            continue;
                        }
                        let args: Vec<String> = e
                            .args
                            .iter()
                            .map(|a| a.value.as_ref().map_or_else(
                                || a.description.clone().unwrap_or_default(),
                                Value::to_string,
                            ))
                            .collect();
                        format!("console.{kind}: {}", args.join(" "))
                    }
                    Some(e) = thrown.next() => format!(
                        "uncaught: {} {}",
                        e.exception_details.text,
                        e.exception_details
                            .exception
                            .as_ref()
                            .and_then(|x| x.description.clone())
                            .unwrap_or_default()
                    ),
                    Some(e) = entries.next() => {
                        let level = format!("{:?}", e.entry.level).to_lowercase();
                        if level != "error" {
                            continue;
                        }
                        format!("log {level}: {} {}", e.entry.text, e.entry.url.clone().unwrap_or_default())
                    }
                    else => break,
                };
                c.0.lock().unwrap().push(line);
            }
        });
        console
    }

    fn errors(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn js(ctx: &BrowserContext, expr: &str) -> Value {
    ctx.evaluate::<Value>(expr)
        .await
        .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
}

/// Session ids in the page's sessions table, with their `data-state`.
async fn rows(ctx: &BrowserContext) -> Vec<(String, String)> {
    let v = js(
        ctx,
        "[...document.querySelectorAll('#sessions tbody tr')]\
         .map(r => [r.dataset.sessionId, r.dataset.state])",
    )
    .await;
    serde_json::from_value(v).unwrap()
}

/// Asserts no cookie value of any session (and not the token) is in the page's DOM.
async fn assert_no_secret_in_dom(ctx: &BrowserContext, secrets: &BTreeSet<String>) {
    let html = js(ctx, "document.documentElement.outerHTML").await;
    let html = html.as_str().unwrap();
    for s in secrets {
        assert!(
            !html.contains(s.as_str()),
            "a cookie value (or the token) is in the DOM"
        );
    }
    assert!(!html.contains(TOKEN), "the token is in the DOM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_pool_live_in_chromium_without_console_errors_or_secrets() {
    let rig = Rig::start().await;
    // The pool fills.
    let ids = eventually(
        "three ready sessions in the API",
        Duration::from_secs(120),
        || async {
            let ids = rig.ready_ids().await;
            (ids.len() >= POOL).then_some(ids)
        },
    )
    .await;
    // Every cookie value of every session (with the token: reveal=true) — none may reach the
    // page. Short values could match by chance; the demo's are long.
    let revealed = rig.get("/api/v1/sessions?reveal=true").await;
    let secrets: BTreeSet<String> = revealed
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cookies"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["value"].as_str().map(str::to_string))
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(!secrets.is_empty(), "the sessions carry cookie values");

    let sup = rig.daemon().pool.warmer().supervisor().clone();
    let ctx = sup.new_context(None).await.expect("a browser context");
    ctx.page()
        .execute(SetDeviceMetricsOverrideParams::new(1360, 900, 1.0, false))
        .await
        .expect("viewport");
    let console = Console::listen(&ctx).await;
    let out = ctx
        .navigate(&format!("{}/", rig.base), Duration::from_secs(15))
        .await
        .expect("the dashboard loads");
    assert_eq!(out.status, Some(200));

    // Signs in through its form.
    eventually("the token form", Duration::from_secs(10), || async {
        (js(&ctx, "!document.getElementById('login').hidden").await == Value::Bool(true))
            .then_some(())
    })
    .await;
    assert_eq!(
        js(&ctx, "document.getElementById('data').hidden").await,
        Value::Bool(true),
        "no data before the token"
    );
    js(
        &ctx,
        &format!(
            "(document.getElementById('token').value = {TOKEN:?}, \
             document.getElementById('signin').click(), true)"
        ),
    )
    .await;
    // A marker that a reload would wipe.
    js(&ctx, "(window.__sameDocument = 'yes', true)").await;

    // Every session the API lists, in the sessions table.
    eventually(
        "the API's sessions in the page",
        Duration::from_secs(15),
        || async {
            let shown: BTreeSet<String> = rows(&ctx).await.into_iter().map(|r| r.0).collect();
            ids.iter().all(|id| shown.contains(id)).then_some(())
        },
    )
    .await;
    let text = js(&ctx, "document.body.innerText").await;
    let text = text.as_str().unwrap();
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} is shown: {text}");
    }
    assert!(text.contains("active of"), "{text}");
    // The pool per target, and this daemon with its browser up.
    let pool_row = js(
        &ctx,
        "[...document.querySelectorAll('#targets tbody tr')].map(r => r.innerText)",
    )
    .await;
    let pool_rows = pool_row.as_array().unwrap();
    assert_eq!(pool_rows.len(), 1, "{pool_row}");
    let pool_text = pool_rows[0].as_str().unwrap();
    assert!(pool_text.starts_with("demo"), "{pool_text}");
    assert!(pool_text.contains(&format!("/ {POOL}")), "{pool_text}");
    let daemons = js(
        &ctx,
        "[...document.querySelectorAll('#daemons tbody tr')].map(r => r.innerText)",
    )
    .await;
    let daemons = daemons.as_array().unwrap();
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    let d = daemons[0].as_str().unwrap();
    assert!(d.contains("(this one)") && d.contains("up"), "{d}");
    assert!(d.contains("Chrome/"), "the browser's version: {d}");
    assert!(d.contains("MiB"), "the browser's memory: {d}");
    assert_no_secret_in_dom(&ctx, &secrets).await;

    // A scraper reports a 403 on one session: the page shows it retired, with the reason,
    // without a reload.
    let blocked = &ids[0];
    let r = rig
        .http
        .post(format!("{}/api/sessions/{blocked}/usage", rig.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"success": false, "status": 403}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(
        "the blocked session shown retired",
        Duration::from_secs(15),
        || async {
            rows(&ctx)
                .await
                .iter()
                .any(|(id, st)| id == blocked && st == "retired")
                .then_some(())
        },
    )
    .await;
    eventually(
        "the retirement in recent warms and failures",
        Duration::from_secs(15),
        || async {
            let v = js(
                &ctx,
                "[...document.querySelectorAll('#recent tbody tr.fail')].map(r => r.innerText)",
            )
            .await;
            v.as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().contains("HTTP 403"))
                .then_some(())
        },
    )
    .await;

    // Another is deleted through the API: it leaves the page, still without a reload.
    let deleted = &ids[1];
    let r = rig
        .http
        .delete(format!("{}/api/v1/sessions/{deleted}", rig.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    eventually(
        "the deleted session gone from the page",
        Duration::from_secs(15),
        || async { (!rows(&ctx).await.iter().any(|(id, _)| id == deleted)).then_some(()) },
    )
    .await;
    // The pool refills (top-up replaces both); the page follows.
    eventually(
        "the pool refilled on the page",
        Duration::from_secs(90),
        || async {
            let ready = rows(&ctx)
                .await
                .iter()
                .filter(|(_, st)| st == "ready")
                .count();
            (ready >= POOL).then_some(())
        },
    )
    .await;
    assert_eq!(
        js(&ctx, "window.__sameDocument").await,
        "yes",
        "the page was not reloaded"
    );
    // New sessions' cookies are secrets too.
    let revealed = rig.get("/api/v1/sessions?reveal=true").await;
    let mut secrets = secrets;
    secrets.extend(
        revealed
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["cookies"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["value"].as_str().map(str::to_string))
            .filter(|v| v.len() >= 8),
    );
    assert_no_secret_in_dom(&ctx, &secrets).await;
    let cookie = js(&ctx, "document.cookie").await;
    assert_eq!(cookie, "", "the dashboard sets no cookie");

    // The screenshot for the README.
    let path = std::env::var_os("WARMER_DASHBOARD_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    let png = ctx
        .page()
        .screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .full_page(true)
                .build(),
        )
        .await
        .expect("Page.captureScreenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, &png).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());

    let errors = console.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    ctx.dispose().await;
    rig.stop().await;
}
