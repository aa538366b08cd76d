//! The Chromium supervisor: launches Debian's Chromium with its own profile dir, TMPDIR and HOME
//! (spawned so that it dies with the daemon, see `process`), polls its CDP handler, detects its
//! death, reaps it, removes its dirs and relaunches with backoff. On start it sweeps the
//! launches of previous daemons that died without cleaning up. Every CDP call made through it
//! is bounded by a timeout: chromiumoxide would otherwise wait forever on a dead browser.

mod context;
pub mod guard;
mod process;

pub use context::{
    cdp_call, redact_url, BrowserContext, FingerprintOverrides, NavigationOutcome, ParkedContext,
};
pub use process::{processes_of, sweep, Swept};

use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::Browser;
use futures::StreamExt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::{BrowserConfig, Flavor};
use crate::fingerprint::BrowserVersion;

/// Why a browser operation failed. Callers and metrics tell these apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    /// The browser process died or its connection closed during the call.
    #[error("browser gone: {0}")]
    Gone(String),
    /// The call did not finish within its timeout.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The browser could not be launched.
    #[error("launching {executable}: {message}")]
    Launch { executable: String, message: String },
    /// Chromium answered with an error.
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    /// A navigation failed with one of Chromium's network errors: the page could not be
    /// loaded at all (DNS, refused or reset connection, TLS, a proxy that cannot be reached, an
    /// empty error page, a download instead of a page).
    #[error("{what}: {code}{}", detail.map(|d| format!(" ({d})")).unwrap_or_default())]
    Net {
        /// What was being done, with the URL redacted (`navigating to https://x/…`).
        what: String,
        /// Chromium's error code as it reports it, e.g. `net::ERR_CONNECTION_REFUSED`.
        code: String,
        /// What the code means here when Chromium's own code is misleading (a download
        /// reported as `net::ERR_ABORTED`).
        detail: Option<&'static str>,
    },
    /// The supervisor is shutting down.
    #[error("browser supervisor is shutting down")]
    ShuttingDown,
}

impl BrowserError {
    fn from_cdp(what: &str, e: CdpError) -> Self {
        match e {
            CdpError::Ws(_) | CdpError::ChannelSendError(_) | CdpError::NoResponse => {
                BrowserError::Gone(format!("{what}: {e}"))
            }
            CdpError::Io(ref io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                BrowserError::Gone(format!("{what}: {e}"))
            }
            other => BrowserError::Protocol {
                what: what.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BrowserError::Gone(_) => "browser_gone",
            BrowserError::Timeout { .. } => "timeout",
            BrowserError::Launch { .. } => "launch_failed",
            BrowserError::Protocol { .. } => "protocol",
            BrowserError::Net { .. } => "network",
            BrowserError::ShuttingDown => "shutting_down",
        }
    }
}

/// Runs one CDP future under `after`, mapping errors; `gone` cuts it short when the browser dies.
pub(crate) async fn cdp<T>(
    what: &str,
    after: Duration,
    gone: &CancellationToken,
    fut: impl Future<Output = Result<T, CdpError>>,
) -> Result<T, BrowserError> {
    tokio::select! {
        biased;
        r = tokio::time::timeout(after, fut) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BrowserError::from_cdp(what, e)),
            Err(_) => {
                if gone.is_cancelled() {
                    Err(BrowserError::Gone(what.to_string()))
                } else {
                    Err(BrowserError::Timeout { what: what.to_string(), after })
                }
            }
        },
        _ = gone.cancelled() => Err(BrowserError::Gone(format!("{what}: connection closed"))),
    }
}

/// The kind of a CDP error, for logs that must not quote CDP traffic.
fn cdp_error_kind(e: &CdpError) -> &'static str {
    match e {
        CdpError::Ws(_) => "websocket",
        CdpError::Io(_) => "io",
        CdpError::Serde(_) => "unparsable message",
        CdpError::Chrome(_) | CdpError::ChromeMessage(_) => "chrome error",
        CdpError::Timeout => "timeout",
        _ => "other",
    }
}

/// Chromium's flags. Passed without `--`: chromiumoxide adds it.
fn launch_args(flavor: Flavor) -> Vec<String> {
    let mut args: Vec<String> = [
        "no-sandbox",
        "disable-gpu",
        "disable-quic",
        "no-first-run",
        "no-default-browser-check",
        "disable-background-networking",
        "disable-component-update",
        "disable-sync",
        "disable-breakpad",
        "disable-crash-reporter",
        "disable-dev-shm-usage",
        "password-store=basic",
        "use-mock-keychain",
        "mute-audio",
        "hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if flavor == Flavor::Chromium {
        args.push("no-startup-window".into());
        // WebUIOmniboxPopup, WebUIOmniboxAimPopup: each window otherwise carries a hidden
        // omnibox page: ~57 MiB instead of ~20 MiB per context.
        // SpareRendererForSitePerProcess: Chromium keeps a spare renderer process ready for
        // the next page, but a renderer serves one context only and every warm opens a new
        // one, so the spare is mostly started for nothing: ~8% less CPU per warm without it
        // and one process less (BENCHMARKS.md, ## warm). A page cannot see it. On the headless
        // shell it made no difference, so it is not passed there.
        args.push(
            "disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess"
                .into(),
        );
    }
    // Measured and left out (no gain, or a page could tell): BENCHMARKS.md, ## warm.
    args
}

/// The full command line after the executable: [`launch_args`] plus what chromiumoxide's
/// `Browser::launch` added (headless, no extensions, no setuid sandbox, the profile dir, and a
/// DevTools port of the kernel's choosing, announced on stderr).
fn command_args(flavor: Flavor, profile: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = launch_args(flavor)
        .into_iter()
        .map(|a| format!("--{a}"))
        .collect();
    for extra in [
        "--headless".to_string(),
        "--disable-extensions".to_string(),
        "--disable-setuid-sandbox".to_string(),
        "--remote-debugging-port=0".to_string(),
        format!("--user-data-dir={}", profile.display()),
    ] {
        if !args.contains(&extra) {
            args.push(extra);
        }
    }
    args
}

/// Relaunch back-off: the first delay, and the most it grows to while browsers die before they
/// served anything (or fail to launch).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A launched browser and everything that must be cleaned up with it.
struct Running {
    browser: Browser,
    /// The browser process (ours to reap; it gets SIGKILL if this process dies).
    child: tokio::process::Child,
    /// Fired when the handler loop sees the connection close.
    gone: CancellationToken,
    /// Profile dir + TMPDIR of this launch; removed when dropped.
    dirs: tempfile::TempDir,
    handler: tokio::task::JoinHandle<()>,
    version: BrowserVersion,
    pid: Option<u32>,
    generation: u64,
}

/// What callers see of the current browser.
#[derive(Debug, Clone)]
pub struct BrowserInfo {
    pub generation: u64,
    pub version: BrowserVersion,
    pub pid: Option<u32>,
    pub profile_dir: PathBuf,
}

struct Inner {
    config: BrowserConfig,
    /// Live browsers: the last is current; earlier ones drain after a recycle.
    running: RwLock<Vec<Running>>,
    /// Live contexts per browser generation (a drained browser closes when it reaches 0).
    contexts_by_gen: std::sync::Mutex<std::collections::HashMap<u64, usize>>,
    /// Asks the supervisor to replace the browser, make-before-break.
    recycle: tokio::sync::Notify,
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
                recycle: tokio::sync::Notify::new(),
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

    /// Replaces the browser, make-before-break: a new one is launched and takes new contexts;
    /// the old one closes when its last context is gone (at most 30 s later).
    pub fn recycle(&self) {
        self.inner.recycle.notify_one();
    }

    /// Proportional memory (PSS) of the current browser's whole process tree, in bytes.
    pub fn pss_bytes(&self) -> Option<u64> {
        let info = self.current()?;
        Some(tree_pss_kib(&info.profile_dir) * 1024)
    }

    async fn install(&self, running: Running, started: Instant) {
        let info = BrowserInfo {
            generation: running.generation,
            version: running.version.clone(),
            pid: running.pid,
            profile_dir: running.dirs.path().to_path_buf(),
        };
        tracing::info!(
            generation = running.generation,
            pid = ?running.pid,
            version = %running.version.full,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "browser up"
        );
        self.inner.running.write().await.push(running);
        self.inner.live.send_replace(Some(info));
    }

    async fn remove(&self, generation: u64) -> Option<Running> {
        let mut all = self.inner.running.write().await;
        let i = all.iter().position(|r| r.generation == generation)?;
        Some(all.remove(i))
    }

    /// Closes a replaced browser once its contexts are gone (at most 30 s).
    fn drain(&self, generation: u64) {
        let me = self.clone();
        self.inner.tracker.spawn(async move {
            let end = Instant::now() + Duration::from_secs(30);
            while me.contexts_of(generation) > 0 && Instant::now() < end {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = me.inner.shutdown.cancelled() => return,
                }
            }
            if let Some(r) = me.remove(generation).await {
                tracing::info!(generation, "replaced browser drained; closing it");
                me.teardown(r, true).await;
            }
        });
    }

    async fn run(self) {
        let swept = process::sweep(&std::env::temp_dir()).await;
        if swept.launches + swept.failed > 0 {
            tracing::info!(
                launches = swept.launches,
                processes = swept.processes,
                failed = swept.failed,
                live_left_alone = swept.live,
                unknown_left_alone = swept.unknown,
                "swept browser launches of daemons that died"
            );
        } else {
            tracing::debug!(?swept, "no browser launches of dead daemons to sweep");
        }
        let mut backoff = BACKOFF_MIN;
        let mut generation = 0u64;
        let check_every = self.inner.config.memory_check_every;
        let limit_kib = self.inner.config.max_pss_mib * 1024;
        // A limit below a fresh browser's size must not recycle in a loop.
        let mut last_recycle: Option<Instant> = None;
        'outer: loop {
            if self.inner.shutdown.is_cancelled() {
                break;
            }
            generation += 1;
            let started = Instant::now();
            let running = match self.launch(generation).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "browser launch failed");
                    self.sleep_backoff(&mut backoff).await;
                    continue;
                }
            };
            let mut current = generation;
            let mut current_started = started;
            let mut gone = running.gone.clone();
            self.install(running, started).await;
            loop {
                let recycle = tokio::select! {
                    _ = gone.cancelled() => {
                        self.inner.live.send_replace(None);
                        // A browser that served a context (or lived 30 s) was healthy: its
                        // death starts the back-off over. One that died before serving
                        // anything doubles it, up to BACKOFF_MAX.
                        let served = self.inner.served.load(std::sync::atomic::Ordering::Relaxed) >= current;
                        if served || current_started.elapsed() > Duration::from_secs(30) {
                            backoff = BACKOFF_MIN;
                        }
                        tracing::warn!(generation = current, served, retry_in_ms = backoff.as_millis() as u64, "browser gone; relaunching");
                        if let Some(r) = self.remove(current).await {
                            self.teardown(r, false).await;
                        }
                        self.sleep_backoff(&mut backoff).await;
                        continue 'outer;
                    }
                    _ = self.inner.shutdown.cancelled() => break 'outer,
                    _ = self.inner.recycle.notified() => true,
                    _ = tokio::time::sleep(check_every) => {
                        let info = self.current();
                        let used = info.map(|i| tree_pss_kib(&i.profile_dir)).unwrap_or(0);
                        let settled = last_recycle.is_none_or(|t| t.elapsed() >= check_every * 10);
                        if limit_kib > 0 && used > limit_kib && settled {
                            tracing::warn!(pss_mib = used / 1024, limit_mib = limit_kib / 1024, "browser above its memory limit; recycling");
                            true
                        } else {
                            false
                        }
                    }
                };
                if !recycle {
                    continue;
                }
                generation += 1;
                let started = Instant::now();
                match self.launch(generation).await {
                    Ok(fresh) => {
                        let old = current;
                        current = generation;
                        current_started = started;
                        gone = fresh.gone.clone();
                        self.install(fresh, started).await;
                        tracing::info!(old, new = current, "browser recycled (make-before-break)");
                        last_recycle = Some(Instant::now());
                        self.drain(old);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "launching a replacement browser failed; keeping the current one")
                    }
                }
            }
        }
        self.inner.live.send_replace(None);
        let all: Vec<Running> = self.inner.running.write().await.drain(..).collect();
        for r in all {
            self.teardown(r, true).await;
        }
        tracing::debug!("browser supervisor stopped");
    }

    async fn sleep_backoff(&self, backoff: &mut Duration) {
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::select! {
            _ = tokio::time::sleep(*backoff + jitter) => {}
            _ = self.inner.shutdown.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }

    async fn launch(&self, generation: u64) -> Result<Running, BrowserError> {
        let cfg = &self.inner.config;
        let executable = cfg.resolved_executable();
        let launch_err = |message: String| BrowserError::Launch {
            executable: executable.display().to_string(),
            message,
        };
        if !executable.exists() {
            return Err(launch_err(
                "not found; install Debian's chromium (scripts/setup) or set browser.executable"
                    .into(),
            ));
        }
        let dirs = tempfile::Builder::new()
            .prefix(process::DIR_PREFIX)
            .tempdir()
            .map_err(|e| launch_err(format!("creating profile dir: {e}")))?;
        // Marks the launch as this process's, so a later daemon's sweep leaves it alone while
        // this process lives and ends it once it died.
        process::Owner::me()
            .and_then(|o| o.write(dirs.path()))
            .map_err(|e| launch_err(format!("writing the launch's owner file: {e}")))?;
        let profile = dirs.path().join("profile");
        let tmp = dirs.path().join("tmp");
        let home = dirs.path().join("home");
        for d in [&profile, &tmp, &home] {
            std::fs::create_dir_all(d).map_err(|e| launch_err(format!("creating {d:?}: {e}")))?;
        }
        let mut cmd = tokio::process::Command::new(&executable);
        // HOME (and the XDG dirs under it) too: Chromium otherwise writes into the user's home
        // (~/.config/chromium/Crash Reports, ~/.cache/dconf, ~/Downloads when a page is a
        // download), which outlives the launch.
        cmd.args(command_args(cfg.flavor, &profile))
            .env("TMPDIR", &tmp)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = process::spawn_tied_to_this_process(cmd)
            .await
            .map_err(|e| launch_err(format!("spawning: {e}")))?;
        let pid = child.id();
        let connected = tokio::time::timeout(cfg.launch_timeout + Duration::from_secs(5), async {
            let url = devtools_url(&mut child, cfg.launch_timeout).await?;
            let handler_config = HandlerConfig {
                viewport: None,
                request_timeout: cfg.navigation_timeout,
                ..HandlerConfig::default()
            };
            Browser::connect_with_config(url, handler_config)
                .await
                .map_err(|e| format!("connecting to DevTools: {e}"))
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        let (browser, mut handler) = match connected {
            Ok(c) => c,
            Err(message) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                process::kill_all_of(dirs.path(), Duration::from_secs(3)).await;
                let path = dirs.path().to_path_buf();
                if dirs.close().is_err() {
                    let _ = process::remove_dir(&path).await;
                }
                return Err(launch_err(message));
            }
        };
        self.inner
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gone = CancellationToken::new();
        let gone_tx = gone.clone();
        let handler = tokio::spawn(async move {
            while let Some(ev) = handler.next().await {
                match ev {
                    Ok(()) => {}
                    // The connection is closed: every further call would hang. Stop here so
                    // callers fail at once.
                    Err(CdpError::Ws(e)) => {
                        tracing::debug!(error = %e, "CDP connection closed");
                        break;
                    }
                    // Events chromiumoxide cannot parse are harmless. Only the kind is logged:
                    // the text of a parse error can quote the frame (a cookie value).
                    Err(e) => tracing::trace!(kind = cdp_error_kind(&e), "CDP handler error"),
                }
            }
            gone_tx.cancel();
        });
        let mut running = Running {
            browser,
            child,
            gone,
            dirs,
            handler,
            version: BrowserVersion {
                major: 0,
                full: String::new(),
            },
            pid,
            generation,
        };
        let gone = running.gone.clone();
        let version = cdp(
            "Browser.getVersion",
            cfg.cdp_timeout,
            &gone,
            running.browser.version(),
        )
        .await;
        match version
            .and_then(|v| BrowserVersion::from_product(&v.product).map_err(launch_err_static))
        {
            Ok(v) => {
                running.version = v;
                Ok(running)
            }
            Err(e) => {
                self.teardown(running, false).await;
                Err(e)
            }
        }
    }

    /// Closes (when `graceful`), kills, reaps, and removes the dirs of a browser.
    async fn teardown(&self, mut r: Running, graceful: bool) {
        let t = self.inner.config.cdp_timeout.min(Duration::from_secs(3));
        if graceful && !r.gone.is_cancelled() {
            let _ = tokio::time::timeout(t, r.browser.close()).await;
        }
        let exited = tokio::time::timeout(t, r.child.wait()).await.is_ok();
        if !exited {
            let _ = r.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), r.child.wait()).await;
        }
        r.handler.abort();
        let path = r.dirs.path().to_path_buf();
        // After a crash, renderers and the zygote can outlive the browser process for a
        // moment and keep writing into the profile: end them, then remove the dir.
        process::kill_all_of(&path, Duration::from_secs(3)).await;
        let removed = match r.dirs.close() {
            Ok(()) => Ok(()),
            Err(_) => process::remove_dir(&path).await,
        };
        if let Err(e) = removed {
            tracing::warn!(error = %e, dir = %path.display(), "removing browser profile dir");
        }
        tracing::debug!(generation = r.generation, "browser reaped and cleaned up");
    }
}

/// Reads Chromium's stderr until it announces its DevTools websocket (`DevTools listening on
/// ws://…`), at most `within`.
///
/// # Errors
/// When it exits or closes stderr first, or says nothing in time; with its last stderr lines.
async fn devtools_url(
    child: &mut tokio::process::Child,
    within: Duration,
) -> Result<String, String> {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let read = tokio::time::timeout(within, async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some((_, ws)) = line.rsplit_once("listening on ") {
                        if ws.starts_with("ws") && ws.contains("devtools/browser") {
                            return Ok(ws.trim().to_string());
                        }
                    }
                    if tail.len() == 3 {
                        tail.pop_front();
                    }
                    tail.push_back(line.chars().take(300).collect());
                }
                Ok(None) => return Err(None),
                Err(e) => return Err(Some(format!("reading its stderr: {e}"))),
            }
        }
    })
    .await;
    let stderr = || Vec::from(tail.clone()).join(" | ");
    match read {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(Some(e))) => Err(format!("{e}; stderr: {}", stderr())),
        Ok(Err(None)) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "stderr closed".into(),
            };
            Err(format!(
                "exited before DevTools listened ({status}); stderr: {}",
                stderr()
            ))
        }
        Err(_) => Err(format!(
            "no DevTools URL on stderr within {within:?}; stderr: {}",
            stderr()
        )),
    }
}

/// Sum of `Pss` (KiB) over every process of the browser launched under `root`.
pub fn tree_pss_kib(root: &std::path::Path) -> u64 {
    processes_of(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .map(|rollup| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn launch_err_static(message: String) -> BrowserError {
    BrowserError::Protocol {
        what: "Browser.getVersion".into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_passed_without_dashes_and_keep_the_network_quiet() {
        for flavor in [Flavor::Chromium, Flavor::HeadlessShell] {
            let args = launch_args(flavor);
            assert!(args.iter().all(|a| !a.starts_with('-')));
            for needed in [
                "no-sandbox",
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
            ] {
                assert!(args.iter().any(|a| a == needed), "{needed}");
            }
        }
        assert!(launch_args(Flavor::Chromium)
            .iter()
            .any(|a| a.contains("WebUIOmniboxPopup")));
    }

    #[tokio::test]
    async fn cdp_timeout_fires_on_a_call_that_never_completes() {
        let gone = CancellationToken::new();
        let r: Result<(), _> = cdp(
            "never",
            Duration::from_millis(20),
            &gone,
            futures::future::pending(),
        )
        .await;
        assert!(matches!(r, Err(BrowserError::Timeout { .. })));
    }

    #[tokio::test]
    async fn cdp_fails_at_once_when_the_browser_is_gone() {
        let gone = CancellationToken::new();
        gone.cancel();
        let r: Result<(), _> = cdp(
            "never",
            Duration::from_secs(60),
            &gone,
            futures::future::pending(),
        )
        .await;
        assert!(matches!(r, Err(BrowserError::Gone(_))));
    }
}
