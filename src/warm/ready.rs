//! When a warmed page is ready: `ready_when = { cookies = [...], selector = "...", url = "...",
//! js = "..." }`, any subset, all must hold. Real sites set their token when their script
//! decides (a challenge cookie, an app marker), so a fixed dwell is either too short (a session
//! without its token is served) or too long (the pool fills slowly); a warm with `ready_when`
//! ends as soon as the page gets there, and fails with [`NotReady`] when it does not by the
//! deadline (`warmup` is then the most to wait).
//!
//! # Event-driven, not polled
//! [`ReadyWatch::arm`] installs a small script in an *isolated world* of the page (its own
//! JavaScript globals, the page's DOM and cookies), on the current document and on every new
//! one, with a CDP binding (`Runtime.addBinding`) only that world can call. The script calls
//! the binding when a cookie changes (`cookieStore`'s `change` event; where there is no
//! `cookieStore`, outside secure contexts, a 20 ms comparison of `document.cookie` inside the
//! page) and, when a selector or script condition needs it, when the DOM changes (a
//! `MutationObserver`, at most one signal per 16 ms). The watch also listens to the page's CDP
//! events: a navigation (`Page.frameNavigated`, `Page.navigatedWithinDocument`) and a response
//! carrying `Set-Cookie` (`Network.responseReceivedExtraInfo`, which is how an HttpOnly cookie
//! arrives, invisible to scripts). Each signal triggers one check of every condition over CDP
//! (`Network.getCookies`, HttpOnly cookies included, and one `Runtime.evaluate` in the page's
//! own world for selector, URL and script); signals that arrive during a check are folded into
//! one more. A safety check runs every [`SAFETY_CHECK`] in case a change came by a path nobody
//! signals (a script condition on a plain variable, say). Typical reaction to a cookie set by
//! script: a few milliseconds.
//!
//! Nothing is added to the page's own world: no global, no patched `document.cookie` setter a
//! site's script could notice.

use chromiumoxide::cdp::browser_protocol::network::{
    EventResponseReceivedExtraInfo, GetCookiesParams,
};
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, EventFrameNavigated, EventNavigatedWithinDocument,
    RemoveScriptToEvaluateOnNewDocumentParams, ScriptIdentifier,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    AddBindingParams, EventBindingCalled, RemoveBindingParams,
};
use chromiumoxide::listeners::EventStream;
use futures::{FutureExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

use crate::browser::{cdp_call, redact_url, BrowserContext, BrowserError};

/// How often the conditions are checked when nothing signals a change.
pub const SAFETY_CHECK: Duration = Duration::from_millis(250);

/// After a response that set a cookie, one more check this much later if the first one did
/// not find it (insurance against the event arriving before the cookie store has it).
const AFTER_SET_COOKIE: Duration = Duration::from_millis(15);

/// How long removing the watch from the page may take, in the background.
const DISARM_TIMEOUT: Duration = Duration::from_secs(5);

/// What makes a warmed page ready: every condition given must hold (an empty one always
/// holds). Deserialised from a target's `ready_when = { ... }`.
///
/// ```toml
/// ready_when = { cookies = ["visitor", "token"], selector = "#app-ready" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadyWhen {
    /// Cookies that must be set for the page (by name; HttpOnly ones count).
    pub cookies: Vec<String>,
    /// A CSS selector that must match an element of the page.
    pub selector: Option<String>,
    /// The page's URL must contain this text, or match `/regex/` (JavaScript syntax), as the
    /// login steps' `wait_for_url`.
    pub url: Option<String>,
    /// A JavaScript expression, evaluated in the page, that must be truthy (a promise is
    /// awaited).
    pub js: Option<String>,
}

impl ReadyWhen {
    /// Whether there is no condition at all (a warm then just dwells its `warmup`).
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
            && self.selector.is_none()
            && self.url.is_none()
            && self.js.is_none()
    }

    /// Checks the conditions' shape (config validation): no empty name, selector, URL or
    /// script.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(i) = self.cookies.iter().position(|c| c.trim().is_empty()) {
            return Err(format!("cookies[{i}] is empty"));
        }
        for (field, value) in [
            ("selector", &self.selector),
            ("url", &self.url),
            ("js", &self.js),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("{field} is empty"));
            }
        }
        Ok(())
    }

    /// The conditions in a few words, for logs (`cookies [token], selector "#app-ready"`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.cookies.is_empty() {
            parts.push(format!("cookies {:?}", self.cookies));
        }
        if let Some(s) = &self.selector {
            parts.push(format!("selector {s:?}"));
        }
        if let Some(u) = &self.url {
            parts.push(format!("url {u:?}"));
        }
        if let Some(j) = &self.js {
            parts.push(format!("js {:?}", shorten(j)));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether the DOM can matter (a selector, or a script that may read it).
    fn watches_dom(&self) -> bool {
        self.selector.is_some() || self.js.is_some()
    }
}

/// The page did not get ready by the deadline: which conditions were still missing at the last
/// check. Shown as `not_ready: cookie "token" missing; selector "#app-ready" not found`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not_ready: {} (after {waited:?}, {checks} checks)", missing.join("; "))]
pub struct NotReady {
    /// One entry per condition not met (never a cookie's value).
    pub missing: Vec<String>,
    /// How long the watch waited.
    pub waited: Duration,
    /// Checks made.
    pub checks: u32,
}

/// Why [`wait_ready`] gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadyError {
    /// The deadline came first.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// The browser died, or the watch could not be installed.
    #[error("{0}")]
    Browser(#[from] BrowserError),
}

/// A page that got ready: how long it took, how many checks it needed, what set off the one
/// that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// From the start of [`ReadyWatch::wait`] (or [`wait_ready`]) to the check that passed.
    pub waited: Duration,
    /// Checks made, the passing one included.
    pub checks: u32,
    /// What asked for the passing check.
    pub trigger: Trigger,
}

/// What asks for a check of the conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first check, as the wait starts (the page was ready already; or no condition).
    First,
    /// The page's script: a cookie or the DOM changed.
    Page,
    /// A navigation, to a new document or within one.
    Navigation,
    /// A response that set a cookie (how HttpOnly cookies arrive).
    SetCookie,
    /// The periodic safety check.
    Safety,
}

impl Trigger {
    /// Its name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::First => "first",
            Trigger::Page => "page",
            Trigger::Navigation => "navigation",
            Trigger::SetCookie => "set_cookie",
            Trigger::Safety => "safety",
        }
    }
}

/// Waits until `cond` holds in `ctx`'s page, at most until `deadline`. Call it after the page
/// has loaded (`visit`); state reached before the call counts (the first check is made at
/// once). With no condition it returns at once.
///
/// # Errors
/// [`ReadyError::NotReady`] naming the conditions still missing at the deadline;
/// [`ReadyError::Browser`] when the browser died or the watch could not be installed.
pub async fn wait_ready(
    ctx: &BrowserContext,
    cond: &ReadyWhen,
    deadline: Instant,
) -> Result<Ready, ReadyError> {
    if cond.is_empty() {
        return Ok(Ready {
            waited: Duration::ZERO,
            checks: 0,
            trigger: Trigger::First,
        });
    }
    let watch = ReadyWatch::arm(ctx, cond).await?;
    watch.wait(ctx, deadline).await
}

/// A readiness watch installed on a page: armed before or after a navigation, waited on once.
/// Arming before the navigation (after the fingerprint) saves the two CDP calls after load.
pub struct ReadyWatch {
    cond: ReadyWhen,
    /// The binding's name (also the isolated world's), random per watch.
    binding: String,
    script: ScriptIdentifier,
    signals: EventStream<EventBindingCalled>,
    navigated: EventStream<EventFrameNavigated>,
    within: EventStream<EventNavigatedWithinDocument>,
    /// Only when a cookie is awaited.
    responses: Option<EventStream<EventResponseReceivedExtraInfo>>,
    /// The safety check's period.
    safety: Duration,
}

/// The script run in the watch's isolated world. `__BINDING__` and `__DOM__` are filled in.
const HOOK_JS: &str = r#"(() => {
  const send = globalThis["__BINDING__"];
  if (typeof send !== "function" || globalThis.__armed) return;
  globalThis.__armed = true;
  let queued = false;
  const signal = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => { queued = false; try { send(""); } catch (e) {} });
  };
  if (globalThis.cookieStore && typeof cookieStore.addEventListener === "function") {
    cookieStore.addEventListener("change", signal);
  } else {
    let last = null;
    try { last = document.cookie; } catch (e) {}
    setInterval(() => {
      let now = null;
      try { now = document.cookie; } catch (e) {}
      if (now !== last) { last = now; signal(); }
    }, 20);
  }
  if (__DOM__) {
    let lastDom = 0, trailing = null;
    const domSignal = () => {
      const now = performance.now();
      if (now - lastDom >= 16) { lastDom = now; signal(); return; }
      if (trailing === null) {
        trailing = setTimeout(() => { trailing = null; lastDom = performance.now(); signal(); }, 16 - (now - lastDom));
      }
    };
    try {
      new MutationObserver(domSignal).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    } catch (e) {}
  }
  signal();
})()"#;

impl ReadyWatch {
    /// Installs the watch on `ctx`'s page (listeners, binding, isolated-world script on the
    /// current document and every new one). Three CDP calls, each under the CDP timeout.
    ///
    /// # Errors
    /// When a call fails or times out, or the browser is gone.
    pub async fn arm(ctx: &BrowserContext, cond: &ReadyWhen) -> Result<Self, BrowserError> {
        let page = ctx.page();
        let binding = format!("__r{:016x}", rand::thread_rng().gen::<u64>());
        // Listening first, so no signal of the script's first run is missed.
        let signals = cdp_call(
            ctx,
            "Runtime.bindingCalled listener",
            page.event_listener::<EventBindingCalled>(),
        )
        .await?;
        let navigated = cdp_call(
            ctx,
            "Page.frameNavigated listener",
            page.event_listener::<EventFrameNavigated>(),
        )
        .await?;
        let within = cdp_call(
            ctx,
            "Page.navigatedWithinDocument listener",
            page.event_listener::<EventNavigatedWithinDocument>(),
        )
        .await?;
        let responses = if cond.cookies.is_empty() {
            None
        } else {
            Some(
                cdp_call(
                    ctx,
                    "Network.responseReceivedExtraInfo listener",
                    page.event_listener::<EventResponseReceivedExtraInfo>(),
                )
                .await?,
            )
        };
        let mut add = AddBindingParams::new(binding.clone());
        add.execution_context_name = Some(binding.clone());
        cdp_call(ctx, "Runtime.addBinding", page.execute(add)).await?;
        let source = HOOK_JS
            .replace("__BINDING__", &binding)
            .replace("__DOM__", if cond.watches_dom() { "true" } else { "false" });
        let mut script = AddScriptToEvaluateOnNewDocumentParams::new(source);
        script.world_name = Some(binding.clone());
        script.run_immediately = Some(true);
        let added = cdp_call(
            ctx,
            "Page.addScriptToEvaluateOnNewDocument (ready watch)",
            page.execute(script),
        )
        .await?;
        Ok(Self {
            cond: cond.clone(),
            binding,
            script: added.result.identifier,
            signals,
            navigated,
            within,
            responses,
            safety: SAFETY_CHECK,
        })
    }

    /// The watched conditions, in a few words (for logs and progress).
    pub fn describe(&self) -> String {
        self.cond.describe()
    }

    /// Sets the safety check's period (default [`SAFETY_CHECK`]). A long one leaves the page's
    /// events alone to end the wait: tests use it to show that they do.
    #[must_use]
    pub fn safety_check(mut self, every: Duration) -> Self {
        self.safety = every;
        self
    }

    /// Waits until the conditions hold, at most until `deadline`; then removes the watch from
    /// the page in the background (the page keeps working meanwhile).
    ///
    /// # Errors
    /// As [`wait_ready`].
    pub async fn wait(
        mut self,
        ctx: &BrowserContext,
        deadline: Instant,
    ) -> Result<Ready, ReadyError> {
        let r = self.run(ctx, deadline).await;
        self.disarm(ctx);
        r
    }

    async fn run(&mut self, ctx: &BrowserContext, deadline: Instant) -> Result<Ready, ReadyError> {
        let started = Instant::now();
        let mut checks = 0u32;
        let mut last: Option<Vec<String>> = None;
        let mut dirty = true;
        let mut cause = Trigger::First;
        let mut soon: Option<Instant> = None;
        let mut next_safety = started + self.safety;
        loop {
            if dirty {
                next_safety = Instant::now() + self.safety;
                checks += 1;
                let outcome = tokio::select! {
                    biased;
                    r = check(ctx, &self.cond) => r,
                    _ = tokio::time::sleep_until(deadline) => break,
                };
                match outcome {
                    Ok(missing) if missing.is_empty() => {
                        return Ok(Ready {
                            waited: started.elapsed(),
                            checks,
                            trigger: cause,
                        })
                    }
                    Ok(missing) => last = Some(missing),
                    Err(BrowserError::Gone(m)) => return Err(BrowserError::Gone(m).into()),
                    // Mid-navigation the page may not answer: not ready yet, as far as we know.
                    Err(e) => {
                        tracing::debug!(error = %e, "ready check: page did not answer");
                        if last.is_none() {
                            last =
                                Some(vec![format!("not checked: the page did not answer ({e})")]);
                        }
                    }
                }
                // What arrived during the check is folded into one more check.
                if let Some(again) = self.drain(&mut soon) {
                    dirty = true;
                    cause = again;
                    continue;
                }
                dirty = false;
            }
            if Instant::now() >= deadline {
                break;
            }
            let Self {
                binding,
                signals,
                navigated,
                within,
                responses,
                ..
            } = self;
            let set_cookie = async {
                match responses.as_mut() {
                    Some(r) => r.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = ctx.gone() => {
                    return Err(BrowserError::Gone("died while waiting for ready_when".into()).into())
                }
                _ = tokio::time::sleep_until(deadline) => break,
                Some(ev) = signals.next() => {
                    dirty = ev.name == *binding;
                    cause = Trigger::Page;
                }
                Some(_) = navigated.next() => (dirty, cause) = (true, Trigger::Navigation),
                Some(_) = within.next() => (dirty, cause) = (true, Trigger::Navigation),
                Some(ev) = set_cookie => {
                    if sets_cookie(&ev) {
                        (dirty, cause) = (true, Trigger::SetCookie);
                        soon = Some(Instant::now() + AFTER_SET_COOKIE);
                    }
                }
                _ = sleep_until_opt(soon) => {
                    soon = None;
                    (dirty, cause) = (true, Trigger::SetCookie);
                }
                _ = tokio::time::sleep_until(next_safety) => (dirty, cause) = (true, Trigger::Safety),
            }
        }
        let missing = last.unwrap_or_else(|| vec!["not checked before the deadline".into()]);
        Err(NotReady {
            missing,
            waited: started.elapsed(),
            checks,
        }
        .into())
    }

    /// Takes every event already queued; what asks for a check, if any does.
    fn drain(&mut self, soon: &mut Option<Instant>) -> Option<Trigger> {
        let mut any = None;
        while let Some(Some(ev)) = self.signals.next().now_or_never() {
            if ev.name == self.binding {
                any = Some(Trigger::Page);
            }
        }
        while let Some(Some(_)) = self.navigated.next().now_or_never() {
            any = Some(Trigger::Navigation);
        }
        while let Some(Some(_)) = self.within.next().now_or_never() {
            any = Some(Trigger::Navigation);
        }
        if let Some(r) = self.responses.as_mut() {
            while let Some(Some(ev)) = r.next().now_or_never() {
                if sets_cookie(&ev) {
                    any = Some(Trigger::SetCookie);
                    *soon = Some(Instant::now() + AFTER_SET_COOKIE);
                }
            }
        }
        any
    }

    /// Removes the binding and the new-document script, in the background, each bounded. The
    /// current document's isolated-world script stays, calling a binding nobody listens to
    /// (Chromium drops those calls).
    fn disarm(self, ctx: &BrowserContext) {
        let page = ctx.page().clone();
        let binding = self.binding;
        let script = self.script;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                DISARM_TIMEOUT,
                page.execute(RemoveBindingParams::new(binding)),
            )
            .await;
            let _ = tokio::time::timeout(
                DISARM_TIMEOUT,
                page.execute(RemoveScriptToEvaluateOnNewDocumentParams::new(script)),
            )
            .await;
        });
    }
}

/// Sleeps until `at`, or forever when there is none.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether a response carried a `Set-Cookie` header.
fn sets_cookie(ev: &EventResponseReceivedExtraInfo) -> bool {
    ev.headers
        .inner()
        .as_object()
        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("set-cookie")))
}

/// A JSON string literal of `s`, for building scripts.
fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `s` cut to 60 characters for messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// What the page said about selector and URL.
#[derive(Debug, Deserialize)]
struct DomState {
    /// Whether the selector matched (absent without a selector).
    selector: Option<bool>,
    /// Why the selector could not be tried (an invalid selector).
    selector_error: Option<String>,
    /// Whether the URL matched (absent without a URL condition).
    url: Option<bool>,
    /// The page's URL.
    href: String,
}

/// One check of every condition; returns what is missing (empty: ready).
async fn check(ctx: &BrowserContext, cond: &ReadyWhen) -> Result<Vec<String>, BrowserError> {
    let cookies = async {
        if cond.cookies.is_empty() {
            return Ok(Vec::new());
        }
        let r = cdp_call(
            ctx,
            "Network.getCookies",
            ctx.page().execute(GetCookiesParams::default()),
        )
        .await?;
        let have = &r.result.cookies;
        Ok::<_, BrowserError>(
            cond.cookies
                .iter()
                .filter(|name| !have.iter().any(|c| &c.name == *name))
                .map(|name| format!("cookie {name:?} missing"))
                .collect(),
        )
    };
    let dom = async {
        if cond.selector.is_none() && cond.url.is_none() {
            return Ok(Vec::new());
        }
        let selector = match &cond.selector {
            Some(s) => format!(
                "(() => {{ try {{ return [!!document.querySelector({}), null]; }} catch (e) {{ return [false, String(e.message || e)]; }} }})()",
                js_str(s)
            ),
            None => "[null, null]".into(),
        };
        let url = match &cond.url {
            Some(pat) => match pat.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                Some(re) if !re.is_empty() => {
                    format!("new RegExp({}).test(location.href)", js_str(re))
                }
                _ => format!("location.href.includes({})", js_str(pat)),
            },
            None => "null".into(),
        };
        let expr = format!(
            "(() => {{ const s = {selector}; let u = null; try {{ u = {url}; }} catch (e) {{ u = false; }} \
             return {{ selector: s[0], selector_error: s[1], url: u, href: location.href }}; }})()"
        );
        let st: DomState = ctx.evaluate(&expr).await?;
        let mut missing = Vec::new();
        if let (Some(sel), Some(false)) = (&cond.selector, st.selector) {
            match st.selector_error {
                Some(e) => missing.push(format!("selector {sel:?} is not valid: {e}")),
                None => missing.push(format!("selector {sel:?} not found")),
            }
        }
        if let (Some(pat), Some(false)) = (&cond.url, st.url) {
            missing.push(format!(
                "url {pat:?} not reached (page at {})",
                redact_url(&st.href)
            ));
        }
        Ok::<_, BrowserError>(missing)
    };
    let js = async {
        let Some(js) = &cond.js else {
            return Ok(Vec::new());
        };
        let expr = format!("(async () => !!(await ({js})))()");
        match ctx.evaluate::<bool>(&expr).await {
            Ok(true) => Ok(Vec::new()),
            Ok(false) => Ok(vec![format!("js {:?} is false", shorten(js))]),
            Err(e @ BrowserError::Gone(_)) => Err(e),
            // A timeout is the page not answering, not the script's verdict.
            Err(e @ BrowserError::Timeout { .. }) => Err(e),
            Err(e) => Ok(vec![format!(
                "js {:?} threw: {}",
                shorten(js),
                shorten(&e.to_string())
            )]),
        }
    };
    let (a, b, c) = futures::try_join!(cookies, dom, js)?;
    Ok([a, b, c].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_subset_deserialises_and_unknown_fields_are_refused() {
        let r: ReadyWhen = toml::from_str(
            r##"cookies = ["token"]
selector = "#app-ready""##,
        )
        .unwrap();
        assert_eq!(r.cookies, vec!["token".to_string()]);
        assert_eq!(r.selector.as_deref(), Some("#app-ready"));
        assert!(r.url.is_none() && r.js.is_none() && !r.is_empty());
        let empty: ReadyWhen = toml::from_str("").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.describe(), "nothing");
        let e = toml::from_str::<ReadyWhen>("cookie = [\"x\"]").unwrap_err();
        assert!(e.to_string().contains("cookie"), "{e}");
    }

    #[test]
    fn validation_names_the_empty_field() {
        let mut r = ReadyWhen {
            cookies: vec!["a".into(), " ".into()],
            ..ReadyWhen::default()
        };
        assert_eq!(r.validate().unwrap_err(), "cookies[1] is empty");
        r.cookies.pop();
        assert!(r.validate().is_ok());
        r.js = Some(String::new());
        assert_eq!(r.validate().unwrap_err(), "js is empty");
    }

    #[test]
    fn not_ready_lists_every_missing_condition() {
        let e = NotReady {
            missing: vec![
                "cookie \"token\" missing".into(),
                "selector \"#app-ready\" not found".into(),
            ],
            waited: Duration::from_millis(500),
            checks: 3,
        };
        assert_eq!(
            e.to_string(),
            "not_ready: cookie \"token\" missing; selector \"#app-ready\" not found (after 500ms, 3 checks)"
        );
    }

    #[test]
    fn the_hook_is_filled_in() {
        let s = HOOK_JS
            .replace("__BINDING__", "__rabc")
            .replace("__DOM__", "false");
        assert!(s.contains("globalThis[\"__rabc\"]") && s.contains("if (false)"));
        assert_eq!(shorten(&"x".repeat(70)).chars().count(), 61);
    }
}
