//! `warmer serve`: opens the store, restores the pool (served at once, before any browser is
//! up), starts the browser supervisor, the workers and the API, and on shutdown stops them in
//! order: API, workers, contexts and browser (closed and reaped; a remote browser of
//! `browser.endpoint` only loses this daemon's contexts and the connection), then flushes the
//! store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::browser::Supervisor;
use crate::config::Config;
use crate::fingerprint::FingerprintSource;
use crate::keepalive::KeepAlive;
use crate::logging::chain;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::store::StoreError;
use crate::warm::Warmer;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The API would listen beyond loopback without a token.
    #[error("server.listen {0} is not a loopback address: set WARMER_TOKEN or server.token_file")]
    TokenRequired(SocketAddr),
    /// The tokenless FlareSolverr listener would listen beyond loopback.
    #[error(
        "flaresolverr.listen {0} is not a loopback address and that listener has no token: \
         set flaresolverr.allow_public = true to serve it anyway"
    )]
    FlareSolverrPublic(SocketAddr),
    /// The token file cannot be used (unreadable, empty).
    #[error("server.token_file {path}: {message}")]
    TokenFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A listener could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (in use, not permitted...; shown by `{:#}`).
        source: std::io::Error,
    },
    /// The store could not be opened (the cause follows under `{:#}`).
    #[error("opening store")]
    Store(#[from] StoreError),
    /// The fingerprint data could not be loaded (the cause follows under `{:#}`).
    #[error("loading fingerprints")]
    Fingerprints(#[from] crate::fingerprint::FingerprintError),
    /// The pool could not be restored from the store (the cause follows under `{:#}`).
    #[error("restoring the pool")]
    Restore(#[from] crate::pool::PoolError),
}

/// The bearer token: `WARMER_TOKEN`, else the token file, else none.
///
/// # Errors
/// When the token file cannot be read or is empty.
pub fn load_token(config: &Config) -> Result<Option<String>, DaemonError> {
    if let Ok(t) = std::env::var("WARMER_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(Some(t.trim().to_string()));
        }
    }
    let Some(path) = &config.server.token_file else {
        return Ok(None);
    };
    let err = |message: String| DaemonError::TokenFile {
        path: path.display().to_string(),
        message,
    };
    let t = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let t = t.trim();
    if t.len() < 16 {
        return Err(err("the token must be at least 16 characters".into()));
    }
    Ok(Some(t.to_string()))
}

/// A running daemon.
pub struct Daemon {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The pool the API serves from (tests take and report through it directly).
    pub pool: Arc<Pool>,
    /// Keep-alive of login sessions.
    pub accounts: Arc<KeepAlive>,
    /// Where the FlareSolverr listener listens (`[flaresolverr] listen`), when it does.
    pub flaresolverr_addr: Option<SocketAddr>,
    api_stop: CancellationToken,
    api_tracker: TaskTracker,
    workers_stop: CancellationToken,
    workers: TaskTracker,
    browser_stop: CancellationToken,
    browser: TaskTracker,
}

impl Daemon {
    /// Starts everything. With `listener`, serves on it instead of binding `server.listen`.
    ///
    /// # Errors
    /// A missing token on a non-loopback address, the store, the bind.
    pub async fn start(config: Config, listener: Option<TcpListener>) -> Result<Self, DaemonError> {
        let token = load_token(&config)?;
        let listen = config.server.listen;
        if token.is_none() && !listen.ip().is_loopback() && listener.is_none() {
            return Err(DaemonError::TokenRequired(listen));
        }
        let fs = &config.flaresolverr;
        if let Some(addr) = fs
            .listen
            .filter(|a| !a.ip().is_loopback() && !fs.allow_public)
        {
            return Err(DaemonError::FlareSolverrPublic(addr));
        }
        // The backend store.backend names; the log says what it keeps (a memory store: nothing;
        // sled without a key: cookie values in the clear).
        let backend = crate::store::open_node(&config.store, &config.cluster).await?;
        backend.info().log_at_start();
        let fingerprints = Arc::new(match &config.browser.fingerprints_dir {
            Some(dir) => FingerprintSource::load_dir(dir)?,
            None => FingerprintSource::embedded(),
        });
        let browser_stop = CancellationToken::new();
        let browser = TaskTracker::new();
        let sup = Supervisor::start(config.browser.clone(), browser_stop.clone(), &browser);
        let workers_stop = CancellationToken::new();
        let workers = TaskTracker::new();
        let pool = Arc::new(
            Pool::new(
                &config.targets,
                backend,
                Warmer::new(sup, fingerprints),
                Arc::new(Metrics::default()),
                workers_stop.clone(),
                workers.clone(),
            )
            .with_custom_proxies(config.server.allow_custom_proxies)
            .with_lease_ttl(config.cluster.lease_ttl),
        );
        let (ready, expired) = pool.restore().await?;
        tracing::info!(ready, expired, "pool restored from the store");

        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(listen)
                .await
                .map_err(|source| DaemonError::Bind {
                    addr: listen,
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
            addr: listen,
            source,
        })?;
        if token.is_none() {
            tracing::warn!(%addr, "no API token configured: the API is open to local users");
        }
        let accounts = Arc::new(KeepAlive::new(pool.clone()));
        let state = AppState {
            pool: pool.clone(),
            accounts: accounts.clone(),
            token: token.map(Arc::from),
            edge: Arc::new(api::EdgePolicy::new(&config.server)),
            flaresolverr: Arc::new(api::NamedSessions::new(config.flaresolverr.session_idle)),
            browser: pool.warmer().supervisor().clone(),
        };
        // Bound before anything is served, so a taken port fails the start.
        let fs_listener = match config.flaresolverr.listen {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .map_err(|source| DaemonError::Bind { addr: at, source })?,
            ),
            None => None,
        };
        let app = api::app(state.clone());
        let api_stop = CancellationToken::new();
        let api_tracker = TaskTracker::new();
        let stop = api_stop.clone();
        api_tracker.spawn(async move {
            // hyper's own bodiless errors (a 100 kB path: 414) leave as JSON errors too.
            let served = axum::serve(api::JsonErrorsListener(listener), app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %chain(&e), "API server failed");
            }
        });
        tracing::info!(%addr, targets = config.targets.len(), "API listening");
        let mut flaresolverr_addr = None;
        if let Some(l) = fs_listener {
            let at = l.local_addr().map_err(|source| DaemonError::Bind {
                addr: listen,
                source,
            })?;
            flaresolverr_addr = Some(at);
            let app = api::flaresolverr_router(state);
            let stop = api_stop.clone();
            api_tracker.spawn(async move {
                let served = axum::serve(l, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %chain(&e), "FlareSolverr listener failed");
                }
            });
            tracing::info!(addr = %at, "FlareSolverr API listening (POST /v1, GET /, GET /health; no token)");
        }
        crate::schedule::spawn_all(&pool, &accounts, &config.schedule, &workers_stop, &workers);
        Ok(Self {
            addr,
            pool,
            accounts,
            flaresolverr_addr,
            api_stop,
            api_tracker,
            workers_stop,
            workers,
            browser_stop,
            browser,
        })
    }

    /// Stops in order: API, workers (warms under way are abandoned), browser (contexts
    /// disposed, Chromium closed and reaped, dirs removed; a remote browser is left running,
    /// disconnected), then flushes the store.
    pub async fn shutdown(self) {
        let step = |what: &'static str, t: TaskTracker, limit: Duration| async move {
            t.close();
            if tokio::time::timeout(limit, t.wait()).await.is_err() {
                tracing::warn!(what, "did not stop in time");
            }
        };
        tracing::info!("shutting down");
        self.api_stop.cancel();
        step("API", self.api_tracker, Duration::from_secs(3)).await;
        self.workers_stop.cancel();
        step("workers", self.workers, Duration::from_secs(3)).await;
        self.browser_stop.cancel();
        step("browser", self.browser, Duration::from_secs(5)).await;
        self.pool.flush().await;
        tracing::info!("stopped");
    }
}

/// Runs the daemon until `signal` resolves, then shuts it down.
///
/// # Errors
/// When it cannot start.
pub async fn run(config: Config, signal: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let daemon = Daemon::start(config, None).await?;
    signal.await;
    daemon.shutdown().await;
    Ok(())
}

/// The runtime `warmer` runs on: multi-threaded with half the cores (at least one) unless
/// `TOKIO_WORKER_THREADS` says otherwise. The daemon's own work — the API, driving CDP, the
/// workers — is light; Chromium, in its own processes, and the scrapers beside it need the
/// cores more, and fewer runtime threads contending with them keep the API's tail latency
/// short (BENCHMARKS.md, `## api`). Blocking work (the store) has its own pool.
///
/// # Errors
/// When the runtime cannot start.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        b.worker_threads((cores / 2).max(1));
    }
    b.enable_all().build()
}
