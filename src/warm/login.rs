//! Declared login flows: run the steps of `[targets.login]` in a context with an account's
//! credentials, and check whether a context is signed in. Step descriptions in errors and
//! progress never carry values (a value may be the password).

use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{EventFrameStartedLoading, EventLoadEventFired};
use futures::StreamExt;
use std::time::Duration;

use super::{visit, WarmError};
use crate::accounts::Secret;
use crate::browser::{cdp_call, BrowserContext, BrowserError};
use crate::config::{CheckConfig, LoginConfig, StepAction};

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

/// Runs the declared steps. `progress` gets "step 2/4: fill #user" lines (never values).
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
    let n = cfg.steps.len();
    for (i, step) in cfg.steps.iter().enumerate() {
        let number = i + 1;
        let action = step.action.name();
        progress(format!(
            "step {number}/{n}: {action} {}",
            describe(&step.action)
        ));
        let after = step.timeout.unwrap_or(nav_timeout);
        let fut = run_step(ctx, &step.action, creds, after);
        match tokio::time::timeout(after + Duration::from_secs(1), fut).await {
            Ok(Ok(())) => {}
            Ok(Err(StepError::Timeout)) | Err(_) => {
                return Err(LoginError::StepTimeout {
                    step: number,
                    action,
                    after,
                })
            }
            Ok(Err(StepError::Failed(message))) => {
                return Err(LoginError::StepFailed {
                    step: number,
                    action,
                    message,
                })
            }
        }
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
    }
}

enum StepError {
    Timeout,
    Failed(String),
}

impl From<BrowserError> for StepError {
    fn from(e: BrowserError) -> Self {
        match e {
            BrowserError::Timeout { .. } => StepError::Timeout,
            e => StepError::Failed(e.to_string()),
        }
    }
}

impl From<WarmError> for StepError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::NavigationTimeout { .. } => StepError::Timeout,
            e => StepError::Failed(e.to_string()),
        }
    }
}

fn fill_in(v: &str, creds: &Credentials) -> String {
    v.replace("{username}", &creds.username)
        .replace("{password}", creds.password.expose())
}

async fn run_step(
    ctx: &BrowserContext,
    action: &StepAction,
    creds: &Credentials,
    after: Duration,
) -> Result<(), StepError> {
    match action {
        StepAction::Goto { url } => {
            visit(ctx, url, after).await?;
        }
        StepAction::Fill {
            selector: sel,
            value,
        } => {
            wait_until(
                ctx,
                &format!("!!document.querySelector({})", js(sel)),
                after,
            )
            .await?;
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
            let text = fill_in(value, creds);
            cdp_call(
                ctx,
                "Input.insertText",
                ctx.page().execute(InsertTextParams::new(text)),
            )
            .await?;
        }
        StepAction::Click { selector: sel } | StepAction::Press { selector: sel, .. } => {
            wait_until(
                ctx,
                &format!("!!document.querySelector({})", js(sel)),
                after,
            )
            .await?;
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
            wait_until(
                ctx,
                &format!("!!document.querySelector({})", js(sel)),
                after,
            )
            .await?;
            let value = fill_in(value, creds);
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
            wait_until(
                ctx,
                &format!("!!document.querySelector({})", js(sel)),
                after,
            )
            .await?;
        }
        StepAction::WaitForUrl { pattern: pat } => {
            let expr = match pat.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                Some(re) if !re.is_empty() => format!("new RegExp({}).test(location.href)", js(re)),
                _ => format!("location.href.includes({})", js(pat)),
            };
            wait_until(ctx, &expr, after).await?;
        }
        StepAction::Sleep { duration } => tokio::time::sleep(*duration).await,
    }
    Ok(())
}

/// Polls `expr` (a boolean expression) until true, at most `after`.
async fn wait_until(ctx: &BrowserContext, expr: &str, after: Duration) -> Result<(), StepError> {
    let end = tokio::time::Instant::now() + after;
    loop {
        // During a navigation the page may not answer; that is "not yet".
        match ctx.evaluate::<bool>(expr).await {
            Ok(true) => return Ok(()),
            Err(BrowserError::Gone(m)) => {
                return Err(StepError::Failed(format!("browser gone: {m}")))
            }
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
            .evaluate(&format!("!!document.querySelector({})", js(sel)))
            .await
            .map_err(|e| LoginError::Warm(e.into()))?;
        if out {
            return Ok(false);
        }
    }
    if let Some(sel) = &cfg.selector {
        let inside: bool = ctx
            .evaluate(&format!("!!document.querySelector({})", js(sel)))
            .await
            .map_err(|e| LoginError::Warm(e.into()))?;
        return Ok(inside);
    }
    Ok(true)
}
