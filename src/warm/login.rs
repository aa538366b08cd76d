//! Declared step flows: the steps of `[targets.login]` in a context with an account's
//! credentials, and a target's warm journey (`warm_steps`, no credentials, `{event_url}` for
//! the event page) — one runner, [`run_journey`], for both; and the check whether a context is
//! signed in. Step descriptions in errors and progress never carry values (a value may be the
//! password).

use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{EventFrameStartedLoading, EventLoadEventFired};
use futures::StreamExt;
use rand::Rng;
use std::time::{Duration, Instant};

use super::{visit, WarmError};
use crate::accounts::Secret;
use crate::browser::{cdp_call, BrowserContext, BrowserError};
use crate::config::{CheckConfig, LoginConfig, LoginStep, ScrollTo, StepAction};

/// The placeholder of a `warm_steps` `goto` for the event page being warmed.
pub const EVENT_URL: &str = "{event_url}";

/// Why a login or a check failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A step did not finish within its timeout.
    #[error("login step {step} ({action}) timed out after {after:?}")]
    StepTimeout {
        /// The step's number, from 1.
        step: usize,
        /// Its action (`fill`, `click`, ...).
        action: &'static str,
        /// Its timeout.
        after: Duration,
    },
    /// A step failed (no element matches, the page broke); the message carries no value.
    #[error("login step {step} ({action}) failed: {message}")]
    StepFailed {
        /// The step's number, from 1.
        step: usize,
        /// Its action (`fill`, `click`, ...).
        action: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Every step ran but the signed-in check still fails.
    #[error("still signed out after the login steps (wrong credentials, or the form changed?)")]
    StillSignedOut,
    /// The account's password could not be read (file, environment variable).
    #[error("credentials: {0}")]
    Credentials(String),
    /// Opening, loading or capturing the context failed.
    #[error(transparent)]
    Warm(#[from] WarmError),
    /// The signed-in session could not be stored.
    #[error("storing the signed-in session")]
    Store(#[source] crate::store::StoreError),
}

impl LoginError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LoginError::StepTimeout { .. } => "step_timeout",
            LoginError::StepFailed { .. } => "step_failed",
            LoginError::StillSignedOut => "rejected",
            LoginError::Credentials(_) => "credentials",
            LoginError::Warm(w) => w.kind(),
            LoginError::Store(_) => "store",
        }
    }
}

/// What the steps type in.
pub struct Credentials {
    /// Typed for `{username}`.
    pub username: String,
    /// Typed for `{password}`; never logged.
    pub password: Secret,
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// What a step's placeholders stand for: an account's credentials (a login), or the event
/// page (a warm journey, which has no account).
pub enum StepVars<'a> {
    /// A login: `{username}` and `{password}` in a `fill` or `select` value.
    Login(&'a Credentials),
    /// A warm journey: `goto = "{event_url}"` is this page.
    Warm {
        /// The event page being warmed.
        event_url: &'a str,
    },
}

impl StepVars<'_> {
    /// A `fill`/`select` value with its placeholders replaced.
    fn value(&self, v: &str) -> String {
        match self {
            StepVars::Login(creds) => fill_in(v, creds),
            StepVars::Warm { .. } => v.to_string(),
        }
    }

    /// A `goto` URL with `{event_url}` replaced (warm journeys only; config validation keeps
    /// it out of login steps).
    fn url<'u>(&'u self, url: &'u str) -> &'u str {
        match self {
            StepVars::Warm { event_url } if url.trim() == EVENT_URL => event_url,
            _ => url,
        }
    }
}

/// A step of a flow that failed: which one (number from 1, action, selector or URL; never a
/// value) and how. Shown as `step 2 (click "a.listing") timed out after 30s`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("step {step} ({action} {what:?}) {failure}")]
pub struct StepFailed {
    /// The step's number, from 1.
    pub step: usize,
    /// Its action (`goto`, `click`, ...).
    pub action: &'static str,
    /// Its selector, URL (redacted) or pattern: never a value, which may be a password.
    pub what: String,
    /// What went wrong.
    pub failure: StepFailure,
}

/// How a step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepFailure {
    /// It did not finish within its timeout (a navigation that did not load, an element that
    /// never appeared).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// It could not be done (no element matches, the page broke).
    #[error("failed: {0}")]
    Failed(String),
    /// A page it loaded failed in a classified way (an HTTP error status, a network error, the
    /// browser gone): the warm keeps that classification.
    #[error("failed: {0}")]
    Page(WarmError),
}

impl From<StepFailed> for LoginError {
    fn from(f: StepFailed) -> Self {
        let (step, action) = (f.step, f.action);
        match f.failure {
            StepFailure::Timeout(after) => LoginError::StepTimeout {
                step,
                action,
                after,
            },
            StepFailure::Failed(message) => LoginError::StepFailed {
                step,
                action,
                message,
            },
            StepFailure::Page(e) => LoginError::StepFailed {
                step,
                action,
                message: e.to_string(),
            },
        }
    }
}

/// Runs the declared login steps on the login page. `progress` gets "step 2/4: fill #user"
/// lines (never values).
///
/// # Errors
/// The step that failed or timed out.
pub async fn run_steps(
    ctx: &BrowserContext,
    cfg: &LoginConfig,
    creds: &Credentials,
    nav_timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), LoginError> {
    visit(ctx, &cfg.url, nav_timeout).await?;
    run_journey(
        ctx,
        &cfg.steps,
        &StepVars::Login(creds),
        nav_timeout,
        progress,
    )
    .await?;
    Ok(())
}

/// Runs `steps` in order in `ctx`'s page, each under its own timeout (default `nav_timeout`;
/// a `sleep` is not counted against it). `progress` gets "step 2/4: click a.listing" lines
/// (never values); each finished step is logged with its time at debug level.
///
/// # Errors
/// [`StepFailed`] naming the step that failed or timed out.
pub async fn run_journey(
    ctx: &BrowserContext,
    steps: &[LoginStep],
    vars: &StepVars<'_>,
    nav_timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), StepFailed> {
    let n = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let number = i + 1;
        let action = step.action.name();
        let what = describe(&step.action);
        progress(format!("step {number}/{n}: {action} {what}"));
        let after = step.timeout.unwrap_or(nav_timeout);
        let bound = after + step.action.sleeps_up_to() + Duration::from_secs(1);
        let started = Instant::now();
        let fut = run_step(ctx, &step.action, vars, after);
        let failure = match tokio::time::timeout(bound, fut).await {
            Ok(Ok(())) => {
                tracing::debug!(
                    step = number,
                    action,
                    what = %what,
                    ms = started.elapsed().as_millis() as u64,
                    "step done"
                );
                continue;
            }
            Ok(Err(StepError::Timeout)) | Err(_) => StepFailure::Timeout(after),
            Ok(Err(StepError::Failed(message))) => StepFailure::Failed(message),
            Ok(Err(StepError::Page(e))) => StepFailure::Page(e),
        };
        return Err(StepFailed {
            step: number,
            action,
            what,
            failure,
        });
    }
    Ok(())
}

/// The non-secret part of a step: its selector, URL or pattern (never a value).
fn describe(action: &StepAction) -> String {
    match action {
        StepAction::Goto { url } => crate::browser::redact_url(url),
        StepAction::Fill { selector, .. }
        | StepAction::Click { selector }
        | StepAction::Press { selector, .. }
        | StepAction::Select { selector, .. }
        | StepAction::WaitFor { selector } => selector.clone(),
        StepAction::WaitForUrl { pattern } => pattern.clone(),
        StepAction::Sleep { duration } => humantime::format_duration(*duration).to_string(),
        StepAction::SleepBetween { min, max } => format!(
            "{}-{}",
            humantime::format_duration(*min),
            humantime::format_duration(*max)
        ),
        StepAction::Scroll { to } => to.to_string(),
    }
}

enum StepError {
    Timeout,
    Failed(String),
    /// A page load's classified failure (not a timeout).
    Page(WarmError),
}

impl From<BrowserError> for StepError {
    fn from(e: BrowserError) -> Self {
        match e {
            BrowserError::Timeout { .. } => StepError::Timeout,
            BrowserError::Gone(m) => StepError::Page(WarmError::BrowserGone(m)),
            e => StepError::Failed(e.to_string()),
        }
    }
}

impl From<WarmError> for StepError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::NavigationTimeout { .. } => StepError::Timeout,
            e => StepError::Page(e),
        }
    }
}

fn fill_in(v: &str, creds: &Credentials) -> String {
    v.replace("{username}", &creds.username)
        .replace("{password}", creds.password.expose())
}

/// Scrolls as `to` says, smoothly, and resolves when the scroll ends (at once when there is
/// nowhere to go; at most 2 s).
fn scroll_js(to: &ScrollTo) -> String {
    let start = match to {
        ScrollTo::Top => "window.scrollTo({top: 0, behavior: 'smooth'})".to_string(),
        ScrollTo::Bottom => {
            "window.scrollTo({top: document.documentElement.scrollHeight, behavior: 'smooth'})"
                .to_string()
        }
        ScrollTo::By(px) => format!("window.scrollBy({{top: {px}, behavior: 'smooth'}})"),
        ScrollTo::Element(sel) => format!(
            "document.querySelector({}).scrollIntoView({{behavior: 'smooth', block: 'center'}})",
            js(sel)
        ),
    };
    format!(
        "new Promise(done => {{ let ended = false; const end = () => {{ if (!ended) {{ ended = true; done(true); }} }}; \
         addEventListener('scrollend', end, {{once: true}}); setTimeout(end, 2000); const y = scrollY; {start}; \
         setTimeout(() => {{ if (scrollY === y) end(); }}, 100); }})"
    )
}

async fn run_step(
    ctx: &BrowserContext,
    action: &StepAction,
    vars: &StepVars<'_>,
    after: Duration,
) -> Result<(), StepError> {
    match action {
        StepAction::Goto { url } => {
            visit(ctx, vars.url(url), after).await?;
        }
        StepAction::Fill {
            selector: sel,
            value,
        } => {
            wait_for(ctx, sel, after).await?;
            let focused: bool = ctx
                .evaluate(&format!(
                    "(() => {{ const e = document.querySelector({}); if (!e) return false; e.focus(); e.value = ''; return true; }})()",
                    js(sel)
                ))
                .await?;
            if !focused {
                return Err(StepError::Failed(format!("no element matches {sel:?}")));
            }
            // Typed through the input pipeline, so the page sees real input events; the value
            // never appears in a script.
            let text = vars.value(value);
            cdp_call(
                ctx,
                "Input.insertText",
                ctx.page().execute(InsertTextParams::new(text)),
            )
            .await?;
        }
        StepAction::Click { selector: sel } | StepAction::Press { selector: sel, .. } => {
            wait_for(ctx, sel, after).await?;
            let mut started = cdp_call(
                ctx,
                "listener",
                ctx.page().event_listener::<EventFrameStartedLoading>(),
            )
            .await?;
            let mut loaded = cdp_call(
                ctx,
                "listener",
                ctx.page().event_listener::<EventLoadEventFired>(),
            )
            .await?;
            let el = cdp_call(ctx, "DOM.querySelector", ctx.page().find_element(sel)).await?;
            if let StepAction::Press { key, .. } = action {
                cdp_call(ctx, "focus", el.focus()).await?;
                cdp_call(ctx, "press", el.press_key(key)).await?;
            } else {
                cdp_call(ctx, "click", el.click()).await?;
            }
            // If the action starts a navigation, wait for its load (listener registered before
            // the action, so a fast load is not missed).
            if tokio::time::timeout(Duration::from_millis(750), started.next())
                .await
                .is_ok()
            {
                tokio::time::timeout(after, loaded.next())
                    .await
                    .map_err(|_| StepError::Timeout)?;
            }
        }
        StepAction::Select {
            selector: sel,
            value,
        } => {
            wait_for(ctx, sel, after).await?;
            let value = vars.value(value);
            let ok: bool = ctx
                .evaluate(&format!(
                    "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
                    js(sel),
                    js(&value)
                ))
                .await?;
            if !ok {
                return Err(StepError::Failed(format!("no element matches {sel:?}")));
            }
        }
        StepAction::WaitFor { selector: sel } => {
            wait_for(ctx, sel, after).await?;
        }
        StepAction::WaitForUrl { pattern: pat } => {
            let expr = match pat.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                Some(re) if !re.is_empty() => format!("new RegExp({}).test(location.href)", js(re)),
                _ => format!("location.href.includes({})", js(pat)),
            };
            wait_until(ctx, &expr, after).await?;
        }
        StepAction::Sleep { duration } => tokio::time::sleep(*duration).await,
        StepAction::SleepBetween { min, max } => {
            let d = rand::thread_rng().gen_range(*min..=*max);
            tokio::time::sleep(d).await
        }
        StepAction::Scroll { to } => {
            if let ScrollTo::Element(sel) = to {
                wait_for(ctx, sel, after).await?;
            }
            let _: bool = ctx.evaluate(&scroll_js(to)).await?;
        }
    }
    Ok(())
}

/// The expression "an element matches `sel`".
fn present(sel: &str) -> String {
    format!("!!document.querySelector({})", js(sel))
}

/// Waits until an element matches `sel`, at most `after`.
async fn wait_for(ctx: &BrowserContext, sel: &str, after: Duration) -> Result<(), StepError> {
    wait_until(ctx, &present(sel), after).await
}

/// Polls `expr` (a boolean expression) until true, at most `after`.
async fn wait_until(ctx: &BrowserContext, expr: &str, after: Duration) -> Result<(), StepError> {
    let end = tokio::time::Instant::now() + after;
    loop {
        // During a navigation the page may not answer; that is "not yet".
        match ctx.evaluate::<bool>(expr).await {
            Ok(true) => return Ok(()),
            Err(BrowserError::Gone(m)) => return Err(StepError::Page(WarmError::BrowserGone(m))),
            _ => {}
        }
        if tokio::time::Instant::now() >= end {
            return Err(StepError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the context is signed in: the check URL's own response (redirects not followed)
/// has the expected status, the signed-in selector is present, no signed-out marker is.
///
/// # Errors
/// When the check page cannot be loaded (network, timeout, browser gone).
pub async fn check(
    ctx: &BrowserContext,
    cfg: &CheckConfig,
    nav_timeout: Duration,
) -> Result<bool, LoginError> {
    if let Some(url) = &cfg.url {
        let nav = ctx
            .navigate(url, nav_timeout)
            .await
            .map_err(|e| LoginError::Warm(e.into()))?;
        if nav.first_status != Some(cfg.expect_status) {
            return Ok(false);
        }
    }
    if let Some(sel) = &cfg.signed_out {
        let out: bool = ctx
            .evaluate(&present(sel))
            .await
            .map_err(|e| LoginError::Warm(e.into()))?;
        if out {
            return Ok(false);
        }
    }
    if let Some(sel) = &cfg.selector {
        let inside: bool = ctx
            .evaluate(&present(sel))
            .await
            .map_err(|e| LoginError::Warm(e.into()))?;
        return Ok(inside);
    }
    Ok(true)
}
