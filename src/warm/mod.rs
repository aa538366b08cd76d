//! The warming procedure: a new context (with the session's proxy) → the fingerprint, applied
//! before the first navigation → the host's turn (`turn`) → the event page → load, then
//! `ready_when` or the configured warm-up dwell → the turn given back → capture of every
//! cookie (HttpOnly too), localStorage and what the page observed → a `Session`. Each step
//! has its own timeout and a typed error.
//!
//! Warms prepare (open their context, apply the fingerprint, arm `ready_when`) at most two per
//! CPU at a time, in the order they came: a pool filling several warms at once starts its first
//! turns as soon as those warms are prepared, instead of after all of them (eight contexts
//! opened together on two cores delayed the first turn by 0.6 s; BENCHMARKS.md "ready fill").

pub mod account;
mod error;
pub mod login;
pub mod ready;
mod revisit;
pub mod turn;

pub use error::{Blame, WarmError};
pub use revisit::{FetchOptions, Revisit, Revisited};

use rand::SeedableRng;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::browser::guard::{BlockedResource, InterceptRules};
use crate::browser::{BrowserContext, BrowserError, Supervisor};
use crate::fingerprint::{Fingerprint, FingerprintSource};
use crate::session::{now_ms, Cookie, Health, Observed, OriginStorage, Session, SessionState};

/// Largest event page a warm accepts (bytes of HTML): a page this big is an error page or a
/// trap, not an event page.
pub const MAX_PAGE_BYTES: u64 = 3 * 1024 * 1024;

/// One warm to do.
#[derive(Debug, Clone)]
pub struct WarmRequest {
    /// The configured target's name.
    pub target: String,
    /// The event warmed on (recorded in the session).
    pub event: Option<String>,
    /// The page to warm on.
    pub url: String,
    /// The proxy the context goes through (the session keeps it).
    pub proxy: Option<String>,
    /// Dwell after load, letting the page's scripts set their cookies; with `ready_when`, the
    /// most to wait for it.
    pub warmup: Duration,
    /// The target's `ready_when`: the warm ends as soon as these hold, and fails
    /// [`WarmError::NotReady`] when they do not within `warmup`. `None`: dwell `warmup`.
    pub ready_when: Option<ready::ReadyWhen>,
    /// The target's `warm_steps`: a journey run instead of the single visit of `url` (which
    /// its `goto = "{event_url}"` stands for). Empty: visit `url`.
    pub warm_steps: Vec<crate::config::LoginStep>,
    /// Resource types the warm's page does not load (the target's `block`).
    pub block: Vec<BlockedResource>,
    /// Bound of the navigation.
    pub navigation_timeout: Duration,
    /// Served until `now + max_age`.
    pub max_age: Duration,
    /// Fixes the fingerprint sample (tests); random when `None`.
    pub seed: Option<u64>,
    /// Overrides the sampled window size (applied before the first navigation).
    pub viewport: Option<(u32, u32)>,
    /// The host's turn (the pool's politeness): entered just before the first navigation,
    /// left once the page is ready. `None`: the host is not shared (a warm by hand).
    pub turn: Option<turn::HostTurn>,
}

/// A step of a warm, for progress output.
#[derive(Debug, Clone)]
pub enum WarmStep {
    /// Opening the context.
    Context,
    /// The fingerprint sampled and applied.
    Fingerprint(Box<Fingerprint>),
    /// Navigating to this URL.
    Navigate(String),
    /// The page loaded.
    Loaded {
        /// The document's status.
        status: Option<u16>,
        /// Time from the navigation's start.
        elapsed: Duration,
    },
    /// A step of the warm journey starts (`step 2/4: click a.listing`).
    Step(String),
    /// Dwelling this long for the page's scripts.
    Warmup(Duration),
    /// Waiting for the page to get ready (`ready_when`), at most this long.
    WaitReady {
        /// The conditions, in a few words.
        conditions: String,
        /// The most to wait (the warm-up).
        at_most: Duration,
    },
    /// Capturing cookies, storage and what the page observed.
    Capture,
}

/// Warms sessions in the supervisor's browser.
#[derive(Clone)]
pub struct Warmer {
    sup: Supervisor,
    fingerprints: Arc<FingerprintSource>,
    /// The context opened ahead of the next warm (`browser.spare_context`), and the proxy and
    /// block list of the last warm, which predict the next one's.
    spare: Arc<std::sync::Mutex<SpareSlot>>,
    /// Warms under way: a spare is opened only for a lone warm.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Warms preparing (see the module): two per CPU.
    preparing: Arc<tokio::sync::Semaphore>,
}

/// How long a spare context waits for a warm before it is disposed.
const SPARE_IDLE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct SpareSlot {
    spare: Option<Spare>,
    /// Proxy and block list of the last warm (`None`: no warm yet).
    last: Option<ContextKey>,
}

/// What a warm's context is opened with, so a spare fits only a warm that wants the same:
/// the proxy, and the resource types its page's interceptor blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContextKey {
    proxy: Option<String>,
    block: Vec<BlockedResource>,
}

impl ContextKey {
    fn new(proxy: Option<&str>, block: &[BlockedResource]) -> Self {
        Self {
            proxy: proxy.map(str::to_string),
            block: block.to_vec(),
        }
    }

    /// The one interceptor's rules of a warm context: no URL policy (a warm goes where the
    /// site sends it), the blocked types.
    fn rules(&self) -> InterceptRules {
        InterceptRules {
            policy: None,
            block: self.block.clone(),
        }
    }
}

/// A context being opened, or open and waiting, for the next warm with the same proxy and
/// block list. Nothing navigates in it before that warm has applied its fingerprint, so the
/// site never sees it.
struct Spare {
    key: ContextKey,
    /// Sent by the warm that takes the context; dropped unsent, the task disposes it.
    want: tokio::sync::oneshot::Sender<()>,
    /// Ends with the context when it was wanted, else after disposing it.
    task: tokio::task::JoinHandle<Option<BrowserContext>>,
}

/// Counts one warm under way while alive.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The observation script: what the page itself sees of the browser (one source, also read by
/// `bench/baseline.mjs`).
const OBSERVE_JS: &str = include_str!("observe.js");

/// The page origin's localStorage (one source, also read by `bench/baseline.mjs`).
const STORAGE_JS: &str = include_str!("storage.js");

impl Warmer {
    /// A warmer over `sup`'s browser, sampling fingerprints from `fingerprints`.
    pub fn new(sup: Supervisor, fingerprints: Arc<FingerprintSource>) -> Self {
        Self {
            sup,
            fingerprints,
            spare: Arc::default(),
            in_flight: Arc::default(),
            preparing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2,
            )),
        }
    }

    /// A fresh fingerprint for the running browser.
    ///
    /// # Errors
    /// When no browser comes up.
    pub async fn sample_fingerprint(&self) -> Result<Fingerprint, WarmError> {
        let info = self.sup.ready().await?;
        Ok(self
            .fingerprints
            .sample(&mut rand::thread_rng(), &info.version))
    }

    /// The supervisor this warmer uses.
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// Warms one session and returns it (state `Ready`); the context is disposed.
    ///
    /// # Errors
    /// A `WarmError` naming the step that failed.
    pub async fn warm(
        &self,
        req: &WarmRequest,
        progress: &(dyn Fn(WarmStep) + Send + Sync),
    ) -> Result<Session, WarmError> {
        self.warm_as(req, None, progress).await
    }

    /// [`Warmer::warm`] wearing a caller's `user_agent` (seed 002's `browser.userAgent`):
    /// the sampled fingerprint takes exactly that UA ([`crate::fingerprint::custom`]: client
    /// hints kept coherent for a desktop Chrome UA of the running major, else none claimed),
    /// applied before the first navigation.
    ///
    /// # Errors
    /// As [`Warmer::warm`].
    pub async fn warm_as(
        &self,
        req: &WarmRequest,
        user_agent: Option<&str>,
        progress: &(dyn Fn(WarmStep) + Send + Sync),
    ) -> Result<Session, WarmError> {
        url::Url::parse(&req.url).map_err(|e| WarmError::Invalid(format!("url: {e}")))?;
        progress(WarmStep::Context);
        let info = self.sup.ready().await?;
        // Given back once the warm is ready to navigate (in `warm_in`), or when it fails.
        let preparing = self
            .preparing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| WarmError::Browser(BrowserError::ShuttingDown))?;
        let key = ContextKey::new(req.proxy.as_deref(), &req.block);
        let ctx = match self.take_spare(&key, info.generation).await {
            Some(ctx) => ctx,
            None => {
                self.sup
                    .new_context_with(key.proxy.as_deref(), key.rules())
                    .await?
            }
        };
        let result = {
            // A guard: a warm dropped half-way (its caller timed out) counts as ended too.
            let _under_way = InFlight::enter(&self.in_flight);
            self.warm_in(&ctx, req, &info.version, user_agent, preparing, progress)
                .await
        };
        // Everything is captured: the context is closed after the warm returns, not before
        // (it holds its `max_contexts` slot until it is gone).
        tokio::spawn(ctx.dispose());
        result
    }

    /// The spare context, when there is one for `key` (proxy and block list) in the browser
    /// of `generation` (waiting for it to finish opening if it is still being opened). A spare
    /// for another key is disposed.
    async fn take_spare(&self, key: &ContextKey, generation: u64) -> Option<BrowserContext> {
        let spare = self.spare.lock().ok()?.spare.take()?;
        if spare.key != *key {
            return None;
        }
        // A task that already gave up (idle too long, browser gone) has dropped the receiver.
        spare.want.send(()).ok()?;
        let ctx = spare.task.await.ok().flatten()?;
        if ctx.is_gone() || ctx.generation() != generation {
            ctx.dispose().await;
            return None;
        }
        Some(ctx)
    }

    /// Starts opening a context for the next warm, when spares are on, the last two warms used
    /// `proxy` and `block`, none is open yet, no other warm is under way, and a context slot
    /// stays free for others. (With several warms at once CPU is the limit, not waiting: a
    /// spare would only move work around.)
    fn prepare_spare(&self, proxy: Option<&str>, block: &[BlockedResource]) {
        let Ok(mut slot) = self.spare.lock() else {
            return;
        };
        let key = ContextKey::new(proxy, block);
        let repeated = slot.last.as_ref() == Some(&key);
        slot.last = Some(key.clone());
        let cfg = self.sup.config();
        if !cfg.spare_context
            || !repeated
            || slot.spare.is_some()
            || self.in_flight.load(Ordering::Relaxed) > 1
            || self.sup.open_contexts() + 2 > cfg.max_contexts
        {
            return;
        }
        let (want, wanted) = tokio::sync::oneshot::channel();
        let sup = self.sup.clone();
        let for_key = key.clone();
        let task = tokio::spawn(async move {
            let ctx = sup
                .new_context_with(for_key.proxy.as_deref(), for_key.rules())
                .await
                .ok()?;
            let taken = tokio::select! {
                r = wanted => r.is_ok(),
                _ = ctx.gone() => return None,
                _ = tokio::time::sleep(SPARE_IDLE) => false,
            };
            if taken {
                return Some(ctx);
            }
            ctx.dispose().await;
            None
        });
        slot.spare = Some(Spare { key, want, task });
    }

    async fn warm_in(
        &self,
        ctx: &BrowserContext,
        req: &WarmRequest,
        version: &crate::fingerprint::BrowserVersion,
        user_agent: Option<&str>,
        preparing: tokio::sync::OwnedSemaphorePermit,
        progress: &(dyn Fn(WarmStep) + Send + Sync),
    ) -> Result<Session, WarmError> {
        let mut fp = match req.seed {
            Some(s) => self
                .fingerprints
                .sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(s), version),
            None => self.fingerprints.sample(&mut rand::thread_rng(), version),
        };
        if let Some(ua) = user_agent {
            fp = crate::fingerprint::custom::with_user_agent(
                fp,
                ua,
                &self.fingerprints,
                &mut rand::thread_rng(),
            );
        }
        if let Some(v) = req.viewport {
            fp.viewport = v;
        }
        progress(WarmStep::Fingerprint(Box::new(fp.clone())));
        ctx.apply_fingerprint(&fp).await?;
        // Armed before the first navigation: the page's first signals are not missed, and
        // nothing is left to install after load.
        let watch = match req.ready_when.as_ref().filter(|c| !c.is_empty()) {
            Some(cond) => Some(ready::ReadyWatch::arm(ctx, cond).await?),
            None => None,
        };
        drop(preparing);
        if let Some(turn) = &req.turn {
            turn.enter()
                .await
                .map_err(|_| WarmError::Browser(BrowserError::ShuttingDown))?;
        }
        let started = Instant::now();
        if req.warm_steps.is_empty() {
            progress(WarmStep::Navigate(req.url.clone()));
            let nav = visit(ctx, &req.url, req.navigation_timeout).await?;
            progress(WarmStep::Loaded {
                status: nav,
                elapsed: started.elapsed(),
            });
        } else {
            let vars = login::StepVars::Warm {
                event_url: &req.url,
            };
            let step_progress = |line: String| {
                tracing::debug!(target_name = %req.target, "warm {line}");
                progress(WarmStep::Step(line));
            };
            login::run_journey(
                ctx,
                &req.warm_steps,
                &vars,
                req.navigation_timeout,
                &step_progress,
            )
            .await
            .map_err(|f| WarmError::Step(Box::new(f)))?;
            progress(WarmStep::Loaded {
                status: None,
                elapsed: started.elapsed(),
            });
        }
        let bytes: u64 = ctx
            .evaluate("document.documentElement ? document.documentElement.outerHTML.length : 0")
            .await?;
        if bytes > MAX_PAGE_BYTES {
            return Err(WarmError::PageTooLarge {
                bytes,
                limit: MAX_PAGE_BYTES,
            });
        }
        // The page is loaded and the browser mostly idle until capture: the time to open the
        // next warm's context. (Opened earlier, it slows this warm's fingerprint and navigation
        // as much as it saves; opened later, it slows the capture.)
        self.prepare_spare(req.proxy.as_deref(), &req.block);
        match watch {
            // `warmup` is the most to wait; the watch returns as soon as the page is ready.
            Some(watch) => {
                progress(WarmStep::WaitReady {
                    conditions: watch.describe(),
                    at_most: req.warmup,
                });
                let deadline = tokio::time::Instant::now() + req.warmup;
                match watch.wait(ctx, deadline).await {
                    Ok(r) => tracing::debug!(
                        target_name = %req.target,
                        waited_ms = r.waited.as_millis() as u64,
                        checks = r.checks,
                        trigger = r.trigger.name(),
                        "page ready"
                    ),
                    Err(ready::ReadyError::NotReady(n)) => return Err(WarmError::NotReady(n)),
                    Err(ready::ReadyError::Browser(e)) => return Err(e.into()),
                }
            }
            None => {
                progress(WarmStep::Warmup(req.warmup));
                tokio::select! {
                    _ = tokio::time::sleep(req.warmup) => {}
                    _ = ctx.gone() => return Err(WarmError::BrowserGone("died during warm-up".into())),
                }
            }
        }
        // The page is ready: the host is done with (the next warm's context is open and
        // waiting for it); capturing and closing are this warm's own.
        if let Some(turn) = &req.turn {
            turn.leave();
        }
        if !req.block.is_empty() {
            tracing::debug!(
                target_name = %req.target,
                blocked = ctx.blocked_resources(),
                "resources not loaded (block)"
            );
        }
        progress(WarmStep::Capture);
        let captured = capture_page(ctx).await?;
        Ok(captured.into_session(SessionSeed {
            target: req.target.clone(),
            event: req.event.clone(),
            account: None,
            url: req.url.clone(),
            fingerprint: fp,
            proxy: req.proxy.clone(),
            max_age: req.max_age,
        }))
    }
}

/// What the pool needs of a warmer: warm a new session, revisit a stored one, and the
/// navigation timeout targets default to. [`Warmer`] does it in Chromium; the pool's unit
/// tests use a fake that needs no browser.
pub trait Warm: Send + Sync + 'static {
    /// Warms one session (state `Ready`).
    ///
    /// # Errors
    /// A `WarmError` naming the step that failed.
    fn warm(&self, req: &WarmRequest) -> impl Future<Output = Result<Session, WarmError>> + Send;

    /// Warms one session wearing a caller's `user_agent` (see [`Warmer::warm_as`]). A warmer
    /// that cannot wear one refuses it (`Invalid`) rather than ignoring it.
    ///
    /// # Errors
    /// As [`Warm::warm`].
    fn warm_as(
        &self,
        req: &WarmRequest,
        user_agent: Option<&str>,
    ) -> impl Future<Output = Result<Session, WarmError>> + Send {
        let refused = user_agent.is_some();
        async move {
            if refused {
                return Err(WarmError::Invalid(
                    "this warmer cannot wear a caller's user agent".into(),
                ));
            }
            self.warm(req).await
        }
    }

    /// Loads a page in a context revived from `s` (see [`Warmer::revisit`]).
    ///
    /// # Errors
    /// As [`Warmer::revisit`].
    fn revisit(
        &self,
        s: &Session,
        r: &Revisit<'_>,
    ) -> impl Future<Output = Result<Revisited, WarmError>> + Send;

    /// `browser.navigation_timeout`: the bound of a navigation when the target sets none.
    fn navigation_timeout(&self) -> Duration;
}

impl Warm for Warmer {
    async fn warm(&self, req: &WarmRequest) -> Result<Session, WarmError> {
        Warmer::warm(self, req, &|_| {}).await
    }

    async fn warm_as(
        &self,
        req: &WarmRequest,
        user_agent: Option<&str>,
    ) -> Result<Session, WarmError> {
        Warmer::warm_as(self, req, user_agent, &|_| {}).await
    }

    async fn revisit(&self, s: &Session, r: &Revisit<'_>) -> Result<Revisited, WarmError> {
        Warmer::revisit(self, s, r).await
    }

    fn navigation_timeout(&self) -> Duration {
        self.sup.config().navigation_timeout
    }
}

/// What a browser context holds at the end of a warm, a revisit or a sign-in: every cookie
/// (HttpOnly too), the page origin's localStorage, and what the page observed. The one step
/// from a captured context to a [`Session`] record ([`Capture::into_session`],
/// [`Capture::refresh`]).
#[derive(Debug, Clone)]
pub struct Capture {
    /// The context's cookies.
    pub cookies: Vec<Cookie>,
    /// localStorage of the page's origin (empty on a non-http page).
    pub origins: Vec<OriginStorage>,
    /// What the page reported about the browser.
    pub observed: Observed,
}

/// Who a new session record is: everything of a [`Session`] a capture does not say.
#[derive(Debug, Clone)]
pub struct SessionSeed {
    /// The configured target's name.
    pub target: String,
    /// The event warmed on (event sessions).
    pub event: Option<String>,
    /// The account signed in as (login sessions).
    pub account: Option<String>,
    /// The page cookie headers are computed for.
    pub url: String,
    /// The identity applied to the context.
    pub fingerprint: Fingerprint,
    /// The proxy the context went through.
    pub proxy: Option<String>,
    /// Served until now + this.
    pub max_age: Duration,
}

impl Capture {
    /// A new ready session record of `seed` holding this capture.
    pub fn into_session(self, seed: SessionSeed) -> Session {
        let now = now_ms();
        Session {
            id: Session::new_id(),
            target: seed.target,
            event: seed.event,
            account: seed.account,
            url: seed.url,
            state: SessionState::Ready,
            fingerprint: seed.fingerprint,
            proxy: seed.proxy,
            cookies: self.cookies,
            origins: self.origins,
            observed: Some(self.observed),
            created_at: now,
            refreshed_at: now,
            expires_at: now + seed.max_age.as_millis() as u64,
            health: Health::default(),
        }
    }

    /// Puts this capture's cookies (and storage, when the page had any) into `s`, refreshed
    /// now. What the page observed is not kept: the identity was applied from `s`.
    pub fn refresh(self, s: &mut Session) {
        s.cookies = self.cookies;
        if !self.origins.is_empty() {
            s.origins = self.origins;
        }
        s.refreshed_at = now_ms();
    }
}

/// Navigates and classifies the outcome: a timeout, a net error, an HTTP error status.
///
/// # Errors
/// `NavigationTimeout`, `Network`, `TargetHttp` or `BrowserGone`.
pub async fn visit(
    ctx: &BrowserContext,
    url: &str,
    after: Duration,
) -> Result<Option<u16>, WarmError> {
    match load(ctx, url, after).await? {
        Some(s) if s >= 400 => Err(WarmError::TargetHttp {
            status: s,
            url: crate::browser::redact_url(url),
        }),
        s => Ok(s),
    }
}

/// Navigates and returns the document's status whatever it is; only a page that could not be
/// loaded at all is an error (timeout, net error, browser gone).
///
/// # Errors
/// `NavigationTimeout`, `Network` or `BrowserGone`.
pub async fn load(
    ctx: &BrowserContext,
    url: &str,
    after: Duration,
) -> Result<Option<u16>, WarmError> {
    let shown = crate::browser::redact_url(url);
    match ctx.navigate(url, after).await {
        Ok(nav) => Ok(nav.status),
        Err(BrowserError::Timeout { .. }) => {
            Err(WarmError::NavigationTimeout { url: shown, after })
        }
        Err(BrowserError::Net { code, detail, .. }) => Err(WarmError::Network {
            url: shown,
            message: match detail {
                Some(d) => format!("{code} ({d})"),
                None => code,
            },
        }),
        Err(e) => Err(e.into()),
    }
}

/// Captures cookies, localStorage of the page's origin, and what the page observed.
///
/// # Errors
/// `CaptureFailed` (or `BrowserGone`) when the page cannot be read.
pub async fn capture_page(ctx: &BrowserContext) -> Result<Capture, WarmError> {
    let fail = |what: &str, e: BrowserError| match e {
        BrowserError::Gone(m) => WarmError::BrowserGone(m),
        e => WarmError::CaptureFailed(format!("{what}: {e}")),
    };
    #[derive(serde::Deserialize)]
    struct Storage {
        origin: String,
        items: Vec<(String, String)>,
    }
    // Asked at once: the cookies come from the browser, the rest from the page.
    let (cookies, storage, observed) = futures::try_join!(
        async { ctx.cookies().await.map_err(|e| fail("cookies", e)) },
        async {
            ctx.evaluate::<Storage>(STORAGE_JS)
                .await
                .map_err(|e| fail("localStorage", e))
        },
        async {
            ctx.evaluate::<Observed>(OBSERVE_JS)
                .await
                .map_err(|e| fail("navigator", e))
        },
    )?;
    let origins = if storage.origin.starts_with("http") {
        vec![OriginStorage {
            origin: storage.origin,
            local_storage: storage.items,
        }]
    } else {
        Vec::new()
    };
    Ok(Capture {
        cookies,
        origins,
        observed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_target_make_it_back_off() {
        let url = "http://t/e".to_string();
        for e in [
            WarmError::TargetHttp {
                status: 503,
                url: url.clone(),
            },
            WarmError::TargetHttp {
                status: 500,
                url: url.clone(),
            },
            WarmError::NavigationTimeout {
                url: url.clone(),
                after: Duration::from_secs(1),
            },
            WarmError::Network {
                url: url.clone(),
                message: "reset".into(),
            },
            WarmError::Browser(BrowserError::Timeout {
                what: "Page.navigate".into(),
                after: Duration::from_secs(1),
            }),
        ] {
            assert_eq!(e.blame(), Blame::Target, "{e}");
            assert!(e.blames_target(), "{e}");
        }
        for e in [
            WarmError::BrowserGone("killed".into()),
            WarmError::Browser(BrowserError::ShuttingDown),
            WarmError::Browser(BrowserError::Launch {
                executable: "chromium".into(),
                message: "not found".into(),
            }),
        ] {
            assert_eq!(e.blame(), Blame::Browser, "{e}");
            assert!(!e.blames_target(), "{e}");
        }
    }

    #[test]
    fn an_unknown_or_unpublished_event_blames_the_event_not_the_target() {
        let url = "http://t/e".to_string();
        for status in [404, 410] {
            let e = WarmError::TargetHttp {
                status,
                url: url.clone(),
            };
            assert_eq!(e.blame(), Blame::Event, "{e}");
            assert!(!e.blames_target(), "{e}");
        }
        let e = WarmError::Invalid("url: relative URL without a base".into());
        assert_eq!(e.blame(), Blame::Event, "{e}");
        assert!(!e.blames_target(), "{e}");
        let e = WarmError::TargetHttp { status: 425, url };
        assert_eq!(e.blame(), Blame::EventNotReady, "{e}");
        assert!(!e.blames_target(), "{e}");
    }
}
