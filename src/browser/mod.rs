//! The Chromium supervisor: launches Debian's Chromium with its own profile dir, TMPDIR and HOME
//! (spawned so that it dies with the daemon, see `process`), polls its CDP handler, detects its
//! death, reaps it, removes its dirs and relaunches with backoff. On start it sweeps the
//! launches of previous daemons that died without cleaning up. Every CDP call made through it
//! is bounded by a timeout: chromiumoxide would otherwise wait forever on a dead browser.
//!
//! Files: this one holds [`Supervisor`]'s handle (contexts, slots, the live browser);
//! `supervisor.rs` its task (relaunch with back-off, recycle, drain, shutdown); `launch.rs`
//! one launch and its teardown; `memory.rs` the memory guard; `error.rs` [`BrowserError`] and
//! the CDP timeout wrapper; `context.rs` browser contexts; `process.rs` spawning Chromium so it
//! dies with the daemon and sweeping dead daemons' launches; `guard.rs` where a session's
//! browser may go.

mod context;
mod error;
pub mod guard;
mod launch;
mod memory;
mod process;
mod supervisor;

pub use context::{
    cdp_call, redact_url, BrowserContext, FingerprintOverrides, NavigationOutcome, ParkedContext,
};
pub(crate) use error::cdp;
pub use error::BrowserError;
pub use memory::tree_pss_kib;
pub use process::{processes_of, sweep, Swept};

use chromiumoxide::error::CdpError;
use chromiumoxide::Browser;
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
    /// Launch number, from 1; a relaunch or recycle makes a new generation, and a context
    /// belongs to the generation it was opened in.
    pub generation: u64,
    /// The version Chromium reports (fingerprints are filled from it).
    pub version: BrowserVersion,
    /// The browser process id, when known.
    pub pid: Option<u32>,
    /// The launch's own dir (profile, TMPDIR and HOME under it); removed at teardown.
    pub profile_dir: PathBuf,
}

struct Inner {
    config: BrowserConfig,
    /// Live browsers: the last is current; earlier ones drain after a recycle.
    running: RwLock<Vec<Running>>,
    /// Live contexts per browser generation (a drained browser closes when it reaches 0).
    contexts_by_gen: std::sync::Mutex<std::collections::HashMap<u64, usize>>,
    tracker: tokio_util::task::TaskTracker,
    /// Latest live generation (0 = none yet); waiters watch it.
    live: watch::Sender<Option<BrowserInfo>>,
    contexts: Arc<Semaphore>,
    shutdown: CancellationToken,
    launches: std::sync::atomic::AtomicU64,
    /// The latest generation that opened a context: a browser that served one was healthy, so
    /// its death resets the relaunch back-off.
    served: std::sync::atomic::AtomicU64,
}

/// Owns the Chromium process. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Creates the supervisor and starts its task, which launches Chromium and relaunches it
    /// whenever it dies, until `shutdown` is cancelled (then it closes, reaps and cleans up).
    pub fn start(
        config: BrowserConfig,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (live, _) = watch::channel(None);
        let sup = Self {
            inner: Arc::new(Inner {
                contexts: Arc::new(Semaphore::new(config.max_contexts)),
                config,
                running: RwLock::new(Vec::new()),
                contexts_by_gen: Default::default(),
                tracker: tracker.clone(),
                live,
                shutdown,
                launches: Default::default(),
                served: Default::default(),
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

    /// How many launches so far (relaunches included).
    pub fn launches(&self) -> u64 {
        self.inner
            .launches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The live browser, if one is up now.
    pub fn current(&self) -> Option<BrowserInfo> {
        self.inner.live.borrow().clone()
    }

    /// Waits until a browser is up (at most `launch_timeout` plus backoff).
    ///
    /// # Errors
    /// `ShuttingDown`, or `Timeout` when none came up in time.
    pub async fn ready(&self) -> Result<BrowserInfo, BrowserError> {
        let mut rx = self.inner.live.subscribe();
        let after = self.inner.config.launch_timeout * 2;
        let wait = async {
            loop {
                if let Some(info) = rx.borrow_and_update().clone() {
                    return Ok(info);
                }
                if rx.changed().await.is_err() {
                    return Err(BrowserError::ShuttingDown);
                }
            }
        };
        tokio::select! {
            r = tokio::time::timeout(after, wait) => r.unwrap_or(Err(BrowserError::Timeout {
                what: "waiting for the browser".into(),
                after,
            })),
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
        self.inner.config.max_contexts - self.inner.contexts.available_permits()
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

    /// Kills the browser process (SIGKILL), as a crash would. For tests and chaos runs.
    pub fn kill_for_test(&self) -> Option<u32> {
        let pid = self.current()?.pid?;
        // SAFETY: plain kill(2) on the pid of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        Some(pid)
    }

    /// A context of `generation` opened.
    pub(crate) fn context_opened(&self, generation: u64) {
        self.inner
            .served
            .fetch_max(generation, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.inner.contexts_by_gen.lock() {
            *m.entry(generation).or_default() += 1;
        }
    }

    /// A context of `generation` closed.
    pub(crate) fn context_closed(&self, generation: u64) {
        if let Ok(mut m) = self.inner.contexts_by_gen.lock() {
            if let Some(n) = m.get_mut(&generation) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn contexts_of(&self, generation: u64) -> usize {
        self.inner
            .contexts_by_gen
            .lock()
            .ok()
            .and_then(|m| m.get(&generation).copied())
            .unwrap_or(0)
    }
}
