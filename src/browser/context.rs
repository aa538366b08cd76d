//! One isolated browser context with one page: created with an optional proxy, given a
//! fingerprint before its first navigation, navigated with a timeout, read (cookies, storage,
//! script results) and disposed.

use chromiumoxide::cdp::browser_protocol::browser::{
    Bounds, BrowserContextId, GetWindowForTargetParams, SetWindowBoundsParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetLocaleOverrideParams, SetTimezoneOverrideParams,
    SetUserAgentOverrideParams, UserAgentBrandVersion, UserAgentMetadata,
};
use chromiumoxide::cdp::browser_protocol::network::{
    CookieParam, CookieSameSite, EventRequestWillBeSent, EventResponseReceived, ResourceType,
    TimeSinceEpoch,
};
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, EventLoadEventFired, NavigateParams,
};
use chromiumoxide::cdp::browser_protocol::storage::{GetCookiesParams, SetCookiesParams};
use chromiumoxide::cdp::browser_protocol::target::{
    CloseTargetParams, CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::Page;
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::guard::{InterceptRules, Interceptor, UrlPolicy};
use super::{cdp, BrowserError, Supervisor};
use crate::fingerprint::{Brand, Fingerprint};
use crate::session::Cookie;
use std::sync::Arc;

/// `Page.downloadWillBegin`: Chromium 156 still sends it, chromiumoxide's protocol no longer
/// has it (it hands it to custom listeners).
#[derive(Debug, Clone, serde::Deserialize)]
struct PageDownloadWillBegin {}

impl chromiumoxide::types::MethodType for PageDownloadWillBegin {
    fn method_id() -> chromiumoxide::types::MethodId {
        "Page.downloadWillBegin".into()
    }
}

impl chromiumoxide::cdp::CustomEvent for PageDownloadWillBegin {}

/// The result of a navigation.
#[derive(Debug, Clone)]
pub struct NavigationOutcome {
    /// HTTP status of the main document (after redirects), when one arrived.
    pub status: Option<u16>,
    /// Status of the first response (a redirect's, when the request was redirected).
    pub first_status: Option<u16>,
    /// URL of the main document.
    pub url: String,
}

/// A live, isolated browser context with one page. Dispose it when done; dropping it
/// disposes it in the background. [`BrowserContext::park`] closes its page and keeps the rest.
pub struct BrowserContext {
    ctx: Handle,
    page: Page,
    /// Enforces the context's rules (URL policy, blocked resource types) on its page, when it
    /// has any.
    interceptor: Option<Interceptor>,
    /// Holds one of `browser.max_contexts` slots while its page is open.
    _permit: OwnedSemaphorePermit,
}

/// A context with its page closed: its cookies and storage stay in the browser, while it holds
/// no renderer process and no `browser.max_contexts` slot. [`ParkedContext::unpark`] opens a
/// page in it again; dropping it disposes it in the background.
pub struct ParkedContext {
    ctx: Handle,
}

/// The browser context itself, open or parked: disposed by [`Handle::dispose`] or, in the
/// background, on drop.
struct Handle {
    sup: Supervisor,
    id: BrowserContextId,
    generation: u64,
    gone: CancellationToken,
    /// The proxy's credentials, answered by every page of the context.
    credentials: Option<chromiumoxide::auth::Credentials>,
    /// Where its pages may go (when restricted) and what they do not load: enforced by the
    /// one interceptor of each page, which also answers the proxy's challenges.
    rules: InterceptRules,
    disposed: bool,
}

pub(super) async fn open(
    sup: Supervisor,
    permit: OwnedSemaphorePermit,
    proxy: Option<&str>,
    policy: Option<Arc<UrlPolicy>>,
) -> Result<BrowserContext, BrowserError> {
    let rules = InterceptRules {
        policy,
        block: Vec::new(),
    };
    open_with(sup, permit, proxy, rules).await
}

impl Supervisor {
    /// Opens a context like [`Supervisor::new_context`] whose page enforces `rules` (a URL
    /// policy, blocked resource types) in its one interceptor, together with the proxy's
    /// credentials: a warm's `block` list goes here, never into a second interceptor that
    /// would fight the proxy's.
    ///
    /// # Errors
    /// As [`Supervisor::new_context`].
    pub async fn new_context_with(
        &self,
        proxy: Option<&str>,
        rules: InterceptRules,
    ) -> Result<BrowserContext, BrowserError> {
        let permit = self.context_permit().await?;
        self.ready().await?;
        open_with(self.clone(), permit, proxy, rules).await
    }
}

async fn open_with(
    sup: Supervisor,
    permit: OwnedSemaphorePermit,
    proxy: Option<&str>,
    rules: InterceptRules,
) -> Result<BrowserContext, BrowserError> {
    let reserved = Reserved::take(&sup)?;
    let generation = reserved.generation;
    let mut params = CreateBrowserContextParams {
        // Gone with this daemon's connection, whatever ends it: a remote browser keeps no
        // context of a daemon that crashed or lost its network.
        dispose_on_detach: Some(true),
        ..Default::default()
    };
    let proxy = proxy.map(ProxySetting::parse).transpose()?;
    if let Some(p) = &proxy {
        params.proxy_server = Some(p.server.clone());
        // Everything the session does goes through its proxy, loopback targets too.
        params.proxy_bypass_list = Some("<-loopback>".into());
    }
    let id = sup
        .with_browser("Target.createBrowserContext", Some(generation), async |b| {
            b.create_browser_context(params).await
        })
        .await?;
    let gone = sup.gone_token(generation).await;
    sup.context_opened(generation, &id);
    // From here the handle gives the count back when it closes.
    std::mem::forget(reserved);
    let ctx = Handle {
        sup,
        id,
        generation,
        gone,
        credentials: proxy.and_then(|p| p.credentials),
        rules,
        disposed: false,
    };
    // On failure the handle is dropped, which disposes the context.
    let (page, interceptor) = ctx.open_page().await?;
    Ok(BrowserContext {
        ctx,
        page,
        interceptor,
        _permit: permit,
    })
}

/// A context counted in its browser before it exists: the count goes back if opening it
/// fails or is dropped half-way.
struct Reserved<'a> {
    sup: &'a Supervisor,
    generation: u64,
}

impl<'a> Reserved<'a> {
    fn take(sup: &'a Supervisor) -> Result<Self, BrowserError> {
        let generation = sup
            .reserve_context()
            .ok_or_else(|| BrowserError::Gone("no browser running".into()))?;
        Ok(Self { sup, generation })
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.sup.context_closed(self.generation);
    }
}

impl Handle {
    /// Runs a CDP future of this context's page under the CDP timeout, failing at once if the
    /// browser dies.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
    ) -> Result<T, BrowserError> {
        cdp(what, self.sup.config().cdp_timeout, &self.gone, fut).await
    }

    /// Runs a browser-level call against the browser this context lives in.
    async fn with_browser<T>(
        &self,
        what: &str,
        f: impl AsyncFnOnce(&chromiumoxide::Browser) -> Result<T, chromiumoxide::error::CdpError>,
    ) -> Result<T, BrowserError> {
        self.sup.with_browser(what, Some(self.generation), f).await
    }

    /// Opens the context's page (a new tab, in a new window), answering its proxy's
    /// challenges and enforcing its rules (URL policy, blocked resource types).
    async fn open_page(&self) -> Result<(Page, Option<Interceptor>), BrowserError> {
        let mut target = CreateTargetParams::new("about:blank");
        target.browser_context_id = Some(self.id.clone());
        let page = self
            .with_browser("Target.createTarget", async |b| b.new_page(target).await)
            .await?;
        if !self.rules.is_empty() {
            let timeout = self.sup.config().cdp_timeout;
            let rules = self.rules.clone();
            let interceptor = self
                .call(
                    "Fetch.enable (URL policy, blocked resources)",
                    Interceptor::start_with(&page, rules, self.credentials.clone(), timeout),
                )
                .await?;
            return Ok((page, Some(interceptor)));
        }
        // Chromium takes no credentials in a proxy setting: answer the proxy's challenge.
        if let Some(credentials) = self.credentials.clone() {
            self.call(
                "Fetch.enable (proxy credentials)",
                page.authenticate(credentials),
            )
            .await?;
        }
        Ok((page, None))
    }

    /// Disposes the context. Errors are logged, not returned: a context in a dead browser is
    /// already gone.
    async fn dispose(mut self) {
        self.disposed = true;
        self.sup.context_closed(self.generation);
        dispose_ctx(self.sup.clone(), self.id.clone(), self.generation).await;
    }
}

/// A session's proxy as Chromium takes it: the server without credentials, and the
/// credentials (percent-decoded) apart.
struct ProxySetting {
    server: String,
    credentials: Option<chromiumoxide::auth::Credentials>,
}

impl ProxySetting {
    fn parse(proxy: &str) -> Result<Self, BrowserError> {
        let mut url = url::Url::parse(proxy).map_err(|e| BrowserError::Protocol {
            what: format!("proxy {}", redact_url(proxy)),
            message: format!("not a URL: {e}"),
        })?;
        let credentials = (!url.username().is_empty()).then(|| chromiumoxide::auth::Credentials {
            username: percent_decode(url.username()),
            password: percent_decode(url.password().unwrap_or_default()),
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut server = url.to_string();
        if server.ends_with('/') && !proxy.ends_with('/') {
            server.pop();
        }
        Ok(Self {
            server,
            credentials,
        })
    }
}

/// `%XX` escapes of a URL's user info, decoded.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn brands(list: &[Brand]) -> Vec<UserAgentBrandVersion> {
    list.iter()
        .map(|b| UserAgentBrandVersion::new(b.brand.clone(), b.version.clone()))
        .collect()
}

/// What [`BrowserContext::apply_fingerprint`] sends for a fingerprint: the exact CDP
/// parameters, public so the benchmark's CDP floor (`bench/baseline.mjs --driver floor`) sends
/// the same ones.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FingerprintOverrides {
    /// `Emulation.setUserAgentOverride`: UA, `Accept-Language`, platform and client hints.
    pub user_agent: SetUserAgentOverrideParams,
    /// `Emulation.setDeviceMetricsOverride`: viewport, screen and pixel ratio.
    pub device_metrics: SetDeviceMetricsOverrideParams,
    /// `Emulation.setTimezoneOverride`.
    pub timezone: SetTimezoneOverrideParams,
    /// `Emulation.setLocaleOverride`.
    pub locale: SetLocaleOverrideParams,
    /// The script run before any page script (navigator fields CDP has no override for).
    pub init_script: AddScriptToEvaluateOnNewDocumentParams,
    /// The window as a maximised one on the sampled screen: a page sees it in
    /// outerWidth/outerHeight (headless windows are 800×600 otherwise, smaller than the
    /// emulated viewport).
    pub window: Bounds,
}

impl FingerprintOverrides {
    /// The overrides that make a page see `fp`.
    pub fn of(fp: &Fingerprint) -> Self {
        let p = &fp.profile;
        let metadata = UserAgentMetadata {
            brands: Some(brands(&fp.brands)),
            full_version_list: Some(brands(&fp.full_version_list)),
            platform: p.ch_platform.clone(),
            platform_version: p.platform_version.clone(),
            architecture: p.architecture.clone(),
            model: String::new(),
            mobile: false,
            bitness: Some(p.bitness.clone()),
            wow64: Some(false),
            form_factors: Some(vec!["Desktop".into()]),
        };
        let mut user_agent = SetUserAgentOverrideParams::new(fp.user_agent.clone());
        user_agent.accept_language = Some(fp.accept_language.clone());
        user_agent.platform = Some(p.platform.clone());
        // A custom UA (a caller's, that no client hints can back) goes without metadata:
        // Chromium then sends no sec-ch-ua* headers and navigator.userAgentData has no brands.
        user_agent.user_agent_metadata =
            (!crate::fingerprint::custom::is_custom(fp)).then_some(metadata);
        let mut device_metrics = SetDeviceMetricsOverrideParams::new(
            fp.viewport.0 as i64,
            fp.viewport.1 as i64,
            p.screen.device_pixel_ratio,
            false,
        );
        device_metrics.screen_width = Some(p.screen.width as i64);
        device_metrics.screen_height = Some(p.screen.height as i64);
        let mut locale = SetLocaleOverrideParams::default();
        locale.locale = Some(fp.locale.clone());
        Self {
            user_agent,
            device_metrics,
            timezone: SetTimezoneOverrideParams::new(fp.timezone.clone()),
            locale,
            init_script: AddScriptToEvaluateOnNewDocumentParams::new(fp.init_script()),
            window: Bounds {
                left: Some(0),
                top: Some(0),
                width: Some(i64::from(p.screen.avail_width)),
                height: Some(i64::from(p.screen.avail_height)),
                ..Default::default()
            },
        }
    }
}

impl BrowserContext {
    /// Generation of the browser this context lives in.
    pub fn generation(&self) -> u64 {
        self.ctx.generation
    }

    /// Whether the browser under this context has died.
    pub fn is_gone(&self) -> bool {
        self.ctx.gone.is_cancelled()
    }

    /// Resolves when the browser under this context dies.
    pub async fn gone(&self) {
        self.ctx.gone.cancelled().await
    }

    /// Applies the whole fingerprint. Must run before the first navigation.
    ///
    /// # Errors
    /// When a CDP call fails or times out.
    pub async fn apply_fingerprint(&self, fp: &Fingerprint) -> Result<(), BrowserError> {
        let FingerprintOverrides {
            user_agent: ua,
            device_metrics: metrics,
            timezone,
            locale,
            init_script,
            window: bounds,
        } = FingerprintOverrides::of(fp);
        // Sent at once, not one after another: they are independent, and Chromium handles a
        // session's commands in the order they arrive, so all are in place before the
        // navigation, which is sent only after every one has been answered.
        let window = async {
            let w = self
                .ctx
                .call(
                    "Browser.getWindowForTarget",
                    self.page.execute(GetWindowForTargetParams::default()),
                )
                .await?;
            self.ctx
                .call(
                    "Browser.setWindowBounds",
                    self.page
                        .execute(SetWindowBoundsParams::new(w.window_id, bounds)),
                )
                .await
        };
        futures::try_join!(
            window,
            self.ctx
                .call("Emulation.setUserAgentOverride", self.page.execute(ua)),
            self.ctx.call(
                "Emulation.setDeviceMetricsOverride",
                self.page.execute(metrics),
            ),
            self.ctx
                .call("Emulation.setTimezoneOverride", self.page.execute(timezone)),
            self.ctx
                .call("Emulation.setLocaleOverride", self.page.execute(locale)),
            self.ctx.call(
                "Page.addScriptToEvaluateOnNewDocument",
                self.page.execute(init_script),
            ),
        )?;
        Ok(())
    }

    /// Navigates the page to `url` and waits for its load event, at most `after`.
    ///
    /// # Errors
    /// `Timeout` when the page did not load in time, `Net` with Chromium's net error (e.g.
    /// `net::ERR_CONNECTION_RESET`), `Protocol` for another error Chromium answered with,
    /// `Gone` when the browser died.
    pub async fn navigate(
        &self,
        url: &str,
        after: Duration,
    ) -> Result<NavigationOutcome, BrowserError> {
        // Listening before navigating, so no event of this navigation is missed.
        let (mut responses, mut redirects, mut loads, mut downloads) = futures::try_join!(
            self.ctx.call(
                "Network.responseReceived listener",
                self.page.event_listener::<EventResponseReceived>(),
            ),
            self.ctx.call(
                "Network.requestWillBeSent listener",
                self.page.event_listener::<EventRequestWillBeSent>(),
            ),
            self.ctx.call(
                "Page.loadEventFired listener",
                self.page.event_listener::<EventLoadEventFired>(),
            ),
            self.ctx.call(
                "Page.downloadWillBegin listener",
                self.page.event_listener::<PageDownloadWillBegin>(),
            ),
        )?;
        let what = format!("navigating to {}", redact_url(url));
        let deadline = tokio::time::Instant::now() + after;
        // A URL that is a download never loads a page, and chromiumoxide's navigation would
        // wait for one until the timeout: fail as soon as the download begins.
        let nav = tokio::select! {
            nav = cdp(
                &what,
                after,
                &self.ctx.gone,
                self.page.execute(NavigateParams::new(url)),
            ) => nav?,
            Some(_) = downloads.next() => {
                return Err(BrowserError::Net {
                    what,
                    code: "net::ERR_ABORTED".into(),
                    detail: Some("the URL is a download, not a page"),
                });
            }
        };
        let frame = nav.result.frame_id.clone();
        // An HTTP error status with an empty body is reported as a net error; the status is
        // what callers need then.
        let empty_error_page = match nav.result.error_text.clone() {
            Some(e) if e == "net::ERR_HTTP_RESPONSE_CODE_FAILURE" => true,
            Some(code) if code.starts_with("net::") => {
                return Err(BrowserError::Net {
                    what,
                    code,
                    detail: None,
                })
            }
            Some(err) => return Err(BrowserError::Protocol { what, message: err }),
            None => false,
        };
        // chromiumoxide usually returns after load; wait for it explicitly when it did not.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let loaded = empty_error_page || loads.next().now_or_never().is_some();
        if !loaded {
            cdp(&what, remaining, &self.ctx.gone, async {
                loads.next().await;
                Ok(())
            })
            .await?;
        }
        let mut status = None;
        let mut final_url = url.to_string();
        while let Some(Some(ev)) = responses.next().now_or_never() {
            if ev.r#type == ResourceType::Document && ev.frame_id.as_ref() == Some(&frame) {
                status = Some(ev.response.status as u16);
                final_url = ev.response.url.clone();
            }
        }
        if empty_error_page && status.is_none() {
            return Err(BrowserError::Net {
                what,
                code: "net::ERR_HTTP_RESPONSE_CODE_FAILURE".into(),
                detail: None,
            });
        }
        let mut first_status = None;
        while let Some(Some(ev)) = redirects.next().now_or_never() {
            if first_status.is_none()
                && ev.r#type == Some(ResourceType::Document)
                && ev.frame_id.as_ref() == Some(&frame)
            {
                first_status = ev.redirect_response.as_ref().map(|r| r.status as u16);
            }
        }
        Ok(NavigationOutcome {
            status,
            first_status: first_status.or(status),
            url: final_url,
        })
    }

    /// Evaluates `expression` in the page (awaiting a promise) and decodes its JSON value.
    ///
    /// # Errors
    /// When the call fails, times out, throws, or returns a value of another shape.
    pub async fn evaluate<T: DeserializeOwned>(&self, expression: &str) -> Result<T, BrowserError> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .map_err(|e| BrowserError::Protocol {
                what: "Runtime.evaluate".into(),
                message: e,
            })?;
        let r = self
            .ctx
            .call("Runtime.evaluate", self.page.evaluate_expression(params))
            .await?;
        r.into_value().map_err(|e| BrowserError::Protocol {
            what: "Runtime.evaluate result".into(),
            message: e.to_string(),
        })
    }

    /// Requests this page failed so far because their resource type is blocked (the
    /// context's `block` rules); 0 without an interceptor.
    pub fn blocked_resources(&self) -> u64 {
        self.interceptor
            .as_ref()
            .map_or(0, Interceptor::blocked_resources)
    }

    /// The first document URL this page was refused by its URL policy (a redirect or a
    /// script leaving the target's origins), if any.
    pub fn refused(&self) -> Option<String> {
        self.interceptor.as_ref().and_then(Interceptor::blocked)
    }

    /// The page, for flows that drive it directly (login steps).
    pub fn page(&self) -> &Page {
        &self.page
    }

    /// Every cookie of this context, HttpOnly ones included.
    ///
    /// # Errors
    /// When the call fails or times out.
    pub async fn cookies(&self) -> Result<Vec<Cookie>, BrowserError> {
        let params = GetCookiesParams {
            browser_context_id: Some(self.ctx.id.clone()),
        };
        let r = self
            .ctx
            .with_browser("Storage.getCookies", async |b| b.execute(params).await)
            .await?;
        Ok(r.result
            .cookies
            .into_iter()
            .map(|c| Cookie {
                name: c.name,
                value: c.value,
                domain: c.domain,
                path: c.path,
                expires: (!c.session && c.expires > 0.0).then_some(c.expires),
                http_only: c.http_only,
                secure: c.secure,
                same_site: c.same_site.map(|s| s.as_ref().to_string()),
            })
            .collect())
    }

    /// Puts stored cookies back into this context (revival of a parked session).
    ///
    /// # Errors
    /// When the call fails or times out.
    pub async fn set_cookies(&self, cookies: &[Cookie]) -> Result<(), BrowserError> {
        let params: Vec<CookieParam> = cookies
            .iter()
            .map(|c| {
                let mut p = CookieParam::new(c.name.clone(), c.value.clone());
                p.domain = Some(c.domain.clone());
                p.path = Some(c.path.clone());
                p.secure = Some(c.secure);
                p.http_only = Some(c.http_only);
                p.expires = c.expires.map(TimeSinceEpoch::new);
                p.same_site = c.same_site.as_deref().and_then(|s| match s {
                    "Strict" => Some(CookieSameSite::Strict),
                    "Lax" => Some(CookieSameSite::Lax),
                    "None" => Some(CookieSameSite::None),
                    _ => None,
                });
                p
            })
            .collect();
        let mut set = SetCookiesParams::new(params);
        set.browser_context_id = Some(self.ctx.id.clone());
        self.ctx
            .with_browser("Storage.setCookies", async |b| b.execute(set).await)
            .await?;
        Ok(())
    }

    /// Disposes the context (and its page). Errors are logged, not returned: a context in a
    /// dead browser is already gone.
    pub async fn dispose(self) {
        self.ctx.dispose().await;
    }

    /// Closes the page (its renderer exits) and gives back the `max_contexts` slot, keeping the
    /// context: its cookies and storage stay in the browser. For a context kept between uses
    /// (an account's); the next use opens a page with [`ParkedContext::unpark`].
    pub async fn park(self) -> ParkedContext {
        let target = self.page.target_id().clone();
        let closed = self
            .ctx
            .with_browser("Target.closeTarget", async |b| {
                b.execute(CloseTargetParams::new(target)).await
            })
            .await;
        if let Err(e) = closed {
            tracing::debug!(error = %crate::logging::chain(&e), "closing a parked context's page");
        }
        ParkedContext { ctx: self.ctx }
    }
}

impl ParkedContext {
    /// Generation of the browser this context lives in.
    pub fn generation(&self) -> u64 {
        self.ctx.generation
    }

    /// Whether the browser under this context has died.
    pub fn is_gone(&self) -> bool {
        self.ctx.gone.is_cancelled()
    }

    /// Opens a page in the context again, once a `max_contexts` slot is free. Its fingerprint
    /// is the caller's to apply, as for a new context (overrides are per page).
    ///
    /// # Errors
    /// When the browser is gone or shutting down, or the page cannot be opened; the context is
    /// disposed then.
    pub async fn unpark(self) -> Result<BrowserContext, BrowserError> {
        let permit = self.ctx.sup.context_permit().await?;
        let (page, interceptor) = self.ctx.open_page().await?;
        Ok(BrowserContext {
            ctx: self.ctx,
            page,
            interceptor,
            _permit: permit,
        })
    }

    /// Disposes the context.
    pub async fn dispose(self) {
        self.ctx.dispose().await;
    }
}

async fn dispose_ctx(sup: Supervisor, id: BrowserContextId, generation: u64) {
    let r = sup
        .with_browser(
            "Target.disposeBrowserContext",
            Some(generation),
            async |b| b.dispose_browser_context(id.clone()).await,
        )
        .await;
    sup.context_disposed(generation, &id);
    if let Err(e) = r {
        tracing::debug!(error = %crate::logging::chain(&e), "disposing browser context");
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.disposed {
            return;
        }
        self.sup.context_closed(self.generation);
        if self.gone.is_cancelled() {
            self.sup.context_disposed(self.generation, &self.id);
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(dispose_ctx(
                self.sup.clone(),
                self.id.clone(),
                self.generation,
            ));
        }
    }
}

/// Runs a page-level CDP future of `ctx` under the CDP timeout, failing at once if the browser
/// dies.
///
/// # Errors
/// `Timeout`, `Gone`, or Chromium's error.
pub async fn cdp_call<T>(
    ctx: &BrowserContext,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
) -> Result<T, BrowserError> {
    ctx.ctx.call(what, fut).await
}

/// A URL fit for logs: no query string (tokens live there) and no credentials.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_with_credentials_is_split_for_chromium() {
        let p = ProxySetting::parse("http://us%40er:p%3Ass@proxy.example:8080").unwrap();
        assert_eq!(p.server, "http://proxy.example:8080");
        let c = p.credentials.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("us@er", "p:ss")
        );
        let p = ProxySetting::parse("socks5://10.0.0.1:1080").unwrap();
        assert_eq!(p.server, "socks5://10.0.0.1:1080");
        assert!(p.credentials.is_none());
        let e = ProxySetting::parse("not a url:pw@")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }
}
