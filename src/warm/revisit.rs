//! Revisiting a stored session in the browser: a fresh context guarded to the session's
//! origins, its fingerprint and stored cookies put back, one page loaded (or a form posted),
//! an optional dwell, then the page's HTML and the context's cookies captured. Cookie refresh,
//! `fetch` (API and FlareSolverr) all go through [`Warmer::revisit`]; the pool decides what to
//! do with the result.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{capture_page, load, visit, Capture, WarmError, Warmer};
use crate::browser::guard::{origin_of, UrlPolicy};
use crate::browser::{cdp_call, BrowserContext, BrowserError};
use crate::session::{Cookie, Session};

/// How a revisit loads its URL (FlareSolverr's request fields). The default loads it as
/// `Pool::fetch` does.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Cookies put into the context after the session's own (same name, domain and path: these
    /// win).
    pub cookies: Vec<Cookie>,
    /// Dwell after the load, before the page is read.
    pub wait: Duration,
    /// Block images, stylesheets and fonts (by URL: `Network.setBlockedURLs`).
    pub disable_media: bool,
    /// Instead of loading the URL, submit these fields to it as a form POST
    /// (`application/x-www-form-urlencoded`) from a page of the URL's origin.
    pub form: Option<Vec<(String, String)>>,
    /// Leave the session's record as it was: the cookies the page ends with are returned but
    /// not stored (a caller's cookies or form post stay out of a shared session).
    pub detached: bool,
}

/// One revisit: what to load, how, and within which bounds.
pub struct Revisit<'a> {
    /// The page to load (already checked against `policy` by the caller).
    pub url: &'a str,
    /// An HTTP error status is an error (`TargetHttp`: cookie refresh), else it is returned
    /// (fetch: a scraper wants the status, whatever it is).
    pub strict: bool,
    /// Extra cookies, dwell, media blocking, form post.
    pub opts: &'a FetchOptions,
    /// Where the session's browser may go; anything else is refused inside the browser.
    pub policy: Arc<UrlPolicy>,
    /// Bound of each navigation.
    pub navigation_timeout: Duration,
    /// Cuts the dwell short at shutdown.
    pub shutdown: &'a CancellationToken,
}

/// What a revisit saw.
#[derive(Debug, Clone)]
pub struct Revisited {
    /// The document's HTTP status, when there was a response.
    pub status: Option<u16>,
    /// `location.href` at the end (after redirects).
    pub url: String,
    /// The document's HTML.
    pub body: String,
    /// Cookies and storage the context ends with.
    pub capture: Capture,
}

/// File extensions blocked by [`FetchOptions::disable_media`]: images, stylesheets, fonts.
const MEDIA_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "bmp", "svg", "ico", "avif", "tif", "tiff", "css", "woff",
    "woff2", "ttf", "otf", "eot",
];

impl Warmer {
    /// Loads `r.url` in a fresh guarded context revived from `s` (proxy, fingerprint, stored
    /// cookies) and captures the page and cookies; the context is disposed.
    ///
    /// # Errors
    /// `RedirectRefused` when the load failed because the page went somewhere `r.policy`
    /// refuses; else the step's `WarmError` (`TargetHttp` only when `r.strict`).
    pub async fn revisit(&self, s: &Session, r: &Revisit<'_>) -> Result<Revisited, WarmError> {
        let ctx = self
            .supervisor()
            .new_guarded_context(s.proxy.as_deref(), r.policy.clone())
            .await?;
        let result = revisit_in(&ctx, s, r).await;
        let refused = ctx.refused();
        ctx.dispose().await;
        match (refused, result) {
            (Some(to), Err(_)) => Err(WarmError::RedirectRefused {
                origin: origin_of(&to).unwrap_or_default(),
            }),
            (_, result) => result,
        }
    }
}

async fn revisit_in(
    ctx: &BrowserContext,
    s: &Session,
    r: &Revisit<'_>,
) -> Result<Revisited, WarmError> {
    let (url, opts, after) = (r.url, r.opts, r.navigation_timeout);
    ctx.apply_fingerprint(&s.fingerprint).await?;
    // Chromium refuses an empty Storage.setCookies (a site that set none).
    if !s.cookies.is_empty() {
        ctx.set_cookies(&s.cookies).await?;
    }
    if !opts.cookies.is_empty() {
        ctx.set_cookies(&opts.cookies).await?;
    }
    if opts.disable_media {
        block_media(ctx).await?;
    }
    let status = match &opts.form {
        Some(fields) => {
            // From a page of the URL's origin: the site's SameSite=Lax cookies go with the POST
            // and its Origin is its own (a blank page's would be `null`).
            let from = if origin_of(&s.url) == origin_of(url) {
                s.url.clone()
            } else {
                origin_of(url).map(|o| format!("{o}/")).unwrap_or_default()
            };
            load(ctx, &from, after).await?;
            submit_form(ctx, url, fields, after).await?
        }
        None if r.strict => visit(ctx, url, after).await?,
        None => load(ctx, url, after).await?,
    };
    if !opts.wait.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(opts.wait) => {}
            _ = r.shutdown.cancelled() => return Err(WarmError::Browser(BrowserError::ShuttingDown)),
        }
    }
    let body: String = ctx
        .evaluate("document.documentElement ? document.documentElement.outerHTML : ''")
        .await?;
    let final_url: String = ctx.evaluate("location.href").await?;
    let capture = capture_page(ctx).await?;
    Ok(Revisited {
        status,
        url: final_url,
        body,
        capture,
    })
}

/// Blocks images, stylesheets and fonts in `ctx`'s page by URL ([`MEDIA_EXTENSIONS`]).
async fn block_media(ctx: &BrowserContext) -> Result<(), WarmError> {
    use chromiumoxide::cdp::browser_protocol::network::{BlockPattern, SetBlockedUrLsParams};
    let patterns = MEDIA_EXTENSIONS
        .iter()
        .flat_map(|ext| {
            // With and without a query string.
            [
                BlockPattern::new(format!("*://*:*/*.{ext}"), true),
                BlockPattern::new(format!("*://*:*/*.{ext}?*"), true),
            ]
        })
        .collect();
    let params = SetBlockedUrLsParams {
        url_patterns: Some(patterns),
    };
    cdp_call(ctx, "Network.setBlockedURLs", ctx.page().execute(params)).await?;
    Ok(())
}

/// Submits `fields` to `url` as a form POST from the page now loaded in `ctx` and waits for the
/// resulting document's load, at most `after`. Returns its status. The form is built by a
/// script with the values as JSON literals, and submitted through the prototype's `submit` (a
/// field named `submit` cannot shadow it); the request goes through the context's URL guard
/// like any navigation.
///
/// # Errors
/// `NavigationTimeout` when no document loaded in time, `Network` when the POST produced no
/// document (refused, or a net error), or the browser's error.
async fn submit_form(
    ctx: &BrowserContext,
    url: &str,
    fields: &[(String, String)],
    after: Duration,
) -> Result<Option<u16>, WarmError> {
    use chromiumoxide::cdp::browser_protocol::network::{EventResponseReceived, ResourceType};
    use chromiumoxide::cdp::browser_protocol::page::EventLoadEventFired;
    use futures::{FutureExt, StreamExt};
    let page = ctx.page();
    let frame = cdp_call(ctx, "Page.getFrameTree", page.mainframe()).await?;
    let mut responses = cdp_call(
        ctx,
        "Network.responseReceived listener",
        page.event_listener::<EventResponseReceived>(),
    )
    .await?;
    let mut loads = cdp_call(
        ctx,
        "Page.loadEventFired listener",
        page.event_listener::<EventLoadEventFired>(),
    )
    .await?;
    let js = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("[{},{}],", js(k), js(v)))
        .collect();
    let script = format!(
        "(() => {{ const f = document.createElement('form'); f.method = 'POST'; \
         f.enctype = 'application/x-www-form-urlencoded'; f.action = {}; \
         for (const [k, v] of [{inputs}]) {{ const i = document.createElement('input'); \
         i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }} \
         (document.body || document.documentElement).appendChild(f); \
         HTMLFormElement.prototype.submit.call(f); return true; }})()",
        js(url)
    );
    let _: bool = ctx.evaluate(&script).await?;
    let shown = crate::browser::redact_url(url);
    if tokio::time::timeout(after, loads.next()).await.is_err() {
        return Err(WarmError::NavigationTimeout { url: shown, after });
    }
    let mut status = None;
    while let Some(Some(ev)) = responses.next().now_or_never() {
        if ev.r#type == ResourceType::Document && (frame.is_none() || ev.frame_id == frame) {
            status = Some(ev.response.status as u16);
        }
    }
    if status.is_none() {
        return Err(WarmError::Network {
            url: shown,
            message: "the form POST produced no document (refused or failed)".into(),
        });
    }
    Ok(status)
}
