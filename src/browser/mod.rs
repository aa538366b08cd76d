//! The Chromium supervisor. By default it launches Debian's Chromium with its own profile dir,
//! TMPDIR and HOME (spawned so that it dies with the daemon, see `process`), polls its CDP
//! handler, detects its death, reaps it, removes its dirs and relaunches with backoff; on start
//! it sweeps the launches of previous daemons that died without cleaning up. With
//! `browser.endpoint(s)` it attaches to remote browsers instead: it never closes, kills or
//! reaps those, notices their loss within seconds (a heartbeat), reconnects with back-off and
//! spreads contexts over the ones that are up. Every CDP call made through it is bounded by a
//! timeout: chromiumoxide would otherwise wait forever on a dead browser.
//!
//! Files: this one holds [`Supervisor`]'s handle (contexts, slots, the live browsers);
//! `supervisor.rs` its task (relaunch with back-off, recycle, drain, reconnect remote browsers,
//! heartbeat, shutdown); `launch.rs` one launch and the teardown of a launched or remote
//! browser; `remote.rs` resolving and attaching to a remote browser; `memory.rs` the memory
//! guard; `error.rs` [`BrowserError`] and the CDP timeout wrapper; `context.rs` browser
//! contexts; `process.rs` spawning Chromium so it dies with the daemon and sweeping dead
//! daemons' launches; `guard.rs` where a session's browser may go.

mod context;
mod error;
pub mod guard;
mod launch;
mod memory;
mod process;
mod remote;
mod supervisor;

pub use context::{
    cdp_call, redact_url, BrowserContext, FingerprintOverrides, NavigationOutcome, ParkedContext,
};
pub(crate) use error::cdp;
pub use error::BrowserError;
pub use memory::tree_pss_kib;
pub use process::{processes_of, sweep, Swept};
pub use remote::probe as probe_remote;

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::error::CdpError;
use chromiumoxide::Browser;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

use launch::Running;

use crate::config::BrowserConfig;
use crate::fingerprint::BrowserVersion;

/// What callers see of the current browser.
#[derive(Debug, Clone)]
pub struct BrowserInfo {
    /// Launch (or connection) number, from 1; a relaunch, recycle or reconnect makes a new
    /// generation, and a context belongs to the generation it was opened in.
    pub generation: u64,
    /// The version the browser reports, read again on every launch and (re)connect
    /// (fingerprints are filled from it).
    pub version: BrowserVersion,
    /// The browser process id, when known (never for a remote browser).
    pub pid: Option<u32>,
    /// The launch's own dir (profile, TMPDIR and HOME under it); removed at teardown. Empty
    /// for a remote browser.
    pub profile_dir: PathBuf,
    /// The remote browser's URL as it may be shown (no token, no password); `None` when the
    /// browser was launched by this daemon.
    pub endpoint: Option<String>,
}

struct Inner {
    config: BrowserConfig,
    /// Live browsers. Launched: the last is current, earlier ones drain after a recycle.
    /// Remote: one per endpoint that is up.
    running: RwLock<Vec<Running>>,
    /// Live contexts per browser generation (a drained browser closes when it reaches 0).
    contexts_by_gen: std::sync::Mutex<HashMap<u64, usize>>,
    /// This daemon's contexts not disposed yet, per generation: what shutdown disposes in a
    /// remote browser (other clients' contexts there are never touched).
    ours: std::sync::Mutex<HashMap<u64, HashSet<BrowserContextId>>>,
    tracker: tokio_util::task::TaskTracker,
    /// The browsers that take new contexts now (none while down; waiters watch it).
    live: watch::Sender<Vec<BrowserInfo>>,
    contexts: Arc<Semaphore>,
    shutdown: CancellationToken,
    launches: std::sync::atomic::AtomicU64,
    /// The latest generation that opened a context: a browser that served one was healthy, so
    /// its death resets the relaunch back-off.
    served: std::sync::atomic::AtomicU64,
    /// The last generation handed out to a remote connection.
    generations: std::sync::atomic::AtomicU64,
}

/// Owns the Chromium process, or the connections to remote browsers. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Creates the supervisor and starts its task, which launches Chromium and relaunches it
    /// whenever it dies, until `shutdown` is cancelled (then it closes, reaps and cleans up).
    /// With `browser.endpoint(s)` the task attaches to those browsers instead, reconnecting
    /// when one is lost; at shutdown it disposes its contexts there and disconnects.
    pub fn start(
        config: BrowserConfig,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (live, _) = watch::channel(Vec::new());
        // `max_contexts` is per browser: several remote browsers hold that many each.
        let slots = config.max_contexts * config.remote_endpoints().len().max(1);
        let sup = Self {
            inner: Arc::new(Inner {
                contexts: Arc::new(Semaphore::new(slots)),
                config,
                running: RwLock::new(Vec::new()),
                contexts_by_gen: Default::default(),
                ours: Default::default(),
                tracker: tracker.clone(),
                live,
                shutdown,
                launches: Default::default(),
                served: Default::default(),
                generations: Default::default(),
            }),
        };
        let task = sup.clone();
        tracker.spawn(async move { task.run().await });
        sup
    }

    /// The browser config in force.
    pub fn config(&self) -> &BrowserConfig {
        &self.inner.config
    }

    /// How many launches so far (relaunches included); with remote browsers, how many
    /// connections (reconnects included).
    pub fn launches(&self) -> u64 {
        self.inner
            .launches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The live browser, if one is up now: the one the next context opens in (with several
    /// remote browsers, the one with the fewest live contexts).
    pub fn current(&self) -> Option<BrowserInfo> {
        self.pick(&self.inner.live.borrow())
    }

    /// Every browser that takes new contexts now (one when launched; with remote browsers,
    /// each endpoint that is connected).
    pub fn browsers(&self) -> Vec<BrowserInfo> {
        self.inner.live.borrow().clone()
    }

    /// Whether contexts of `generation` are still wanted: its browser is up and not being
    /// replaced (a parked context of another generation should be re-created).
    pub fn is_live(&self, generation: u64) -> bool {
        self.inner
            .live
            .borrow()
            .iter()
            .any(|b| b.generation == generation)
    }

    /// The browser with the fewest live contexts among `live`.
    fn pick(&self, live: &[BrowserInfo]) -> Option<BrowserInfo> {
        let counts = self.inner.contexts_by_gen.lock().ok()?;
        emptiest(live, &counts).cloned()
    }

    /// Waits until a browser is up (at most `launch_timeout` plus backoff; a remote browser:
    /// `launch_timeout`) and returns the one the next context opens in.
    ///
    /// # Errors
    /// `ShuttingDown`; `Timeout` when no launched browser came up in time; `Gone` when no
    /// remote browser is connected.
    pub async fn ready(&self) -> Result<BrowserInfo, BrowserError> {
        let mut rx = self.inner.live.subscribe();
        let remote = self.inner.config.is_remote();
        let after = if remote {
            self.inner.config.launch_timeout
        } else {
            self.inner.config.launch_timeout * 2
        };
        let wait = async {
            loop {
                if let Some(info) = self.pick(&rx.borrow_and_update()) {
                    return Ok(info);
                }
                if rx.changed().await.is_err() {
                    return Err(BrowserError::ShuttingDown);
                }
            }
        };
        let timed_out = || {
            if remote {
                BrowserError::Gone(format!(
                    "no remote browser connected within {after:?} (reconnecting)"
                ))
            } else {
                BrowserError::Timeout {
                    what: "waiting for the browser".into(),
                    after,
                }
            }
        };
        tokio::select! {
            r = tokio::time::timeout(after, wait) => r.unwrap_or_else(|_| Err(timed_out())),
            _ = self.inner.shutdown.cancelled() => Err(BrowserError::ShuttingDown),
        }
    }

    /// Opens a new isolated browser context (with `proxy` when given) and one blank page in it.
    /// Waits for a free context slot (`browser.max_contexts`).
    ///
    /// # Errors
    /// When the browser is gone, a call timed out, or the supervisor is shutting down.
    pub async fn new_context(&self, proxy: Option<&str>) -> Result<BrowserContext, BrowserError> {
        let permit = self.context_permit().await?;
        self.ready().await?;
        context::open(self.clone(), permit, proxy, None).await
    }

    /// Opens a context like [`Supervisor::new_context`] whose page may load documents only from
    /// `policy`'s origins (redirects included) and no subresource from an internal address
    /// outside them: everything else is failed inside the browser, before its request leaves.
    ///
    /// # Errors
    /// As [`Supervisor::new_context`].
    pub async fn new_guarded_context(
        &self,
        proxy: Option<&str>,
        policy: Arc<guard::UrlPolicy>,
    ) -> Result<BrowserContext, BrowserError> {
        let permit = self.context_permit().await?;
        self.ready().await?;
        context::open(self.clone(), permit, proxy, Some(policy)).await
    }

    async fn context_permit(&self) -> Result<OwnedSemaphorePermit, BrowserError> {
        tokio::select! {
            p = self.inner.contexts.clone().acquire_owned() => p.map_err(|_| BrowserError::ShuttingDown),
            _ = self.inner.shutdown.cancelled() => Err(BrowserError::ShuttingDown),
        }
    }

    /// Contexts with their page open now: the `browser.max_contexts` slots in use.
    pub fn open_contexts(&self) -> usize {
        self.context_slots() - self.inner.contexts.available_permits()
    }

    /// Context slots in all: `browser.max_contexts` per browser (per endpoint when remote).
    pub fn context_slots(&self) -> usize {
        self.inner.config.max_contexts * self.inner.config.remote_endpoints().len().max(1)
    }

    /// Live browser contexts now, open or parked (see [`BrowserContext::park`]).
    pub fn live_contexts(&self) -> usize {
        self.inner
            .contexts_by_gen
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Runs `f` against the live browser of `generation` under the CDP timeout.
    pub(crate) async fn with_browser<T, F>(
        &self,
        what: &str,
        generation: Option<u64>,
        f: F,
    ) -> Result<T, BrowserError>
    where
        F: AsyncFnOnce(&Browser) -> Result<T, CdpError>,
    {
        let guard = self.inner.running.read().await;
        let running = match generation {
            None => guard.last(),
            Some(g) => guard.iter().find(|r| r.generation == g),
        }
        .ok_or_else(|| {
            BrowserError::Gone(format!("{what}: the browser this context lived in is gone"))
        })?;
        let gone = running.gone.clone();
        cdp(
            what,
            self.inner.config.cdp_timeout,
            &gone,
            f(&running.browser),
        )
        .await
    }

    /// The "gone" token of a generation, for page-level calls.
    pub(crate) async fn gone_token(&self, generation: u64) -> CancellationToken {
        let guard = self.inner.running.read().await;
        match guard.iter().find(|r| r.generation == generation) {
            Some(r) => r.gone.clone(),
            None => {
                let t = CancellationToken::new();
                t.cancel();
                t
            }
        }
    }

    /// Kills the browser process (SIGKILL), as a crash would. For tests and chaos runs. Does
    /// nothing to a remote browser (it has no pid here).
    pub fn kill_for_test(&self) -> Option<u32> {
        let pid = self.current()?.pid?;
        // SAFETY: plain kill(2) on the pid of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        Some(pid)
    }

    /// Picks the browser the next context opens in (the one with the fewest live contexts)
    /// and counts the context there at once, before it exists: contexts opened together
    /// spread over several remote browsers, where counting them only once open sent every
    /// one of them to the browser that looked emptiest. [`Supervisor::context_closed`] gives
    /// the count back.
    pub(crate) fn reserve_context(&self) -> Option<u64> {
        let live = self.inner.live.borrow();
        let mut counts = self.inner.contexts_by_gen.lock().ok()?;
        let generation = emptiest(&live, &counts)?.generation;
        *counts.entry(generation).or_default() += 1;
        Some(generation)
    }

    /// Context `id` of `generation` opened (counted by [`Supervisor::reserve_context`]).
    pub(crate) fn context_opened(&self, generation: u64, id: &BrowserContextId) {
        self.inner
            .served
            .fetch_max(generation, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.inner.ours.lock() {
            m.entry(generation).or_default().insert(id.clone());
        }
    }

    /// Context `id` of `generation` was disposed (or its browser is gone): nothing left to
    /// dispose at shutdown.
    pub(crate) fn context_disposed(&self, generation: u64, id: &BrowserContextId) {
        if let Ok(mut m) = self.inner.ours.lock() {
            if let Some(ids) = m.get_mut(&generation) {
                ids.remove(id);
            }
        }
    }

    /// Forgets every context of `generation` (its browser was torn down).
    pub(super) fn forget_contexts(&self, generation: u64) {
        if let Ok(mut m) = self.inner.ours.lock() {
            m.remove(&generation);
        }
    }

    /// Disposes this daemon's contexts still alive in `browser` (generation `generation`),
    /// each call bounded by `timeout`, all at once; how many were disposed.
    pub(super) async fn dispose_ours(
        &self,
        browser: &Browser,
        gone: &CancellationToken,
        generation: u64,
        timeout: std::time::Duration,
    ) -> usize {
        let ids: Vec<BrowserContextId> = self
            .inner
            .ours
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&generation))
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        let calls = ids.into_iter().map(|id| {
            cdp(
                "Target.disposeBrowserContext",
                timeout,
                gone,
                browser.dispose_browser_context(id),
            )
        });
        futures::future::join_all(calls)
            .await
            .iter()
            .filter(|r| r.is_ok())
            .count()
    }

    /// A context of `generation` closed.
    pub(crate) fn context_closed(&self, generation: u64) {
        if let Ok(mut m) = self.inner.contexts_by_gen.lock() {
            if let Some(n) = m.get_mut(&generation) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Live contexts of `generation`.
    fn contexts_of(&self, generation: u64) -> usize {
        self.inner
            .contexts_by_gen
            .lock()
            .ok()
            .and_then(|m| m.get(&generation).copied())
            .unwrap_or(0)
    }
}

/// The browser among `live` with the fewest contexts in `counts` (per generation).
fn emptiest<'a>(live: &'a [BrowserInfo], counts: &HashMap<u64, usize>) -> Option<&'a BrowserInfo> {
    live.iter()
        .min_by_key(|b| counts.get(&b.generation).copied().unwrap_or(0))
}
